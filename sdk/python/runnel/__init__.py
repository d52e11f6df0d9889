"""Runnel's Python SDK: workers that stream, listeners that resume.

>>> from runnel import Runnel, Context, EventType
>>> runnel = Runnel()  # RUNNEL_HOST, RUNNEL_TOKEN
"""

from ._client import Admin, Events, Runnel
from ._errors import (
    AlreadyExistsError,
    AuthenticationError,
    ChildRunError,
    DeadlineExceededError,
    EngineError,
    FailedPreconditionError,
    InvalidArgumentError,
    NonRetryableError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ResourceExhaustedError,
    RunnelError,
    StepCancelledError,
    UnavailableError,
)
from ._context import ChildRun, Context
from ._listener import Listener, Subscription
from ._stream import DEFAULT_STREAM, MAX_PAYLOAD_SIZE
from ._worker import Worker
from ._workflow import InvalidWorkflowError, step, workflow
from ._models import Event, EventType, Run, RunStatus, StepAttempt, StepInfo, StepRun, StepStatus, WorkflowInfo

__all__ = [
    "DEFAULT_STREAM",
    "MAX_PAYLOAD_SIZE",
    "ChildRun",
    "Context",
    "InvalidWorkflowError",
    "Worker",
    "step",
    "workflow",
    "Admin",
    "AlreadyExistsError",
    "AuthenticationError",
    "ChildRunError",
    "DeadlineExceededError",
    "EngineError",
    "Event",
    "EventType",
    "Events",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "Listener",
    "NonRetryableError",
    "NotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "Run",
    "RunStatus",
    "Runnel",
    "RunnelError",
    "StepAttempt",
    "StepCancelledError",
    "StepInfo",
    "StepRun",
    "StepStatus",
    "Subscription",
    "UnavailableError",
    "WorkflowInfo",
]

__version__ = "0.1.0"
