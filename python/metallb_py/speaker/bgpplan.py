"""The speaker's BGP decisions, pure: which sessions a node opens, and which routes it sends each peer.

`sessions` turns the BGPPeers that select this node into `PeerSession`s, whose fields are the keyword
arguments of `metallb_py.BgpSpeaker.add_peer`; `routes` turns the Services and BGPAdvertisements into the
routes for each of those sessions. Both follow MetalLB's speaker (speaker/bgp_controller.go) and its FRR
mode, which is MetalLB's default:

Sessions
- A peer without nodeSelectors peers from every node; otherwise from the nodes one selector matches.
- Families: the peer address's own; both with `dualStackAddressFamily`. `disableMP` has no effect (MetalLB
  deprecated it when one family per session became the default); a note says so.
- `localASN` is the AS the session presents (FRR's `local-as ... no-prepend replace-as`): it is `my_asn` for
  the speaker, and decides iBGP against the peer's AS.
- Timers as MetalLB derives them (hold = 3 x keepalive, keepalive = hold / 3), and a 90 s hold time when
  neither is set (MetalLB's native speaker; FRR has its own default).
- The router ID is `routerID`, else the IPv4 source address, else the node's first IPv4 address (MetalLB
  uses the local IPv4 address of the TCP connection, which is that address on a usual node), else MetalLB's
  fallback: the CRC-32 of the node name.
- `password`, or the `password` key of the `kubernetes.io/basic-auth` Secret `passwordSecret` names, which
  MetalLB reads from its own namespace whatever the reference says.
- `bfdProfile`: a BFD session beside the BGP session (`BfdTimers`), single-hop, or multihop for an
  `ebgpMultiHop` peer (as MetalLB's FRR mode), with MetalLB's defaults for what the profile leaves unset
  (300 ms, 300 ms, x3, minimum TTL 254). Echo mode is not implemented: `echoMode: true` is a note (an error
  message saying BFD runs without echo), not a refusal, since the control packets detect the same failure.
- `enableGracefulRestart`: the session offers graceful restart (RFC 4724).
- What the speaker cannot honour leaves that peer out with a message naming the field (`problems`): `vrf`,
  `interface` (unnumbered BGP), a Secret that is missing or unusable, a source address of the other
  family. Other peers are unaffected. What it honours differently is a `note`.

Routes (per Service, checked in MetalLB's order; the first failure is the Service's `Skip` reason)
- a BGPAdvertisement of the Service's pool must select this node (`notOwner`), and one must select both the
  node and the Service's labels (`noMatchingAdvertisement`);
- two of those may not give one route two LOCAL_PREFs (`conflictingAdvertisements`, see
  `BGPAdvertisement.local_pref_compatible`);
- the node must not have NetworkUnavailable, nor the label node.kubernetes.io/exclude-from-external-load-
  balancers (any value);
- externalTrafficPolicy Local needs an endpoint on this node that can serve (`noLocalEndpoints`); every
  Service needs one somewhere (`noEndpoints`). An endpoint can serve when it is ready (or ready is unset),
  or serving; `terminating` plays no part (MetalLB's EndpointCanServe, `election.can_serve`).
Then each address, masked to each matching advertisement's aggregationLength(V6), is a prefix for every
session the advertisement's `peers` name (none: all) whose families include the prefix's. Routes for one
prefix and peer merge: communities are the union; LOCAL_PREF goes to iBGP peers only, 0 meaning unset (as
MetalLB's FRR mode, whose router then applies its default of 100). Two Services that produce one prefix
with different localPrefs (MetalLB only rules this out per Service) get the highest, and a `conflicts`
message. Layer 2 is decided elsewhere: a pool with both kinds of advertisement is announced in both ways.

`service_peers` is what ServiceBGPStatus reports, as MetalLB computes it: a Service's peers are those that
receive a prefix the Service produces.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import struct
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

from metallb_py.config.model import BFDProfile, BGPAdvertisement, BGPCommunity, BGPPeer, Config
from metallb_py.config.reader import quote
from metallb_py.speaker.election import EXCLUDE_FROM_LB_LABEL, EndpointSlice, Node, can_serve
from metallb_py.speaker.objects import l2_service_from_api

__all__ = [
    "BASIC_AUTH_SECRET",
    "DEFAULT_HOLD_TIME",
    "IPV4",
    "IPV6",
    "BgpService",
    "PeerSession",
    "Route",
    "RoutePlan",
    "SecretData",
    "Serving",
    "SessionPlan",
    "Skip",
    "SkipReason",
    "bgp_service_from_api",
    "hashed_router_id",
    "routes",
    "secret_from_api",
    "serving",
    "sessions",
]

IPV4 = "ipv4"
IPV6 = "ipv6"
# MetalLB's native speaker, when the BGPPeer sets neither holdTime nor keepaliveTime.
DEFAULT_HOLD_TIME = 90.0
BASIC_AUTH_SECRET = "kubernetes.io/basic-auth"
_LOCAL = "Local"


# -- inputs -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BgpService:
    """A LoadBalancer Service as BGP mode sees it: its key (`namespace/name`), its addresses in status order,
    the pool they come from, whether externalTrafficPolicy is Local, and its labels (for serviceSelectors)."""

    key: str
    ips: tuple[str, ...]
    pool: str
    local_only: bool = False
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)


def bgp_service_from_api(
    svc: Mapping[str, Any], config: Config, lb_class: str | None = None
) -> BgpService | None:
    """A Service object as BGP mode sees it; None for anything layer 2 would not announce either (not a
    LoadBalancer, another loadBalancerClass, no address, no pool). Read by the same code as layer 2's."""
    seen = l2_service_from_api(svc, config, lb_class)
    if seen is None:
        return None
    return BgpService(key=seen.key, ips=seen.ips, pool=seen.pool, local_only=seen.local, labels=seen.labels)


