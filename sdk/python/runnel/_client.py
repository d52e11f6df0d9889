"""The client: Runnel, its admin and event APIs."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from . import _proto as pb
from ._listener import Listener
from ._models import Run, RunStatus, StepInfo, WorkflowInfo, _status
from ._transport import AsyncTransport, Config, SyncTransport

if TYPE_CHECKING:
    from ._worker import Worker

_T = TypeVar("_T")
_RUN = "runnel.v1.RunService/"


def encode_input(value: Any) -> bytes:
    """A run input as JSON: None becomes {}; bytes and str must already be
    JSON (they are passed as they are)."""
    if value is None:
        return b"{}"
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if not raw:
            return b"{}"
        json.loads(raw)  # ValueError if it is not JSON
        return raw
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


class Admin:
    """Triggers, inspects and cancels runs. Get it as ``Runnel().admin``.
    Every method has an ``aio_`` form to await; both raise the engine's
    errors as :class:`runnel.EngineError` subclasses (``NotFoundError`` for
    an unknown run or workflow, ``InvalidArgumentError``,
    ``AuthenticationError``, …)."""

    def __init__(self, sync: SyncTransport, aio: AsyncTransport) -> None:
        self._sync = sync
        self._aio = aio

    @staticmethod
    def _trigger(workflow: str, input: Any, additional_metadata: Mapping[str, str] | None) -> pb.TriggerRunRequest:
        return pb.TriggerRunRequest(workflow=workflow, input=encode_input(input), additional_metadata=dict(additional_metadata or {}))

    def run_workflow(self, workflow: str, input: Any = None, *, additional_metadata: Mapping[str, str] | None = None) -> str:
        """Triggers a run of the workflow and returns its run id. The input
        is encoded as JSON (None becomes {}); child runs inherit the
        additional metadata, and ``listener.stream_by_additional_metadata``
        follows every run carrying a pair."""
        req = self._trigger(workflow, input, additional_metadata)
        return self._sync.unary(_RUN + "TriggerRun", req, pb.TriggerRunResponse).run_id

    async def aio_run_workflow(self, workflow: str, input: Any = None, *, additional_metadata: Mapping[str, str] | None = None) -> str:
        req = self._trigger(workflow, input, additional_metadata)
        return (await self._aio.unary(_RUN + "TriggerRun", req, pb.TriggerRunResponse)).run_id

    def get_run(self, run_id: str) -> Run:
        """The run with its steps and their attempts."""
        resp = self._sync.unary(_RUN + "GetRun", pb.GetRunRequest(run_id=run_id), pb.GetRunResponse)
        return Run._from_pb(resp.run or pb.Run())

    async def aio_get_run(self, run_id: str) -> Run:
        resp = await self._aio.unary(_RUN + "GetRun", pb.GetRunRequest(run_id=run_id), pb.GetRunResponse)
        return Run._from_pb(resp.run or pb.Run())

    @staticmethod
    def _list(workflow: str | None, status: RunStatus | str | None, additional_metadata: tuple[str, str] | None, limit: int, before: str | None) -> pb.ListRunsRequest:
        key, value = additional_metadata or ("", "")
        return pb.ListRunsRequest(workflow=workflow or "", status=str(status or ""), meta_key=key, meta_value=value, limit=limit, before=before or "")

    def list_runs(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | str | None = None,
        additional_metadata: tuple[str, str] | None = None,
        limit: int = 0,
        before: str | None = None,
    ) -> list[Run]:
        """Runs, newest first, filtered by workflow, status and one
        metadata pair; ``before`` is a run id to page after."""
        req = self._list(workflow, status, additional_metadata, limit, before)
        return [Run._from_pb(r) for r in self._sync.unary(_RUN + "ListRuns", req, pb.ListRunsResponse).runs]

    async def aio_list_runs(
        self,
        *,
        workflow: str | None = None,
        status: RunStatus | str | None = None,
        additional_metadata: tuple[str, str] | None = None,
        limit: int = 0,
        before: str | None = None,
    ) -> list[Run]:
        req = self._list(workflow, status, additional_metadata, limit, before)
        return [Run._from_pb(r) for r in (await self._aio.unary(_RUN + "ListRuns", req, pb.ListRunsResponse)).runs]

    def cancel_run(self, run_id: str) -> RunStatus:
        """Cancels the run (and its unfinished children); its running steps
        see the cancellation. Returns the run's status afterwards."""
        resp = self._sync.unary(_RUN + "CancelRun", pb.CancelRunRequest(run_id=run_id), pb.CancelRunResponse)
        return _status(RunStatus, resp.status)  # type: ignore[no-any-return]

    async def aio_cancel_run(self, run_id: str) -> RunStatus:
        resp = await self._aio.unary(_RUN + "CancelRun", pb.CancelRunRequest(run_id=run_id), pb.CancelRunResponse)
        return _status(RunStatus, resp.status)  # type: ignore[no-any-return]

    @staticmethod
    def _workflows(resp: pb.ListWorkflowsResponse) -> list[WorkflowInfo]:
        return [
            WorkflowInfo(
                name=w.name,
                steps=[StepInfo(s.name, list(s.parents), s.retries, s.backoff_ms, s.timeout_ms) for s in w.steps],
                on_events=list(w.on_events),
            )
            for w in resp.workflows
        ]

    def list_workflows(self) -> list[WorkflowInfo]:
        """The workflows workers have registered."""
        return self._workflows(self._sync.unary(_RUN + "ListWorkflows", pb.ListWorkflowsRequest(), pb.ListWorkflowsResponse))

    async def aio_list_workflows(self) -> list[WorkflowInfo]:
        return self._workflows(await self._aio.unary(_RUN + "ListWorkflows", pb.ListWorkflowsRequest(), pb.ListWorkflowsResponse))


