"""metallb-py: MetalLB's job as a Python library with a Rust core.

The allocator and the pool/selector types come from the Rust extension `metallb_py._core`; configuration
parsing lives in `metallb_py.config`, Service-to-request mapping and planning in `metallb_py.ipam`.
"""

from __future__ import annotations

from metallb_py._core import (
    Allocator,
    BgpEvent,
    BgpPeerStatus,
    BgpRoute,
    BgpSpeaker,
    LabelSelector,
    Membership,
    MembershipEvent,
    Pool,
    Port,
    Responder,
    ServiceAllocation,
    __version__,
    validate_pools,
)
from metallb_py.config import Config, load_config
from metallb_py.errors import (
    AllocationError,
    ConfigError,
    FamilyError,
    GossipBindError,
    GossipError,
    GossipNetnsError,
    GossipPermissionError,
    InterfaceNotFoundError,
    IPInUseError,
    IPNotAllowedError,
    MetalLBError,
    NetnsError,
    NoMacAddressError,
    NoPoolError,
    PermissionDeniedError,
    PoolExhaustedError,
    ResponderError,
    UnknownPoolError,
)

__all__ = [
    "AllocationError",
    "Allocator",
    "BgpEvent",
    "BgpPeerStatus",
    "BgpRoute",
    "BgpSpeaker",
    "Config",
    "ConfigError",
    "FamilyError",
    "GossipBindError",
    "GossipError",
    "GossipNetnsError",
    "GossipPermissionError",
    "IPInUseError",
    "IPNotAllowedError",
    "InterfaceNotFoundError",
    "LabelSelector",
    "Membership",
    "MembershipEvent",
    "MetalLBError",
    "NetnsError",
    "NoMacAddressError",
    "NoPoolError",
    "PermissionDeniedError",
    "Pool",
    "PoolExhaustedError",
    "Port",
    "Responder",
    "ResponderError",
    "ServiceAllocation",
    "UnknownPoolError",
    "__version__",
    "load_config",
    "validate_pools",
]
