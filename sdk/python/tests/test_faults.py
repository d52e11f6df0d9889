"""Faults with real processes: the engine SIGKILLed and restarted while a
Python step streams and a Python listener follows; a Python worker
SIGKILLed mid-step."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import runnel
from runnel import EventType

from conftest import Engine, Proc, unique

PYWORKER = str(Path(__file__).resolve().parent / "pyworker.py")


def worker_proc(engine: Engine, name: str, prefix: str) -> Proc:
    p = Proc([sys.executable, PYWORKER, name, prefix], env=engine.env())
    p.wait_for("worker registered")
    return p


def check_attempt_streams(events: list[runnel.Event], n: int) -> None:
    """Each attempt's stream is 0, 1, 2, … without a gap or a duplicate,
    and the last attempt's is complete."""
    by_attempt: dict[int, list[str]] = {}
    for e in events:
        if e.type == EventType.STEP_STREAM:
            by_attempt.setdefault(e.attempt, []).append(e.text)
    for attempt, texts in by_attempt.items():
        assert texts == [str(i) for i in range(len(texts))], f"attempt {attempt}: {texts}"
    assert by_attempt[max(by_attempt)] == [str(i) for i in range(n)]


def test_engine_killed_while_python_step_streams_and_listener_follows(own_engine: Engine) -> None:
    prefix = unique("ekill")
    worker = worker_proc(own_engine, "victim-worker", prefix)
    c = own_engine.client()
    n = 120
    run_id = c.admin.run_workflow(prefix + "-stream", {"n": n, "ms": 5})
    seen: list[runnel.Event] = []
    streamed, killed = 0, False
    for ev in c.listener.stream(run_id):
        seen.append(ev)
        if ev.type == EventType.STEP_STREAM:
            streamed += 1
        if not killed and streamed == 20:
            killed = True
            own_engine.restart()  # SIGKILL, then a new process on the same store
    assert killed, "the run ended before the engine was killed"
    worker.wait_for("registering again")  # the worker noticed and came back

    assert seen[-1].type == EventType.RUN_COMPLETED, seen[-1]
    stored = list(c.listener.stream(run_id))
    assert [(e.position, e.type, e.attempt, e.payload) for e in seen] == [(e.position, e.type, e.attempt, e.payload) for e in stored]
    check_attempt_streams(stored, n)
    assert len({e.position for e in stored}) == len(stored)
    # The worker lived through the engine's death: its step was resumed, not
    # re-run (issue 16): one attempt, whose stream is 0..n-1 exactly once.
    run = c.admin.get_run(run_id)
    assert [a.attempt for a in run.steps[0].attempts] == [1], run.steps[0].attempts
    assert {e.attempt for e in stored if e.type == EventType.STEP_STREAM} == {1}
    worker.kill()


def test_python_worker_killed_mid_step_reruns_on_another(own_engine: Engine) -> None:
    prefix = unique("wkill")
    a = worker_proc(own_engine, "worker-a", prefix)
    c = own_engine.client()
    n = 40
    run_id = c.admin.run_workflow(prefix + "-stream", {"n": n, "ms": 10})
    seen: list[runnel.Event] = []
    b: Proc | None = None
    a_id = ""
    for ev in c.listener.stream(run_id):
        seen.append(ev)
        if ev.type == EventType.STEP_STARTED and not a_id:
            a_id = ev.data["workerId"]
        if b is None and ev.type == EventType.STEP_STREAM and ev.text == "5":
            a.kill()  # SIGKILL mid-step: the engine re-queues the step
            b = worker_proc(own_engine, "worker-b", prefix)
    assert b is not None, "the step finished before the worker was killed"
    assert seen[-1].type == EventType.RUN_COMPLETED
    run = c.admin.get_run(run_id)
    step = run.steps[0]
    assert [x.attempt for x in step.attempts] == [1, 2]
    assert step.attempts[0].worker_id == a_id and step.attempts[0].status != runnel.StepStatus.COMPLETED
    assert step.attempts[1].worker_id != a_id and step.attempts[1].status == runnel.StepStatus.COMPLETED
    assert run.output == {"produce": {"n": n, "attempt": 2}}
    check_attempt_streams(seen, n)
    b.kill()


def test_sigterm_drains_running_steps(own_engine: Engine) -> None:
    prefix = unique("drain")
    w = worker_proc(own_engine, "drainer", prefix)
    c = own_engine.client()
    run_id = c.admin.run_workflow(prefix + "-stream", {"n": 30, "ms": 10})
    for ev in c.listener.stream(run_id, types=[EventType.STEP_STREAM]):
        break  # the step is running
    assert w.terminate() == 0  # SIGTERM: no more work, the running step finishes
    assert any("stopped" in line for line in w.lines)
    run: Any = c.admin.get_run(run_id)
    assert run.status == runnel.RunStatus.COMPLETED and run.steps[0].attempt == 1
