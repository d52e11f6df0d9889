"""What a step gets: its inputs, its output stream, child runs, and its
cancellation."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _proto as pb
from ._backoff import Backoff
from ._errors import ChildRunError, EngineError, StepCancelledError
from ._listener import Listener
from ._models import TERMINAL_TYPES, Run, RunStatus
from ._stream import StepStream, stream_name

if TYPE_CHECKING:
    from ._client import Admin
    from ._worker import Worker

_SPAWN = "runnel.v1.WorkerService/SpawnRun"


class ChildRun:
    """A run a step started with ``context.spawn_workflow``."""

    def __init__(self, listener: Listener, admin: Admin, run_id: str, workflow: str) -> None:
        self._listener = listener
        self._admin = admin
        #: The child run's id, to follow it or inspect it.
        self.run_id = run_id
        self.workflow = workflow

    def result(self) -> Any:
        """Waits until the child run ends and returns its output (an object
        of its steps' outputs by step name). Raises ChildRunError if it
        failed, was cancelled or timed out."""
        for _ in self._listener.stream(self.run_id, types=list(TERMINAL_TYPES)):
            pass
        return self._outcome(self._admin.get_run(self.run_id))

    async def aio_result(self) -> Any:
        async for _ in self._listener.stream(self.run_id, types=list(TERMINAL_TYPES)):
            pass
        return self._outcome(await self._admin.aio_get_run(self.run_id))

    def _outcome(self, run: Run) -> Any:
        if run.status != RunStatus.COMPLETED:
            raise ChildRunError(self.run_id, self.workflow, str(run.status), run.error)
        return run.output

    def __repr__(self) -> str:
        return f"<ChildRun {self.workflow} {self.run_id}>"


class Context:
    """The context of one step attempt, passed to every step."""

    def __init__(self, worker: Worker, a: pb.StepAssignment, parents: tuple[str, ...], stream: StepStream) -> None:
        self._worker = worker
        self._a = a
        self._parents = parents
        self._stream = stream
        self._spawns = 0
        self._spawn_lock = threading.Lock()
        self._cancel_reason: str | None = None
        self._cancelled = threading.Event()
        self._acancelled = asyncio.Event()  # belongs to the worker's loop

    # --- identity -------------------------------------------------------------

    @property
    def run_id(self) -> str:
        return self._a.run_id

    @property
    def step_run_id(self) -> str:
        """The step run's id, the same for all its attempts."""
        return self._a.step_run_id

    @property
    def step_name(self) -> str:
        return self._a.step

    @property
    def workflow_name(self) -> str:
        return self._a.workflow

    @property
    def attempt(self) -> int:
        """This attempt's number, from 1."""
        return self._a.attempt

    def retry_count(self) -> int:
        """The number of earlier attempts of this step run."""
        return max(self._a.attempt - 1, 0)

    # --- inputs ---------------------------------------------------------------

    def workflow_input(self) -> Any:
        """The run's input, decoded JSON."""
        return json.loads(self._a.input) if self._a.input else None

    def step_output(self, step: str) -> Any:
        """The output of parent step ``step``, decoded JSON. Raises KeyError
        if ``step`` is not a parent of this step."""
        if step not in self._parents:
            raise KeyError(f"step_output: {step!r} is not a parent of step {self._a.step!r} (parents: {list(self._parents)})")
        out = self._a.parent_outputs.get(step)
        if out is None:
            raise KeyError(f"step_output: the engine sent no output of parent step {step!r}")
        return json.loads(out) if out else None

    def additional_metadata(self) -> dict[str, str]:
        """A copy of the run's additional metadata."""
        return dict(self._a.additional_metadata)

    # --- the stream -----------------------------------------------------------

    def put_stream(self, data: bytes | str, *, stream: str | None = None) -> None:
        """Puts data (bytes, or str sent as UTF-8) on the run's stream as a
        ``step.stream`` event of this attempt, in order; ``stream`` names one
        of the run's named streams instead of its default one (1-64
        characters from A-Z a-z 0-9 . _ -). It queues a copy
        and returns; the worker sends in batches. In a thread step it blocks
        while the send queue is full; in an async step prefer ``await
        context.aio_put_stream(...)``, which waits for room.

        Raises PayloadTooLargeError for a payload over 4 MiB (nothing is
        sent; the step may go on), StepCancelledError once the attempt is
        cancelled, and the stream's error once a send failed for good;
        ValueError for an invalid stream name, RunnelError for a stream this
        step closed."""
        self._stream.put(data, stream_name(stream))

    async def aio_put_stream(self, data: bytes | str, *, stream: str | None = None) -> None:
        """put_stream for async steps: waits while the send queue is full."""
        await self._stream.aput(data, stream_name(stream))

    def close_stream(self, stream: str | None = None) -> None:
        """Declares a stream finished before the step ends (the default
        stream when None): after everything put on it, a
        ``step.stream_closed`` event is stored, and later puts to it raise.
        Waits until the engine stored it."""
        self._stream.close_stream(stream_name(stream))

    async def aio_close_stream(self, stream: str | None = None) -> None:
        """close_stream for async steps."""
        await self._stream.aclose_stream(stream_name(stream))

    def flush(self) -> None:
        """Waits until every event put so far is stored by the engine. A
        step need not call it: the worker flushes before reporting."""
        self._stream.flush()

    async def aio_flush(self) -> None:
        await self._stream.aflush()

    # --- cancellation ---------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """Whether this attempt was cancelled (the run was cancelled, the
        step timed out, or the engine took the attempt back). Its further
        puts are refused and its result is not reported; an async step's
        task is also cancelled."""
        return self._cancelled.is_set()

    @property
    def cancel_reason(self) -> str | None:
        return self._cancel_reason

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Blocks (in a thread step) until the attempt is cancelled or the
        timeout passes; returns whether it was cancelled."""
        return self._cancelled.wait(timeout)

    async def aio_wait_cancelled(self) -> None:
        """Returns once the attempt is cancelled."""
        await self._acancelled.wait()

    def _cancel(self, reason: str) -> None:
        # On the worker's loop.
        if self._cancel_reason is None:
            self._cancel_reason = reason
        self._cancelled.set()
        self._acancelled.set()

    def _raise_if_cancelled(self) -> None:
        if self._cancel_reason is not None:
            raise StepCancelledError(self._cancel_reason)

    # --- children -------------------------------------------------------------

    def _spawn_request(self, workflow: str, input: Any, additional_metadata: Mapping[str, str] | None) -> pb.SpawnRunRequest:
        from ._client import encode_input

        with self._spawn_lock:
            key = str(self._spawns)
            self._spawns += 1
        # The spawn's number within this attempt is its key: the engine
        # keeps one child per (step run, attempt, key), so it may be sent
        # again safely.
        return pb.SpawnRunRequest(
            parent_step_run_id=self._a.step_run_id,
            parent_attempt=self._a.attempt,
            workflow=workflow,
            input=encode_input(input),
            additional_metadata=dict(additional_metadata or {}),
            key=key,
        )

    def _child(self, run_id: str, workflow: str) -> ChildRun:
        w = self._worker
        return ChildRun(w._listener, w._admin, run_id, workflow)

    def spawn_workflow(self, workflow: str, input: Any = None, *, additional_metadata: Mapping[str, str] | None = None) -> ChildRun:
        """Starts a child run of ``workflow`` (from a thread step) and
        returns a handle whose ``result()`` waits for it. The child inherits
        this run's additional metadata, with ``additional_metadata`` merged
        on top. A step waiting for its children holds its slot meanwhile."""
        req = self._spawn_request(workflow, input, additional_metadata)
        bo = Backoff(0.1, 2.0)
        sync = self._worker._client._sync
        while True:
            self._raise_if_cancelled()
            try:
                resp = sync.unary(_SPAWN, req, pb.SpawnRunResponse)
                return self._child(resp.run_id, workflow)
            except EngineError as e:
                if not e.transient:
                    raise
            if self._cancelled.wait(bo.next()):
                self._raise_if_cancelled()

    async def aio_spawn_workflow(self, workflow: str, input: Any = None, *, additional_metadata: Mapping[str, str] | None = None) -> ChildRun:
        """spawn_workflow for async steps."""
        req = self._spawn_request(workflow, input, additional_metadata)
        bo = Backoff(0.1, 2.0)
        while True:
            self._raise_if_cancelled()
            try:
                resp = await self._worker._aio.unary(_SPAWN, req, pb.SpawnRunResponse)
                return self._child(resp.run_id, workflow)
            except EngineError as e:
                if not e.transient:
                    raise
            await asyncio.sleep(bo.next())

    def __repr__(self) -> str:
        return f"<Context {self._a.workflow}.{self._a.step} run={self._a.run_id} attempt={self._a.attempt}>"
