"""The four Python examples (examples/python), each run against a real
engine as a user would run it: a separate Python process."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import REPO, SDK, Engine, Proc, _free_port

EXAMPLES = REPO / "examples" / "python"


def run_example(engine: Engine, tmp_path: Path, *args: str) -> Proc:
    env = {**engine.env(), "PYTHONPATH": str(SDK)}
    p = Proc([sys.executable, *args], env=env, cwd=str(tmp_path))
    assert p.p.wait(60) == 0, "\n".join(p.lines + p.out)
    p.t.join(5)
    p.to.join(5)
    return p


def test_text_stream(engine: Engine, tmp_path: Path) -> None:
    p = run_example(engine, tmp_path, str(EXAMPLES / "text_stream.py"))
    assert "".join(p.out).strip() == "Runnel streams every token from a Python step to every listener, in order, exactly once."
    assert "[run.completed]" in p.lines


def test_file_stream_is_byte_identical(engine: Engine, tmp_path: Path) -> None:
    source = tmp_path / "blob.bin"
    source.write_bytes(os.urandom(3 << 20) + bytes(range(256)))
    run_example(engine, tmp_path, str(EXAMPLES / "file_stream.py"), str(source), "--out", str(tmp_path / "out"))
    assert (tmp_path / "out" / "payload.bin").read_bytes() == source.read_bytes()
    # And the default file, as the docs run it.
    run_example(engine, tmp_path, str(EXAMPLES / "file_stream.py"), "--out", str(tmp_path / "out2"))
    assert (tmp_path / "out2" / "payload.png").read_bytes() == (EXAMPLES / "image.png").read_bytes()


def test_parent_children_one_metadata_subscription(engine: Engine, tmp_path: Path) -> None:
    p = run_example(engine, tmp_path, str(EXAMPLES / "parent_children.py"), "3")
    lines = p.out
    assert sum(1 for line in lines if line.startswith("run.completed")) == 4
    streams = sorted(line.split(" ", 2)[2] for line in lines if line.startswith("step.stream"))
    assert streams == sorted(["parent: spawning 3 children"] + [f"child {i}: part {k}" for i in range(3) for k in range(3)])


def parse_sse(text: str) -> list[dict[str, str]]:
    frames = []
    for block in text.split("\n\n"):
        f: dict[str, str] = {}
        for line in block.split("\n"):
            if line and not line.startswith(":"):
                k, _, v = line.partition(": ")
                f[k] = v
        if f:
            frames.append(f)
    return frames


@pytest.fixture
def backend(engine: Engine, tmp_path: Path) -> Any:
    port = _free_port()
    env = {**engine.env(), "PYTHONPATH": str(SDK)}
    p = Proc([sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--app-dir", str(EXAMPLES / "fastapi_backend")], env=env, cwd=str(tmp_path))
    p.wait_for("Application startup complete")
    yield f"http://127.0.0.1:{port}"
    assert p.terminate() == 0
    assert not any("Traceback" in line for line in p.lines), "\n".join(p.lines)


def test_fastapi_backend(engine: Engine, backend: str) -> None:
    with httpx.Client(base_url=backend, timeout=30) as http:
        page = http.get("/")
        assert page.status_code == 200 and "new EventSource(`/message/${messageId}`)" in page.text
        message_id = http.post("/message", json={"text": "hi"}).json()["messageId"]
        with http.stream("GET", f"/message/{message_id}") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"] == "no-cache" and r.headers["x-accel-buffering"] == "no"
            body = r.read().decode()
        frames = parse_sse(body)
        assert frames[-1] == {"event": "end", "data": '{"runId":"%s"}' % message_id}
        text = "".join(__import__("json").loads(f["data"])["payload"] for f in frames if f.get("event") == "step.stream")
        assert text.strip() == "You said 'hi'. Here is a reply, streamed word by word from a Python step."

        # The frames are the engine's own: byte for byte, for the kept types.
        kept = {"step.stream", "step.completed", "run.completed", "run.failed", "run.cancelled", "run.timed_out"}
        own = httpx.get(f"{engine.url}/api/v1/runs/{message_id}/stream", headers={"Authorization": "Bearer " + engine.token}, timeout=30).text
        own_frames = [f for f in parse_sse(own) if f.get("event") in kept]
        assert [f for f in frames if f.get("event") != "end"] == own_frames

        # Last-Event-ID resumes right after that event.
        k = len(frames) // 2
        with http.stream("GET", f"/message/{message_id}", headers={"Last-Event-ID": frames[k]["id"]}) as r:
            rest = parse_sse(r.read().decode())
        assert rest == frames[k + 1 :]

        missing = http.get("/message/no-such-run")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
