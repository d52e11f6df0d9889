"""The engine's protocol messages (proto/runnel/v1/runnel.proto) in their
Connect JSON form.

Written by hand and kept honest by tests/test_drift.py, which parses the
.proto and fails when a message or field here differs from it. Field names
are the proto's snake_case names; on the wire they are lowerCamelCase, bytes
are base64 and int64 values are strings (the proto3 JSON mapping).

The annotation of each field names its proto type: ``str``, ``int``
(int32), ``Int64``, ``bool``, ``bytes``, ``list[T]`` (repeated),
``dict[str, T]`` (map) and ``M | None`` (a message field).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, TypeVar, cast

Int64 = int
"""An int64 field: an int in Python, a decimal string in JSON."""

_M = TypeVar("_M", bound="Message")
_Codec = tuple[str, str, Callable[[Any], Any], Callable[[Any], Any]]

_REGISTRY: dict[str, type[Message]] = {}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _ident(v: Any) -> Any:
    return v


def _b64e(v: bytes) -> str:
    return base64.b64encode(v).decode("ascii")


def _b64d(v: str) -> bytes:
    # The engine emits standard padded base64 (the fast path: binascii
    # directly); the proto3 JSON mapping also allows URL-safe and unpadded.
    if "-" in v or "_" in v or len(v) % 4:
        v = v.replace("-", "+").replace("_", "/")
        v += "=" * (-len(v) % 4)
    return binascii.a2b_base64(v)


_SCALARS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "str": (_ident, str),
    "int": (_ident, int),
    "Int64": (str, int),
    "bool": (_ident, bool),
    "bytes": (_b64e, _b64d),
}


def _kind(annotation: str) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    m = re.fullmatch(r"list\[(\w+)\]", annotation)
    if m:
        enc, dec = _kind(m.group(1))
        return (lambda v: [enc(x) for x in v]), (lambda v: [dec(x) for x in v])
    m = re.fullmatch(r"dict\[str, (\w+)\]", annotation)
    if m:
        enc, dec = _kind(m.group(1))
        return (lambda v: {k: enc(x) for k, x in v.items()}), (lambda v: {k: dec(x) for k, x in v.items()})
    m = re.fullmatch(r"(\w+)( \| None)?", annotation)
    if m and m.group(1) in _REGISTRY:
        cls = _REGISTRY[m.group(1)]
        return (lambda v: v.to_json()), cls.from_json
    raise TypeError(f"runnel: unsupported field annotation {annotation!r}")


class Message:
    """Base of the protocol messages: JSON encoding and decoding."""

    _codecs: ClassVar[list[_Codec] | None] = None

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        _REGISTRY[cls.__name__] = cls

    @classmethod
    def _table(cls) -> list[_Codec]:
        if cls._codecs is None:
            table: list[_Codec] = []
            for f in dataclasses.fields(cast(Any, cls)):
                enc, dec = _kind(str(f.type))
                table.append((f.name, _camel(f.name), enc, dec))
            cls._codecs = table
        return cls._codecs

    def to_json(self) -> dict[str, Any]:
        """The message as a JSON object; default (empty) fields are left out."""
        out: dict[str, Any] = {}
        for name, json_name, enc, _ in self._table():
            v = getattr(self, name)
            if v:  # proto3 JSON leaves out fields with their default value
                out[json_name] = enc(v)
        return out

    @classmethod
    def from_json(cls: type[_M], obj: dict[str, Any]) -> _M:
        """Decodes a JSON object; unknown fields are ignored, as protojson
        does with DiscardUnknown, so a newer engine can add fields."""
        kwargs: dict[str, Any] = {}
        for name, json_name, _, dec in cls._table():
            v = obj.get(json_name)
            if v is None:
                v = obj.get(name)  # protojson accepts the proto name too
            if v is not None:
                kwargs[name] = dec(v)
        return cls(**kwargs)


def _list() -> Any:
    return dataclasses.field(default_factory=list)


def _dict() -> Any:
    return dataclasses.field(default_factory=dict)


# --- WorkerService -----------------------------------------------------------


@dataclass
class StepDefinition(Message):
    name: str = ""
    parents: list[str] = _list()
    retries: int = 0
    backoff_ms: Int64 = 0
    timeout_ms: Int64 = 0


@dataclass
class WorkflowDefinition(Message):
    name: str = ""
    steps: list[StepDefinition] = _list()
    on_events: list[str] = _list()


@dataclass
class RunningAttempt(Message):
    step_run_id: str = ""
    attempt: int = 0


@dataclass
class RegisterWorkerRequest(Message):
    name: str = ""
    slots: int = 0
    workflows: list[WorkflowDefinition] = _list()
    previous_worker_id: str = ""
    running: list[RunningAttempt] = _list()


@dataclass
class RegisterWorkerResponse(Message):
    worker_id: str = ""
    heartbeat_interval_ms: Int64 = 0
    resumed: list[RunningAttempt] = _list()


@dataclass
class ListenRequest(Message):
    worker_id: str = ""


@dataclass
class StepAssignment(Message):
    run_id: str = ""
    step_run_id: str = ""
    workflow: str = ""
    step: str = ""
    attempt: int = 0
    input: bytes = b""
    additional_metadata: dict[str, str] = _dict()
    parent_outputs: dict[str, bytes] = _dict()
    timeout_ms: Int64 = 0


@dataclass
class StepCancellation(Message):
    step_run_id: str = ""
    attempt: int = 0
    reason: str = ""


@dataclass
class ListenResponse(Message):
    # oneof msg
    assignment: StepAssignment | None = None
    cancellation: StepCancellation | None = None


@dataclass
class DeregisterWorkerRequest(Message):
    worker_id: str = ""


@dataclass
class DeregisterWorkerResponse(Message):
    pass


@dataclass
class HeartbeatRequest(Message):
    worker_id: str = ""


@dataclass
class HeartbeatResponse(Message):
    pass


@dataclass
class PutStreamRequest(Message):
    step_run_id: str = ""
    attempt: int = 0
    first_seq: Int64 = 0
    payloads: list[bytes] = _list()
    stream: str = ""
    close_stream: bool = False


@dataclass
class PutStreamResponse(Message):
    pass


@dataclass
class CompleteStepRequest(Message):
    step_run_id: str = ""
    attempt: int = 0
    output: bytes = b""


@dataclass
class CompleteStepResponse(Message):
    pass


@dataclass
class FailStepRequest(Message):
    step_run_id: str = ""
    attempt: int = 0
    error: str = ""
    no_retry: bool = False


@dataclass
class FailStepResponse(Message):
    pass


@dataclass
class SpawnRunRequest(Message):
    parent_step_run_id: str = ""
    parent_attempt: int = 0
    workflow: str = ""
    input: bytes = b""
    additional_metadata: dict[str, str] = _dict()
    key: str = ""


@dataclass
class SpawnRunResponse(Message):
    run_id: str = ""


# --- RunService --------------------------------------------------------------


@dataclass
class TriggerRunRequest(Message):
    workflow: str = ""
    input: bytes = b""
    additional_metadata: dict[str, str] = _dict()


@dataclass
class TriggerRunResponse(Message):
    run_id: str = ""


@dataclass
class GetRunRequest(Message):
    run_id: str = ""


@dataclass
class StepAttempt(Message):
    attempt: int = 0
    status: str = ""
    worker_id: str = ""
    error: str = ""
    started_at_us: Int64 = 0
    finished_at_us: Int64 = 0


@dataclass
class StepRun(Message):
    id: str = ""
    step: str = ""
    parents: list[str] = _list()
    status: str = ""
    attempt: int = 0
    output: bytes = b""
    error: str = ""
    started_at_us: Int64 = 0
    finished_at_us: Int64 = 0
    attempts: list[StepAttempt] = _list()


@dataclass
class Run(Message):
    id: str = ""
    workflow: str = ""
    status: str = ""
    input: bytes = b""
    output: bytes = b""
    error: str = ""
    additional_metadata: dict[str, str] = _dict()
    parent_run_id: str = ""
    parent_step_run_id: str = ""
    created_at_us: Int64 = 0
    started_at_us: Int64 = 0
    finished_at_us: Int64 = 0
    steps: list[StepRun] = _list()


@dataclass
class GetRunResponse(Message):
    run: Run | None = None


@dataclass
class ListRunsRequest(Message):
    workflow: str = ""
    status: str = ""
    meta_key: str = ""
    meta_value: str = ""
    limit: int = 0
    before: str = ""


@dataclass
class ListRunsResponse(Message):
    runs: list[Run] = _list()


@dataclass
class CancelRunRequest(Message):
    run_id: str = ""


@dataclass
class CancelRunResponse(Message):
    status: str = ""


@dataclass
class ListWorkflowsRequest(Message):
    pass


@dataclass
class ListWorkflowsResponse(Message):
    workflows: list[WorkflowDefinition] = _list()


@dataclass
class SubscribeRequest(Message):
    run_id: str = ""
    from_: str = ""  # "from" is a Python keyword
    types: list[str] = _list()
    streams: list[str] = _list()


@dataclass
class Event(Message):
    position: str = ""
    run_id: str = ""
    workflow: str = ""
    type: str = ""
    step_run_id: str = ""
    step: str = ""
    attempt: int = 0
    payload: bytes = b""
    data: bytes = b""
    time_us: Int64 = 0
    stream: str = ""


@dataclass
class SubscribeResponse(Message):
    events: list[Event] = _list()
    position: str = ""
    run_ended: bool = False


@dataclass
class CreateTokenRequest(Message):
    tenant: str = ""
    name: str = ""
    expires_in_ms: Int64 = 0
    admin: bool = False


@dataclass
class CreateTokenResponse(Message):
    token: str = ""
    tenant_id: str = ""
    token_id: str = ""
    expires_at_us: Int64 = 0


@dataclass
class TokenInfo(Message):
    id: str = ""
    tenant: str = ""
    kind: str = ""
    name: str = ""
    created_at_us: Int64 = 0
    expires_at_us: Int64 = 0
    revoked_at_us: Int64 = 0


@dataclass
class ListTokensRequest(Message):
    pass


@dataclass
class ListTokensResponse(Message):
    tokens: list[TokenInfo] = _list()


@dataclass
class RevokeTokenRequest(Message):
    token_id: str = ""


@dataclass
class RevokeTokenResponse(Message):
    revoked_ids: list[str] = _list()


@dataclass
class SubscribeMetadataRequest(Message):
    key: str = ""
    value: str = ""
    from_: str = ""
    types: list[str] = _list()


@dataclass
class PushEventRequest(Message):
    key: str = ""
    payload: bytes = b""
    additional_metadata: dict[str, str] = _dict()


@dataclass
class PushEventResponse(Message):
    run_ids: list[str] = _list()


KEYWORDS = frozenset({"from"})


def field_name(proto_name: str) -> str:
    """The Python attribute of a proto field (a Python keyword gets a trailing _)."""
    return proto_name + "_" if proto_name in KEYWORDS else proto_name


MESSAGES: dict[str, type[Message]] = _REGISTRY
"""Every message class by its proto name (for the drift test)."""