class Events:
    """Pushes events that trigger workflows registered with ``on_events``.
    Get it as ``Runnel().event``."""

    def __init__(self, sync: SyncTransport, aio: AsyncTransport) -> None:
        self._sync = sync
        self._aio = aio

    @staticmethod
    def _req(key: str, payload: Any, additional_metadata: Mapping[str, str] | None) -> pb.PushEventRequest:
        return pb.PushEventRequest(key=key, payload=encode_input(payload), additional_metadata=dict(additional_metadata or {}))

    def push(self, key: str, payload: Any = None, *, additional_metadata: Mapping[str, str] | None = None) -> list[str]:
        """Pushes an event: every workflow listening to ``key`` gets a run
        with the payload as input. Returns the ids of the runs it started
        (none when no workflow listens, which is not an error)."""
        return self._sync.unary(_RUN + "PushEvent", self._req(key, payload, additional_metadata), pb.PushEventResponse).run_ids

    async def aio_push(self, key: str, payload: Any = None, *, additional_metadata: Mapping[str, str] | None = None) -> list[str]:
        return (await self._aio.unary(_RUN + "PushEvent", self._req(key, payload, additional_metadata), pb.PushEventResponse)).run_ids


class Runnel:
    """A client of a Runnel engine.

    ``host`` is the engine's base URL (several, separated by commas, name
    nodes sharing one database: calls move to the next when one cannot be
    reached); it defaults to ``$RUNNEL_HOST``, else
    ``http://127.0.0.1:7077``. ``token`` defaults to ``$RUNNEL_TOKEN``.
    Nothing connects until the first call. Share one per process; it is
    safe to use from several threads and from asyncio.
    """

    def __init__(self, host: str | None = None, token: str | None = None, *, timeout: float = 30.0) -> None:
        self._cfg = Config(host, token, timeout)
        self._sync = SyncTransport(self._cfg)
        self._aio = AsyncTransport(self._cfg)
        self.admin = Admin(self._sync, self._aio)
        self.listener = Listener(self._sync, self._aio)
        self.event = Events(self._sync, self._aio)

    @property
    def host(self) -> str:
        """The engine URL calls currently go to."""
        return self._cfg.hosts.current()[1]

    def workflow(self, name: str | None = None, *, on_events: list[str] | None = None) -> Callable[[type[_T]], type[_T]]:
        """Same as :func:`runnel.workflow`."""
        from ._workflow import workflow

        return workflow(name, on_events=on_events)

    def step(
        self,
        name: str | None = None,
        *,
        parents: list[str] | None = None,
        retries: int = 0,
        timeout: str | float | None = None,
        backoff: str | float | None = None,
    ) -> Callable[[_T], _T]:
        """Same as :func:`runnel.step`."""
        from ._workflow import step

        return step(name, parents=parents, retries=retries, timeout=timeout, backoff=backoff)

    def worker(self, name: str, slots: int = 10) -> Worker:
        """A worker named ``name`` that runs at most ``slots`` steps at once."""
        from ._worker import Worker

        return Worker(self, name, slots)

    def close(self) -> None:
        """Closes the client's connections."""
        self._sync.close()

    async def aclose(self) -> None:
        await self._aio.aclose()

    def __enter__(self) -> Runnel:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
