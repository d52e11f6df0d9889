"""The ordered, bounded send queue of one step attempt's stream.

put() only appends the payload to the queue, so a step can put events far
faster than one round trip each. One sender task per attempt, on the
worker's event loop, takes everything queued (up to a batch limit) and sends
it in one PutStream call, with one call in flight, so the engine stores
payloads in put order. Payloads are numbered from 1 per attempt; a batch
sent again after a transient error (a dropped connection, an engine
restart) keeps its first_seq and the engine skips what it already stored,
so a resent batch is stored once. The queue is bounded: a full queue blocks
put() in a thread step (back-pressure), and aio_put() waits in an async one.

Payloads may go to named streams of the run; the numbering is per attempt
across all of them. One call carries consecutive payloads of one stream, and
that stream's closing when it comes next in the queue.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from binascii import b2a_base64 as b2a
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from ._backoff import Backoff
from ._errors import EngineError, PayloadTooLargeError, RunnelError, StepCancelledError, is_stale
from ._transport import AsyncTransport

log = logging.getLogger("runnel")

#: The largest payload one put_stream call may carry: 4 MiB.
MAX_PAYLOAD_SIZE = 4 << 20

_PUT = "runnel.v1.WorkerService/PutStream"

#: How requests name a run's unnamed stream.
DEFAULT_STREAM = "default"
_MAX_STREAM_NAME = 64
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def stream_name(name: str | None) -> str:
    """A stream name as sent: "" for the default stream (also spelled
    "default"); else 1-64 characters from A-Z a-z 0-9 . _ -."""
    if name is None or name in ("", DEFAULT_STREAM):
        return ""
    if not isinstance(name, str):
        raise TypeError(f"a stream name is a str, not {type(name).__name__}")
    if len(name) > _MAX_STREAM_NAME:
        raise ValueError(f"stream name of {len(name)} characters is longer than {_MAX_STREAM_NAME}")
    if not set(name) <= _NAME_CHARS:
        raise ValueError(f"invalid stream name {name!r}: use 1-{_MAX_STREAM_NAME} characters from A-Z a-z 0-9 . _ -")
    return name


class _Item(NamedTuple):
    data: bytes
    stream: str  # "" is the default stream
    close: bool  # the closing of the stream, not a payload


@dataclass
class StreamLimits:
    batch_payloads: int = 512
    batch_bytes: int = 8 << 20
    queue_payloads: int = 4096
    queue_bytes: int = 32 << 20
    #: An async step that calls the sync put_stream cannot be made to wait;
    #: past this many times the bounds it gets an error instead.
    loop_overdraft: int = 4
    retry_base: float = 0.1
    retry_max: float = 2.0
    call_timeout: float = 30.0


class StepStream:
    def __init__(
        self,
        transport: AsyncTransport,
        loop: asyncio.AbstractEventLoop,
        step_run_id: str,
        attempt: int,
        limits: StreamLimits,
        on_stale: Callable[[str], None],
    ) -> None:
        self._t = transport
        self._loop = loop
        self._loop_thread = threading.get_ident()
        self.step_run_id = step_run_id
        self.attempt = attempt
        self.limits = limits
        self._on_stale = on_stale
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: deque[_Item] = deque()
        self._queue_bytes = 0
        self.puts = 0  # payloads accepted: the seq of the last one
        self.acked = 0  # seq of the last payload the engine stored
        self._ops = 0  # puts and closes queued
        self._acked_ops = 0  # puts and closes the engine stored
        self._closed_streams: set[str] = set()
        self._err: RunnelError | None = None
        self._closed = False
        self._cancelled: str | None = None
        self._wake = asyncio.Event()
        self._wake_pending = False
        self._progress = asyncio.Event()  # set on every ack or failure
        self._sender: asyncio.Task[None] | None = None

    # --- the step's side (any thread) ----------------------------------------

    def _check(self) -> None:
        if self._cancelled is not None:
            raise StepCancelledError(self._cancelled)
        if self._err is not None:
            raise self._err
        if self._closed:
            raise RunnelError("put_stream: the step has already returned", code="failed_precondition")

    def _full(self, size: int, factor: int = 1) -> bool:
        q = self._queue
        return bool(q) and (len(q) >= self.limits.queue_payloads * factor or self._queue_bytes + size > self.limits.queue_bytes * factor)

    def _check_open(self, stream: str) -> None:
        if stream in self._closed_streams:
            raise RunnelError(f"put_stream: stream {stream or DEFAULT_STREAM!r} was closed by this step", code="failed_precondition")

    def put(self, data: bytes | str, stream: str = "") -> None:
        p = _payload(data)
        self._put_item(_Item(p, stream, False))

    def close_stream(self, stream: str) -> None:
        """Queues the closing of a stream after everything put on it and
        waits (in a thread step) until the engine stored it."""
        self._put_item(_Item(b"", stream, True))
        self.flush()

    async def aclose_stream(self, stream: str) -> None:
        await self.aput_item(_Item(b"", stream, True))
        await self.aflush()

    def _put_item(self, item: _Item) -> None:
        p = item.data
        on_loop = threading.get_ident() == self._loop_thread
        with self._lock:
            self._check()
            if on_loop:
                if self._full(len(p), self.limits.loop_overdraft):
                    raise RunnelError(
                        "put_stream: the stream's send queue is full; in an async step use "
                        "`await context.aio_put_stream(...)`, which waits for room",
                        code="resource_exhausted",
                    )
            else:
                while self._full(len(p)):
                    self._cond.wait(0.5)
                    self._check()
            self._check_open(item.stream)
            self._append(item)

    async def aput(self, data: bytes | str, stream: str = "") -> None:
        await self.aput_item(_Item(_payload(data), stream, False))

    async def aput_item(self, item: _Item) -> None:
        while True:
            with self._lock:
                self._check()
                self._check_open(item.stream)
                if not self._full(len(item.data)):
                    self._append(item)
                    return
                self._progress.clear()
            await self._progress.wait()

    def _append(self, item: _Item) -> None:
        # Called with the lock held.
        self._queue.append(item)
        self._queue_bytes += len(item.data)
        self._ops += 1
        if item.close:
            self._closed_streams.add(item.stream)
        else:
            self.puts += 1
        if not self._wake_pending:
            self._wake_pending = True
            if threading.get_ident() == self._loop_thread:
                self._kick()
            else:
                self._loop.call_soon_threadsafe(self._kick)

    def _kick(self) -> None:
        if self._sender is None:
            self._sender = self._loop.create_task(self._send())
        self._wake.set()

    def flush(self, timeout: float | None = None) -> None:
        """Waits (in a thread step) until every payload put so far is stored."""
        with self._lock:
            target = self._ops
            while self._acked_ops < target:
                self._check_flush()
                self._cond.wait(0.5 if timeout is None else min(timeout, 0.5))
            self._check_flush()

    async def aflush(self) -> None:
        while True:
            with self._lock:
                target = self._ops
                if self._acked_ops >= target:
                    return
                self._check_flush()
                self._progress.clear()
            await self._progress.wait()

    def _check_flush(self) -> None:
        if self._cancelled is not None:
            raise StepCancelledError(self._cancelled)
        if self._err is not None:
            raise self._err

    # --- the worker's side (the event loop) ----------------------------------

    async def finish(self) -> RunnelError | None:
        """After the step returned: no more puts; waits until everything
        queued is stored. Returns the stream's error, if any."""
        with self._lock:
            self._closed = True
            self._wake_pending = True
        self._wake.set()
        if self._sender is not None:
            await asyncio.shield(self._sender)
        return self._err

    def abort(self, reason: str) -> None:
        """Drops whatever is queued: the attempt's results will not be
        reported. Puts raise StepCancelledError from now on."""
        with self._lock:
            if self._cancelled is None:
                self._cancelled = reason
            self._queue.clear()
            self._queue_bytes = 0
            self._cond.notify_all()
        self._progress.set()
        if self._sender is not None and not self._sender.done():
            self._sender.cancel()

    async def _send(self) -> None:
        lim = self.limits
        bo = Backoff(lim.retry_base, lim.retry_max)
        while True:
            with self._lock:
                if not self._queue:
                    if self._closed or self._cancelled is not None:
                        return
                    self._wake_pending = False
                    self._wake.clear()
                    wait = True
                else:
                    wait = False
                    stream = self._queue[0].stream
                    n, size, closing = 0, 0, False
                    batch: list[bytes] = []
                    for item in self._queue:
                        if item.stream != stream:
                            break
                        if item.close:
                            closing = True
                            n += 1
                            break
                        if len(batch) >= lim.batch_payloads or (n > 0 and size + len(item.data) > lim.batch_bytes):
                            break
                        size += len(item.data)
                        batch.append(item.data)
                        n += 1
                    first = self.acked + 1
            if wait:
                await self._wake.wait()
                continue
            body: dict[str, object] = {
                "stepRunId": self.step_run_id,
                "attempt": self.attempt,
                "firstSeq": str(first),
                "payloads": [b2a(p, newline=False).decode("ascii") for p in batch],
            }
            if stream:
                body["stream"] = stream
            if closing:
                body["closeStream"] = True
            err = await self._send_batch(body, first, bo)
            with self._lock:
                if err is not None:
                    self._err = err
                    self._queue.clear()
                    self._queue_bytes = 0
                else:
                    for _ in range(n):
                        self._queue.popleft()
                    self._queue_bytes -= size
                    self.acked += len(batch)
                    self._acked_ops += n
                self._cond.notify_all()
            self._progress.set()
            if err is not None:
                if is_stale(err):
                    log.debug("stream put refused, attempt %s/%d is stale: %s", self.step_run_id, self.attempt, err)
                    self._on_stale(f"the engine refused the stream: the attempt is no longer current ({err.message})")
                else:
                    log.warning("stream put of %s/%d failed: %s", self.step_run_id, self.attempt, err)
                return
            bo.reset()

    async def _send_batch(self, body: dict[str, object], first: int, bo: Backoff) -> RunnelError | None:
        while True:
            try:
                await self._t.unary_json(_PUT, body, self.limits.call_timeout)
                return None
            except EngineError as e:
                if not e.transient:
                    return e
                d = bo.next()
                log.debug("stream put of %s/%d (first_seq %d) failed, retrying in %.2fs: %s", self.step_run_id, self.attempt, first, d, e)
                await asyncio.sleep(d)


def _payload(data: bytes | str) -> bytes:
    if isinstance(data, str):
        p = data.encode()
    elif isinstance(data, (bytes, bytearray, memoryview)):
        p = bytes(data)
    else:
        raise TypeError(f"put_stream takes bytes or str, not {type(data).__name__}")
    if len(p) > MAX_PAYLOAD_SIZE:
        raise PayloadTooLargeError(len(p), MAX_PAYLOAD_SIZE)
    return p