class Serving(Enum):
    """Where a Service has an endpoint that can serve: nowhere, only on other nodes, or on this node."""

    NONE = 0
    ELSEWHERE = 1
    HERE = 2


def serving(endpoint_slices: Iterable[EndpointSlice], node: str) -> dict[str, Serving]:
    """For each Service with a slice: where it has an endpoint that can serve, seen from `node`."""
    result: dict[str, Serving] = {}
    for eps in endpoint_slices:
        best = result.get(eps.service, Serving.NONE)
        for endpoint in eps.endpoints:
            if can_serve(endpoint):
                found = Serving.HERE if endpoint.node_name == node else Serving.ELSEWHERE
                best = found if found.value > best.value else best
        result[eps.service] = best
    return result


@dataclass(frozen=True)
class SecretData:
    """A Secret as a password source: its type and its data, decoded."""

    type: str
    data: Mapping[str, str] = field(default_factory=dict, repr=False, hash=False)


def secret_from_api(obj: Mapping[str, Any]) -> tuple[tuple[str, str], SecretData] | None:
    """A Secret object as ((namespace, name), SecretData); None without a name. Values that are not base64
    of UTF-8 text are left out (a password is text)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, Mapping) or not metadata.get("name"):
        return None
    data: dict[str, str] = {}
    raw = obj.get("data")
    for key, value in raw.items() if isinstance(raw, Mapping) else ():
        try:
            data[str(key)] = base64.b64decode(str(value), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            continue
    key = (str(metadata.get("namespace") or ""), str(metadata["name"]))
    return key, SecretData(str(obj.get("type") or "Opaque"), data)


# -- sessions -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BfdTimers:
    """The BFD session of a peer, from its BFDProfile: the arguments of `metallb_py.BfdSettings`. Intervals in
    seconds. `multihop` (RFC 5883) for an `ebgpMultiHop` peer, single-hop (RFC 5881) otherwise;
    `minimum_ttl` applies to multihop only."""

    receive_interval: float = 0.3
    transmit_interval: float = 0.3
    detect_multiplier: int = 3
    passive: bool = False
    minimum_ttl: int = 254
    multihop: bool = False

    def settings_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `metallb_py.BfdSettings`."""
        return {
            "receive_interval": self.receive_interval,
            "transmit_interval": self.transmit_interval,
            "detect_multiplier": self.detect_multiplier,
            "passive": self.passive,
            "minimum_ttl": self.minimum_ttl,
        }


def bfd_timers(profile: BFDProfile, *, multihop: bool) -> BfdTimers:
    """A profile's BFD session, MetalLB's defaults for what it leaves unset."""
    default = BfdTimers()

    def seconds(ms: int | None, fallback: float) -> float:
        return ms / 1000.0 if ms else fallback

    return BfdTimers(
        receive_interval=seconds(profile.receive_interval, default.receive_interval),
        transmit_interval=seconds(profile.transmit_interval, default.transmit_interval),
        detect_multiplier=profile.detect_multiplier or default.detect_multiplier,
        passive=profile.passive_mode,
        minimum_ttl=profile.minimum_ttl or default.minimum_ttl,
        multihop=multihop,
    )


