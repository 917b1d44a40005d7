"""The validated configuration: `Config` and one frozen dataclass per MetalLB resource kind.

Pools are the Rust core's `Pool` objects (the allocator consumes them directly); everything else is plain
Python with MetalLB's CRD fields in snake_case, defaults applied. Advertisements also carry what they resolve
to (`pools`, and for BGP the community values), so consumers never re-evaluate selectors or aliases.

Every record has an `origin` (the object and source it came from, for messages); it is left out of equality so
the same configuration written as a legacy ConfigMap or as CRDs compares equal.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from metallb_py._core import LabelSelector, Pool

__all__ = [
    "BFDProfile",
    "BGPAdvertisement",
    "BGPCommunity",
    "BGPPeer",
    "Community",
    "CommunityAlias",
    "Config",
    "L2Advertisement",
    "PreferredNodeSelector",
    "SecretReference",
    "address_count",
]

_U16 = 0xFFFF
_U32 = 0xFFFF_FFFF


@dataclass(frozen=True, order=True)
class BGPCommunity:
    """A BGP community: legacy (`65000:100`, two 16-bit halves) or large (`large:65000:1:2`, three 32-bit)."""

    parts: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> BGPCommunity:
        """Parse MetalLB's spelling; ValueError says why a string is not a community."""
        fields = text.split(":")
        if len(fields) == 2:
            return cls(tuple(_number(text, f, _U16, "16") for f in fields))
        if len(fields) == 4 and fields[0] == "large":
            return cls(tuple(_number(text, f, _U32, "32") for f in fields[1:]))
        if len(fields) == 4:
            raise ValueError(f"{text!r}: a large community starts with 'large:', e.g. large:65000:1:2")
        raise ValueError(
            f"{text!r} is neither a community (65000:100) nor a large community (large:65000:1:2)"
        )

    @property
    def is_large(self) -> bool:
        return len(self.parts) == 3

    def __str__(self) -> str:
        text = ":".join(str(p) for p in self.parts)
        return f"large:{text}" if self.is_large else text


def _number(text: str, part: str, maximum: int, bits: str) -> int:
    # Go's ParseUint, which MetalLB uses, takes plain decimal digits only: no sign, spaces or underscores.
    if not part.isascii() or not part.isdigit() or int(part) > maximum:
        raise ValueError(f"{text!r}: {part!r} is not a {bits}-bit unsigned number")
    return int(part)


@dataclass(frozen=True)
class CommunityAlias:
    name: str
    value: BGPCommunity


@dataclass(frozen=True)
class Community:
    """A Community resource: named aliases for community values."""

    name: str
    communities: tuple[CommunityAlias, ...] = ()
    origin: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class BFDProfile:
    """BFD session settings a BGPPeer can refer to. Unset values take the routing daemon's defaults."""

    name: str
    receive_interval: int | None = None
    transmit_interval: int | None = None
    detect_multiplier: int | None = None
    echo_interval: int | None = None
    echo_mode: bool = False
    passive_mode: bool = False
    minimum_ttl: int | None = None
    origin: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class SecretReference:
    name: str
    namespace: str | None = None


@dataclass(frozen=True)
class BGPPeer:
    """A BGP session to a router (metallb.io/v1beta2 BGPPeer; v1beta1 reads into the same record). Exactly one
    of peer_asn / dynamic_asn is set, and exactly one of peer_address / interface. `local_asn` is MetalLB's
    `localASN`: the AS this session presents to the peer instead of `my_asn` (FRR's `local-as ... no-prepend
    replace-as`), so it also decides whether the session is iBGP."""

    name: str
    my_asn: int
    peer_asn: int | None = None
    dynamic_asn: str | None = None
    local_asn: int | None = None
    peer_address: str | None = None
    interface: str | None = None
    source_address: str | None = None
    peer_port: int = 179
    hold_time: _dt.timedelta | None = None
    keepalive_time: _dt.timedelta | None = None
    connect_time: _dt.timedelta | None = None
    router_id: str | None = None
    node_selectors: tuple[LabelSelector, ...] = ()
    password: str | None = None
    password_secret: SecretReference | None = None
    bfd_profile: str | None = None
    enable_graceful_restart: bool = False
    ebgp_multihop: bool = False
    vrf: str | None = None
    disable_mp: bool = False
    dual_stack_address_family: bool = False
    origin: str = field(default="", compare=False, repr=False)

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        """Whether a node with `labels` peers with this router: no node selectors means every node."""
        return _any_selects(self.node_selectors, labels)

    @property
    def session_asn(self) -> int:
        """The AS number the peer sees from us: `local_asn` when set, else `my_asn`."""
        return self.local_asn if self.local_asn is not None else self.my_asn


@dataclass(frozen=True)
class PreferredNodeSelector:
    """A soft preference in the per-address layer 2 election: eligible nodes that `preference` matches score
    `weight` (1-100) more; the weights of every selector that matches a node add up."""

    weight: int
    preference: LabelSelector


