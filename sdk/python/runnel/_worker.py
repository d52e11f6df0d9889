"""The worker: registers workflows, runs the steps the engine assigns, and
keeps its session alive across dropped connections and engine restarts."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _proto as pb
from ._backoff import Backoff
from ._client import Admin
from ._context import Context
from ._errors import EngineError, NonRetryableError, RunnelError, is_stale
from ._listener import Listener
from ._stream import StepStream, StreamLimits
from ._transport import AsyncTransport
from ._workflow import CompiledStep, CompiledWorkflow, compile_workflow

if TYPE_CHECKING:
    from ._client import Runnel

log = logging.getLogger("runnel")

_W = "runnel.v1.WorkerService/"
_MAX_ERROR_LEN = 32 << 10
_MAX_SLOTS = 10000
_PERMANENT = ("invalid_argument", "unauthenticated", "permission_denied", "unimplemented")


@dataclass
class Tuning:
    reconnect_base: float = 0.1
    reconnect_max: float = 2.0
    report_base: float = 0.1
    report_max: float = 2.0
    call_timeout: float = 30.0
    default_heartbeat: float = 5.0
    #: Consecutive failed heartbeats that drop the session.
    heartbeat_misses: int = 5
    stream: StreamLimits = field(default_factory=StreamLimits)


class _Attempt:
    """One step attempt this worker runs; it outlives the session that
    assigned it (a reconnecting worker brings it back)."""

    def __init__(self, a: pb.StepAssignment, ctx: Context, stream: StepStream) -> None:
        self.a = a
        self.key = (a.step_run_id, a.attempt)
        self.ctx = ctx
        self.stream = stream
        self.task: asyncio.Task[None] | None = None
        self.fn_task: asyncio.Future[Any] | None = None  # the step function (async steps: a task)
        self.abandoned = False
        self.timer: asyncio.TimerHandle | None = None

    def cancel(self, reason: str) -> None:
        """The attempt will not be reported: the step sees the cancellation,
        its stream stops."""
        if self.abandoned:
            return
        self.abandoned = True
        self.ctx._cancel(reason)
        self.stream.abort(reason)
        if self.fn_task is not None and isinstance(self.fn_task, asyncio.Task):
            self.fn_task.cancel()
        if self.timer is not None:
            self.timer.cancel()


class Worker:
    """Runs the steps of its registered workflows as the engine assigns
    them, at most ``slots`` at once. Create it with ``Runnel().worker(name,
    slots=N)``, add workflows with :meth:`register_workflow`, then call
    :meth:`start` (blocking) or ``await`` :meth:`async_start`."""

    def __init__(self, client: Runnel, name: str, slots: int = 10) -> None:
        if not name or len(name) > 128 or any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise ValueError(f"invalid worker name {name!r}: 1 to 128 printable characters")
        if not isinstance(slots, int) or not 1 <= slots <= _MAX_SLOTS:
            raise ValueError(f"worker {name!r}: slots must be between 1 and {_MAX_SLOTS}, not {slots!r}")
        self._client = client
        self.name = name
        self.slots = slots
        self.tuning = Tuning()
        self._workflows: dict[str, CompiledWorkflow] = {}
        self._attempts: dict[tuple[str, int], _Attempt] = {}
        self._aio = AsyncTransport(client._cfg)
        self._admin = Admin(client._sync, self._aio)
        self._listener = Listener(client._sync, self._aio)
        self._ready = threading.Event()
        self._running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._drained: asyncio.Event | None = None
        self._force = False
        self._pool: ThreadPoolExecutor | None = None
        self._sem: asyncio.Semaphore | None = None
        self.worker_id = ""
        self._failed: BaseException | None = None

    def register_workflow(self, workflow: object) -> None:
        """Adds a workflow (an instance of a class decorated with
        ``@workflow``) before the worker starts. Raises
        InvalidWorkflowError naming the workflow, the step and the problem
        (an unknown parent, a cycle, a bad name, …)."""
        if self._running:
            raise RunnelError("register_workflow: the worker is running; register workflows before start()", code="failed_precondition")
        cw = compile_workflow(workflow)
        if cw.name in self._workflows:
            raise RunnelError(f"register_workflow: workflow {cw.name!r} is already registered", code="already_exists")
        self._workflows[cw.name] = cw

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Blocks until the worker first registered with the engine (runs of
        its workflows can then be triggered); returns False on timeout.
        Raises the error that stopped the worker before it registered."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self._failed is not None:
                raise self._failed
            if deadline is not None and time.monotonic() >= deadline:
                return False
        return True

    async def aio_wait_ready(self, timeout: float | None = None) -> bool:
        """wait_ready for a worker started with ``async_start`` on this loop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._ready.is_set():
            if self._failed is not None:
                raise self._failed
            if deadline is not None and time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    # --- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        """Runs the worker until SIGINT or SIGTERM (blocking). The first
        signal stops taking work and waits for running steps to finish; a
        second one cancels them."""
        asyncio.run(self.async_start(handle_signals=threading.current_thread() is threading.main_thread()))

    def stop(self, cancel_running: bool = False) -> None:
        """Asks a running worker to stop (from any thread): it takes no more
        work and returns from start() once its running steps finished (or at
        once, cancelling them, with ``cancel_running``)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._stop, cancel_running)

    def _stop(self, force: bool) -> None:
        if self._stopping is None:
            return
        if self._stopping.is_set():
            force = True
        self._stopping.set()
        if force:
            self._force = True
            for att in list(self._attempts.values()):
                att.cancel("the worker is stopping")
        self._check_drained()

    def _check_drained(self) -> None:
        if self._stopping is not None and self._stopping.is_set() and not self._attempts and self._drained is not None:
            self._drained.set()

    async def async_start(self, handle_signals: bool = False) -> None:
        """Runs the worker on the current event loop until :meth:`stop` (or,
        with ``handle_signals``, SIGINT/SIGTERM). Async steps run on this
        loop, plain ones in a thread pool of ``slots`` threads.

        Raises EngineError if the engine refuses the worker for good (a bad
        token, an invalid workflow)."""
        if self._running:
            raise RunnelError(f"worker {self.name!r} is already running", code="failed_precondition")
        if not self._workflows:
            raise RunnelError(f"worker {self.name!r}: no workflows registered", code="failed_precondition")
        self._running = True
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopping = asyncio.Event()
        self._drained = asyncio.Event()
        self._force = False
        self._sem = asyncio.Semaphore(self.slots)
        self._pool = ThreadPoolExecutor(max_workers=self.slots, thread_name_prefix=f"runnel-{self.name}")
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._stop, False)
        self._failed = None
        try:
            await self._run()
        except BaseException as e:
            if not self._ready.is_set():
                self._failed = e
            raise
        finally:
            if handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            for att in list(self._attempts.values()):
                att.cancel("the worker stopped")
            tasks = [t for t in (att.task for att in self._attempts.values()) if t is not None]
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            await self._deregister()
            self._pool.shutdown(wait=False, cancel_futures=True)
            await self._aio.aclose()
            self._running = False
            self._loop = None

    async def _deregister(self) -> None:
        """Tells the engine this worker leaves on purpose, once its steps have
        ended, so that it re-queues what they did not finish at once rather
        than at its heartbeat timeout. Best effort: an engine it cannot reach
        finds the worker gone at that timeout anyway."""
        if not self.worker_id:
            return
        try:
            await self._aio.unary(
                _W + "DeregisterWorker", pb.DeregisterWorkerRequest(worker_id=self.worker_id), pb.DeregisterWorkerResponse, 5.0
            )
        except Exception as e:  # noqa: BLE001 - a goodbye must not fail the stop
            log.debug("deregister worker %s: %s", self.worker_id, e)

    async def _run(self) -> None:
        assert self._stopping is not None
        bo = Backoff(self.tuning.reconnect_base, self.tuning.reconnect_max)
        prev = ""
        defs = [cw.definition for cw in self._workflows.values()]
        # A stopping worker goes on (and reconnects) until its running steps
        # are done, so that their results are reported.
        while not (self._stopping.is_set() and not self._attempts):
            running = [pb.RunningAttempt(step_run_id=k[0], attempt=k[1]) for k, a in self._attempts.items() if not a.abandoned]
            try:
                resp = await self._aio.unary(
                    _W + "RegisterWorker",
                    pb.RegisterWorkerRequest(name=self.name, slots=self.slots, workflows=defs, previous_worker_id=prev, running=running),
                    pb.RegisterWorkerResponse,
                    self.tuning.call_timeout,
                )
            except EngineError as e:
                if e.code in _PERMANENT:
                    raise
                if e.code in ("not_found", "failed_precondition"):
                    prev = ""  # the engine forgot the previous id; its steps were re-queued anyway
                d = bo.next()
                log.warning("worker %s: registration failed (%s); retrying in %.2fs", self.name, e, d)
                await self._pause(d)
                continue
            resumed = {(r.step_run_id, r.attempt) for r in resp.resumed}
            for key, att in list(self._attempts.items()):
                if key not in resumed:
                    # The engine re-queued it as a new attempt (or it ended,
                    # or forgot this worker): its results would be refused.
                    att.cancel("the engine took the attempt back when the worker reconnected")
            if resumed:
                log.info("worker %s: resumed %d running attempts", self.name, len(resumed))
            prev = self.worker_id = resp.worker_id
            hb = resp.heartbeat_interval_ms / 1000 or self.tuning.default_heartbeat
            log.info("worker registered: %s id=%s slots=%d heartbeat=%.1fs", self.name, self.worker_id, self.slots, hb)
            self._ready.set()
            healthy = await self._session(resp.worker_id, hb)
            if self._stopping.is_set() and not self._attempts:
                return
            if healthy:
                bo.reset()
            d = bo.next()
            log.warning("worker %s: session %s lost; registering again in %.2fs", self.name, self.worker_id, d)
            await self._pause(d)

    async def _pause(self, d: float) -> None:
        """Waits d seconds, or less if the worker is asked to stop."""
        assert self._stopping is not None
        if self._stopping.is_set():
            await asyncio.sleep(d)
            return
        try:
            await asyncio.wait_for(self._stopping.wait(), d)
        except asyncio.TimeoutError:
            pass

    async def _session(self, worker_id: str, hb: float) -> bool:
        """Listens until the session breaks, or the worker stopped and its
        running steps are done. Returns whether the session worked."""
        assert self._stopping is not None and self._drained is not None
        state = {"healthy": False}
        listen = asyncio.ensure_future(self._listen(worker_id, state))
        beat = asyncio.ensure_future(self._heartbeat(worker_id, hb, state))
        drained = asyncio.ensure_future(self._drained.wait())
        self._check_drained()
        try:
            done, _ = await asyncio.wait({listen, beat, drained}, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                if t is not drained and not t.cancelled() and t.exception() is not None:
                    log.debug("worker %s: session ended: %s", self.name, t.exception())
        finally:
            for t in (listen, beat, drained):
                t.cancel()
            await asyncio.gather(listen, beat, drained, return_exceptions=True)
        return state["healthy"]

    async def _listen(self, worker_id: str, state: dict[str, bool]) -> None:
        async with self._aio.stream(_W + "Listen", pb.ListenRequest(worker_id=worker_id), None) as msgs:
            async for m in msgs:
                state["healthy"] = True
                if "assignment" in m:
                    self._assign(pb.StepAssignment.from_json(m["assignment"]))
                elif "cancellation" in m:
                    c = pb.StepCancellation.from_json(m["cancellation"])
                    reason = "cancelled by the engine" + (f": {c.reason}" if c.reason else "")
                    for (srid, n), att in list(self._attempts.items()):
                        if srid == c.step_run_id and (c.attempt == 0 or n == c.attempt):
                            log.debug("step %s attempt %d: %s", srid, n, reason)
                            att.cancel(reason)
        raise EngineError("the engine ended the worker's stream", code="unavailable", from_engine=False)

    async def _heartbeat(self, worker_id: str, hb: float, state: dict[str, bool]) -> None:
        misses = 0
        while True:
            await asyncio.sleep(hb)
            try:
                await self._aio.unary(_W + "Heartbeat", pb.HeartbeatRequest(worker_id=worker_id), pb.HeartbeatResponse, hb)
                misses = 0
                state["healthy"] = True
            except EngineError as e:
                if e.code == "not_found":
                    raise EngineError(f"the engine declared the worker dead: {e.message}", code="not_found") from e
                misses += 1
                if misses >= self.tuning.heartbeat_misses:
                    raise EngineError(f"{misses} heartbeats in a row failed, the last with: {e}", code="unavailable", from_engine=False) from e

    # --- attempts -----------------------------------------------------------------

    def _assign(self, a: pb.StepAssignment) -> None:
        key = (a.step_run_id, a.attempt)
        if key in self._attempts:
            log.warning("ignoring a repeated assignment of running attempt %s/%d", *key)
            return
        assert self._stopping is not None and self._loop is not None
        if self._stopping.is_set():
            # Not started: the engine re-queues it when the worker leaves.
            log.info("worker %s is stopping; not starting step %s of run %s", self.name, a.step, a.run_id)
            return
        wf = self._workflows.get(a.workflow)
        st = wf.steps.get(a.step) if wf else None
        att: _Attempt
        stream = StepStream(self._aio, self._loop, a.step_run_id, a.attempt, self.tuning.stream, lambda r: att.cancel(r))
        ctx = Context(self, a, st.parents if st else (), stream)
        att = _Attempt(a, ctx, stream)
        self._attempts[key] = att
        if a.timeout_ms > 0:
            # The engine's clock for the attempt started when it assigned it.
            d = a.timeout_ms / 1000
            att.timer = self._loop.call_later(d, att.cancel, f"the step timed out after {d:g}s")
        att.task = self._loop.create_task(self._run_attempt(att, st))

    async def _run_attempt(self, att: _Attempt, st: CompiledStep | None) -> None:
        try:
            await self._run_step(att, st)
        except Exception:  # never lose a step silently
            log.exception("worker %s: step %s/%d crashed the worker's runner", self.name, *att.key)
        finally:
            if att.timer is not None:
                att.timer.cancel()
            self._attempts.pop(att.key, None)
            self._check_drained()

    async def _run_step(self, att: _Attempt, st: CompiledStep | None) -> None:
        a = att.a
        if st is None:
            await self._report(att, None, f"worker {self.name!r} has no step {a.step!r} in workflow {a.workflow!r}", no_retry=False)
            return
        assert self._sem is not None and self._loop is not None
        async with self._sem:
            if att.abandoned:
                return
            log.debug("step %s.%s started (run %s, attempt %d)", a.workflow, a.step, a.run_id, a.attempt)
            out: Any = None
            err: str | None = None
            no_retry = False
            try:
                if st.is_async:
                    att.fn_task = self._loop.create_task(st.fn(att.ctx))
                else:
                    att.fn_task = self._loop.run_in_executor(self._pool, st.fn, att.ctx)
                out = await att.fn_task
            except asyncio.CancelledError:
                if not att.abandoned:
                    raise  # the worker itself is being cancelled
            except NonRetryableError as e:
                err, no_retry = _describe(e), True
            except Exception as e:
                err = _describe(e)
        if att.abandoned:
            log.debug("step %s/%d not reported: %s", *att.key, att.ctx.cancel_reason)
            return
        output = b""
        if err is None:
            try:
                output = json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode()
            except (TypeError, ValueError) as e:
                err, no_retry = f"the step's output is not JSON-serialisable: {e}", True
        # Stream events come before the result: a subscriber sees every
        # event a step put before its step.completed or step.failed.
        serr = await att.stream.finish()
        if att.abandoned:
            return
        if serr is not None:
            if is_stale(serr):
                return
            err = f"{err} (and the stream failed: {serr})" if err else f"the step's stream failed: {serr}"
        await self._report(att, output if err is None else None, err, no_retry)

    async def _report(self, att: _Attempt, output: bytes | None, err: str | None, no_retry: bool) -> None:
        a = att.a
        bo = Backoff(self.tuning.report_base, self.tuning.report_max)
        while not att.abandoned:
            try:
                if err is None:
                    await self._aio.unary(
                        _W + "CompleteStep",
                        pb.CompleteStepRequest(step_run_id=a.step_run_id, attempt=a.attempt, output=output or b"null"),
                        pb.CompleteStepResponse,
                        self.tuning.call_timeout,
                    )
                    log.debug("step %s.%s completed (attempt %d)", a.workflow, a.step, a.attempt)
                else:
                    await self._aio.unary(
                        _W + "FailStep",
                        pb.FailStepRequest(step_run_id=a.step_run_id, attempt=a.attempt, error=_truncate(err), no_retry=no_retry),
                        pb.FailStepResponse,
                        self.tuning.call_timeout,
                    )
                    log.debug("step %s.%s failed (attempt %d): %s", a.workflow, a.step, a.attempt, err)
                return
            except EngineError as e:
                if is_stale(e):
                    log.debug("step %s/%d result refused, the attempt is stale: %s", *att.key, e)
                    return
                if e.transient:
                    # Kept while the worker reconnects: a resumed attempt
                    # reports when the engine is back.
                    await asyncio.sleep(bo.next())
                    continue
                if err is None and e.code in ("invalid_argument", "resource_exhausted"):
                    log.warning("step %s/%d output refused, failing the step: %s", *att.key, e)
                    err, no_retry = f"report step output: {e}", True
                    continue
                log.error("reporting step %s/%d failed: %s", *att.key, e)
                return


def _describe(e: BaseException) -> str:
    tb = traceback.extract_tb(e.__traceback__)[-5:]
    where = "".join(traceback.format_list(tb))
    return f"{type(e).__name__}: {e}\n{where}".rstrip()


def _truncate(s: str) -> str:
    b = s.encode()
    if len(b) <= _MAX_ERROR_LEN:
        return s
    return b[:_MAX_ERROR_LEN].decode("utf-8", "ignore") + "… (truncated)"
