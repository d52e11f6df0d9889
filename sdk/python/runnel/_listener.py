"""Subscriptions to a run's events or to every run carrying a metadata
pair: one object that is an iterator and an async iterator, and resumes by
itself after a dropped connection or an engine restart."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import Any

from . import _proto as pb
from ._backoff import Backoff
from ._errors import EngineError, RunnelError
from ._models import _TERMINAL_NAMES, Event, EventType, event_from_json
from ._stream import DEFAULT_STREAM, stream_name
from ._transport import AsyncTransport, SyncTransport

log = logging.getLogger("runnel")

_RETRY_BASE = 0.05
_RETRY_MAX = 2.0
#: Clean ends in a row without an event before a subscription gives up.
_MAX_EMPTY_ENDS = 3
#: The engine sends a heartbeat on an idle subscription every 15 s; three
#: missed ones mean the connection is dead even if TCP has not noticed.
READ_TIMEOUT = 45.0


class _State:
    """The resume logic of one subscription, without I/O: what to ask for,
    what each message means, and whether to go on after a break."""

    def __init__(self, what: str, ends_with_run: bool, start: str, types: Iterable[str] | None) -> None:
        self.what = what
        self.ends_with_run = ends_with_run
        self.from_ = start
        self.wanted: frozenset[str] | None = None
        self.asked: list[str] = []
        if types:
            wanted = [str(t.value if isinstance(t, EventType) else t) for t in types]
            self.wanted = frozenset(wanted)
            asked = list(dict.fromkeys(wanted))
            if ends_with_run:
                # Ask for the terminal run events too, so the subscription
                # tells the run's end from a dropped connection.
                asked += [t for t in sorted(_TERMINAL_NAMES) if t not in asked]
            self.asked = asked
        self.backoff = Backoff(_RETRY_BASE, _RETRY_MAX)
        self.empty_ends = 0
        self.before = start

    def opening(self) -> None:
        self.before = self.from_

    def handle(self, msg: dict[str, Any]) -> tuple[list[Event], bool]:
        """The events of one message to hand out, and whether the
        subscription is over."""
        out: list[Event] = []
        wanted = self.wanted
        for d in msg.get("events", ()):
            ev = event_from_json(d)
            if ev.position:
                self.from_ = ev.position
            if wanted is None or ev.type in wanted:
                out.append(ev)
            if self.ends_with_run and ev.type in _TERMINAL_NAMES:
                return out, True
        # The message's position covers events filtered out by type and, in
        # the first message, resolves "now", so a resume continues here.
        pos = msg.get("position")
        if pos:
            self.from_ = pos
        return out, bool(msg.get("runEnded"))

    def after_break(self, err: EngineError | None, progressed: bool) -> float | None:
        """Called when a call ended without finishing the subscription
        (err is None for a clean end): None if the subscription is over,
        else the delay before resuming. Raises when it must not resume."""
        if err is None:
            # The engine ends a run subscription cleanly at once when it
            # starts "from now" on a run that has already ended.
            if self.from_ == "now" and self.ends_with_run:
                return None
            if self.from_ != self.before:
                self.empty_ends = 0
            else:
                self.empty_ends += 1
                if self.empty_ends >= _MAX_EMPTY_ENDS:
                    raise RunnelError(
                        f"subscribe to {self.what}: the engine ended the subscription early "
                        f"{self.empty_ends} times in a row",
                        code="unavailable",
                    )
        elif not _retry(err):
            raise err
        if progressed:
            self.backoff.reset()
        d = self.backoff.next()
        log.debug("subscription to %s interrupted (%s); resuming after %s in %.2fs", self.what, err, self.from_, d)
        return d


def _retry(err: EngineError) -> bool:
    if err.transient:
        return True
    if err.code == "resource_exhausted":
        return err.from_engine  # the engine shed a slow subscriber
    if err.code == "canceled":
        return not err.from_engine
    return False


class Subscription:
    """The events of a subscription, in order. Iterate it with ``for`` or
    ``async for`` (not both); it ends after the run's terminal event (a
    metadata subscription never ends by itself: break out of the loop).

    It reconnects by itself when the connection drops or the engine
    restarts, resuming after the last event received: nothing is skipped or
    delivered twice. Errors retrying cannot cure (no such run, a bad
    position, a bad token) are raised as :class:`EngineError` subclasses.
    ``position`` is where a new subscription would resume.
    """

    def __init__(self, sync: SyncTransport, aio: AsyncTransport, method: str, request: pb.Message, state: _State) -> None:
        self._sync = sync
        self._aio = aio
        self._method = method
        self._request = request
        self._state = state
        self._gen: Iterator[Event] | None = None
        self._agen: AsyncIterator[Event] | None = None

    @property
    def position(self) -> str:
        """Resume after this with ``after=`` (empty before the first message)."""
        return "" if self._state.from_ in ("now", "latest") else self._state.from_

    def _req(self) -> pb.Message:
        self._state.opening()
        req = self._request
        req.from_ = self._state.from_  # type: ignore[attr-defined]
        return req

    # --- sync ---------------------------------------------------------------

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        if self._gen is None:
            if self._agen is not None:
                raise RuntimeError("this subscription is being iterated with async for")
            self._gen = self._run()
        return next(self._gen)

    def _run(self) -> Iterator[Event]:
        st = self._state
        while True:
            progressed = False
            err: EngineError | None = None
            try:
                with self._sync.stream(self._method, self._req(), READ_TIMEOUT) as msgs:
                    for m in msgs:
                        progressed = True
                        evs, done = st.handle(m)
                        yield from evs
                        if done:
                            return
            except EngineError as e:
                err = e
            delay = st.after_break(err, progressed)
            if delay is None:
                return
            time.sleep(delay)

    def close(self) -> None:
        """Closes the subscription (breaking out of a ``for`` loop does not
        close it until the object is collected)."""
        if self._gen is not None:
            self._gen.close()  # type: ignore[attr-defined]

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # --- async --------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if self._agen is None:
            if self._gen is not None:
                raise RuntimeError("this subscription is being iterated with for")
            self._agen = self._arun()
        return await self._agen.__anext__()

    async def _arun(self) -> AsyncIterator[Event]:
        st = self._state
        while True:
            progressed = False
            err: EngineError | None = None
            try:
                async with self._aio.stream(self._method, self._req(), READ_TIMEOUT) as msgs:
                    async for m in msgs:
                        progressed = True
                        evs, done = st.handle(m)
                        for ev in evs:
                            yield ev
                        if done:
                            return
            except EngineError as e:
                err = e
            delay = st.after_break(err, progressed)
            if delay is None:
                return
            await asyncio.sleep(delay)

    async def aclose(self) -> None:
        if self._agen is not None:
            await self._agen.aclose()  # type: ignore[attr-defined]

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.aclose()


def _start(after: str | None, from_now: bool, from_latest: bool = False) -> str:
    if sum((bool(after), from_now, from_latest)) > 1:
        raise ValueError("give one of after=, from_now=True or from_latest=True")
    if from_now:
        return "now"
    if from_latest:
        return "latest"
    return after or ""


class Listener:
    """Follows runs' event streams. Get it as ``Runnel().listener``."""

    def __init__(self, sync: SyncTransport, aio: AsyncTransport) -> None:
        self._sync = sync
        self._aio = aio

    def stream(
        self,
        run_id: str,
        after: str | None = None,
        from_now: bool = False,
        types: Iterable[EventType | str] | None = None,
        *,
        streams: Iterable[str] | None = None,
        from_latest: bool = False,
    ) -> Subscription:
        """The events of a run, from its first event (or right after the
        position ``after``, or only those that happen from now on, or from
        its newest stream event with ``from_latest=True``, that event
        included), live until its terminal event. ``types`` keeps only those
        event types; ``streams`` keeps only the stream events of those named
        streams (``"default"`` is the unnamed one), other events still
        arrive; the subscription still ends with the run."""
        start = _start(after, from_now, from_latest)
        req = pb.SubscribeRequest(run_id=run_id)
        st = _State(f"run {run_id}", True, start, types)
        req.types = st.asked
        if streams is not None:
            if isinstance(streams, str):
                raise TypeError("streams= takes a list of stream names, not one str")
            req.streams = [stream_name(n) or DEFAULT_STREAM for n in streams]
        return Subscription(self._sync, self._aio, "runnel.v1.RunService/Subscribe", req, st)

    def stream_by_additional_metadata(
        self,
        key: str,
        value: str,
        after: str | None = None,
        from_now: bool = False,
        types: Iterable[EventType | str] | None = None,
    ) -> Subscription:
        """Every event of every run whose additional metadata has ``key`` =
        ``value`` (child runs inherit their parent's), including runs
        created later, in one order. It never ends by itself."""
        start = _start(after, from_now)
        req = pb.SubscribeMetadataRequest(key=key, value=value)
        st = _State(f"runs with {key}={value}", False, start, types)
        req.types = st.asked
        return Subscription(self._sync, self._aio, "runnel.v1.RunService/SubscribeMetadata", req, st)
