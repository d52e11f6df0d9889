"""The SDK's public data types: events, runs, workflows."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from . import _proto as pb


class EventType(str, Enum):
    """The kind of a run event; each member equals its wire name, so
    ``event.type == "step.stream"`` holds as well as
    ``event.type == EventType.STEP_STREAM``."""

    RUN_STARTED = "run.started"
    RUN_COMPLETED = "run.completed"
    RUN_FAILED = "run.failed"
    RUN_CANCELLED = "run.cancelled"
    RUN_TIMED_OUT = "run.timed_out"
    STEP_STARTED = "step.started"
    STEP_COMPLETED = "step.completed"
    STEP_FAILED = "step.failed"
    STEP_CANCELLED = "step.cancelled"
    STEP_TIMED_OUT = "step.timed_out"
    #: Data a step put with ``context.put_stream``.
    STEP_STREAM = "step.stream"
    #: A step declared one of its streams finished (``Event.stream`` names it).
    STEP_STREAM_CLOSED = "step.stream_closed"

    __str__ = str.__str__
    __format__ = str.__format__  # type: ignore[assignment]

    @property
    def terminal(self) -> bool:
        """Whether events of this type end their run."""
        return self in TERMINAL_TYPES


TERMINAL_TYPES = frozenset(
    {EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED, EventType.RUN_TIMED_OUT}
)
_TYPES: dict[str, EventType] = {t.value: t for t in EventType}
_TERMINAL_NAMES = frozenset(t.value for t in TERMINAL_TYPES)


def _from_micros(us: int) -> datetime | None:
    if not us:
        return None
    return datetime.fromtimestamp(us / 1e6, tz=timezone.utc)


class Event:
    """One event of a run's stream.

    ``payload`` holds the data of a ``step.stream`` event, as the step put
    it (``text`` decodes it as UTF-8); ``data`` is the event's details (the
    output of ``step.completed``, the error of a failure), decoded JSON, or
    None. ``position`` is where the event is in the log: pass it as
    ``after=`` to resume right after it.
    """

    __slots__ = ("position", "type", "run_id", "workflow", "step", "step_run_id", "attempt", "stream", "payload", "_data", "time_us")

    position: str
    type: EventType
    run_id: str
    workflow: str
    #: The step's name; set for step events only, as are step_run_id and attempt.
    step: str
    step_run_id: str
    #: The attempt's number, from 1: a retried step's events stay in the log, told apart by it.
    attempt: int
    #: The stream of a ``step.stream`` or ``step.stream_closed`` event; "" for the run's default stream.
    stream: str
    payload: bytes
    _data: bytes
    time_us: int

    def __init__(
        self,
        position: str = "",
        type: EventType = EventType.RUN_STARTED,
        run_id: str = "",
        workflow: str = "",
        step: str = "",
        step_run_id: str = "",
        attempt: int = 0,
        stream: str = "",
        payload: bytes = b"",
        data: bytes = b"",
        time_us: int = 0,
    ) -> None:
        self.position = position
        self.type = type
        self.run_id = run_id
        self.workflow = workflow
        self.step = step
        self.step_run_id = step_run_id
        self.attempt = attempt
        self.stream = stream
        self.payload = payload
        self._data = data
        self.time_us = time_us

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8 (invalid bytes replaced)."""
        return self.payload.decode("utf-8", "replace")

    @property
    def data(self) -> Any:
        """The event's JSON details, decoded; None when it has none."""
        return json.loads(self._data) if self._data else None

    @property
    def raw_data(self) -> bytes:
        """The event's JSON details as the engine sent them (may be empty)."""
        return self._data

    @property
    def timestamp(self) -> datetime | None:
        """When the engine recorded the event (UTC)."""
        return _from_micros(self.time_us)

    @property
    def terminal(self) -> bool:
        """Whether the event ends its run."""
        return self.type in TERMINAL_TYPES

    def __repr__(self) -> str:
        extra = f" step={self.step!r} attempt={self.attempt}" if self.step_run_id else ""
        if self.stream:
            extra += f" stream={self.stream!r}"
        if self.payload:
            extra += f" payload={self.payload[:40]!r}{'…' if len(self.payload) > 40 else ''}"
        return f"<Event {self.type.value} run={self.run_id} position={self.position}{extra}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    __hash__ = None  # type: ignore[assignment]


