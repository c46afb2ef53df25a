"""carbonmon's exceptions: one base class, a subclass per way a call can fail.

Each carries the gRPC status name (`code`), the server's message (`details`) and, when the server sent one,
what to do about it (`hint`, from the carbonmon-hint trailer).
"""
from __future__ import annotations

from typing import Optional

import grpc


class CarbonmonError(Exception):
    """Any carbonmon failure."""

    def __init__(self, message: str, code: str = "UNKNOWN", details: str = "", hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.details = details
        self.hint = hint


class AgentUnavailableError(CarbonmonError):
    """The agent (or the intensity service) could not be reached in time: UNAVAILABLE, DEADLINE_EXCEEDED."""


class WindowExistsError(CarbonmonError, ValueError):
    """BeginWindow with a key that is already open (Zeus raises ValueError here too)."""


class WindowNotFoundError(CarbonmonError, ValueError):
    """EndWindow, GetWindow or CancelWindow with a key that is neither open nor stored (Zeus: ValueError)."""


class InvalidRequestError(CarbonmonError, ValueError):
    """INVALID_ARGUMENT / FAILED_PRECONDITION: a malformed key, an unknown or unavailable device, ..."""


class CarbonIntensityError(CarbonmonError):
    """No grams: the intensity service could not price, or carbon is disabled on the agent."""

    def __init__(self, message: str, code: str = "UNKNOWN", details: str = "", hint: str = "", measurement=None) -> None:
        super().__init__(message, code, details, hint)
        #: The window's energy (a carbonmon.Measurement) when the error concerns a window's grams.
        self.measurement = measurement


class FrameworkNotAvailableError(CarbonmonError, RuntimeError):
    """sync_execution_with names a framework (torch, jax, cupy) that cannot be imported."""


_BY_CODE = {
    grpc.StatusCode.UNAVAILABLE: AgentUnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: AgentUnavailableError,
    grpc.StatusCode.ALREADY_EXISTS: WindowExistsError,
    grpc.StatusCode.NOT_FOUND: WindowNotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequestError,
    grpc.StatusCode.FAILED_PRECONDITION: InvalidRequestError,
}


def _hint(err: grpc.RpcError) -> str:
    try:
        for key, value in err.trailing_metadata() or ():
            if key == "carbonmon-hint":
                return value
    except Exception:  # a channel-level failure has no trailers
        pass
    return ""


def from_rpc_error(err: grpc.RpcError, what: str, address: str, default: Optional[type] = None) -> CarbonmonError:
    """The exception for a failed call to `what` (e.g. "agent") at `address`."""
    code = err.code()
    cls = _BY_CODE.get(code, default or CarbonmonError)
    details = err.details() or ""
    hint = _hint(err)
    if cls is AgentUnavailableError:
        message = f"cannot reach the {what} at {address} ({code.name}: {details})"
    else:
        message = f"{what} at {address}: {code.name}: {details}" + (f" (hint: {hint})" if hint else "")
    return cls(message, code.name, details, hint)
