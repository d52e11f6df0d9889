"""@workflow and @step: decorators that record a workflow's definition on
its class; Worker.register_workflow validates it."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from . import _proto as pb
from ._errors import RunnelError

_T = TypeVar("_T")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")
_MAX_NAME = 128
_MAX_STEPS = 256
_MAX_RETRIES = 100
_MAX_BACKOFF_MS = 3600 * 1000
_MAX_TIMEOUT_MS = 7 * 24 * 3600 * 1000
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|s|m|h)")
_UNIT_MS = {"h": 3600e3, "m": 60e3, "s": 1e3, "ms": 1.0, "us": 1e-3, "µs": 1e-3}


class InvalidWorkflowError(RunnelError, ValueError):
    """A workflow definition is invalid; the message names the workflow,
    the step (method) and the problem."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_argument")

    def __str__(self) -> str:
        return self.message


def parse_duration_ms(value: str | float | timedelta | None, what: str) -> int:
    """Milliseconds of a duration: seconds as a number, a timedelta, or a Go
    style string such as "30s", "1m30s" or "500ms"."""
    if value is None:
        return 0
    if isinstance(value, timedelta):
        secs = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        secs = float(value)
    elif isinstance(value, str):
        s = value.strip()
        if s == "0":
            return 0
        if not s or _DURATION.sub("", s) != "":
            raise InvalidWorkflowError(f"{what}: invalid duration {value!r} (use e.g. \"30s\", \"1m30s\", \"500ms\", or seconds as a number)")
        return round(sum(float(n) * _UNIT_MS[u] for n, u in _DURATION.findall(s)))
    else:
        raise InvalidWorkflowError(f"{what}: invalid duration {value!r}")
    if secs < 0:
        raise InvalidWorkflowError(f"{what}: negative duration {value!r}")
    return round(secs * 1000)


@dataclass(frozen=True)
class StepSpec:
    name: str | None
    parents: tuple[str, ...]
    retries: int
    timeout: str | float | timedelta | None
    backoff: str | float | timedelta | None


@dataclass(frozen=True)
class WorkflowSpec:
    name: str | None
    on_events: tuple[str, ...]


_STEP_ATTR = "__runnel_step__"
_WORKFLOW_ATTR = "__runnel_workflow__"


def step(
    name: str | None = None,
    *,
    parents: list[str] | None = None,
    retries: int = 0,
    timeout: str | float | timedelta | None = None,
    backoff: str | float | timedelta | None = None,
) -> Callable[[_T], _T]:
    """Marks a method of a workflow class as a step. The step is named
    after the method unless ``name`` says otherwise; it runs after its
    ``parents`` (step names) completed; a failed attempt is retried
    ``retries`` times, after ``backoff`` (doubling); each attempt is limited
    to ``timeout`` ("30s", seconds, or a timedelta; none by default).

    A plain ``def`` step runs in the worker's thread pool, an ``async def``
    step on its event loop. It takes a :class:`Context` and returns its
    output, which must be JSON-serialisable."""

    spec = StepSpec(name, tuple(parents or ()), retries, timeout, backoff)

    def mark(fn: _T) -> _T:
        setattr(fn, _STEP_ATTR, spec)
        return fn

    return mark


def workflow(name: str | None = None, *, on_events: list[str] | None = None) -> Callable[[type[_T]], type[_T]]:
    """Marks a class as a workflow whose ``@step`` methods are its steps.
    The name defaults to the class name; ``on_events`` are event keys whose
    pushed events trigger a run."""

    spec = WorkflowSpec(name, tuple(on_events or ()))

    def mark(cls: type[_T]) -> type[_T]:
        if not isinstance(cls, type):
            raise TypeError("@workflow decorates a class")
        setattr(cls, _WORKFLOW_ATTR, spec)
        return cls

    return mark


@dataclass(frozen=True)
class CompiledStep:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    parents: tuple[str, ...]


@dataclass(frozen=True)
class CompiledWorkflow:
    name: str
    steps: dict[str, CompiledStep]
    definition: pb.WorkflowDefinition


def _check_name(kind: str, name: str, where: str) -> None:
    if not name:
        raise InvalidWorkflowError(f"{where}: empty {kind} name")
    if len(name) > _MAX_NAME:
        raise InvalidWorkflowError(f"{where}: {kind} name {name[:20]!r}… is longer than {_MAX_NAME} characters")
    if not _NAME.fullmatch(name):
        raise InvalidWorkflowError(f"{where}: invalid {kind} name {name!r}: use letters, digits and - _ . : starting with a letter or digit")


