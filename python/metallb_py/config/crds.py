"""metallb.io custom resources: one document (a dict) in, validated records out.

Owns the field rules of each kind (IPAddressPool, L2Advertisement, BGPAdvertisement, Community, BFDProfile in
metallb.io/v1beta1, BGPPeer in metallb.io/v1beta2 and v1beta1). The readers of the kinds the legacy ConfigMap
also has (peers, BFD profiles, BGP advertisements) take `legacy=True` to read the same fields in the legacy
spelling (`peer-asn` for `peerASN`), so both formats obey one set of rules. Rules that span objects live in
`loader`.

A BGPPeer in metallb.io/v1beta1 reads as MetalLB's conversion webhook turns it into v1beta2: the same fields
under the same names, a subset of them (those of the legacy ConfigMap's peers), and a port of 0 meaning the
default. One deliberate difference: v1beta1 has no way to leave holdTime/keepaliveTime unset, so MetalLB's
conversion turns an absent one into an explicit 0s (a hold time of 0: no keepalives, no failure detection).
Here an absent timer stays unset (the speaker's default), as it does in v1beta2; an explicit "0s" stays 0.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from collections.abc import Callable

from metallb_py._core import LabelSelector, ServiceAllocation
from metallb_py.config._values import (
    check_dns_subdomain,
    check_labels,
    check_no_duplicates,
    dns_subdomain_problem,
    no_newlines,
    parse_ip,
    read_duration,
    read_selector,
    read_selectors,
)
from metallb_py.config.model import (
    BFDProfile,
    BGPAdvertisement,
    BGPCommunity,
    BGPPeer,
    Community,
    CommunityAlias,
    L2Advertisement,
    PreferredNodeSelector,
    SecretReference,
)
from metallb_py.config.reader import Reader, Where, quote
from metallb_py.config.resources import Entry, PoolSpec, Resources
from metallb_py.errors import ConfigError

__all__ = ["GROUP", "OLDER_VERSIONS", "PEER_V1BETA2_FIELDS", "VERSIONS", "parse_crd"]

GROUP = "metallb.io"
# The version of each kind this package writes (BGPPeer moved to v1beta2 in MetalLB 0.13).
VERSIONS = {
    "IPAddressPool": "v1beta1",
    "L2Advertisement": "v1beta1",
    "BGPAdvertisement": "v1beta1",
    "Community": "v1beta1",
    "BFDProfile": "v1beta1",
    "BGPPeer": "v1beta2",
}
# Older versions MetalLB still serves, read as its conversion reads them.
OLDER_VERSIONS = {"BGPPeer": ("v1beta1",)}
# ObjectMeta fields that say nothing about MetalLB's configuration; accepted and ignored.
STANDARD_METADATA = (
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "ownerReferences",
    "finalizers",
    "generateName",
    "selfLink",
)
# The BGPPeer fields MetalLB added in v1beta2: unknown to v1beta1 (the API server would drop them silently).
PEER_V1BETA2_FIELDS = (
    "dynamicASN",
    "localASN",
    "interface",
    "connectTime",
    "passwordSecret",
    "enableGracefulRestart",
    "vrf",
    "disableMP",
    "dualStackAddressFamily",
)

U16 = 0xFFFF
U32 = 0xFFFF_FFFF

# The legacy ConfigMap spells fields in kebab-case; these five do not follow the mechanical rule.
_LEGACY_SPELLING = {
    "myASN": "my-asn",
    "peerASN": "peer-asn",
    "routerID": "router-id",
    "ebgpMultiHop": "ebgp-multihop",
    "localPref": "localpref",
}


def spelling(legacy: bool) -> Callable[[str], str]:
    """The field name as written in the format: identity for CRDs, kebab-case for the legacy ConfigMap."""
    if not legacy:
        return lambda name: name
    return lambda name: _LEGACY_SPELLING.get(name) or re.sub(r"[A-Z]", _kebab, name)


def _kebab(match: re.Match[str]) -> str:
    return "-" + match.group().lower()


# -- the object envelope ---------------------------------------------------------------------------------


def parse_crd(obj: object, context: str) -> Resources:
    """One metallb.io object. `context` says where it was read, e.g. `pools.yaml, document 2`."""
    kind_hint = obj.get("kind") if isinstance(obj, dict) else None
    where = Where(f"{kind_hint if isinstance(kind_hint, str) else 'object'} ({context})")
    r = Reader(obj, where)
    api_version = r.required_text("apiVersion")
    kind = r.required_text("kind")
    if kind not in VERSIONS:
        r.fail("kind", f"unknown {GROUP} kind {quote(kind)}; expected one of {', '.join(sorted(VERSIONS))}")
    expected = f"{GROUP}/{VERSIONS[kind]}"
    older = [f"{GROUP}/{v}" for v in OLDER_VERSIONS.get(kind, ())]
    if api_version != expected and api_version not in older:
        also = "".join(f" (or {v})" for v in older)
        r.fail("apiVersion", f"{quote(api_version)} is not supported for {kind}; use {expected}{also}")
    version = api_version.partition("/")[2]
    metadata = r.mapping("metadata", required=True)
    assert metadata is not None
    name = metadata.required_text("name")
    check_dns_subdomain(where, metadata.path_of("name"), name)
    # From here on every message names the object.
    where.text = f"{kind} {quote(name)} ({context})"
    namespace = metadata.text("namespace", allow_empty=False)
    if namespace is not None:
        check_dns_subdomain(where, metadata.path_of("namespace"), namespace)
    labels = metadata.text_map("labels")
    check_labels(where, metadata.path_of("labels"), labels)
    metadata.ignore(*STANDARD_METADATA)
    metadata.finish()
    r.ignore("status")
    spec_required = kind in ("IPAddressPool", "BGPPeer")
    r.ignore("spec")
    r.finish()
    spec = r.mapping("spec", required=spec_required) or Reader({}, where, "spec")
    resources = Resources()
    if kind == "IPAddressPool":
        pool, paths = read_ip_address_pool(spec, name, labels)
        resources.pools.append(Entry(pool, where, paths, namespace, kind))
    elif kind == "L2Advertisement":
        l2, paths = read_l2_advertisement(spec, name)
        resources.l2_advertisements.append(Entry(l2, where, paths, namespace, kind))
    elif kind == "BGPAdvertisement":
        bgp, paths = read_bgp_advertisement(spec, name, legacy=False)
        resources.bgp_advertisements.append(Entry(bgp, where, paths, namespace, kind))
    elif kind == "BGPPeer":
        peer, paths = read_peer(spec, name, legacy=False, version=version)
        resources.bgp_peers.append(Entry(peer, where, paths, namespace, kind))
    elif kind == "Community":
        community, paths = read_community(spec, name)
        resources.communities.append(Entry(community, where, paths, namespace, kind))
    else:
        bfd, paths = read_bfd_profile(spec, name, legacy=False)
        resources.bfd_profiles.append(Entry(bfd, where, paths, namespace, kind))
    spec.finish()
    return resources


# -- kinds --------------------------------------------------------------------------------------------------


def read_ip_address_pool(spec: Reader, name: str, labels: dict[str, str]) -> tuple[PoolSpec, dict[str, str]]:
    if not spec.has("addresses"):
        spec.missing("addresses")
    addresses = spec.texts("addresses")
    if not addresses:
        spec.fail("addresses", "a pool needs at least one CIDR or range")
    auto_assign = spec.flag("autoAssign")
    avoid_buggy_ips = spec.flag("avoidBuggyIPs")
    allocation = read_service_allocation(spec)
    pool = PoolSpec(
        name=name,
        addresses=tuple(addresses),
        auto_assign=True if auto_assign is None else auto_assign,
        avoid_buggy_ips=bool(avoid_buggy_ips),
        service_allocation=allocation,
        labels=labels,
    )
    return pool, {"name": "metadata.name", "addresses": spec.path_of("addresses")}


def read_service_allocation(spec: Reader) -> ServiceAllocation | None:
    sa = spec.mapping("serviceAllocation")
    if sa is None:
        return None
    # MetalLB reads priority 0 as "no priority" (after every pool that has one). Its CRD lets a priority be
    # negative, and its sort then orders that pool unpredictably; here it comes before the positive ones.
    priority = sa.number("priority", minimum=-(2**31), maximum=2**31 - 1)
    if priority is not None and priority < 0:
        sa.where.note(
            sa.path_of("priority"),
            f"{priority} is negative, which MetalLB orders unpredictably",
            "tried before every pool with a positive priority",
        )
    namespaces = sa.texts("namespaces")
    for i, namespace in enumerate(namespaces):
        # MetalLB takes any string (it then matches no namespace); so does this, with a warning.
        problem = dns_subdomain_problem(namespace)
        if problem:
            done = "kept as MetalLB keeps it; no namespace has that name"
            sa.where.note(f"{sa.path_of('namespaces')}[{i}]", problem, done)
    check_no_duplicates(sa.where, sa.path_of("namespaces"), namespaces, "namespace")
    namespace_selectors = read_selectors(sa, "namespaceSelectors")
    service_selectors = read_selectors(sa, "serviceSelectors")
    sa.finish()
    try:
        return ServiceAllocation(priority or None, namespaces, namespace_selectors, service_selectors)
    except ConfigError as exc:
        raise sa.where.error(sa.path, str(exc)) from None


def read_l2_advertisement(spec: Reader, name: str) -> tuple[L2Advertisement, dict[str, str]]:
    paths = {"name": "metadata.name"}
    pools = spec.texts("ipAddressPools")
    check_no_duplicates(spec.where, spec.path_of("ipAddressPools"), pools, "pool name")
    pool_selectors = read_selectors(spec, "ipAddressPoolSelectors")
    node_selectors = read_selectors(spec, "nodeSelectors")
    interfaces = spec.texts("interfaces")
    for i, interface in enumerate(interfaces):
        # Linux interface names: at most 15 bytes, no whitespace or '/'. MetalLB takes any string (it then
        # matches no interface); so does this, with a warning.
        if any(c.isspace() for c in interface) or len(interface.encode()) > 15 or "/" in interface:
            spec.where.note(
                f"{spec.path_of('interfaces')}[{i}]",
                f"{quote(interface)} is not a network interface name",
                "kept as MetalLB keeps it; it matches no interface",
            )
    # MetalLB does not check for repeats here; a repeat changes nothing.
    for i, interface in enumerate(interfaces):
        if interface in interfaces[:i]:
            first = interfaces.index(interface)
            spec.where.note(
                f"{spec.path_of('interfaces')}[{i}]",
                f"duplicate interface; same as {spec.path_of('interfaces')}[{first}]",
                "kept as MetalLB keeps it (a repeat changes nothing)",
            )
    service_selectors = read_selectors(spec, "serviceSelectors")
    preferred = tuple(_read_preferred_node_selector(item) for item in spec.mappings("preferredNodeSelectors"))
    for field in ("ipAddressPools", "serviceSelectors", "preferredNodeSelectors"):
        paths[field] = spec.path_of(field)
    advertisement = L2Advertisement(
        name=name,
        ip_address_pools=tuple(pools),
        ip_address_pool_selectors=pool_selectors,
        node_selectors=node_selectors,
        interfaces=tuple(interfaces),
        service_selectors=service_selectors,
        preferred_node_selectors=preferred,
    )
    return advertisement, paths


def _read_preferred_node_selector(item: Reader) -> PreferredNodeSelector:
    # The CRD requires both fields and bounds the weight to 1-100, like PreferredSchedulingTerm.
    weight = item.number("weight", minimum=1, maximum=100)
    if weight is None:
        item.fail("weight", "is required (1-100: how much a node that the preference matches is preferred)")
    preference = item.mapping("preference", required=True)
    assert preference is not None
    selector = read_selector(preference, repeats=True)
    item.finish()
    return PreferredNodeSelector(weight, selector)


def read_bgp_advertisement(
    spec: Reader, name: str, *, legacy: bool
) -> tuple[BGPAdvertisement, dict[str, str]]:
    """A BGPAdvertisement spec, or one item of a legacy pool's `bgp-advertisements` (which lacks the pool,
    node and peer fields)."""
    k = spelling(legacy)
    paths = {"name": "metadata.name"} if not legacy else {"": spec.path}
    # MetalLB's CRD (and ours) refuse an aggregation length of 0; the legacy format took it.
    aggregation_length = spec.number(k("aggregationLength"), minimum=0 if legacy else 1, maximum=32)
    aggregation_length_v6 = spec.number(k("aggregationLengthV6"), minimum=0, maximum=128)
    local_pref = spec.number(k("localPref"), minimum=0, maximum=U32)
    communities = spec.texts(k("communities"))
    check_no_duplicates(spec.where, spec.path_of(k("communities")), communities, "community")
    for field in ("aggregationLength", "aggregationLengthV6", "localPref", "communities"):
        paths[field] = spec.path_of(k(field))
    pools: tuple[str, ...] = ()
    pool_selectors: tuple[LabelSelector, ...] = ()
    node_selectors: tuple[LabelSelector, ...] = ()
    peers: list[str] = []
    service_selectors: tuple[LabelSelector, ...] = ()
    if not legacy:
        pools_list = spec.texts("ipAddressPools")
        check_no_duplicates(spec.where, spec.path_of("ipAddressPools"), pools_list, "pool name")
        pools = tuple(pools_list)
        pool_selectors = read_selectors(spec, "ipAddressPoolSelectors")
        node_selectors = read_selectors(spec, "nodeSelectors")
        peers = spec.texts("peers")
        check_no_duplicates(spec.where, spec.path_of("peers"), peers, "peer")
        service_selectors = read_selectors(spec, "serviceSelectors")
        if service_selectors:
            # As MetalLB: an aggregated route would cover Services the selectors leave out.
            for key, default, value in (
                ("aggregationLength", 32, aggregation_length),
                ("aggregationLengthV6", 128, aggregation_length_v6),
            ):
                if value not in (None, default):
                    spec.fail(
                        key,
                        f"serviceSelectors and {key} are mutually exclusive (an aggregated route would also "
                        f"cover Services the selectors leave out); remove {key} or set it to {default}",
                    )
        for field in ("ipAddressPools", "peers"):
            paths[field] = spec.path_of(field)
    advertisement = BGPAdvertisement(
        name=name,
        aggregation_length=32 if aggregation_length is None else aggregation_length,
        aggregation_length_v6=128 if aggregation_length_v6 is None else aggregation_length_v6,
        local_pref=local_pref or 0,
        communities=tuple(communities),
        ip_address_pools=pools,
        ip_address_pool_selectors=pool_selectors,
        node_selectors=node_selectors,
        peers=tuple(peers),
        service_selectors=service_selectors,
    )
    return advertisement, paths


def read_community_value(where: Where, path: str, text: str) -> BGPCommunity:
    try:
        return BGPCommunity.parse(text)
    except ValueError as exc:
        where.fail(path, str(exc).replace("'", '"'))


def read_community(spec: Reader, name: str) -> tuple[Community, dict[str, str]]:
    aliases = []
    for item in spec.mappings("communities"):
        alias = item.required_text("name")
        value = item.required_text("value")
        item.finish()
        aliases.append(CommunityAlias(alias, read_community_value(item.where, item.path_of("value"), value)))
    check_no_duplicates(spec.where, spec.path_of("communities"), [a.name for a in aliases], "alias name")
    paths = {"name": "metadata.name", "communities": spec.path_of("communities")}
    return Community(name=name, communities=tuple(aliases)), paths


def read_bfd_profile(spec: Reader, name: str, *, legacy: bool) -> tuple[BFDProfile, dict[str, str]]:
    k = spelling(legacy)
    # Ranges of MetalLB's BFDProfile CRD (milliseconds for the intervals).
    profile = BFDProfile(
        name=name,
        receive_interval=spec.number(k("receiveInterval"), minimum=10, maximum=60000),
        transmit_interval=spec.number(k("transmitInterval"), minimum=10, maximum=60000),
        detect_multiplier=spec.number(k("detectMultiplier"), minimum=2, maximum=255),
        echo_interval=spec.number(k("echoInterval"), minimum=10, maximum=60000),
        echo_mode=bool(spec.flag(k("echoMode"))),
        passive_mode=bool(spec.flag(k("passiveMode"))),
        minimum_ttl=spec.number(k("minimumTtl"), minimum=1, maximum=254),
    )
    paths = {
        "name": spec.path_of("name") if legacy else "metadata.name",
        "echoMode": spec.path_of(k("echoMode")),
    }
    if legacy:
        paths[""] = spec.path
    return profile, paths


def read_peer(
    spec: Reader, name: str, *, legacy: bool, version: str = "v1beta2"
) -> tuple[BGPPeer, dict[str, str]]:
    """A BGPPeer spec (`version` v1beta2 or v1beta1), or a legacy `peers` item. The legacy item and v1beta1
    have the same subset of v1beta2's fields; v1beta1 spells them as v1beta2 does."""
    k = spelling(legacy)
    paths = {"": spec.path} if legacy else {"name": "metadata.name"}
    # `full`: the fields only v1beta2 has are read (the legacy item and v1beta1 lack them).
    full = not legacy and version == "v1beta2"
    if not legacy and not full:
        for field in PEER_V1BETA2_FIELDS:
            if spec.has(field):
                spec.fail(
                    field,
                    f"not a field of BGPPeer {GROUP}/{version} (MetalLB added it in v1beta2, and the API "
                    f"server would drop it); use apiVersion {GROUP}/v1beta2",
                )
    # AS number 0 is reserved (RFC 7607); MetalLB reads it as "not set".
    my_asn = spec.number(k("myASN"), minimum=0, maximum=U32)
    if my_asn is None:
        spec.missing(k("myASN"))
    if my_asn == 0:
        spec.fail(k("myASN"), "0 is not a valid AS number")
    peer_asn = spec.number(k("peerASN"), minimum=0, maximum=U32)
    if peer_asn == 0:
        spec.fail(k("peerASN"), "0 is not a valid AS number")
    dynamic_asn = spec.text("dynamicASN", allow_empty=False) if full else None
    if dynamic_asn is not None and dynamic_asn not in ("internal", "external"):
        spec.fail(
            "dynamicASN", f"{quote(dynamic_asn)} is not a dynamic ASN mode; expected internal or external"
        )
    if peer_asn is None and dynamic_asn is None:
        if not full:
            spec.missing(k("peerASN"))
        spec.fail("peerASN", "required field is missing; set peerASN or dynamicASN")
    if peer_asn is not None and dynamic_asn is not None:
        spec.fail("dynamicASN", "peerASN and dynamicASN are mutually exclusive; set one")
    # MetalLB's CRD range: 0 would mean "unset", which is how an absent field reads.
    local_asn = spec.number("localASN", minimum=1, maximum=U32) if full else None

    address = spec.text(k("peerAddress"), required=not full, allow_empty=False)
    interface = spec.text("interface", allow_empty=False) if full else None
    no_newlines(spec, "interface", interface)
    if address is None and interface is None:
        spec.missing("peerAddress")
    if address is not None and interface is not None:
        spec.fail("interface", "peerAddress and interface are mutually exclusive; set one")
    if address is not None:
        address = str(parse_ip(spec.where, spec.path_of(k("peerAddress")), address))
    source = spec.text(k("sourceAddress"), allow_empty=False)
    if source is not None:
        source = str(parse_ip(spec.where, spec.path_of(k("sourceAddress")), source))
    # The legacy format and v1beta1 read a port of 0 as unset; v1beta2's CRD has no such spelling. MetalLB's
    # CRDs (and ours, in deploy/) cap the port at 16384; the legacy format took any 16-bit port.
    port = spec.number(k("peerPort"), minimum=1 if full else 0, maximum=U16 if legacy else 16384) or 179

    hold, keepalive = _read_timers(spec, k, legacy=legacy)
    connect = None
    if full:
        connect = read_duration(spec, "connectTime")
        if connect is not None and (connect.total_seconds() % 1 or not 1 <= connect.total_seconds() <= 65535):
            spec.fail("connectTime", "must be a whole number of seconds from 1s to 65535s")

    router_id = spec.text(k("routerID"), allow_empty=False)
    if router_id is not None:
        # A BGP identifier is 32 bits, written as an IPv4 address.
        try:
            router_id = str(ipaddress.IPv4Address(router_id))
        except ValueError:
            spec.fail(
                k("routerID"), f"{quote(router_id)} is not an IPv4 address (a BGP router ID is 32 bits)"
            )
    node_selectors = read_selectors(spec, k("nodeSelectors"), legacy=legacy)
    password = spec.text("password", allow_empty=False)
    no_newlines(spec, "password", password)
    secret = _read_secret_reference(spec) if full else None
    if password is not None and secret is not None:
        spec.fail("passwordSecret", "password and passwordSecret are mutually exclusive; set one")
    bfd_profile = spec.text(k("bfdProfile"), allow_empty=False)
    paths["bfdProfile"] = spec.path_of(k("bfdProfile"))
    ebgp_multihop = bool(spec.flag(k("ebgpMultiHop")))
    if ebgp_multihop and peer_asn == my_asn:
        spec.fail(k("ebgpMultiHop"), "ebgp multihop is for eBGP; this peer is iBGP (peerASN equals myASN)")
    graceful = vrf = disable_mp = dual_stack = None
    if full:
        graceful = spec.flag("enableGracefulRestart")
        vrf = spec.text("vrf", allow_empty=False)
        no_newlines(spec, "vrf", vrf)
        disable_mp = spec.flag("disableMP")
        dual_stack = spec.flag("dualStackAddressFamily")
    peer = BGPPeer(
        name=name,
        my_asn=my_asn,
        peer_asn=peer_asn,
        dynamic_asn=dynamic_asn,
        local_asn=local_asn,
        peer_address=address,
        interface=interface,
        source_address=source,
        peer_port=port,
        hold_time=hold,
        keepalive_time=keepalive,
        connect_time=connect,
        router_id=router_id,
        node_selectors=node_selectors,
        password=password,
        password_secret=secret,
        bfd_profile=bfd_profile,
        enable_graceful_restart=bool(graceful),
        ebgp_multihop=ebgp_multihop,
        vrf=vrf,
        disable_mp=bool(disable_mp),
        dual_stack_address_family=bool(dual_stack),
    )
    return peer, paths


