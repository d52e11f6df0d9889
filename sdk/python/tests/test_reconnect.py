"""The worker's reconnect protocol (issue 16) against a scripted fake
engine: when its Listen stream breaks, the worker keeps its steps running
and their puts queued, registers again naming its previous worker id and
the attempts it still runs, continues the attempts the engine resumes (same
attempt, stream sequence numbers continuing) and cancels the others.

The real engine ignores `running` until issue 16 lands there; this pins
the SDK's side of the protocol meanwhile."""

from __future__ import annotations

import base64
import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import runnel
from runnel import Context


class FakeEngine:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.registrations: list[dict[str, Any]] = []
        self.puts: list[dict[str, Any]] = []
        self.completed: list[dict[str, Any]] = []
        self.failed: list[dict[str, Any]] = []
        self.down = threading.Event()  # PutStream answers 503 while set
        self.break_listen = threading.Event()
        self.second_listen = threading.Event()
        self.stored: dict[tuple[str, int], list[bytes]] = {}
        self.refused = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                method = self.path.rsplit("/", 1)[1]
                if method == "Listen":
                    fake.listen(self, json.loads(body[5:]))
                    return
                out = fake.unary(method, json.loads(body))
                if isinstance(out, int):
                    data = json.dumps({"code": "unavailable", "message": "engine restarting"}).encode()
                    self.send_response(out)
                else:
                    data = json.dumps(out).encode()
                    self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def unary(self, method: str, req: dict[str, Any]) -> dict[str, Any] | int:
        with self.lock:
            if method == "RegisterWorker":
                self.registrations.append(req)
                n = len(self.registrations)
                resumed = [r for r in req.get("running", []) if r["stepRunId"] == "keep"]
                return {"workerId": f"w{n}", "heartbeatIntervalMs": "200", "resumed": resumed}
            if method == "Heartbeat":
                return {}
            if method == "PutStream":
                if self.down.is_set():
                    self.refused += 1
                    return 503
                self.puts.append(req)
                key = (req["stepRunId"], req["attempt"])
                have = self.stored.setdefault(key, [])
                first = int(req["firstSeq"])
                for i, p in enumerate(req["payloads"]):
                    if first + i == len(have) + 1:  # a resent seq is stored once
                        have.append(base64.b64decode(p))
                return {}
            if method == "CompleteStep":
                self.completed.append(req)
                return {}
            if method == "FailStep":
                self.failed.append(req)
                return {}
        raise AssertionError(method)

    def listen(self, h: BaseHTTPRequestHandler, req: dict[str, Any]) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/connect+json")
        h.send_header("Connection", "close")
        h.end_headers()

        def send(msg: dict[str, Any]) -> None:
            data = json.dumps(msg).encode()
            h.wfile.write(struct.pack(">BI", 0, len(data)) + data)
            h.wfile.flush()

        if req["workerId"] == "w1":
            for srid in ("keep", "drop"):
                send({"assignment": {"runId": "r", "stepRunId": srid, "workflow": "Reconnect", "step": "work", "attempt": 1, "input": base64.b64encode(b"{}").decode()}})
            self.break_listen.wait(20)
            # Closing without the end-of-stream message: a broken stream.
            h.close_connection = True
            return
        self.second_listen.set()
        threading.Event().wait(30)


def test_worker_resumes_running_attempts_after_its_stream_breaks() -> None:
    fake = FakeEngine()
    put_first, gate = threading.Barrier(3), threading.Event()
    cancelled: dict[str, bool] = {}

    @runnel.workflow("Reconnect")
    class Reconnect:
        @runnel.step()
        def work(self, ctx: Context) -> str:
            for i in range(3):
                ctx.put_stream(f"{ctx.step_run_id} {i}")
            ctx.flush()
            put_first.wait(20)
            gate.wait(20)
            try:
                for i in range(3, 6):
                    ctx.put_stream(f"{ctx.step_run_id} {i}")
            except runnel.StepCancelledError:
                pass
            cancelled[ctx.step_run_id] = ctx.cancelled
            return ctx.step_run_id

    client = runnel.Runnel(fake.url, "t")
    w = client.worker("reconnecting", slots=4)
    w.tuning.reconnect_base = 0.01
    w.register_workflow(Reconnect())
    t = threading.Thread(target=w.start, daemon=True)
    t.start()
    try:
        put_first.wait(20)  # both attempts running, 3 events each stored
        fake.down.set()  # the engine goes away: puts fail meanwhile
        fake.break_listen.set()
        assert fake.second_listen.wait(20), "the worker did not reconnect"
        second = fake.registrations[1]
        assert second["previousWorkerId"] == "w1"
        assert sorted((r["stepRunId"], r["attempt"]) for r in second["running"]) == [("drop", 1), ("keep", 1)]
        gate.set()
        t_deadline = threading.Event()
        for _ in range(200):
            if fake.refused:
                break  # the resumed step's puts are queued and retried
            t_deadline.wait(0.02)
        assert fake.refused
        fake.down.clear()
        for _ in range(200):
            if fake.completed:
                break
            t_deadline.wait(0.05)
        assert [c["stepRunId"] for c in fake.completed] == ["keep"]
        assert fake.completed[0]["attempt"] == 1
        # Same attempt, sequence numbers continuing: 6 events, each once.
        assert fake.stored[("keep", 1)] == [f"keep {i}".encode() for i in range(6)]
        assert fake.stored[("drop", 1)] == [f"drop {i}".encode() for i in range(3)]
        assert cancelled == {"keep": False, "drop": True}
        assert not fake.failed
    finally:
        w.stop(cancel_running=True)
        t.join(10)
        fake.server.shutdown()
