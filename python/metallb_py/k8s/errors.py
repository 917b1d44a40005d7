"""Errors of the Kubernetes API, one class per case the controller treats differently.

Each says whether retrying can help: `temporary` errors (the API server is down or overloaded, a write raced
another writer) are retried with a delay; the others are permanent for the same request. The controller's
worker (`controller.sync`) decides on it: a temporary error is retried with per-key backoff, a permanent one
is reported once (a Warning Event) and not retried until the object changes.
"""

from __future__ import annotations

from metallb_py.errors import MetalLBError

__all__ = [
    "ApiError",
    "ApiUnavailableError",
    "ConflictError",
    "ForbiddenError",
    "GoneError",
    "InvalidError",
    "NotFoundError",
    "NotLeaderError",
]


class ApiError(MetalLBError):
    """The API server refused a request. `status` is the HTTP status (0: no answer), `reason` the
    machine-readable reason of the Status object (`Conflict`, `NotFound`...), `message` its text."""

    temporary = False

    def __init__(self, status: int, reason: str, message: str, *, request: str = "") -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.request = request
        where = f"{request}: " if request else ""
        super().__init__(f"{where}{status} {reason}: {message}" if status else f"{where}{message}")


class ApiUnavailableError(ApiError):
    """No answer (connection refused or reset, timeout, TLS failure) or a 5xx/429: retry later."""

    temporary = True


class ConflictError(ApiError):
    """409: the object changed since it was read (resourceVersion precondition) or already exists.
    Re-read and decide again."""

    temporary = True


class NotFoundError(ApiError):
    """404: no such object, or (for a list) no such resource type, e.g. a CRD that is not installed."""


class GoneError(ApiError):
    """410: the resourceVersion a watch or a paged list asked for is too old; list again."""

    temporary = True


class ForbiddenError(ApiError):
    """403: RBAC does not allow this request; deploy/rbac.yaml lists what the controller needs."""


class InvalidError(ApiError):
    """422 or 400: the API server rejected the object as invalid."""


class NotLeaderError(MetalLBError):
    """A write was attempted while this replica does not hold the leader lease; nothing was sent."""
