"""Fixtures that start real engine processes (the `runnel` binary) and
Python workers, and yield their addresses.

The Go test sdk/python/python_test.go builds the binary and runs pytest
with RUNNEL_BIN set; RUNNEL_TEST_DATABASE_URLS (space-separated, one
PostgreSQL schema each) makes the engines use PostgreSQL instead of SQLite.
Run by hand:

    go build -o /tmp/runnel ./cmd/runnel
    RUNNEL_BIN=/tmp/runnel /usr/bin/python3 -m pytest sdk/python/tests
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
SDK = HERE.parent
REPO = SDK.parent.parent
sys.path.insert(0, str(SDK))

import runnel  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _DBs:
    """The databases engines may use: SQLite in each engine's data
    directory, or the PostgreSQL schemas the Go test created (one per
    engine cluster)."""

    def __init__(self) -> None:
        self.urls = os.environ.get("RUNNEL_TEST_DATABASE_URLS", "").split()
        self.lock = threading.Lock()

    def take(self) -> str | None:
        if not os.environ.get("RUNNEL_TEST_DATABASE_URLS"):
            return None
        with self.lock:
            if not self.urls:
                raise RuntimeError("no PostgreSQL schema left: the Go test creates a fixed number (RUNNEL_TEST_DATABASE_URLS)")
            return self.urls.pop(0)


_dbs = _DBs()


class Proc:
    """A child process whose stderr lines are collected and can be waited for."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> None:
        self.args = args
        self.p = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})}, cwd=cwd, text=True,
        )
        self.lines: list[str] = []
        self.out: list[str] = []
        self.cond = threading.Condition()
        self.t = threading.Thread(target=self._read, args=(self.p.stderr, self.lines), daemon=True)
        self.t.start()
        self.to = threading.Thread(target=self._read, args=(self.p.stdout, self.out), daemon=True)
        self.to.start()

    def _read(self, f: Any, into: list[str]) -> None:
        for line in f:
            with self.cond:
                into.append(line.rstrip("\n"))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_for(self, text: str, timeout: float = 60, start: int = 0, stdout: bool = False) -> int:
        """Waits until a line (after index start) contains text; returns the
        index after it."""
        lines = self.out if stdout else self.lines
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(lines):
                    i += 1
                    if text in lines[i - 1]:
                        return i
                if self.p.poll() is not None and not self.t.is_alive() and not self.to.is_alive():
                    raise AssertionError(f"{self.args[0]} exited ({self.p.returncode}) before printing {text!r}:\n" + "\n".join(self.lines[-40:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {text!r} from {self.args}:\n" + "\n".join(self.lines[-40:]))
                self.cond.wait(min(left, 0.5))

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait()
        self.t.join(5)
        self.to.join(5)

    def terminate(self, timeout: float = 20) -> int:
        self.p.terminate()
        return self.p.wait(timeout)


class Engine:
    """A `runnel server` process; restart() runs a new one on the same
    address and store (after kill(), that is a crash and a restart)."""

    def __init__(self, tmp: Path, db: str | None) -> None:
        self.bin = os.environ["RUNNEL_BIN"]
        self.addr = f"127.0.0.1:{_free_port()}"
        self.url = "http://" + self.addr
        self.data = tmp
        self.db = db
        self.proc: Proc | None = None
        self.start()
        self.token = (tmp / "admin.token").read_text().strip()

    def start(self) -> None:
        # The default heartbeat (2 s, a worker silent for 10 s is dead): the
        # fault tests kill processes, whose connections close at once, and a
        # shorter one makes a busy machine declare live workers dead.
        args = [self.bin, "server", "--addr", self.addr, "--data-dir", str(self.data), "--log-level", "debug"]
        if self.db:
            args += ["--db", self.db]
        self.proc = Proc(args)
        self.proc.wait_for("engine listening")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def env(self) -> dict[str, str]:
        return {"RUNNEL_HOST": self.url, "RUNNEL_TOKEN": self.token}

    def client(self) -> runnel.Runnel:
        return runnel.Runnel(self.url, self.token)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()


def _need_bin() -> None:
    if not os.environ.get("RUNNEL_BIN"):
        pytest.skip("RUNNEL_BIN is not set: run through `go test ./sdk/python` or build the binary and set it")


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One engine shared by the tests that need no faults."""
    _need_bin()
    e = Engine(tmp_path_factory.mktemp("engine"), _dbs.take())
    yield e
    e.stop()


@pytest.fixture
def own_engine(tmp_path: Path) -> Iterator[Engine]:
    """An engine of the test's own, to kill and restart."""
    _need_bin()
    e = Engine(tmp_path / "engine", _dbs.take())
    yield e
    e.stop()


@pytest.fixture
def client(engine: Engine) -> Iterator[runnel.Runnel]:
    c = engine.client()
    yield c
    c.close()


def unique(prefix: str) -> str:
    """A workflow name no other test uses (the engine is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class RunningWorker:
    def __init__(self, w: runnel.Worker, t: threading.Thread) -> None:
        self.worker = w
        self.thread = t

    def stop(self) -> None:
        self.worker.stop(cancel_running=True)
        self.thread.join(20)
        assert not self.thread.is_alive(), "the worker did not stop"


@pytest.fixture
def start_worker(client: runnel.Runnel) -> Iterator[Any]:
    """start_worker(*workflow_instances, slots=) runs a Python worker in a
    thread of the test process until the test ends."""
    started: list[RunningWorker] = []

    def start(*workflows: object, slots: int = 10, c: runnel.Runnel | None = None) -> runnel.Worker:
        w = (c or client).worker(unique("pytest"), slots=slots)
        w.tuning.heartbeat_misses = 3
        for wf in workflows:
            w.register_workflow(wf)
        t = threading.Thread(target=w.start, daemon=True)
        t.start()
        assert w.wait_ready(30), "the worker did not register"
        started.append(RunningWorker(w, t))
        return w

    yield start
    for rw in started:
        rw.stop()

