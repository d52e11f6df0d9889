"""Named streams from Python: a step writes three streams interleaved and
closes one; subscribers of one, two and all streams get exactly their
sequence; from_latest gives the newest stream event and everything after."""

from __future__ import annotations

from typing import Any

import pytest

import runnel
from runnel import Context, EventType, Runnel

from conftest import unique

STREAM_TYPES = {EventType.STEP_STREAM, EventType.STEP_STREAM_CLOSED}


def on_streams(events: list[runnel.Event], *streams: str) -> list[runnel.Event]:
    """What a subscriber of these streams must get: every other event, and
    the stream events of its streams."""
    return [e for e in events if e.type not in STREAM_TYPES or (e.stream or runnel.DEFAULT_STREAM) in streams]


def test_three_streams_interleaved(client: Runnel, start_worker: Any) -> None:
    name = unique("streams")
    refused: dict[str, BaseException] = {}

    @runnel.workflow(name)
    class Three:
        @runnel.step()
        async def write(self, ctx: Context) -> str:
            for i in range(20):
                await ctx.aio_put_stream(f"a{i}", stream="a")
                if i % 2 == 0:
                    ctx.put_stream(f"b{i}", stream="b")
                if i % 3 == 0:
                    await ctx.aio_put_stream(f"d{i}")
                if i == 15:
                    await ctx.aio_close_stream("a")
                    break
            try:
                ctx.put_stream("late", stream="a")
            except runnel.RunnelError as e:
                refused["closed"] = e
            try:
                ctx.put_stream("x", stream="no spaces")
            except ValueError as e:
                refused["name"] = e
            ctx.put_stream("b-last", stream="b")
            return "ok"

    start_worker(Three())
    run_id = client.admin.run_workflow(name)
    all_events = list(client.listener.stream(run_id))
    assert all_events[-1].type == EventType.RUN_COMPLETED
    assert "was closed" in str(refused["closed"])
    assert "invalid stream name 'no spaces'" in str(refused["name"])

    by_stream: dict[str, list[str]] = {}
    for e in all_events:
        if e.type == EventType.STEP_STREAM:
            by_stream.setdefault(e.stream, []).append(e.text)
    assert by_stream["a"] == [f"a{i}" for i in range(16)]
    assert by_stream["b"] == [f"b{i}" for i in range(0, 16, 2)] + ["b-last"]
    assert by_stream[""] == [f"d{i}" for i in range(0, 16, 3)]
    closed = [e for e in all_events if e.type == EventType.STEP_STREAM_CLOSED]
    assert [e.stream for e in closed] == ["a"]

    for streams in (["a"], ["b"], ["default"], ["a", "b"], ["b", "default"], ["a", "b", "default"]):
        got = list(client.listener.stream(run_id, streams=streams))
        assert got == on_streams(all_events, *streams), streams

    # from_latest: the newest stream event of the chosen streams, then the rest.
    for streams2 in (None, ["a"], ["default"]):
        want = all_events if streams2 is None else on_streams(all_events, *streams2)
        last = max(i for i, e in enumerate(want) if e.type == EventType.STEP_STREAM)
        got = list(client.listener.stream(run_id, from_latest=True, streams=streams2))
        assert got == want[last:], streams2

    with pytest.raises(ValueError, match="give one of"):
        client.listener.stream(run_id, from_now=True, from_latest=True)
    with pytest.raises(ValueError, match="invalid stream name"):
        client.listener.stream(run_id, streams=["a/b"])
    with pytest.raises(TypeError):
        client.listener.stream(run_id, streams="a")
