"""The hand-written protocol messages (runnel/_proto.py) must match
proto/runnel/v1/runnel.proto: every message, every field, in order, with
its type. A field added to the .proto and not to Python fails here."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from runnel import _proto as pb

PROTO = Path(__file__).resolve().parents[3] / "proto" / "runnel" / "v1" / "runnel.proto"

_SCALAR = {"string": "str", "int32": "int", "int64": "Int64", "bool": "bool", "bytes": "bytes"}
_FIELD = re.compile(r"^\s*(repeated\s+)?(map<\s*(\w+)\s*,\s*(\w+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)\s*;")


def _py(t: str) -> str:
    return _SCALAR.get(t, t)


def parse_proto(text: str) -> dict[str, list[tuple[str, str]]]:
    """Message name -> [(field name, expected Python annotation)], fields in
    declaration order (oneof members included)."""
    text = re.sub(r"//[^\n]*", "", text)
    messages: dict[str, list[tuple[str, str]]] = {}
    stack: list[str] = []  # "message:Name" / "oneof" / "service" / "enum"
    for line in text.splitlines():
        m = re.match(r"^\s*message\s+(\w+)\s*\{", line)
        if m:
            stack.append("message:" + m.group(1))
            messages[m.group(1)] = []
            if line.rstrip().endswith("{}"):
                stack.pop()
            continue
        if re.match(r"^\s*(oneof|service|enum)\s+\w+\s*\{", line):
            stack.append("block")
            continue
        if re.match(r"^\s*\}", line):
            if stack:
                stack.pop()
            continue
        owner = next((s[8:] for s in reversed(stack) if s.startswith("message:")), None)
        f = _FIELD.match(line)
        if owner and f:
            repeated, typ, key, val, name = f.group(1), f.group(2), f.group(3), f.group(4), f.group(5)
            if key:
                ann = f"dict[{_py(key)}, {_py(val)}]"
            elif repeated:
                ann = f"list[{_py(typ)}]"
            elif typ in _SCALAR:
                ann = _SCALAR[typ]
            else:
                ann = f"{typ} | None"
            messages[owner].append((name, ann))
    return messages


def python_messages() -> dict[str, list[tuple[str, str]]]:
    out = {}
    for name, cls in pb.MESSAGES.items():
        out[name] = [(f.name.rstrip("_") if f.name.rstrip("_") in pb.KEYWORDS else f.name, str(f.type)) for f in dataclasses.fields(cls)]
    return out


def test_proto_parser_sees_fields() -> None:
    msgs = parse_proto(PROTO.read_text())
    assert ("previous_worker_id", "str") in msgs["RegisterWorkerRequest"]
    assert ("parent_outputs", "dict[str, bytes]") in msgs["StepAssignment"]
    assert ("assignment", "StepAssignment | None") in msgs["ListenResponse"]
    assert ("time_us", "Int64") in msgs["Event"]
    assert msgs["HeartbeatResponse"] == []


def test_python_messages_match_the_proto() -> None:
    want = parse_proto(PROTO.read_text())
    got = python_messages()
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing, f"messages in {PROTO.name} but not in runnel/_proto.py: {missing}"
    assert not extra, f"messages in runnel/_proto.py but not in {PROTO.name}: {extra}"
    problems = []
    for name, fields in want.items():
        if got[name] != fields:
            problems.append(f"{name}:\n  proto:  {fields}\n  python: {got[name]}")
    assert not problems, "runnel/_proto.py drifted from the .proto; update it:\n" + "\n".join(problems)


def test_roundtrip_uses_proto_json_names() -> None:
    req = pb.SubscribeRequest(run_id="r", from_="now", types=["step.stream"])
    assert req.to_json() == {"runId": "r", "from": "now", "types": ["step.stream"]}
    put = pb.PutStreamRequest(step_run_id="s", attempt=2, first_seq=7, payloads=[b"\x00\xff"])
    assert put.to_json() == {"stepRunId": "s", "attempt": 2, "firstSeq": "7", "payloads": ["AP8="]}
    assert pb.PutStreamRequest.from_json(put.to_json()) == put