_b64d = pb._b64d


def event_from_json(d: dict[str, Any]) -> Event:
    """Decodes an Event message's JSON; the hot path of every listener, so
    written out instead of going through the generic decoder."""
    ev = Event.__new__(Event)
    get = d.get
    ev.position = get("position", "")
    t = get("type", "")
    ev.type = _TYPES.get(t) or t  # a type this SDK does not know stays a str
    ev.run_id = get("runId", "")
    ev.workflow = get("workflow", "")
    ev.step = get("step", "")
    ev.step_run_id = get("stepRunId", "")
    ev.attempt = get("attempt", 0)
    ev.stream = get("stream", "")
    p = get("payload")
    ev.payload = _b64d(p) if p else b""
    x = get("data")
    ev._data = _b64d(x) if x else b""
    us = get("timeUs")
    ev.time_us = int(us) if us else 0
    return ev


class RunStatus(str, Enum):
    """The state of a run. Completed, failed, cancelled and timed out are
    terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    __str__ = str.__str__
    __format__ = str.__format__  # type: ignore[assignment]

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.TIMED_OUT)


class StepStatus(str, Enum):
    """The state of a step run (of its current attempt)."""

    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    __str__ = str.__str__
    __format__ = str.__format__  # type: ignore[assignment]


def _json_or_none(b: bytes) -> Any:
    return json.loads(b) if b else None


def _status(enum: type[Enum], s: str) -> Any:
    try:
        return enum(s)
    except ValueError:
        return s


@dataclass(frozen=True)
class StepAttempt:
    """The record of one attempt of a step run."""

    attempt: int
    status: StepStatus
    worker_id: str
    error: str
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class StepRun:
    """One step of a run; ``output`` is its decoded JSON output once it
    completed."""

    id: str
    step: str
    parents: list[str]
    status: StepStatus
    attempt: int
    output: Any
    error: str
    started_at: datetime | None
    finished_at: datetime | None
    attempts: list[StepAttempt] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    """One execution of a workflow. ``input`` and ``output`` are decoded
    JSON; ``output`` is an object of the steps' outputs by step name once
    the run completed."""

    id: str
    workflow: str
    status: RunStatus
    input: Any
    output: Any
    error: str
    additional_metadata: dict[str, str]
    parent_run_id: str
    parent_step_run_id: str
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepRun] = field(default_factory=list)

    @classmethod
    def _from_pb(cls, r: pb.Run) -> Run:
        return cls(
            id=r.id,
            workflow=r.workflow,
            status=_status(RunStatus, r.status),
            input=_json_or_none(r.input),
            output=_json_or_none(r.output),
            error=r.error,
            additional_metadata=dict(r.additional_metadata),
            parent_run_id=r.parent_run_id,
            parent_step_run_id=r.parent_step_run_id,
            created_at=_from_micros(r.created_at_us),
            started_at=_from_micros(r.started_at_us),
            finished_at=_from_micros(r.finished_at_us),
            steps=[
                StepRun(
                    id=s.id,
                    step=s.step,
                    parents=list(s.parents),
                    status=_status(StepStatus, s.status),
                    attempt=s.attempt,
                    output=_json_or_none(s.output),
                    error=s.error,
                    started_at=_from_micros(s.started_at_us),
                    finished_at=_from_micros(s.finished_at_us),
                    attempts=[
                        StepAttempt(
                            attempt=a.attempt,
                            status=_status(StepStatus, a.status),
                            worker_id=a.worker_id,
                            error=a.error,
                            started_at=_from_micros(a.started_at_us),
                            finished_at=_from_micros(a.finished_at_us),
                        )
                        for a in s.attempts
                    ],
                )
                for s in r.steps
            ],
        )


@dataclass(frozen=True)
class StepInfo:
    """A step of a registered workflow."""

    name: str
    parents: list[str]
    retries: int
    backoff_ms: int
    timeout_ms: int


@dataclass(frozen=True)
class WorkflowInfo:
    """A workflow registered by some worker."""

    name: str
    steps: list[StepInfo]
    on_events: list[str]