def compile_workflow(instance: object) -> CompiledWorkflow:
    """Validates a workflow instance's definition, with errors that name
    the class and method."""
    cls = type(instance)
    spec: WorkflowSpec | None = getattr(cls, _WORKFLOW_ATTR, None)
    if spec is None:
        raise InvalidWorkflowError(f"{cls.__qualname__} is not a workflow: decorate the class with @runnel.workflow()")
    name = spec.name or cls.__name__
    where = f"workflow {name!r} ({cls.__qualname__})"
    _check_name("workflow", name, where)
    for key in spec.on_events:
        _check_name("event key", key, where)

    steps: dict[str, CompiledStep] = {}
    defs: list[pb.StepDefinition] = []
    for attr, member in inspect.getmembers(cls):
        st: StepSpec | None = getattr(member, _STEP_ATTR, None)
        if st is None or not callable(member):
            continue
        sname = st.name or attr
        at = f"{where}, step {sname!r} ({cls.__qualname__}.{attr})"
        _check_name("step", sname, at)
        if sname in steps:
            raise InvalidWorkflowError(f"{at}: duplicate step name {sname!r}")
        if not isinstance(st.retries, int) or isinstance(st.retries, bool) or st.retries < 0:
            raise InvalidWorkflowError(f"{at}: retries must be a non-negative int, not {st.retries!r}")
        if st.retries > _MAX_RETRIES:
            raise InvalidWorkflowError(f"{at}: retries {st.retries} over the limit of {_MAX_RETRIES}")
        timeout_ms = parse_duration_ms(st.timeout, at + ": timeout")
        backoff_ms = parse_duration_ms(st.backoff, at + ": backoff")
        if timeout_ms > _MAX_TIMEOUT_MS:
            raise InvalidWorkflowError(f"{at}: timeout {st.timeout!r} over the limit of 7 days")
        if backoff_ms > _MAX_BACKOFF_MS:
            raise InvalidWorkflowError(f"{at}: backoff {st.backoff!r} over the limit of 1 hour")
        if len(set(st.parents)) != len(st.parents):
            raise InvalidWorkflowError(f"{at}: a parent is listed twice in {list(st.parents)}")
        fn = getattr(instance, attr)
        steps[sname] = CompiledStep(sname, fn, inspect.iscoroutinefunction(fn), st.parents)
        defs.append(pb.StepDefinition(name=sname, parents=list(st.parents), retries=st.retries, backoff_ms=backoff_ms, timeout_ms=timeout_ms))
    if not steps:
        raise InvalidWorkflowError(f"{where}: no steps; decorate its methods with @runnel.step()")
    if len(steps) > _MAX_STEPS:
        raise InvalidWorkflowError(f"{where}: {len(steps)} steps, more than the limit of {_MAX_STEPS}")
    for s in steps.values():
        for p in s.parents:
            if p not in steps:
                raise InvalidWorkflowError(f"{where}, step {s.name!r}: unknown parent step {p!r} (steps: {', '.join(sorted(steps))})")
    cycle = _find_cycle(steps)
    if cycle:
        if len(cycle) == 2:
            raise InvalidWorkflowError(f"{where}: step {cycle[0]!r} depends on itself")
        raise InvalidWorkflowError(f"{where}: steps form a cycle (each waits for the next): {' -> '.join(cycle)}")
    # Declaration order, as the Go SDK keeps it: by source line.
    order = {s.name: _line(s.fn) for s in steps.values()}
    defs.sort(key=lambda d: order[d.name])
    return CompiledWorkflow(name, steps, pb.WorkflowDefinition(name=name, steps=defs, on_events=list(spec.on_events)))


def _line(fn: Callable[..., Any]) -> int:
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    return int(code.co_firstlineno) if code is not None else 0


def _find_cycle(steps: dict[str, CompiledStep]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for p in steps[name].parents:
            if state.get(p) == 1:
                return path[path.index(p):] + [p]
            if p not in state:
                c = visit(p)
                if c:
                    return c
        path.pop()
        state[name] = 2
        return None

    for name in steps:
        if name not in state:
            c = visit(name)
            if c:
                return c
    return None
