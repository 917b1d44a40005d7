"""Every exception metallb-py raises on purpose.

The Rust core raises these classes directly (see rust/metallb-py/src/errors.rs, the one place that maps core
error variants to them), so `except PoolExhaustedError` works the same for Python and Rust code paths.
"""

from __future__ import annotations

__all__ = [
    "AllocationError",
    "ConfigError",
    "FamilyError",
    "IPInUseError",
    "IPNotAllowedError",
    "MetalLBError",
    "NoPoolError",
    "PoolExhaustedError",
    "UnknownPoolError",
]


class MetalLBError(Exception):
    """Base class of every metallb-py error."""


class ConfigError(MetalLBError, ValueError):
    """A configuration (ConfigMap, CRD, pool definition) is invalid; the message names the object and field.

    Permanent: retrying the same input gives the same error. The last good configuration stays in force.
    `path` (where) and `reason` (what) are set when the Rust core raised it, None otherwise.
    """

    path: str | None = None
    reason: str | None = None


class AllocationError(MetalLBError):
    """An IP could not be allocated or assigned. Allocator state is unchanged when this is raised."""


class PoolExhaustedError(AllocationError):
    """Every candidate pool is full for the requested family; retry after an address is released."""


class IPInUseError(AllocationError):
    """The address is held by another service and the sharing rules do not allow sharing it."""


class UnknownPoolError(AllocationError):
    """The service names a pool that does not exist in the current configuration."""


class IPNotAllowedError(AllocationError):
    """A requested address lies in no pool, in another pool than the one asked for, or is a buggy .0/.255."""


class FamilyError(AllocationError):
    """The IP families asked for cannot be served (unknown family, dual stack from a single-stack pool...)."""


class NoPoolError(AllocationError):
    """No pool may serve this service: none auto-assigns, or none selects its namespace or labels."""
