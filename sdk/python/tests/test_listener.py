"""Listeners against a real engine: exact event sequences from the start,
from now, after random positions, filtered, sync and async, and a metadata
subscription over a parent and its children."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import runnel
from runnel import Context, EventType, Runnel

from conftest import unique


def key(e: runnel.Event) -> tuple[Any, ...]:
    return (e.position, e.type.value, e.run_id, e.step, e.attempt, e.payload, e.raw_data, e.time_us)


def test_exact_sequences_from_start_now_and_after_positions(client: Runnel, start_worker: Any) -> None:
    name = unique("seq")
    release, stored = threading.Event(), threading.Event()

    @runnel.workflow(name)
    class Seq:
        @runnel.step()
        def first(self, ctx: Context) -> int:
            for i in range(50):
                ctx.put_stream(f"a{i}")
            ctx.flush()
            stored.set()
            assert release.wait(30)
            for i in range(50):
                ctx.put_stream(f"b{i}".encode())
            return 1

        @runnel.step(parents=["first"])
        async def second(self, ctx: Context) -> int:
            for i in range(20):
                await ctx.aio_put_stream(f"c{i}")
            return 2

    start_worker(Seq())
    run_id = client.admin.run_workflow(name)

    # A listener started at the start (the run is already going).
    live: list[runnel.Event] = []
    t_live = threading.Thread(target=lambda: live.extend(client.listener.stream(run_id)))
    t_live.start()

    # A listener from now, opened once the first 50 are stored.
    assert stored.wait(30)
    sub_now = client.listener.stream(run_id, from_now=True)
    now_events: list[runnel.Event] = []
    t_now = threading.Thread(target=lambda: now_events.extend(sub_now))
    t_now.start()
    deadline = time.monotonic() + 20
    while not sub_now.position and time.monotonic() < deadline:
        time.sleep(0.005)
    assert sub_now.position, "the from-now subscription never opened"
    release.set()
    t_live.join(30)
    t_now.join(30)

    full = list(client.listener.stream(run_id))
    assert [key(e) for e in live] == [key(e) for e in full]
    assert full[-1].type == EventType.RUN_COMPLETED
    texts = [e.text for e in full if e.type == EventType.STEP_STREAM]
    assert texts == [f"a{i}" for i in range(50)] + [f"b{i}" for i in range(50)] + [f"c{i}" for i in range(20)]

    # From now: exactly the suffix after the resolved position, with every
    # event put after the release.
    i = len(full) - len(now_events)
    assert [key(e) for e in now_events] == [key(e) for e in full[i:]]
    assert "b0" in [e.text for e in now_events]
    assert "a49" not in [e.text for e in now_events]

    # After random positions: exactly the rest, sync and async.
    rng = random.Random(7)
    for k in rng.sample(range(len(full)), 6) + [0, len(full) - 1]:
        got = list(client.listener.stream(run_id, after=full[k].position))
        assert [key(e) for e in got] == [key(e) for e in full[k + 1 :]], f"after position {k}"

    # Filtered by type: still ends with the run.
    streams = list(client.listener.stream(run_id, types=[EventType.STEP_STREAM]))
    assert [key(e) for e in streams] == [key(e) for e in full if e.type == EventType.STEP_STREAM]

    # From now on a finished run: nothing, and it ends.
    assert list(client.listener.stream(run_id, from_now=True)) == []


async def test_async_listener_equals_sync(client: Runnel, start_worker: Any) -> None:
    import asyncio

    name = unique("aseq")

    @runnel.workflow(name)
    class Gen:
        @runnel.step()
        async def gen(self, ctx: Context) -> None:
            for i in range(100):
                await ctx.aio_put_stream(f"t{i} ")

    await asyncio.get_running_loop().run_in_executor(None, lambda: start_worker(Gen()))
    run_id = await client.admin.aio_run_workflow(name)
    got = [e async for e in client.listener.stream(run_id)]
    full = await asyncio.get_running_loop().run_in_executor(None, lambda: list(client.listener.stream(run_id)))
    assert [key(e) for e in got] == [key(e) for e in full]
    k = len(full) // 2
    rest = [e async for e in client.listener.stream(run_id, after=full[k].position)]
    assert [key(e) for e in rest] == [key(e) for e in full[k + 1 :]]


def test_metadata_subscription_follows_parent_and_children(client: Runnel, start_worker: Any) -> None:
    child, parent = unique("mchild"), unique("mparent")

    @runnel.workflow(child)
    class Child:
        @runnel.step()
        def work(self, ctx: Context) -> None:
            ctx.put_stream(f"child {ctx.workflow_input()['i']}")

    @runnel.workflow(parent)
    class Parent:
        @runnel.step()
        def spawn(self, ctx: Context) -> None:
            ctx.put_stream("parent")
            for k in [ctx.spawn_workflow(child, {"i": i}) for i in range(3)]:
                k.result()

    start_worker(Child(), Parent(), slots=8)
    sk = unique("sk")
    sub = client.listener.stream_by_additional_metadata("streamKey", sk)
    run_id = client.admin.run_workflow(parent, additional_metadata={"streamKey": sk})
    seen: list[runnel.Event] = []
    done_runs: set[str] = set()
    with sub:
        for ev in sub:
            seen.append(ev)
            if ev.terminal:
                done_runs.add(ev.run_id)
                if len(done_runs) == 4:
                    break
    assert run_id in done_runs
    per_run: dict[str, list[tuple[Any, ...]]] = {}
    for e in seen:
        per_run.setdefault(e.run_id, []).append(key(e))
    for rid, evs in per_run.items():
        assert evs == [key(e) for e in client.listener.stream(rid)], rid
    assert sorted(e.text for e in seen if e.type == EventType.STEP_STREAM) == ["child 0", "child 1", "child 2", "parent"]
    # Resuming after a position continues exactly there.
    k = len(seen) // 2
    again: list[runnel.Event] = []
    with client.listener.stream_by_additional_metadata("streamKey", sk, after=seen[k].position) as sub2:
        for ev in sub2:
            again.append(ev)
            if len(again) == len(seen) - k - 1:
                break
    assert [key(e) for e in again] == [key(e) for e in seen[k + 1 :]]