@dataclass(frozen=True)
class PeerSession:
    """One BGP session of this node: the arguments of `BgpSpeaker.add_peer(name, address, **kwargs())`.

    `my_asn` is the AS the session presents (`localASN` when the BGPPeer sets it). Durations are seconds.
    `next_hop_v4`/`next_hop_v6` are None for the session's own family (the speaker uses the session's local
    address), and the node's address of the other family when both families are carried. `bfd`: what the
    caller passes as `bfd=BfdSettings(**bfd.settings_kwargs())` beside `kwargs()` (this module makes no
    speaker objects).
    """

    name: str
    address: str
    my_asn: int
    router_id: str
    peer_asn: int | None = None
    dynamic_asn: str | None = None
    port: int = 179
    source_address: str | None = None
    hold_time: float = DEFAULT_HOLD_TIME
    keepalive_time: float | None = None
    connect_time: float | None = None
    password: str | None = field(default=None, repr=False)
    ebgp_multihop: bool = False
    families: tuple[str, ...] = (IPV4, IPV6)
    next_hop_v4: str | None = None
    next_hop_v6: str | None = None
    graceful_restart: bool = False
    bfd: BfdTimers | None = None

    @property
    def ibgp(self) -> bool:
        """Whether the peer is in our AS (for dynamicASN: what the mode requires of it)."""
        if self.dynamic_asn is not None:
            return self.dynamic_asn == "internal"
        return self.peer_asn == self.my_asn

    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of `add_peer` but `bfd`; connect_time only when set (else the speaker's
        default)."""
        args: dict[str, Any] = {
            "my_asn": self.my_asn,
            "peer_asn": self.peer_asn,
            "dynamic_asn": self.dynamic_asn,
            "router_id": self.router_id,
            "port": self.port,
            "source_address": self.source_address,
            "hold_time": self.hold_time,
            "keepalive_time": self.keepalive_time,
            "password": self.password,
            "ebgp_multihop": self.ebgp_multihop,
            "families": self.families,
            "next_hop_v4": self.next_hop_v4,
            "next_hop_v6": self.next_hop_v6,
            "graceful_restart": self.graceful_restart,
        }
        if self.connect_time is not None:
            args["connect_time"] = self.connect_time
        return args


@dataclass(frozen=True)
class SessionPlan:
    """The sessions of one node, by peer name; `problems` the peers selecting this node that are left out
    (why, naming the field); `notes` what is honoured differently for a peer that is kept; `not_selected`
    the peers whose nodeSelectors leave this node out."""

    sessions: tuple[PeerSession, ...] = ()
    problems: Mapping[str, str] = field(default_factory=dict, hash=False)
    notes: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    not_selected: tuple[str, ...] = ()

    def session(self, name: str) -> PeerSession | None:
        return next((s for s in self.sessions if s.name == name), None)


Secrets = Mapping[tuple[str, str], SecretData | Mapping[str, str]]


def sessions(config: Config, node: Node, node_addresses: Iterable[str], secrets: Secrets) -> SessionPlan:
    """The BGP sessions `node` opens (see the module docstring).

    `node_addresses` are the node's own addresses, first preferred (its InternalIPs); `secrets` maps
    (namespace, name) to a Secret's decoded data, or to `SecretData` when its type is known too.
    """
    addresses = [ipaddress.ip_address(a) for a in node_addresses]
    first = {v: next((str(a) for a in addresses if a.version == v), None) for v in (4, 6)}
    result: list[PeerSession] = []
    problems: dict[str, str] = {}
    notes: dict[str, tuple[str, ...]] = {}
    not_selected: list[str] = []
    profiles = {p.name: p for p in config.bfd_profiles}
    for peer in sorted(config.bgp_peers, key=lambda p: p.name):
        if not peer.selects_node(node.labels):
            not_selected.append(peer.name)
            continue
        session, wrong, noted = _session(peer, node.name, first, secrets, config.namespace, profiles=profiles)
        if noted:
            notes[peer.name] = tuple(noted)
        if session is None:
            problems[peer.name] = f"BGPPeer {quote(peer.name)} is not used: " + "; ".join(wrong)
        else:
            result.append(session)
    return SessionPlan(tuple(result), problems, notes, tuple(not_selected))


def _session(
    peer: BGPPeer,
    node: str,
    first: Mapping[int, str | None],
    secrets: Secrets,
    namespace: str,
    *,
    profiles: Mapping[str, BFDProfile],
) -> tuple[PeerSession | None, list[str], list[str]]:
    wrong: list[str] = []
    noted: list[str] = []
    if peer.interface is not None:
        wrong.append(
            "spec.interface: unnumbered BGP (a peer by interface) is not supported yet; set peerAddress"
        )
    if peer.vrf is not None:
        wrong.append("spec.vrf: sessions from a VRF are not supported yet; remove vrf")
    bfd = None
    if peer.bfd_profile is not None:
        profile = profiles.get(peer.bfd_profile)
        if profile is None:
            # The loader refuses a config whose peer names a missing profile; a plan made without one is not
            # worth a session without the BFD the peer asked for.
            wrong.append(f"spec.bfdProfile: BFDProfile {quote(peer.bfd_profile)} does not exist; create it")
        else:
            bfd = bfd_timers(profile, multihop=peer.ebgp_multihop)
            if profile.echo_mode:
                noted.append(
                    f"spec.bfdProfile: BFDProfile {quote(profile.name)} sets echoMode, which metallb-py does "
                    "not implement: BFD runs in asynchronous mode only (control packets, no echo packets), "
                    "which detects the same failures; set echoMode: false to silence this"
                )
    password = peer.password
    if peer.password_secret is not None:
        password = _secret_password(peer, secrets, namespace, wrong, noted)
    if peer.disable_mp:
        noted.append(
            "spec.disableMP is deprecated and has no effect, as in MetalLB: each session carries its own "
            "address family (dualStackAddressFamily carries both)"
        )
    if peer.peer_address is None:
        return None, wrong, noted
    address = ipaddress.ip_address(peer.peer_address)
    source = ipaddress.ip_address(peer.source_address) if peer.source_address else None
    if source is not None and source.version != address.version:
        wrong.append(
            f"spec.sourceAddress: {source} is IPv{source.version} but peerAddress {address} is "
            f"IPv{address.version}; use a source address of the peer's family"
        )
    if wrong:
        return None, wrong, noted

    own = IPV4 if address.version == 4 else IPV6
    families = [own]
    next_hops: dict[str, str | None] = {IPV4: None, IPV6: None}
    if peer.dual_stack_address_family:
        other, version = (IPV6, 6) if own == IPV4 else (IPV4, 4)
        if first[version] is None:
            noted.append(
                f"spec.dualStackAddressFamily: the node has no IPv{version} address to use as the next hop; "
                f"no IPv{version} routes are sent to this peer"
            )
        else:
            families.append(other)
            next_hops[other] = first[version]
    hold, keepalive = _timers(peer)
    router_id = peer.router_id
    if router_id is None:
        router_id = str(source) if source is not None and source.version == 4 else first[4]
    return (
        PeerSession(
            name=peer.name,
            address=str(address),
            my_asn=peer.session_asn,
            router_id=router_id or hashed_router_id(node),
            peer_asn=peer.peer_asn,
            dynamic_asn=peer.dynamic_asn,
            port=peer.peer_port,
            source_address=peer.source_address,
            hold_time=hold,
            keepalive_time=keepalive,
            connect_time=peer.connect_time.total_seconds() if peer.connect_time is not None else None,
            password=password,
            ebgp_multihop=peer.ebgp_multihop,
            families=tuple(sorted(families)),
            next_hop_v4=next_hops[IPV4],
            next_hop_v6=next_hops[IPV6],
            graceful_restart=peer.enable_graceful_restart,
            bfd=bfd,
        ),
        wrong,
        noted,
    )


def _secret_password(
    peer: BGPPeer, secrets: Secrets, namespace: str, wrong: list[str], noted: list[str]
) -> str | None:
    ref = peer.password_secret
    assert ref is not None
    if ref.namespace is not None and ref.namespace != namespace:
        noted.append(
            f"spec.passwordSecret.namespace: MetalLB reads password Secrets from its own namespace "
            f"{quote(namespace)}, not {quote(ref.namespace)}; so does metallb-py"
        )
    found = secrets.get((namespace, ref.name))
    where = f"spec.passwordSecret: Secret {namespace}/{ref.name}"
    if found is None:
        wrong.append(f"{where} does not exist (or cannot be read); create it with a password key")
        return None
    data = found.data if isinstance(found, SecretData) else found
    if isinstance(found, SecretData) and found.type != BASIC_AUTH_SECRET:
        wrong.append(f"{where} is of type {quote(found.type)}; MetalLB requires {quote(BASIC_AUTH_SECRET)}")
        return None
    password = data.get("password")
    if not password:
        wrong.append(f"{where} has no password key")
        return None
    return password


def _timers(peer: BGPPeer) -> tuple[float, float | None]:
    hold = peer.hold_time.total_seconds() if peer.hold_time is not None else None
    keepalive = peer.keepalive_time.total_seconds() if peer.keepalive_time is not None else None
    if hold is None and keepalive is None:
        return DEFAULT_HOLD_TIME, None
    if hold is None:
        assert keepalive is not None
        return keepalive * 3, keepalive
    return hold, keepalive if keepalive is not None else hold / 3


def hashed_router_id(node: str) -> str:
    """MetalLB's router ID when there is no IPv4 address: the CRC-32 of the node name, little-endian bytes."""
    return str(ipaddress.IPv4Address(struct.pack("<I", zlib.crc32(node.encode()))))