# MetalLB's legacy format defaulted an unset hold time to 90s; the CRD leaves it to the routing daemon.
LEGACY_DEFAULT_HOLD_TIME = _dt.timedelta(seconds=90)


def _read_timers(
    spec: Reader, k: Callable[[str], str], *, legacy: bool
) -> tuple[_dt.timedelta | None, _dt.timedelta | None]:
    hold = read_duration(spec, k("holdTime"))
    keepalive = read_duration(spec, k("keepaliveTime"))
    if legacy and hold is None:
        hold = LEGACY_DEFAULT_HOLD_TIME
    if hold is None and keepalive is None:
        return None, None
    # As MetalLB: a missing one of the two is derived from the other (hold = 3 x keepalive).
    if hold is not None:
        effective_hold = hold
        effective_keepalive = keepalive if keepalive is not None else hold / 3
    else:
        assert keepalive is not None
        effective_hold, effective_keepalive = keepalive * 3, keepalive
    seconds = int(effective_hold.total_seconds())
    if seconds != 0 and seconds < 3:
        key = k("holdTime") if hold is not None else k("keepaliveTime")
        spec.fail(key, f"hold time {seconds}s is too short; it must be 0 or at least 3s")
    if effective_keepalive > effective_hold:
        spec.fail(k("keepaliveTime"), "the keepalive time must not exceed the hold time")
    return hold, keepalive


def _read_secret_reference(spec: Reader) -> SecretReference | None:
    ref = spec.mapping("passwordSecret")
    if ref is None:
        return None
    name = ref.text("name")
    namespace = ref.text("namespace", allow_empty=False)
    ref.finish()
    if not name:
        if namespace is not None:
            ref.missing("name")
        return None  # `passwordSecret: {}` is how Kubernetes prints an unset reference
    check_dns_subdomain(ref.where, ref.path_of("name"), name)
    return SecretReference(name, namespace)
