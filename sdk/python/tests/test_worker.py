"""Python workers against a real engine: DAG order and outputs, retries as
attempts, timeouts, cancellation, children, pushed events, payload limits."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest

import runnel
from runnel import Context, EventType, Runnel

from conftest import unique


def events_of(client: Runnel, run_id: str) -> list[runnel.Event]:
    return list(client.listener.stream(run_id))


def test_dag_order_outputs_and_both_step_kinds(client: Runnel, start_worker: Any) -> None:
    name = unique("dag")
    order: list[str] = []

    @runnel.workflow(name)
    class Dag:
        @runnel.step()
        def fetch(self, ctx: Context) -> dict[str, Any]:
            order.append("fetch")
            ctx.put_stream("fetching")
            return {"n": ctx.workflow_input()["n"]}

        @runnel.step(parents=["fetch"])
        async def double(self, ctx: Context) -> int:
            order.append("double")
            await ctx.aio_put_stream(b"doubling")
            return int(ctx.step_output("fetch")["n"]) * 2

        @runnel.step(parents=["fetch"])
        def square(self, ctx: Context) -> int:
            order.append("square")
            return int(ctx.step_output("fetch")["n"]) ** 2

        @runnel.step(parents=["double", "square"])
        def total(self, ctx: Context) -> dict[str, Any]:
            order.append("total")
            with pytest.raises(KeyError, match="not a parent"):
                ctx.step_output("fetch")
            return {"sum": ctx.step_output("double") + ctx.step_output("square"), "meta": ctx.additional_metadata()}

    start_worker(Dag())
    run_id = client.admin.run_workflow(name, {"n": 3}, additional_metadata={"k": "v"})
    evs = events_of(client, run_id)
    assert evs[-1].type == EventType.RUN_COMPLETED
    assert order[0] == "fetch" and order[-1] == "total" and sorted(order[1:3]) == ["double", "square"]
    run = client.admin.get_run(run_id)
    assert run.status == runnel.RunStatus.COMPLETED
    assert run.output == {"fetch": {"n": 3}, "double": 6, "square": 9, "total": {"sum": 15, "meta": {"k": "v"}}}
    streams = [(e.step, e.payload) for e in evs if e.type == EventType.STEP_STREAM]
    assert streams == [("fetch", b"fetching"), ("double", b"doubling")]
    # Each step's stream events come before its step.completed.
    types = [(e.type.value, e.step) for e in evs]
    assert types.index(("step.stream", "fetch")) < types.index(("step.completed", "fetch"))


def test_retries_are_visible_as_attempts(client: Runnel, start_worker: Any) -> None:
    name = unique("flaky")

    @runnel.workflow(name)
    class Flaky:
        @runnel.step(retries=3, backoff="10ms")
        def work(self, ctx: Context) -> dict[str, int]:
            ctx.put_stream(f"attempt {ctx.attempt}")
            if ctx.retry_count() < 2:
                raise RuntimeError(f"boom {ctx.attempt}")
            return {"attempt": ctx.attempt}

    @runnel.workflow(unique("never"))
    class Never:
        @runnel.step(retries=5)
        def work(self, ctx: Context) -> None:
            raise runnel.NonRetryableError("bad input")

    start_worker(Flaky(), Never())
    run_id = client.admin.run_workflow(name)
    evs = events_of(client, run_id)
    streams = [(e.attempt, e.text) for e in evs if e.type == EventType.STEP_STREAM]
    assert streams == [(1, "attempt 1"), (2, "attempt 2"), (3, "attempt 3")]
    failed = [e for e in evs if e.type == EventType.STEP_FAILED]
    assert [e.attempt for e in failed] == [1, 2]
    assert "RuntimeError: boom 1" in failed[0].data["error"]
    run = client.admin.get_run(run_id)
    assert run.steps[0].attempt == 3 and [a.status for a in run.steps[0].attempts] == ["failed", "failed", "completed"]

    never = client.admin.run_workflow(Never.__runnel_workflow__.name)  # type: ignore[attr-defined]
    evs = events_of(client, never)
    assert evs[-1].type == EventType.RUN_FAILED
    assert [e.attempt for e in evs if e.type == EventType.STEP_FAILED] == [1]


def test_timeout_cancels_the_attempt(client: Runnel, start_worker: Any) -> None:
    name = unique("slow")
    seen = threading.Event()

    @runnel.workflow(name)
    class Slow:
        @runnel.step(timeout="300ms")
        def sync_step(self, ctx: Context) -> str:
            assert ctx.wait_cancelled(20), "the step never saw its timeout"
            seen.set()
            with pytest.raises(runnel.StepCancelledError):
                ctx.put_stream("too late")
            return "ignored"

    start_worker(Slow())
    run_id = client.admin.run_workflow(name)
    evs = events_of(client, run_id)
    assert evs[-1].type in (EventType.RUN_FAILED, EventType.RUN_TIMED_OUT)
    assert any(e.type == EventType.STEP_TIMED_OUT for e in evs)
    assert seen.wait(10)
    assert not any(e.type == EventType.STEP_STREAM for e in evs)


def test_cancellation_reaches_running_steps(client: Runnel, start_worker: Any) -> None:
    name = unique("cancel")
    started = threading.Barrier(3)
    outcome: dict[str, Any] = {}

    @runnel.workflow(name)
    class Long:
        @runnel.step()
        def in_thread(self, ctx: Context) -> None:
            ctx.put_stream("thread running")
            started.wait(20)
            outcome["thread"] = ctx.wait_cancelled(20)
            try:
                ctx.put_stream("after cancel")
            except runnel.StepCancelledError as e:
                outcome["refused"] = str(e)

        @runnel.step()
        async def on_loop(self, ctx: Context) -> None:
            await ctx.aio_put_stream("loop running")
            await asyncio.get_running_loop().run_in_executor(None, started.wait, 20)
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                outcome["task"] = ctx.cancelled
                raise

    start_worker(Long())
    run_id = client.admin.run_workflow(name)
    started.wait(20)
    assert client.admin.cancel_run(run_id) == runnel.RunStatus.CANCELLED
    evs = events_of(client, run_id)
    assert evs[-1].type == EventType.RUN_CANCELLED
    deadline = time.monotonic() + 10
    while len(outcome) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert outcome.get("thread") is True and outcome.get("task") is True
    assert "cancel" in outcome["refused"]
    assert "after cancel" not in [e.text for e in evs]


def test_children_spawned_and_awaited(client: Runnel, start_worker: Any) -> None:
    child, parent = unique("child"), unique("parent")

    @runnel.workflow(child)
    class Child:
        @runnel.step()
        def work(self, ctx: Context) -> dict[str, Any]:
            ctx.put_stream(f"child {ctx.workflow_input()['i']}")
            return {"i": ctx.workflow_input()["i"], "meta": ctx.additional_metadata()}

    @runnel.workflow(parent)
    class Parent:
        @runnel.step()
        def sync_spawn(self, ctx: Context) -> list[Any]:
            kids = [ctx.spawn_workflow(child, {"i": i}, additional_metadata={"kid": str(i)}) for i in range(2)]
            return [k.result()["work"]["i"] for k in kids]

        @runnel.step()
        async def async_spawn(self, ctx: Context) -> Any:
            kid = await ctx.aio_spawn_workflow(child, {"i": 9})
            return (await kid.aio_result())["work"]

    start_worker(Child(), Parent(), slots=6)
    key = unique("sk")
    run_id = client.admin.run_workflow(parent, additional_metadata={"streamKey": key})
    assert events_of(client, run_id)[-1].type == EventType.RUN_COMPLETED
    out = client.admin.get_run(run_id).output
    assert out["sync_spawn"] == [0, 1]
    assert out["async_spawn"] == {"i": 9, "meta": {"streamKey": key}}
    kids = client.admin.list_runs(additional_metadata=("streamKey", key))
    assert len(kids) == 4 and {r.parent_run_id for r in kids if r.id != run_id} == {run_id}


def test_pushed_events_trigger_on_events_workflows(client: Runnel, start_worker: Any) -> None:
    name, key = unique("onevent"), unique("user") + ":create"

    @runnel.workflow(name, on_events=[key])
    class OnEvent:
        @runnel.step()
        def greet(self, ctx: Context) -> str:
            return f"hello {ctx.workflow_input()['user']}"

    start_worker(OnEvent())
    (run_id,) = client.event.push(key, {"user": "ada"}, additional_metadata={"src": "test"})
    assert events_of(client, run_id)[-1].type == EventType.RUN_COMPLETED
    run = client.admin.get_run(run_id)
    assert run.output == {"greet": "hello ada"} and run.additional_metadata == {"src": "test"}
    assert client.event.push(unique("nobody") + ":listens") == []


def test_4mib_binary_roundtrip_and_4mib_plus_1_refused(client: Runnel, start_worker: Any) -> None:
    name = unique("big")
    blob = os.urandom(runnel.MAX_PAYLOAD_SIZE)
    refused: list[str] = []

    @runnel.workflow(name)
    class Big:
        @runnel.step()
        def send(self, ctx: Context) -> str:
            ctx.put_stream(blob)
            try:
                ctx.put_stream(blob + b"x")
            except runnel.PayloadTooLargeError as e:
                refused.append(str(e))
            ctx.put_stream("still going")
            return "done"

    start_worker(Big())
    run_id = client.admin.run_workflow(name)
    evs = [e for e in events_of(client, run_id) if e.type == EventType.STEP_STREAM]
    assert len(evs) == 2 and evs[0].payload == blob and evs[1].text == "still going"
    assert refused and "4 MiB" in refused[0] and str(4 << 20) in refused[0]
    assert client.admin.get_run(run_id).status == runnel.RunStatus.COMPLETED


def test_invalid_workflows_are_refused_with_clear_errors(client: Runnel) -> None:
    @runnel.workflow("bad")
    class UnknownParent:
        @runnel.step(parents=["nope"])
        def a(self, ctx: Context) -> None: ...

    @runnel.workflow("cyc")
    class Cycle:
        @runnel.step(parents=["b"])
        def a(self, ctx: Context) -> None: ...

        @runnel.step(parents=["a"])
        def b(self, ctx: Context) -> None: ...

    class NotAWorkflow:
        pass

    @runnel.workflow("t")
    class BadTimeout:
        @runnel.step(timeout="soon")
        def a(self, ctx: Context) -> None: ...

    w = client.worker("w")
    with pytest.raises(runnel.InvalidWorkflowError, match="step 'a': unknown parent step 'nope'"):
        w.register_workflow(UnknownParent())
    with pytest.raises(runnel.InvalidWorkflowError, match="cycle .*a -> b -> a"):
        w.register_workflow(Cycle())
    with pytest.raises(runnel.InvalidWorkflowError, match="decorate the class"):
        w.register_workflow(NotAWorkflow())
    with pytest.raises(runnel.InvalidWorkflowError, match=r"BadTimeout\.a\).*invalid duration 'soon'"):
        w.register_workflow(BadTimeout())


def test_engine_errors_are_typed(client: Runnel) -> None:
    with pytest.raises(runnel.NotFoundError) as e:
        client.admin.get_run("no-such-run")
    assert e.value.code == "not_found" and "no-such-run" in e.value.message
    with pytest.raises(runnel.NotFoundError):
        client.admin.run_workflow(unique("unregistered"))
    bad = Runnel(client.host, "rnl_not_a_token")
    with pytest.raises(runnel.AuthenticationError) as a:
        bad.admin.list_runs()
    assert a.value.code == "unauthenticated"
    down = Runnel("http://127.0.0.1:9", "x")
    with pytest.raises(runnel.UnavailableError) as u:
        down.admin.get_run("r")
    assert u.value.transient


async def test_async_forms(client: Runnel, start_worker: Any) -> None:
    name = unique("aio")

    @runnel.workflow(name)
    class Echo:
        @runnel.step()
        async def echo(self, ctx: Context) -> Any:
            return ctx.workflow_input()

    await asyncio.get_running_loop().run_in_executor(None, lambda: start_worker(Echo()))
    run_id = await client.admin.aio_run_workflow(name, {"x": 1})
    got = [e.type async for e in client.listener.stream(run_id)]
    assert got[-1] == EventType.RUN_COMPLETED
    run = await client.admin.aio_get_run(run_id)
    assert run.output == {"echo": {"x": 1}}
    assert run_id in [r.id for r in await client.admin.aio_list_runs(workflow=name)]
    assert name in [w.name for w in await client.admin.aio_list_workflows()]
    with pytest.raises(runnel.NotFoundError):
        await client.admin.aio_cancel_run("nope")
    assert await client.event.aio_push(unique("none") + ":x") == []


def test_failover_to_the_next_host(engine: Any) -> None:
    # The first node is down: calls, the worker and the listener move on.
    c = Runnel(f"http://127.0.0.1:9,{engine.url}", engine.token)
    name = unique("failover")

    @runnel.workflow(name)
    class Hello:
        @runnel.step()
        def hi(self, ctx: Context) -> str:
            ctx.put_stream("hi")
            return "hi"

    w = c.worker(unique("fo"))
    w.register_workflow(Hello())
    t = threading.Thread(target=w.start, daemon=True)
    t.start()
    try:
        assert w.wait_ready(30)
        run_id = c.admin.run_workflow(name)
        assert [e.text for e in c.listener.stream(run_id, types=[EventType.STEP_STREAM])] == ["hi"]
        assert c.host == engine.url
    finally:
        w.stop(cancel_running=True)
        t.join(20)
