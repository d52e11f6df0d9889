"""The SDK's exceptions: one hierarchy under RunnelError."""

from __future__ import annotations

__all__ = [
    "RunnelError",
    "EngineError",
    "InvalidArgumentError",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "AuthenticationError",
    "FailedPreconditionError",
    "ResourceExhaustedError",
    "UnavailableError",
    "DeadlineExceededError",
    "PayloadTooLargeError",
    "StepCancelledError",
    "ChildRunError",
    "NonRetryableError",
]


class RunnelError(Exception):
    """Base class of every error the SDK raises.

    ``code`` is the engine's error code (a Connect code such as
    ``"not_found"``) or, for errors that never reached the engine, the code
    that describes them best (``"unavailable"`` for an unreachable engine).
    ``message`` is the engine's message, without the code.
    """

    code: str
    message: str

    def __init__(self, message: str, *, code: str = "unknown") -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


class EngineError(RunnelError):
    """The engine answered a call with an error; ``code`` and ``message``
    are its own. Subclasses name the common codes."""

    #: True when the error came from the engine (or a proxy in front of it),
    #: False when it was made here (a broken connection, say).
    from_engine: bool

    def __init__(self, message: str, *, code: str = "unknown", from_engine: bool = True) -> None:
        super().__init__(message, code=code)
        self.from_engine = from_engine

    @property
    def transient(self) -> bool:
        """Whether the same call may succeed when made again: the engine was
        unreachable or restarting, or the connection broke."""
        if self.code in ("unavailable", "deadline_exceeded", "aborted"):
            return True
        if self.code in ("internal", "unknown"):
            return not self.from_engine
        return False


class InvalidArgumentError(EngineError):
    """The engine refused the call's arguments (code ``invalid_argument``)."""


class NotFoundError(EngineError):
    """No such run, workflow or worker (code ``not_found``)."""


class AlreadyExistsError(EngineError):
    """Code ``already_exists``."""


class PermissionDeniedError(EngineError):
    """The token may not do this (code ``permission_denied``)."""


class AuthenticationError(EngineError):
    """No token, or one the engine does not know (code ``unauthenticated``).
    Set ``RUNNEL_TOKEN`` or pass ``token=`` to ``Runnel``."""


class FailedPreconditionError(EngineError):
    """The call came too late: the step attempt is no longer running, for
    example (code ``failed_precondition``)."""


class ResourceExhaustedError(EngineError):
    """A limit was hit: too many subscriptions, a too large message (code
    ``resource_exhausted``)."""


class UnavailableError(EngineError):
    """The engine could not be reached or the connection broke (code
    ``unavailable``); the call may succeed later."""


class DeadlineExceededError(EngineError):
    """The call took too long (code ``deadline_exceeded``)."""


class PayloadTooLargeError(RunnelError, ValueError):
    """``put_stream`` refused a payload over the 4 MiB limit. Nothing was
    sent and the step may go on."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"stream payload of {size} bytes exceeds the {limit >> 20} MiB limit ({limit} bytes)",
            code="invalid_argument",
        )
        self.size = size
        self.limit = limit


class StepCancelledError(RunnelError):
    """The step attempt was cancelled (the run was cancelled, the step timed
    out, or the engine re-queued it): its puts and results are refused."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, code="cancelled")
        self.reason = reason


class ChildRunError(RunnelError):
    """A child run ended without completing."""

    def __init__(self, run_id: str, workflow: str, status: str, error: str) -> None:
        msg = f"child run {run_id} of {workflow!r} {status}"
        if error:
            msg += f": {error}"
        super().__init__(msg, code=status)
        self.run_id = run_id
        self.workflow = workflow
        self.status = status
        self.error = error


class NonRetryableError(RunnelError):
    """Raise it from a step to fail the step without retrying it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="failed")

    def __str__(self) -> str:
        return self.message


_BY_CODE: dict[str, type[EngineError]] = {
    "invalid_argument": InvalidArgumentError,
    "not_found": NotFoundError,
    "already_exists": AlreadyExistsError,
    "permission_denied": PermissionDeniedError,
    "unauthenticated": AuthenticationError,
    "failed_precondition": FailedPreconditionError,
    "resource_exhausted": ResourceExhaustedError,
    "unavailable": UnavailableError,
    "deadline_exceeded": DeadlineExceededError,
}

# Connect's mapping of HTTP statuses to codes, for answers without a
# Connect error body (a proxy's 502, say).
_HTTP_CODES = {
    400: "internal",
    401: "unauthenticated",
    403: "permission_denied",
    404: "unimplemented",
    429: "unavailable",
    502: "unavailable",
    503: "unavailable",
    504: "unavailable",
}


def engine_error(code: str, message: str, *, from_engine: bool = True) -> EngineError:
    """The exception for an engine error code."""
    return _BY_CODE.get(code, EngineError)(message, code=code, from_engine=from_engine)


def http_status_code(status: int) -> str:
    return _HTTP_CODES.get(status, "unknown")


def is_stale(err: BaseException) -> bool:
    """The engine refused a call about a step attempt that is no longer
    current (cancelled, timed out, or re-queued as a new attempt)."""
    return isinstance(err, EngineError) and err.code in ("failed_precondition", "not_found")
