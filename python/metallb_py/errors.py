"""Every exception metallb-py raises on purpose.

The Rust core raises these classes directly (see rust/metallb-py/src/errors.rs, the one place that maps core
error variants to them), so `except PoolExhaustedError` works the same for Python and Rust code paths.
"""

from __future__ import annotations

__all__ = [
    "AllocationError",
    "BgpError",
    "BgpNetnsError",
    "BgpPermissionError",
    "ConfigError",
    "FamilyError",
    "GossipBindError",
    "GossipError",
    "GossipNetnsError",
    "GossipPermissionError",
    "IPInUseError",
    "IPNotAllowedError",
    "InterfaceNotFoundError",
    "MetalLBError",
    "NetnsError",
    "NoMacAddressError",
    "NoPoolError",
    "PermissionDeniedError",
    "PoolExhaustedError",
    "ResponderError",
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


class ResponderError(MetalLBError):
    """The layer 2 responder cannot start or do what was asked (not running, socket error, thread gone)."""


class InterfaceNotFoundError(ResponderError, LookupError):
    """No interface of that name in the responder's network namespace, or not one the responder serves."""


class PermissionDeniedError(ResponderError, PermissionError):
    """Raw sockets need CAP_NET_RAW (entering a network namespace, CAP_SYS_ADMIN): run as root or grant it."""


class NoMacAddressError(ResponderError):
    """The interface has no Ethernet MAC address (loopback, tun, ...), so it cannot answer ARP or NDP."""


class NetnsError(ResponderError):
    """The named network namespace does not exist under /var/run/netns or is not a network namespace."""


class GossipError(MetalLBError):
    """The gossip member (failure detection among speakers) cannot start or do what was asked: not running,
    socket error, thread gone. Bad names, addresses, secrets or timings raise ValueError instead."""


class GossipBindError(GossipError):
    """The gossip address cannot be bound: already in use, or not an address of the (named) namespace."""


class GossipNetnsError(GossipError):
    """The named network namespace for the gossip socket does not exist or is not a network namespace."""


class GossipPermissionError(GossipError, PermissionError):
    """Entering a network namespace needs CAP_SYS_ADMIN; ports below 1024 need CAP_NET_BIND_SERVICE."""


class BgpError(MetalLBError, RuntimeError):
    """The BGP speaker cannot do what was asked: not running (stopped), socket error, thread gone. Bad peer
    parameters or routes raise ValueError instead, an unknown peer KeyError."""


class BgpNetnsError(BgpError, OSError):
    """The named network namespace for the BGP sessions does not exist or is not a network namespace."""


class BgpPermissionError(BgpError, PermissionError):
    """Entering a network namespace needs CAP_SYS_ADMIN; TCP MD5 signatures need CAP_NET_ADMIN."""