@dataclass(frozen=True)
class L2Advertisement:
    """Announce some pools' addresses with ARP/NDP. `pools` is what the pool names and selectors resolve to
    (every pool when both are empty). `service_selectors` limit it to the Services whose labels match one of
    them (none: every Service of its pools); `preferred_node_selectors` weigh the election among the nodes
    `node_selectors` allow."""

    name: str
    ip_address_pools: tuple[str, ...] = ()
    ip_address_pool_selectors: tuple[LabelSelector, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    interfaces: tuple[str, ...] = ()
    pools: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()
    preferred_node_selectors: tuple[PreferredNodeSelector, ...] = ()
    origin: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class BGPAdvertisement:
    """Announce some pools' addresses over BGP. `communities` is as written (aliases or values);
    `community_values` what they resolve to; `pools` as for L2Advertisement. `service_selectors` limit it to
    the Services whose labels match one of them (none: every Service of its pools)."""

    name: str
    aggregation_length: int = 32
    aggregation_length_v6: int = 128
    local_pref: int = 0
    communities: tuple[str, ...] = ()
    ip_address_pools: tuple[str, ...] = ()
    ip_address_pool_selectors: tuple[LabelSelector, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    peers: tuple[str, ...] = ()
    service_selectors: tuple[LabelSelector, ...] = ()
    pools: tuple[str, ...] = ()
    community_values: tuple[BGPCommunity, ...] = ()
    origin: str = field(default="", compare=False, repr=False)

    def selects_node(self, labels: Mapping[str, str]) -> bool:
        """Whether a node with `labels` advertises through this: no node selectors means every node."""
        return _any_selects(self.node_selectors, labels)

    def selects_service(self, labels: Mapping[str, str]) -> bool:
        """Whether a Service with `labels` is advertised through this: no selectors means every Service."""
        return _any_selects(self.service_selectors, labels)

    def selects_peer(self, peer: str) -> bool:
        """Whether this advertises to the BGPPeer named `peer`: an empty `peers` means every peer."""
        return not self.peers or peer in self.peers

    def local_pref_compatible(self, other: BGPAdvertisement, families: Iterable[str]) -> bool:
        """Whether both may apply to one Service of a pool with `families` ("IPv4", "IPv6") on one node.

        As MetalLB, two advertisements clash when they would give the same route two LOCAL_PREFs: different
        localPref, the same prefix length in some family of the pool, and peers in common (an empty list is
        every peer). That both select the node is the caller's premise.
        """
        if self.local_pref == other.local_pref:
            return True
        present = set(families)
        lengths_differ = [
            (self.aggregation_length != other.aggregation_length)
            if family == "IPv4"
            else (self.aggregation_length_v6 != other.aggregation_length_v6)
            for family in ("IPv4", "IPv6")
            if family in present
        ]
        if all(lengths_differ):  # different prefixes, so different routes (vacuous for an empty pool)
            return True
        return bool(self.peers and other.peers and not set(self.peers) & set(other.peers))


@dataclass(frozen=True)
class Config:
    """A validated MetalLB configuration. Every list is sorted by name, so equal inputs give equal configs.

    `namespace` is the one namespace every object lives in (MetalLB watches a single namespace).
    `legacy_protocols` maps the pools that came from a legacy ConfigMap to their `protocol` (layer2 or bgp);
    CRD pools have no protocol of their own (their advertisements decide). `pool_labels` holds the
    IPAddressPools' metadata labels, which advertisement pool selectors match. `warnings` are what MetalLB
    accepts but this package would not write that way (a CIDR with host bits, a reference to an object that
    does not exist yet): each names the object and field; `strict` loading turns them into errors.
    """

    pools: list[Pool] = field(default_factory=list)
    l2_advertisements: list[L2Advertisement] = field(default_factory=list)
    bgp_advertisements: list[BGPAdvertisement] = field(default_factory=list)
    bgp_peers: list[BGPPeer] = field(default_factory=list)
    communities: list[Community] = field(default_factory=list)
    bfd_profiles: list[BFDProfile] = field(default_factory=list)
    legacy_protocols: dict[str, str] = field(default_factory=dict)
    pool_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    namespace: str = "metallb-system"
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def pool(self, name: str) -> Pool | None:
        return next((p for p in self.pools if p.name == name), None)

    def l2_advertisements_for(self, pool: str) -> list[L2Advertisement]:
        return [a for a in self.l2_advertisements if pool in a.pools]

    def bgp_advertisements_for(self, pool: str) -> list[BGPAdvertisement]:
        return [a for a in self.bgp_advertisements if pool in a.pools]

    def summary(self) -> str:
        """One line: how many of each kind, e.g. `1 pool (3 addresses), 1 L2Advertisement`."""
        parts = [f"{_plural(len(self.pools), 'pool')} ({address_count(self.pools)})"]
        for count, kind, kinds in (
            (len(self.l2_advertisements), "L2Advertisement", None),
            (len(self.bgp_advertisements), "BGPAdvertisement", None),
            (len(self.bgp_peers), "BGPPeer", None),
            (len(self.communities), "Community", "Communities"),
            (len(self.bfd_profiles), "BFDProfile", None),
        ):
            if count:
                parts.append(_plural(count, kind, kinds))
        return ", ".join(parts)


def _any_selects(selectors: Iterable[LabelSelector], labels: Mapping[str, str]) -> bool:
    selectors = tuple(selectors)
    return not selectors or any(s.matches(dict(labels)) for s in selectors)


def address_count(pools: Iterable[Pool]) -> str:
    """How many addresses the pools hold, per family: `3 addresses`, `256 IPv4 + 2^64 IPv6 addresses`."""
    sizes = {4: 0, 6: 0}
    for pool in pools:
        for first, last in pool.ranges():
            sizes[first.version] += int(last) - int(first) + 1
    shown = [_size(sizes[4]) + " IPv4" if sizes[6] else _size(sizes[4])] if sizes[4] or not sizes[6] else []
    if sizes[6]:
        shown.append(_size(sizes[6]) + " IPv6")
    total = sizes[4] + sizes[6]
    return " + ".join(shown) + (" address" if total == 1 else " addresses")


def _size(n: int) -> str:
    # IPv6 pools are usually whole prefixes; 2^64 reads better than 18446744073709551616.
    if n >= 2**20 and n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1}"
    return f"{n:.3g}" if n >= 10**12 else str(n)


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else (plural or word + 's')}"
