"""Serve a run's events (or a metadata subscription's) as Server-Sent Events
from your own FastAPI or Starlette app: the seed's ``StreamingResponse``
endpoint that proxies a run to a browser.

The frames are the engine's own SSE format::

    id: <position>
    event: <type>
    data: <one line of JSON>

so a browser's ``EventSource`` (or ``/sdk/runnel.js`` given the endpoint's
URL) reconnects after a dropped connection with a ``Last-Event-ID`` header,
which :func:`sse_response` resumes after: the page gets every event once,
in order. After a run's terminal event comes one ``event: end`` message.

    @app.get("/message/{message_id}")
    async def stream(message_id: str, request: Request) -> Response:
        return await sse_response(runnel, message_id, request)

Starlette is imported only when a response is made; the rest of the SDK
does not need it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, Union

from ._errors import EngineError, RunnelError
from ._models import Event, EventType

if TYPE_CHECKING:
    from starlette.responses import Response

    from ._client import Runnel
    from ._listener import Subscription

__all__ = ["Frame", "Transform", "event_data", "format_frame", "frames", "resume_position", "sse_response", "sse_metadata_response"]

log = logging.getLogger("runnel")

#: How long a stream may stay silent before it gets a comment line, so that
#: proxies and the browser keep the connection open.
DEFAULT_HEARTBEAT = 15.0

#: The name of the message that ends a run's stream.
END_EVENT = "end"

HEADERS = {"Cache-Control": "no-cache", "Connection": "keep-alive", "X-Accel-Buffering": "no"}


@dataclass(frozen=True)
class Frame:
    """What a transform returns to rename an event or replace its data;
    the frame's ``id:`` stays the event's position, so resuming works."""

    event: str
    data: Any


#: A transform gets each event and returns None to leave it out, a Frame,
#: or the JSON data to send under the event's own type.
Transform = Callable[[Event], Union[Frame, Any, None]]


class _Request(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def query_params(self) -> Mapping[str, str]: ...


def _go_json(obj: Any) -> str:
    # The engine's frames come from Go's encoding/json: sorted keys, no
    # spaces, non-ASCII as is, and <, >, & and U+2028/9 escaped.
    s = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if "<" in s or ">" in s or "&" in s or "\u2028" in s or "\u2029" in s:
        s = (
            s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        )
    return s


def _rfc3339nano(us: int) -> str:
    t = datetime.fromtimestamp(us // 1_000_000, tz=timezone.utc)
    frac = us % 1_000_000
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if frac:
        base += ("." + f"{frac:06d}").rstrip("0")
    return base + "Z"


def event_data(event: Event) -> dict[str, Any]:
    """The data object the engine's SSE endpoint sends for an event (for a
    transform to extend): runId, workflow, type, timestamp; stepRunId,
    step and attempt for step events; the event's details merged in; and
    for step.stream the payload, as text when it is UTF-8, else base64 with
    ``"encoding": "base64"``."""
    m: dict[str, Any] = {}
    if event.raw_data:
        details = json.loads(event.raw_data)
        if isinstance(details, dict):
            m.update(details)
    m["runId"] = event.run_id
    m["workflow"] = event.workflow
    m["type"] = str(event.type)
    m["timestamp"] = _rfc3339nano(event.time_us)
    if event.step_run_id:
        m["stepRunId"] = event.step_run_id
        m["step"] = event.step
        m["attempt"] = event.attempt
    if event.stream:
        m["stream"] = event.stream
    if event.type == EventType.STEP_STREAM:
        try:
            m["payload"] = event.payload.decode("utf-8")
        except UnicodeDecodeError:
            m["payload"] = base64.b64encode(event.payload).decode("ascii")
            m["encoding"] = "base64"
    return m


def format_frame(id: str, event: str, data: Any) -> bytes:
    """One SSE message: ``id:`` (if any), ``event:`` (if any) and one
    ``data:`` line: ``data`` encoded as JSON."""
    line = _go_json(data)
    for f in (id, event, line):
        if "\n" in f or "\r" in f:
            raise ValueError(f"line break in an SSE field: {f[:40]!r}")
    out = []
    if id:
        out.append(f"id: {id}\n")
    if event:
        out.append(f"event: {event}\n")
    out.append(f"data: {line}\n\n")
    return "".join(out).encode()


def resume_position(request: _Request) -> str | None:
    """Where a stream resumes: the ``Last-Event-ID`` header (sent by
    EventSource when it reconnects), else the ``?after=`` parameter."""
    last = request.headers.get("last-event-id", "").strip()
    if last:
        return last
    return request.query_params.get("after") or None


async def frames(
    subscription: Subscription,
    *,
    end_run_id: str | None = None,
    transform: Transform | None = None,
    heartbeat: float = DEFAULT_HEARTBEAT,
) -> AsyncIterator[bytes]:
    """The SSE frames of a subscription, ready to write: one per event
    (transformed), a comment when idle for ``heartbeat`` seconds, and, for
    a run (``end_run_id``), ``event: end`` after its terminal event."""
    it = subscription.__aiter__()
    pending: asyncio.Future[Event] | None = None
    try:
        yield b": connected\n\n"
        while True:
            if pending is None:
                pending = asyncio.ensure_future(it.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=heartbeat)
            if not done:
                yield b": heartbeat\n\n"
                continue
            fut, pending = pending, None
            try:
                ev = fut.result()
            except StopAsyncIteration:
                break
            except RunnelError as e:
                # The client reconnects with Last-Event-ID and resumes.
                log.warning("sse: subscription ended: %s", e)
                return
            if transform is None:
                yield format_frame(ev.position, str(ev.type), event_data(ev))
                continue
            out = transform(ev)
            if out is None:
                continue
            if isinstance(out, Frame):
                yield format_frame(ev.position, out.event, out.data)
            else:
                yield format_frame(ev.position, str(ev.type), out)
        if end_run_id is not None:
            yield format_frame("", END_EVENT, {"runId": end_run_id})
    finally:
        if pending is not None:
            pending.cancel()
            try:
                await pending
            except BaseException:
                pass
        await subscription.aclose()


def _error_response(status: int, code: str, message: str) -> Response:
    from starlette.responses import JSONResponse

    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _classify(e: EngineError) -> tuple[int, str]:
    if e.code == "not_found":
        return 404, e.code
    if e.code == "invalid_argument":
        return 400, e.code
    if e.transient:
        return 503, "unavailable"
    return 502, e.code


async def _respond(check: Callable[[], Awaitable[object]] | None, sub: Subscription, end_run_id: str | None, transform: Transform | None, heartbeat: float) -> Response:
    from starlette.responses import StreamingResponse

    if check is not None:
        try:
            await check()
        except EngineError as e:
            status, code = _classify(e)
            return _error_response(status, code, e.message)
    return StreamingResponse(
        frames(sub, end_run_id=end_run_id, transform=transform, heartbeat=heartbeat),
        media_type="text/event-stream",
        headers=HEADERS,
    )


async def sse_response(
    runnel: Runnel,
    run_id: str,
    request: _Request | None = None,
    *,
    after: str | None = None,
    types: Iterable[EventType | str] | None = None,
    streams: Iterable[str] | None = None,
    from_latest: bool = False,
    transform: Transform | None = None,
    heartbeat: float = DEFAULT_HEARTBEAT,
) -> Response:
    """A Starlette ``StreamingResponse`` with the run's events as SSE. It
    starts after ``after``, else after the request's ``Last-Event-ID`` or
    ``?after=``, else at the run's newest stream event with
    ``from_latest=True``, else at the start of the run. ``streams`` keeps
    only the stream events of those named streams. The run is looked up first:
    an unknown run is answered with 404 and a JSON body
    ``{"error": {"code", "message"}}`` (400 for a bad position, 503 for an
    unreachable engine)."""
    start = after or (resume_position(request) if request is not None else None)
    sub = runnel.listener.stream(run_id, after=start, types=types, streams=streams, from_latest=from_latest and not start)
    return await _respond(lambda: runnel.admin.aio_get_run(run_id), sub, run_id, transform, heartbeat)


async def sse_metadata_response(
    runnel: Runnel,
    key: str,
    value: str,
    request: _Request | None = None,
    *,
    after: str | None = None,
    types: Iterable[EventType | str] | None = None,
    transform: Transform | None = None,
    heartbeat: float = DEFAULT_HEARTBEAT,
) -> Response:
    """As :func:`sse_response`, for every run whose additional metadata has
    ``key`` = ``value`` (a parent and its children); it never ends."""
    start = after or (resume_position(request) if request is not None else None)
    sub = runnel.listener.stream_by_additional_metadata(key, value, after=start, types=types)
    return await _respond(None, sub, None, transform, heartbeat)