# -- routes -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """One route's attributes, as `metallb_py.BgpRoute` takes them: LOCAL_PREF (None: unset, and always None
    towards eBGP peers), communities `65000:100` and large communities `large:1:2:3`, sorted."""

    local_pref: int | None = None
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()


class SkipReason(StrEnum):
    """Why this node does not advertise a Service over BGP; the values are MetalLB's reasons."""

    NO_POOL = "ipNotAllowed"
    NOT_OWNER = "notOwner"
    NO_MATCHING_ADVERTISEMENT = "noMatchingAdvertisement"
    CONFLICTING_ADVERTISEMENTS = "conflictingAdvertisements"
    NETWORK_UNAVAILABLE = "nodeNetworkUnavailable"
    EXCLUDED_BY_LABEL = "nodeLabeledExcludeBalancers"
    NO_LOCAL_ENDPOINTS = "noLocalEndpoints"
    NO_ENDPOINTS = "noEndpoints"


@dataclass(frozen=True)
class Skip:
    reason: SkipReason
    detail: str


@dataclass(frozen=True)
class RoutePlan:
    """What one node advertises over BGP.

    `routes`: for every session, prefix text (`203.0.113.7/32`) -> Route (empty when nothing goes there).
    `announced`: the Services this node advertises (MetalLB's "announcing" metric and nodeAssigned Event),
    `service_peers`: for each of them that reaches a peer, the peers (ServiceBGPStatus), `skipped`: why each
    other Service is not advertised, `conflicts`: prefixes that Services gave different localPrefs.
    """

    routes: Mapping[str, Mapping[str, Route]] = field(default_factory=dict, hash=False)
    announced: tuple[str, ...] = ()
    service_peers: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    skipped: Mapping[str, Skip] = field(default_factory=dict, hash=False)
    conflicts: tuple[str, ...] = ()

    def prefixes(self) -> set[str]:
        """Every prefix sent to some peer."""
        return {prefix for table in self.routes.values() for prefix in table}


