"""Python SDK benchmarks (docs/benchmarks.md, "Python SDK").

    go build -o /tmp/runnel ./cmd/runnel
    /usr/bin/python3 sdk/python/bench/bench.py --bin /tmp/runnel [--db postgres://...] [--repeats 5]

It starts a `runnel server` (SQLite in a temporary directory unless --db),
a Python worker process (this script with `worker`), and measures from the
main process, each case --repeats times, reporting the median:

put      one Python step (a plain def, in the worker's thread pool) puts N
         100-byte events with context.put_stream and then context.flush():
         events stored per second, from the first put to the flush's return
         (every event acknowledged as durably stored by the engine).
replay   a Python listener (sync iterator) reads a finished run of 100k
         step.stream events (100 B) from its start to its terminal event:
         events received per second, from the call to the last event.
latency  a Python step puts one event per millisecond (1,000 events/s, on an
         absolute schedule) carrying time.time_ns(); a Python listener in
         the main process follows the run from now: receive time minus put
         time, p50 and p99 over 5,000 events.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import runnel  # noqa: E402
from runnel import Context, EventType  # noqa: E402

PAYLOAD = b"x" * 100


def define(client: runnel.Runnel) -> list[object]:
    @runnel.workflow("bench-put")
    class Put:
        @runnel.step()
        def put(self, ctx: Context) -> dict[str, float]:
            n = ctx.workflow_input()["n"]
            t0 = time.perf_counter()
            for _ in range(n):
                ctx.put_stream(PAYLOAD)
            ctx.flush()
            return {"seconds": time.perf_counter() - t0}

    @runnel.workflow("bench-paced")
    class Paced:
        @runnel.step()
        def paced(self, ctx: Context) -> None:
            inp = ctx.workflow_input()
            n, rate = inp["n"], inp["rate"]
            start = time.perf_counter() + 0.2
            for i in range(n):
                d = start + i / rate - time.perf_counter()
                if d > 0:
                    time.sleep(d)
                ctx.put_stream(str(time.time_ns()).encode().ljust(100))

    return [Put(), Paced()]


def worker_main() -> None:
    client = runnel.Runnel()
    w = client.worker("bench-worker", slots=4)
    for wf in define(client):
        w.register_workflow(wf)
    w.start()


def wait_run(client: runnel.Runnel, run_id: str) -> runnel.Run:
    for _ in client.listener.stream(run_id, types=[EventType.RUN_COMPLETED]):
        pass
    run = client.admin.get_run(run_id)
    assert run.status == runnel.RunStatus.COMPLETED, run
    return run


def bench_put(client: runnel.Runnel, n: int) -> float:
    run = wait_run(client, client.admin.run_workflow("bench-put", {"n": n}))
    return n / float(run.output["put"]["seconds"])


def bench_replay(client: runnel.Runnel, run_id: str, n: int) -> float:
    t0 = time.perf_counter()
    count = 0
    for ev in client.listener.stream(run_id):
        if ev.type == EventType.STEP_STREAM:
            count += 1
    dt = time.perf_counter() - t0
    assert count == n, count
    return count / dt


def bench_replay_async(client: runnel.Runnel, run_id: str, n: int) -> float:
    async def go() -> float:
        t0 = time.perf_counter()
        count = 0
        async for ev in client.listener.stream(run_id):
            if ev.type == EventType.STEP_STREAM:
                count += 1
        assert count == n
        return count / (time.perf_counter() - t0)

    return asyncio.run(go())


def bench_latency(client: runnel.Runnel, n: int, rate: int) -> tuple[float, float]:
    run_id = client.admin.run_workflow("bench-paced", {"n": n, "rate": rate})
    lat: list[float] = []
    for ev in client.listener.stream(run_id, types=[EventType.STEP_STREAM]):
        now = time.time_ns()
        lat.append((now - int(ev.payload.strip())) / 1e6)
    assert len(lat) == n
    qs = statistics.quantiles(lat, n=100)
    return qs[49], qs[98]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", nargs="?", default="bench")
    ap.add_argument("--bin", default=os.environ.get("RUNNEL_BIN", ""))
    ap.add_argument("--db", default="")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--put-n", type=int, default=100_000)
    ap.add_argument("--replay-n", type=int, default=100_000)
    ap.add_argument("--latency-n", type=int, default=5_000)
    ap.add_argument("--only", default="put,replay,latency")
    args = ap.parse_args()
    if args.mode == "worker":
        worker_main()
        return

    tmp = tempfile.mkdtemp(prefix="runnel-pybench-")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{s.getsockname()[1]}"
    cmd = [args.bin, "server", "--addr", addr, "--data-dir", tmp]
    if args.db:
        cmd += ["--db", args.db]
    engine = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    assert engine.stderr is not None
    for line in engine.stderr:
        if "engine listening" in line:
            break
    threading.Thread(target=lambda: [None for _ in engine.stderr], daemon=True).start()  # type: ignore[union-attr]
    token = Path(tmp, "admin.token").read_text().strip()
    env = {**os.environ, "RUNNEL_HOST": "http://" + addr, "RUNNEL_TOKEN": token}
    worker = subprocess.Popen([sys.executable, __file__, "worker"], env=env, stderr=subprocess.DEVNULL)
    client = runnel.Runnel("http://" + addr, token)
    try:
        for _ in range(200):
            if {"bench-put", "bench-paced"} <= {w.name for w in client.admin.list_workflows()}:
                break
            time.sleep(0.05)
        only = args.only.split(",")
        store = "PostgreSQL" if args.db else "SQLite"
        print(f"store: {store}; Python {sys.version.split()[0]}; repeats: {args.repeats}")
        if "put" in only:
            bench_put(client, 10_000)  # warm-up
            rs = [bench_put(client, args.put_n) for _ in range(args.repeats)]
            print(f"put_stream 100 B, {args.put_n} events, stored: median {statistics.median(rs):,.0f} ev/s  (runs: {', '.join(f'{r:,.0f}' for r in rs)})")
        if "replay" in only:
            run = wait_run(client, client.admin.run_workflow("bench-put", {"n": args.replay_n}))
            rs = [bench_replay(client, run.id, args.replay_n) for _ in range(args.repeats)]
            print(f"listener replay (sync) of {args.replay_n} events: median {statistics.median(rs):,.0f} ev/s  (runs: {', '.join(f'{r:,.0f}' for r in rs)})")
            rs = [bench_replay_async(client, run.id, args.replay_n) for _ in range(args.repeats)]
            print(f"listener replay (async) of {args.replay_n} events: median {statistics.median(rs):,.0f} ev/s  (runs: {', '.join(f'{r:,.0f}' for r in rs)})")
        if "latency" in only:
            res = [bench_latency(client, args.latency_n, 1000) for _ in range(args.repeats)]
            p50 = statistics.median(r[0] for r in res)
            p99 = statistics.median(r[1] for r in res)
            print(f"put -> listener latency at 1,000 ev/s: p50 {p50:.2f} ms, p99 {p99:.2f} ms (median of runs; runs p50/p99: {', '.join(f'{a:.2f}/{b:.2f}' for a, b in res)})")
    finally:
        worker.terminate()
        worker.wait(20)
        engine.terminate()
        engine.wait(20)


if __name__ == "__main__":
    main()
