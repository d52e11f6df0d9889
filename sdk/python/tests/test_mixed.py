"""A mixed fleet: a Go worker's run followed by a Python listener, and a
Python worker's run followed by the Go SDK (the CLI's `runnel stream`) and
by the engine's SSE endpoint — the same sequences everywhere."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import httpx

import runnel
from runnel import Context, Runnel
from runnel.sse import event_data, format_frame

from conftest import Engine, Proc, unique


def go_stream(engine: Engine, run_id: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [engine.bin, "stream", run_id, "--json", "--host", engine.url, "--token", engine.token],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def summary_go(d: dict[str, Any]) -> tuple[Any, ...]:
    return (d["position"], d["type"], d.get("stepRunId", ""), d.get("attempt", 0), d.get("payload"), d.get("encoding"))


def summary_py(e: runnel.Event) -> tuple[Any, ...]:
    d = event_data(e)
    return (e.position, d["type"], d.get("stepRunId", ""), d.get("attempt", 0), d.get("payload"), d.get("encoding"))


def sse_frames(engine: Engine, run_id: str) -> bytes:
    r = httpx.get(f"{engine.url}/api/v1/runs/{run_id}/stream", headers={"Authorization": "Bearer " + engine.token}, timeout=60)
    r.raise_for_status()
    # Comments (heartbeats, the start position) and the end message aside.
    blocks = [b for b in r.text.split("\n\n") if b and not b.startswith(":") and not b.startswith("event: end")]
    return "".join(b + "\n\n" for b in blocks).encode()


def test_go_worker_run_followed_by_python(engine: Engine) -> None:
    go_worker = Proc([engine.bin, "worker", "--slots", "2"], env=engine.env())
    try:
        go_worker.wait_for("worker registered")
        c = engine.client()
        for wf, inp in [("demo-text", {"chunks": 30, "intervalMs": 5}), ("demo-file", {})]:
            run_id = c.admin.run_workflow(wf, inp)
            py = list(c.listener.stream(run_id))
            assert py[-1].type == runnel.EventType.RUN_COMPLETED, py[-1]
            assert [summary_py(e) for e in py] == [summary_go(d) for d in go_stream(engine, run_id)]
            assert b"".join(format_frame(e.position, str(e.type), event_data(e)) for e in py) == sse_frames(engine, run_id)
    finally:
        go_worker.kill()


def test_python_worker_run_followed_by_go_and_sse(client: Runnel, engine: Engine, start_worker: Any) -> None:
    name = unique("mixed")

    @runnel.workflow(name)
    class Mixed:
        @runnel.step()
        def text(self, ctx: Context) -> dict[str, str]:
            for i in range(40):
                ctx.put_stream(f"chunk {i} <&> é\n")
            return {"html": "<b>&</b>"}

        @runnel.step(parents=["text"])
        async def binary(self, ctx: Context) -> None:
            await ctx.aio_put_stream(bytes([0xFF, 0x00, 0x10]))

    start_worker(Mixed())
    run_id = client.admin.run_workflow(name, {"x": "\u2028"})
    py = list(client.listener.stream(run_id))
    assert py[-1].type == runnel.EventType.RUN_COMPLETED
    assert [summary_py(e) for e in py] == [summary_go(d) for d in go_stream(engine, run_id)]
    assert b"".join(format_frame(e.position, str(e.type), event_data(e)) for e in py) == sse_frames(engine, run_id)