EndpointView = Mapping[str, Serving] | Callable[[str], Serving]


@functools.lru_cache(maxsize=65536)
def _version(ip: str) -> int:
    return ipaddress.ip_address(ip).version


@functools.lru_cache(maxsize=65536)
def _prefix(ip: str, length: int) -> str:
    """The prefix of `length` bits holding `ip` (a round asks the same of every Service again)."""
    return str(ipaddress.ip_network(f"{ip}/{length}", strict=False))


def routes(
    config: Config,
    node: Node,
    services: Iterable[BgpService],
    endpoints: EndpointView,
    peers: Iterable[PeerSession],
    *,
    ignore_exclude_label: bool = False,
    require_endpoints: bool = True,
) -> RoutePlan:
    """The routes `node` sends each of `peers` for `services` (see the module docstring).

    `node` gives the labels and NetworkUnavailable (`objects.node_from_api`); `endpoints` says where each
    Service (by key) has an endpoint that can serve (`serving` builds it from EndpointSlices; a missing key
    is Serving.NONE). `ignore_exclude_label` is MetalLB's --ignore-exclude-lb; `require_endpoints=False`
    advertises a Cluster Service without any endpoint (MetalLB never does).
    """
    where = endpoints if callable(endpoints) else (lambda key: endpoints.get(key, Serving.NONE))
    targets = sorted(peers, key=lambda p: p.name)
    # (peer, prefix) -> (local prefs, communities) of every contribution.
    contributions: dict[tuple[str, str], tuple[set[int], set[BGPCommunity]]] = {}
    services_by_prefix: dict[str, set[str]] = {}
    announced: list[str] = []
    skipped: dict[str, Skip] = {}
    for service in sorted(services, key=lambda s: s.key):
        chosen = _advertisements(
            config,
            node,
            service,
            where(service.key),
            ignore_exclude_label=ignore_exclude_label,
            require_endpoints=require_endpoints,
        )
        if isinstance(chosen, Skip):
            skipped[service.key] = chosen
            continue
        announced.append(service.key)
        for ip_text in service.ips:
            version = _version(ip_text)
            family = IPV4 if version == 4 else IPV6
            for adv in chosen:
                length = adv.aggregation_length if version == 4 else adv.aggregation_length_v6
                prefix = _prefix(ip_text, length)
                services_by_prefix.setdefault(prefix, set()).add(service.key)
                for session in targets:
                    if family not in session.families or not adv.selects_peer(session.name):
                        continue
                    prefs, communities = contributions.setdefault((session.name, prefix), (set(), set()))
                    if adv.local_pref and session.ibgp:
                        prefs.add(adv.local_pref)
                    communities.update(adv.community_values)

    table: dict[str, dict[str, Route]] = {s.name: {} for s in targets}
    conflicts: list[str] = []
    for (peer, prefix), (prefs, communities) in sorted(contributions.items()):
        if len(prefs) > 1:
            conflicts.append(
                f"{prefix} to {peer}: Services {', '.join(sorted(services_by_prefix[prefix]))} give it "
                f"localPref {', '.join(str(p) for p in sorted(prefs))}; the highest is sent"
            )
        ordered = sorted(communities)
        table[peer][prefix] = Route(
            local_pref=max(prefs) if prefs else None,
            communities=tuple(str(c) for c in ordered if not c.is_large),
            large_communities=tuple(str(c) for c in ordered if c.is_large),
        )
    service_peers: dict[str, set[str]] = {}
    for peer, prefixes in table.items():
        for prefix in prefixes:
            for key in services_by_prefix[prefix]:
                service_peers.setdefault(key, set()).add(peer)
    return RoutePlan(
        routes=table,
        announced=tuple(announced),
        service_peers={key: tuple(sorted(names)) for key, names in sorted(service_peers.items())},
        skipped=skipped,
        conflicts=tuple(conflicts),
    )


