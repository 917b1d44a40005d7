"""What the per-document parsers hand to the loader: records plus where each came from.

The legacy and CRD parsers produce the same records (`Resources`), so every rule that spans objects (names,
overlaps, references, aggregation lengths) is written once, in the loader, and still reports the path the user
wrote: `spec.aggregationLength` for a CRD, `address-pools[2] "x": bgp-advertisements[0].aggregation-length`
for a legacy ConfigMap.

`Warnings` collects what MetalLB accepts but this package would not write that way (a CIDR with host bits, a
reference to an object that does not exist yet). Each warning reads like an error (object, source, field
path) and says what was done; in strict mode the first one is raised as the ConfigError it would have been.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, NoReturn, TypeVar

from metallb_py._core import ServiceAllocation
from metallb_py.config.model import BFDProfile, BGPAdvertisement, BGPPeer, Community, L2Advertisement
from metallb_py.config.reader import Where
from metallb_py.errors import ConfigError

__all__ = ["Entry", "PoolSpec", "Resources", "Warnings"]

T = TypeVar("T")


@dataclass(frozen=True)
class PoolSpec:
    """An address pool before the core validates its addresses."""

    name: str
    addresses: tuple[str, ...]
    auto_assign: bool = True
    avoid_buggy_ips: bool = False
    service_allocation: ServiceAllocation | None = None
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    protocol: str | None = None  # legacy pools only


@dataclass
class Entry(Generic[T]):
    """A record, the object it was read from, and where each field was written.

    `paths` maps a field's CRD name (`addresses`, `aggregationLength`...) to its path in the source; the key
    "" is the record's own path inside the object (empty for a CRD, `address-pools[0] "x"` for legacy).
    """

    record: T
    where: Where
    paths: dict[str, str]
    namespace: str | None = None
    kind: str = ""

    def path(self, name: str, index: int | None = None) -> str:
        base = self.paths.get(name)
        if base is None:
            # Records the legacy format implies (an L2Advertisement per layer2 pool) have no field of their
            # own; point at the item that implied them.
            return self.paths.get("", name)
        return base if index is None else f"{base}[{index}]"

    def describe(self) -> str:
        own = self.paths.get("", "")
        return f"{self.where.text}: {own}" if own else self.where.text

    def error(self, name: str, message: str, index: int | None = None) -> ConfigError:
        return self.where.error(self.path(name, index), message)

    def fail(self, name: str, message: str, index: int | None = None) -> NoReturn:
        raise self.error(name, message, index)

    def warn(self, warnings: Warnings, name: str, problem: str, done: str, index: int | None = None) -> None:
        """Warn about this record's field: `problem` worded as `error` words an error, then what was `done`
        about it (what MetalLB does)."""
        warnings.add(str(self.error(name, problem, index)), done)


class Warnings:
    """The warnings of one load, in the order they were found. `strict`: the first one is a ConfigError."""

    __slots__ = ("messages", "strict")

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self.messages: list[str] = []

    def add(self, problem: str, done: str) -> None:
        """`problem` names the object and field (`IPAddressPool "a" (x.yaml, document 1): spec...: ...`);
        `done` what loading does about it (`using 192.0.2.0/24 as MetalLB does`)."""
        if self.strict:
            raise ConfigError(f"{problem} (refused in strict mode; otherwise: {done})")
        self.messages.append(f"{problem}; {done}")


@dataclass
class Resources:
    pools: list[Entry[PoolSpec]] = field(default_factory=list)
    l2_advertisements: list[Entry[L2Advertisement]] = field(default_factory=list)
    bgp_advertisements: list[Entry[BGPAdvertisement]] = field(default_factory=list)
    bgp_peers: list[Entry[BGPPeer]] = field(default_factory=list)
    communities: list[Entry[Community]] = field(default_factory=list)
    bfd_profiles: list[Entry[BFDProfile]] = field(default_factory=list)
    # (kind, name) of the objects that could not be read, whose mistakes were reported: a reference to one
    # is not reported again as a reference to an object that does not exist.
    unread: set[tuple[str, str]] = field(default_factory=set)

    def extend(self, other: Resources) -> None:
        self.pools += other.pools
        self.l2_advertisements += other.l2_advertisements
        self.bgp_advertisements += other.bgp_advertisements
        self.bgp_peers += other.bgp_peers
        self.communities += other.communities
        self.bfd_profiles += other.bfd_profiles
        self.unread |= other.unread

    def counts(self) -> dict[str, int]:
        """Objects per kind, for one-line summaries."""
        return {
            "IPAddressPool": len(self.pools),
            "L2Advertisement": len(self.l2_advertisements),
            "BGPAdvertisement": len(self.bgp_advertisements),
            "BGPPeer": len(self.bgp_peers),
            "Community": len(self.communities),
            "BFDProfile": len(self.bfd_profiles),
        }

    def entries(self) -> list[Entry[Any]]:
        return [
            *self.pools,
            *self.l2_advertisements,
            *self.bgp_advertisements,
            *self.bgp_peers,
            *self.communities,
            *self.bfd_profiles,
        ]
