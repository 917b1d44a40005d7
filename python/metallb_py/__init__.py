"""metallb-py: MetalLB's job as a Python library with a Rust core.

The allocator and the pool/selector types come from the Rust extension `metallb_py._core`; configuration
parsing lives in `metallb_py.config`.
"""

from __future__ import annotations

from metallb_py._core import (
    Allocator,
    LabelSelector,
    Pool,
    Port,
    ServiceAllocation,
    __version__,
    validate_pools,
)
from metallb_py.errors import (
    AllocationError,
    ConfigError,
    FamilyError,
    IPInUseError,
    IPNotAllowedError,
    MetalLBError,
    NoPoolError,
    PoolExhaustedError,
    UnknownPoolError,
)

__all__ = [
    "AllocationError",
    "Allocator",
    "ConfigError",
    "FamilyError",
    "IPInUseError",
    "IPNotAllowedError",
    "LabelSelector",
    "MetalLBError",
    "NoPoolError",
    "Pool",
    "PoolExhaustedError",
    "Port",
    "ServiceAllocation",
    "UnknownPoolError",
    "__version__",
    "load_config",
    "validate_pools",
]


def __getattr__(name: str) -> object:
    # load_config lives in the config package, which imports this one's classes; import it lazily.
    if name == "load_config":
        from metallb_py.config import load_config

        return load_config
    raise AttributeError(f"module 'metallb_py' has no attribute {name!r}")