def _advertisements(
    config: Config,
    node: Node,
    service: BgpService,
    seen: Serving,
    *,
    ignore_exclude_label: bool,
    require_endpoints: bool,
) -> list[BGPAdvertisement] | Skip:
    """The advertisements that apply to `service` on `node`, or why none does (MetalLB's ShouldAnnounce)."""
    pool = config.pool(service.pool)
    if pool is None:
        return Skip(SkipReason.NO_POOL, f"pool {quote(service.pool)} is not configured")
    of_pool = config.bgp_advertisements_for(service.pool)
    on_node = [a for a in of_pool if a.selects_node(node.labels)]
    if not on_node:
        return Skip(
            SkipReason.NOT_OWNER,
            f"no BGPAdvertisement of pool {quote(service.pool)} selects node {node.name}",
        )
    chosen = [a for a in on_node if a.selects_service(service.labels)]
    if not chosen:
        return Skip(
            SkipReason.NO_MATCHING_ADVERTISEMENT,
            f"no serviceSelectors of the BGPAdvertisements of pool {quote(service.pool)} on node {node.name} "
            "match the Service",
        )
    for i, a in enumerate(chosen):
        for b in chosen[i + 1 :]:
            if not a.local_pref_compatible(b, pool.families):
                return Skip(
                    SkipReason.CONFLICTING_ADVERTISEMENTS,
                    f"BGPAdvertisements {quote(a.name)} and {quote(b.name)} give its routes conflicting "
                    f"localPref ({a.local_pref} vs {b.local_pref})",
                )
    if node.network_unavailable:
        return Skip(SkipReason.NETWORK_UNAVAILABLE, f"node {node.name} has NetworkUnavailable=True")
    if not ignore_exclude_label and EXCLUDE_FROM_LB_LABEL in node.labels:
        return Skip(SkipReason.EXCLUDED_BY_LABEL, f"node {node.name} is labelled {EXCLUDE_FROM_LB_LABEL}")
    if service.local_only and seen is not Serving.HERE:
        return Skip(
            SkipReason.NO_LOCAL_ENDPOINTS,
            f"externalTrafficPolicy is {_LOCAL} and node {node.name} has no endpoint that can serve",
        )
    if require_endpoints and seen is Serving.NONE:
        return Skip(SkipReason.NO_ENDPOINTS, "no endpoint that can serve (ready or serving) on any node")
    return chosen
