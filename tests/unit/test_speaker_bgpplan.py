"""metallb_py.speaker.bgpplan: the sessions a node opens and the routes it sends, one table per rule."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from metallb_py.config import Config, load_config, load_objects
from metallb_py.speaker.bgpplan import (
    DEFAULT_HOLD_TIME,
    BfdTimers,
    BgpService,
    PeerSession,
    Route,
    RoutePlan,
    SecretData,
    Serving,
    SkipReason,
    bgp_service_from_api,
    hashed_router_id,
    routes,
    secret_from_api,
    serving,
    sessions,
)
from metallb_py.speaker.election import EXCLUDE_FROM_LB_LABEL, Endpoint, EndpointSlice, Node

V1B1 = "metallb.io/v1beta1"
NODE = Node("node-1", {"rack": "a"})
NODE_ADDRESSES = ("198.51.100.11", "2001:db8:ff::11")
BASIC_AUTH = "kubernetes.io/basic-auth"


def obj(kind: str, name: str, spec: dict[str, Any] | None = None, **metadata: Any) -> dict[str, Any]:
    version = "metallb.io/v1beta2" if kind == "BGPPeer" else V1B1
    return {"apiVersion": version, "kind": kind, "metadata": {"name": name, **metadata}, "spec": spec or {}}


def pool(name: str = "blue", *addresses: str) -> dict[str, Any]:
    return obj("IPAddressPool", name, {"addresses": list(addresses or ["203.0.113.0/24"])})


def peer(name: str = "r1", **spec: Any) -> dict[str, Any]:
    base = {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1"}
    return obj("BGPPeer", name, {k: v for k, v in (base | spec).items() if v is not None})


def adv(name: str = "adv", **spec: Any) -> dict[str, Any]:
    return obj("BGPAdvertisement", name, spec)


def bfd_profile(name: str, **spec: Any) -> dict[str, Any]:
    return obj("BFDProfile", name, spec)


def config(*docs: dict[str, Any]) -> Config:
    return load_objects(docs)


def plan_sessions(
    cfg: Config,
    node: Node = NODE,
    addresses: tuple[str, ...] = NODE_ADDRESSES,
    secrets: dict[tuple[str, str], Any] | None = None,
) -> Any:
    return sessions(cfg, node, addresses, secrets or {})


def service(key: str = "ns/web", *ips: str, pool: str = "blue", **extra: Any) -> BgpService:
    return BgpService(key, tuple(ips or ["203.0.113.7"]), pool, **extra)


def plan(
    cfg: Config,
    services: list[BgpService] | None = None,
    *,
    node: Node = NODE,
    endpoints: Any = None,
    ignore_exclude_label: bool = False,
    require_endpoints: bool = True,
) -> RoutePlan:
    services = [service()] if services is None else services
    seen = {s.key: Serving.HERE for s in services} if endpoints is None else endpoints
    peers = plan_sessions(cfg, node).sessions
    return routes(
        cfg,
        node,
        services,
        seen,
        peers,
        ignore_exclude_label=ignore_exclude_label,
        require_endpoints=require_endpoints,
    )


# -- sessions -----------------------------------------------------------------------------------------------


def test_a_minimal_peer_becomes_a_session_with_metallb_defaults() -> None:
    result = plan_sessions(config(peer()))
    assert result.sessions == (
        PeerSession(
            name="r1",
            address="192.0.2.1",
            my_asn=64500,
            router_id="198.51.100.11",
            peer_asn=64501,
            hold_time=DEFAULT_HOLD_TIME,
            families=("ipv4",),
        ),
    )
    assert (result.problems, result.notes, result.not_selected) == ({}, {}, ())


@pytest.mark.parametrize(
    ("selectors", "labels", "selected"),
    [
        pytest.param(None, {}, True, id="no-selectors-every-node"),
        pytest.param([{"matchLabels": {"rack": "a"}}], {"rack": "a"}, True, id="match"),
        pytest.param([{"matchLabels": {"rack": "a"}}], {"rack": "b"}, False, id="no-match"),
        pytest.param(
            [{"matchLabels": {"rack": "b"}}, {"matchLabels": {"rack": "a"}}], {"rack": "a"}, True, id="any"
        ),
        pytest.param(
            [{"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["a"]}]}],
            {"rack": "a"},
            False,
            id="expression",
        ),
    ],
)
def test_peer_node_selectors(selectors: Any, labels: dict[str, str], selected: bool) -> None:
    result = plan_sessions(config(peer(nodeSelectors=selectors)), node=Node("node-1", labels))
    assert [s.name for s in result.sessions] == (["r1"] if selected else [])
    assert result.not_selected == (() if selected else ("r1",))


@pytest.mark.parametrize(
    ("spec", "addresses", "families", "next_hops", "noted"),
    [
        pytest.param({}, NODE_ADDRESSES, ("ipv4",), (None, None), False, id="v4-peer"),
        pytest.param(
            {"peerAddress": "2001:db8::1"}, NODE_ADDRESSES, ("ipv6",), (None, None), False, id="v6-peer"
        ),
        pytest.param(
            {"dualStackAddressFamily": True},
            NODE_ADDRESSES,
            ("ipv4", "ipv6"),
            (None, "2001:db8:ff::11"),
            False,
            id="dual-stack-v4-session",
        ),
        pytest.param(
            {"peerAddress": "2001:db8::1", "dualStackAddressFamily": True},
            NODE_ADDRESSES,
            ("ipv4", "ipv6"),
            ("198.51.100.11", None),
            False,
            id="dual-stack-v6-session",
        ),
        pytest.param(
            {"dualStackAddressFamily": True},
            ("198.51.100.11",),
            ("ipv4",),
            (None, None),
            True,
            id="dual-stack-without-a-v6-address",
        ),
        pytest.param(
            {"disableMP": True}, NODE_ADDRESSES, ("ipv4",), (None, None), True, id="disable-mp-no-effect"
        ),
    ],
)
def test_families_and_next_hops(
    spec: dict[str, Any],
    addresses: tuple[str, ...],
    families: tuple[str, ...],
    next_hops: tuple[str | None, str | None],
    noted: bool,
) -> None:
    result = plan_sessions(config(peer(**spec)), addresses=addresses)
    [session] = result.sessions
    assert session.families == families
    assert (session.next_hop_v4, session.next_hop_v6) == next_hops
    assert ("r1" in result.notes) == noted


def test_notes_name_the_field() -> None:
    result = plan_sessions(
        config(peer(disableMP=True), peer("r2", peerAddress="192.0.2.2", dualStackAddressFamily=True)),
        addresses=("198.51.100.11",),
    )
    assert result.notes["r1"][0].startswith("spec.disableMP is deprecated and has no effect")
    assert result.notes["r2"][0].startswith("spec.dualStackAddressFamily: the node has no IPv6 address")


@pytest.mark.parametrize(
    ("spec", "hold", "keepalive"),
    [
        pytest.param({}, 90.0, None, id="none-set"),
        pytest.param({"holdTime": "30s"}, 30.0, 10.0, id="hold-only"),
        pytest.param({"keepaliveTime": "10s"}, 30.0, 10.0, id="keepalive-only"),
        pytest.param({"holdTime": "1m", "keepaliveTime": "5s"}, 60.0, 5.0, id="both"),
        pytest.param({"holdTime": "0s"}, 0.0, 0.0, id="zero-hold"),
    ],
)
def test_timers_as_metallb_derives_them(spec: dict[str, Any], hold: float, keepalive: float | None) -> None:
    [session] = plan_sessions(config(peer(**spec))).sessions
    assert (session.hold_time, session.keepalive_time) == (hold, keepalive)


def test_connect_time_and_the_add_peer_arguments() -> None:
    [timed, untimed] = plan_sessions(
        config(peer("a", connectTime="5s", password="s3cret"), peer("b", peerAddress="192.0.2.2"))
    ).sessions
    assert timed.connect_time == 5.0 and timed.kwargs()["connect_time"] == 5.0
    assert "connect_time" not in untimed.kwargs()  # the speaker's default holds
    field_names = {f.name for f in dataclasses.fields(PeerSession)} - {"name", "address", "bfd"}
    assert set(timed.kwargs()) == field_names
    assert timed.kwargs()["password"] == "s3cret" and "s3cret" not in repr(timed)


@pytest.mark.parametrize(
    ("spec", "addresses", "router_id"),
    [
        pytest.param({"routerID": "10.9.9.9"}, NODE_ADDRESSES, "10.9.9.9", id="configured"),
        pytest.param({"sourceAddress": "198.51.100.99"}, NODE_ADDRESSES, "198.51.100.99", id="v4-source"),
        pytest.param({}, ("2001:db8:ff::11", "198.51.100.12"), "198.51.100.12", id="first-v4-node-address"),
        pytest.param(
            {"peerAddress": "2001:db8::1", "sourceAddress": "2001:db8:ff::11"},
            NODE_ADDRESSES,
            "198.51.100.11",
            id="v6-source-node-v4",
        ),
        # MetalLB's fallback: crc32("node-1") as little-endian bytes.
        pytest.param({"peerAddress": "2001:db8::1"}, ("2001:db8:ff::11",), "95.28.242.19", id="hashed"),
    ],
)
def test_router_id(spec: dict[str, Any], addresses: tuple[str, ...], router_id: str) -> None:
    [session] = plan_sessions(config(peer(**spec)), addresses=addresses).sessions
    assert session.router_id == router_id


def test_hashed_router_id_differs_per_node() -> None:
    assert hashed_router_id("node-1") == "95.28.242.19" != hashed_router_id("node-2")


@pytest.mark.parametrize(
    ("spec", "my_asn", "ibgp"),
    [
        pytest.param({}, 64500, False, id="ebgp"),
        pytest.param({"peerASN": 64500}, 64500, True, id="ibgp"),
        pytest.param({"localASN": 64501}, 64501, True, id="local-asn-makes-it-ibgp"),
        pytest.param({"peerASN": 64500, "localASN": 64999}, 64999, False, id="local-asn-makes-it-ebgp"),
        pytest.param({"peerASN": None, "dynamicASN": "internal"}, 64500, True, id="dynamic-internal"),
        pytest.param({"peerASN": None, "dynamicASN": "external"}, 64500, False, id="dynamic-external"),
    ],
)
def test_asns(spec: dict[str, Any], my_asn: int, ibgp: bool) -> None:
    [session] = plan_sessions(config(peer(**spec))).sessions
    assert (session.my_asn, session.ibgp) == (my_asn, ibgp)
    assert session.dynamic_asn == spec.get("dynamicASN")


SECRET = ("metallb-system", "bgp-auth")


@pytest.mark.parametrize(
    ("secrets", "password", "problem"),
    [
        pytest.param({SECRET: SecretData(BASIC_AUTH, {"password": "pw"})}, "pw", None, id="basic-auth"),
        pytest.param({SECRET: {"password": "pw"}}, "pw", None, id="data-only"),
        pytest.param({}, None, "Secret metallb-system/bgp-auth does not exist", id="missing"),
        pytest.param(
            {("other", "bgp-auth"): {"password": "pw"}},
            None,
            "does not exist",
            id="only-in-another-namespace",
        ),
        pytest.param(
            {SECRET: SecretData("Opaque", {"password": "pw"})},
            None,
            'is of type "Opaque"; MetalLB requires "kubernetes.io/basic-auth"',
            id="wrong-type",
        ),
        pytest.param(
            {SECRET: SecretData(BASIC_AUTH, {"username": "u"})}, None, "has no password key", id="no-key"
        ),
    ],
)
def test_password_secret(
    secrets: dict[tuple[str, str], Any], password: str | None, problem: str | None
) -> None:
    cfg = config(peer(passwordSecret={"name": "bgp-auth"}), peer("r2", peerAddress="192.0.2.2"))
    result = plan_sessions(cfg, secrets=secrets)
    if problem is None:
        assert result.session("r1") is not None and result.session("r1").password == password
        return
    assert result.session("r1") is None
    assert result.problems["r1"].startswith('BGPPeer "r1" is not used: spec.passwordSecret: ')
    assert problem in result.problems["r1"]
    assert result.session("r2") is not None, "one peer's problem leaves the others alone"


def test_password_secret_is_read_from_metallbs_namespace() -> None:
    cfg = config(peer(passwordSecret={"name": "bgp-auth", "namespace": "elsewhere"}))
    result = plan_sessions(cfg, secrets={SECRET: {"password": "pw"}})
    assert result.session("r1") is not None and result.session("r1").password == "pw"
    assert result.notes["r1"][0].startswith("spec.passwordSecret.namespace: MetalLB reads password Secrets")


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        pytest.param({"vrf": "red"}, "spec.vrf", id="vrf"),
        pytest.param({"peerAddress": None, "interface": "eth1"}, "spec.interface", id="interface"),
        pytest.param({"sourceAddress": "2001:db8:ff::11"}, "spec.sourceAddress", id="source-family"),
    ],
)
def test_what_cannot_be_honoured_leaves_the_peer_out_naming_the_field(
    spec: dict[str, Any], field: str
) -> None:
    cfg = config(peer(**spec), peer("ok", peerAddress="192.0.2.2"), obj("BFDProfile", "fast"))
    result = plan_sessions(cfg)
    assert [s.name for s in result.sessions] == ["ok"]
    assert result.problems["r1"].startswith(f'BGPPeer "r1" is not used: {field}: ')


def test_graceful_restart_is_offered_when_the_peer_asks() -> None:
    result = plan_sessions(config(peer(enableGracefulRestart=True), peer("r2", peerAddress="192.0.2.2")))
    assert result.notes == {}
    r1, r2 = result.session("r1"), result.session("r2")
    assert r1 is not None and r1.graceful_restart and r1.kwargs()["graceful_restart"] is True
    assert r2 is not None and not r2.graceful_restart


def test_bfd_profile_gives_the_session_its_timers_with_metallbs_defaults() -> None:
    cfg = config(
        peer(bfdProfile="fast"),
        peer("r2", peerAddress="192.0.2.2", bfdProfile="plain"),
        peer("r3", peerAddress="192.0.2.3", bfdProfile="hop", ebgpMultiHop=True),
        peer("r4", peerAddress="192.0.2.4"),
        bfd_profile("fast", receiveInterval=50, transmitInterval=60, detectMultiplier=5, passiveMode=True),
        bfd_profile("plain"),
        bfd_profile("hop", minimumTtl=250),
    )
    result = plan_sessions(cfg)
    assert result.problems == {} and result.notes == {}
    by_name = {s.name: s.bfd for s in result.sessions}
    assert by_name["r1"] == BfdTimers(0.05, 0.06, 5, passive=True, minimum_ttl=254, multihop=False)
    assert by_name["r2"] == BfdTimers(0.3, 0.3, 3, passive=False, minimum_ttl=254, multihop=False)
    assert by_name["r3"] == BfdTimers(0.3, 0.3, 3, passive=False, minimum_ttl=250, multihop=True)
    assert by_name["r4"] is None
    assert "bfd" not in result.session("r1").kwargs()
    assert by_name["r1"].settings_kwargs() == {
        "receive_interval": 0.05,
        "transmit_interval": 0.06,
        "detect_multiplier": 5,
        "passive": True,
        "minimum_ttl": 254,
    }


def test_bfd_echo_mode_is_a_clear_note_and_bfd_still_runs() -> None:
    cfg = config(peer(bfdProfile="echo"), bfd_profile("echo", echoMode=True, echoInterval=20))
    result = plan_sessions(cfg)
    session = result.session("r1")
    assert session is not None and session.bfd == BfdTimers()
    (note,) = result.notes["r1"]
    assert note.startswith('spec.bfdProfile: BFDProfile "echo" sets echoMode, which metallb-py does not')
    assert "asynchronous mode only" in note


def test_v1beta1_peer_gives_the_same_session() -> None:
    v1 = peer() | {"apiVersion": V1B1}
    assert plan_sessions(config(v1)).sessions == plan_sessions(config(peer())).sessions


# -- routes -------------------------------------------------------------------------------------------------

TWO_PEERS = (peer("r1"), peer("r2", peerAddress="192.0.2.2", peerASN=64500))  # r2 is iBGP


def test_a_service_address_is_a_host_route_to_every_peer() -> None:
    result = plan(config(pool(), adv(), *TWO_PEERS))
    assert result.routes == {"r1": {"203.0.113.7/32": Route()}, "r2": {"203.0.113.7/32": Route()}}
    assert result.announced == ("ns/web",)
    assert result.service_peers == {"ns/web": ("r1", "r2")}
    assert result.skipped == {} and result.conflicts == ()


@pytest.mark.parametrize(
    ("spec", "ips", "prefixes"),
    [
        pytest.param({}, ["203.0.113.7"], ["203.0.113.7/32"], id="default-32"),
        pytest.param({"aggregationLength": 24}, ["203.0.113.7"], ["203.0.113.0/24"], id="v4-24"),
        pytest.param({"aggregationLength": 30}, ["203.0.113.7"], ["203.0.113.4/30"], id="v4-30"),
        pytest.param({}, ["2001:db8::7"], ["2001:db8::7/128"], id="default-128"),
        pytest.param({"aggregationLengthV6": 120}, ["2001:db8::7"], ["2001:db8::/120"], id="v6-120"),
        pytest.param(
            {"aggregationLength": 24, "aggregationLengthV6": 124},
            ["203.0.113.7", "2001:db8::17"],
            ["2001:db8::10/124", "203.0.113.0/24"],
            id="dual-stack",
        ),
    ],
)
def test_aggregation(spec: dict[str, Any], ips: list[str], prefixes: list[str]) -> None:
    cfg = config(
        pool("blue", "203.0.113.0/24", "2001:db8::/120"), adv(**spec), peer(dualStackAddressFamily=True)
    )
    result = plan(cfg, [service("ns/web", *ips)])
    assert sorted(result.routes["r1"]) == prefixes


def test_services_sharing_an_aggregate_share_the_route() -> None:
    cfg = config(pool(), adv(aggregationLength=24), peer())
    result = plan(cfg, [service("ns/a", "203.0.113.7"), service("ns/b", "203.0.113.9")])
    assert list(result.routes["r1"]) == ["203.0.113.0/24"]
    assert result.service_peers == {"ns/a": ("r1",), "ns/b": ("r1",)}


def test_families_decide_what_a_session_carries() -> None:
    cfg = config(
        pool("blue", "203.0.113.0/24", "2001:db8::/120"),
        adv(),
        peer("v4"),
        peer("v6", peerAddress="2001:db8:1::1"),
        peer("both", peerAddress="192.0.2.3", dualStackAddressFamily=True),
    )
    result = plan(cfg, [service("ns/web", "203.0.113.7", "2001:db8::7")])
    assert sorted(result.routes["v4"]) == ["203.0.113.7/32"]
    assert sorted(result.routes["v6"]) == ["2001:db8::7/128"]
    assert sorted(result.routes["both"]) == ["2001:db8::7/128", "203.0.113.7/32"]


@pytest.mark.parametrize(
    ("peers", "to"),
    [
        pytest.param(None, ["r1", "r2"], id="empty-is-all"),
        pytest.param(["r2"], ["r2"], id="named"),
    ],
)
def test_advertisement_peers(peers: list[str] | None, to: list[str]) -> None:
    spec: dict[str, Any] = {"peers": peers} if peers else {}
    result = plan(config(pool(), adv(**spec), *TWO_PEERS))
    assert [name for name, table in result.routes.items() if table] == to
    assert result.service_peers == {"ns/web": tuple(to)}


def test_a_service_whose_peers_are_not_on_this_node_is_announced_to_none() -> None:
    cfg = config(
        pool(),
        adv(peers=["far"]),
        peer(),
        peer("far", peerAddress="192.0.2.9", nodeSelectors=[{"matchLabels": {"rack": "z"}}]),
    )
    result = plan(cfg)
    assert result.announced == ("ns/web",) and result.service_peers == {}
    assert result.routes == {"r1": {}}


@pytest.mark.parametrize(
    ("spec", "r1", "r2"),
    [
        pytest.param({"localPref": 150}, None, 150, id="ibgp-only"),
        pytest.param({"localPref": 0}, None, None, id="zero-is-unset"),
        pytest.param({}, None, None, id="unset"),
    ],
)
def test_local_pref_goes_to_ibgp_peers_only(spec: dict[str, Any], r1: int | None, r2: int | None) -> None:
    result = plan(config(pool(), adv(**spec), *TWO_PEERS))
    assert result.routes["r1"]["203.0.113.7/32"].local_pref == r1
    assert result.routes["r2"]["203.0.113.7/32"].local_pref == r2


def test_local_pref_follows_local_asn() -> None:
    cfg = config(pool(), adv(localPref=150), peer(localASN=64501))
    assert plan(cfg).routes["r1"]["203.0.113.7/32"].local_pref == 150


def test_communities_literal_alias_and_large_merge_per_prefix() -> None:
    cfg = config(
        pool(),
        obj("Community", "names", {"communities": [{"name": "gold", "value": "large:64500:1:2"}]}),
        adv("a", communities=["65000:100", "gold"]),
        adv("b", communities=["9:1", "65000:100"], aggregationLength=32),
        peer(),
    )
    route = plan(cfg).routes["r1"]["203.0.113.7/32"]
    assert route == Route(None, ("9:1", "65000:100"), ("large:64500:1:2",))


def test_communities_of_different_prefixes_stay_apart() -> None:
    cfg = config(
        pool(),
        adv("host", communities=["1:1"]),
        adv("agg", aggregationLength=24, communities=["2:2"]),
        peer(),
    )
    table = plan(cfg).routes["r1"]
    assert table == {"203.0.113.7/32": Route(None, ("1:1",)), "203.0.113.0/24": Route(None, ("2:2",))}


@pytest.mark.parametrize(
    ("selectors", "labels", "announced"),
    [
        pytest.param([{"matchLabels": {"tier": "fe"}}], {"tier": "fe"}, True, id="match"),
        pytest.param([{"matchLabels": {"tier": "fe"}}], {"tier": "be"}, False, id="no-match"),
        pytest.param(
            [{"matchLabels": {"tier": "x"}}, {"matchLabels": {"tier": "be"}}], {"tier": "be"}, True, id="or"
        ),
        pytest.param([{"matchLabels": {"tier": "fe"}}], {}, False, id="no-labels"),
    ],
)
def test_service_selectors(selectors: Any, labels: dict[str, str], announced: bool) -> None:
    result = plan(config(pool(), adv(serviceSelectors=selectors), peer()), [service(labels=labels)])
    assert result.announced == (("ns/web",) if announced else ())
    if not announced:
        assert result.skipped["ns/web"].reason is SkipReason.NO_MATCHING_ADVERTISEMENT


def test_service_selectors_choose_between_advertisements() -> None:
    cfg = config(
        pool(),
        adv("fe", serviceSelectors=[{"matchLabels": {"tier": "fe"}}], communities=["1:1"]),
        adv("be", serviceSelectors=[{"matchLabels": {"tier": "be"}}], communities=["2:2"]),
        peer(),
    )
    result = plan(
        cfg,
        [
            service("ns/fe", "203.0.113.7", labels={"tier": "fe"}),
            service("ns/be", "203.0.113.8", labels={"tier": "be"}),
        ],
    )
    assert result.routes["r1"] == {
        "203.0.113.7/32": Route(None, ("1:1",)),
        "203.0.113.8/32": Route(None, ("2:2",)),
    }


@pytest.mark.parametrize(
    ("selectors", "reason"),
    [
        pytest.param([{"matchLabels": {"rack": "a"}}], None, id="selected"),
        pytest.param([{"matchLabels": {"rack": "b"}}], SkipReason.NOT_OWNER, id="not-selected"),
    ],
)
def test_advertisement_node_selectors(selectors: Any, reason: SkipReason | None) -> None:
    result = plan(config(pool(), adv(nodeSelectors=selectors), peer()))
    assert (result.skipped["ns/web"].reason if reason else None) == reason
    assert bool(result.routes["r1"]) == (reason is None)


def test_a_pool_without_bgp_advertisements_is_not_ours() -> None:
    result = plan(config(pool(), pool("green", "198.51.100.0/24"), adv(ipAddressPools=["green"]), peer()))
    assert result.skipped["ns/web"].reason is SkipReason.NOT_OWNER


def test_an_unknown_pool_is_skipped() -> None:
    result = plan(config(pool(), adv(), peer()), [service(pool="gone")])
    assert result.skipped["ns/web"].reason is SkipReason.NO_POOL


def test_a_pool_in_both_l2_and_bgp_advertisements_is_advertised_over_bgp() -> None:
    result = plan(config(pool(), obj("L2Advertisement", "l2"), adv(), peer()))
    assert result.routes["r1"] == {"203.0.113.7/32": Route()}


@pytest.mark.parametrize(
    ("first", "second", "conflict"),
    [
        pytest.param({"localPref": 100}, {"localPref": 100}, False, id="same"),
        pytest.param(
            {"localPref": 100}, {"localPref": 200, "aggregationLength": 24}, False, id="other-prefix"
        ),
        pytest.param(
            {"localPref": 100, "peers": ["r1"]}, {"localPref": 200, "peers": ["r2"]}, False, id="other-peers"
        ),
        pytest.param({"localPref": 100}, {"localPref": 200, "peers": ["r2"]}, True, id="common-peer"),
    ],
)
def test_conflicting_local_prefs_within_a_service(
    first: dict[str, Any], second: dict[str, Any], conflict: bool
) -> None:
    # One node selector each: the loader leaves these to the speaker, as MetalLB leaves them to its nodes.
    here = [{"matchLabels": {"rack": "a"}}]
    cfg = config(
        pool(),
        adv("a", nodeSelectors=here, **first),
        adv("b", nodeSelectors=[*here, {"matchLabels": {"x": "y"}}], **second),
        *TWO_PEERS,
    )
    result = plan(cfg)
    if conflict:
        skip = result.skipped["ns/web"]
        assert skip.reason is SkipReason.CONFLICTING_ADVERTISEMENTS
        assert (
            skip.detail == 'BGPAdvertisements "a" and "b" give its routes conflicting localPref (100 vs 200)'
        )
        assert result.prefixes() == set()
    else:
        assert result.announced == ("ns/web",)


def test_conflicts_need_both_on_this_node() -> None:
    cfg = config(
        pool(),
        adv("a", localPref=100),
        adv("b", localPref=200, nodeSelectors=[{"matchLabels": {"rack": "b"}}]),
        *TWO_PEERS,
    )
    assert plan(cfg).routes["r2"]["203.0.113.7/32"].local_pref == 100


def test_services_giving_one_prefix_two_local_prefs_send_the_highest() -> None:
    # Two Services sharing an address, chosen by different advertisements: MetalLB checks per Service only.
    cfg = config(
        pool(),
        adv("fe", serviceSelectors=[{"matchLabels": {"tier": "fe"}}], localPref=100),
        adv("be", serviceSelectors=[{"matchLabels": {"tier": "be"}}], localPref=300),
        *TWO_PEERS,
    )
    shared = [service("ns/a", labels={"tier": "fe"}), service("ns/b", labels={"tier": "be"})]
    result = plan(cfg, shared)
    assert result.routes["r2"]["203.0.113.7/32"].local_pref == 300
    assert result.routes["r1"]["203.0.113.7/32"].local_pref is None, "eBGP: no LOCAL_PREF, so no conflict"
    assert result.conflicts == (
        "203.0.113.7/32 to r2: Services ns/a, ns/b give it localPref 100, 300; the highest is sent",
    )


@pytest.mark.parametrize(
    ("node", "options", "reason"),
    [
        pytest.param(
            Node("node-1", {}, network_unavailable=True), {}, SkipReason.NETWORK_UNAVAILABLE, id="network"
        ),
        pytest.param(
            Node("node-1", {EXCLUDE_FROM_LB_LABEL: ""}), {}, SkipReason.EXCLUDED_BY_LABEL, id="exclude"
        ),
        pytest.param(
            Node("node-1", {EXCLUDE_FROM_LB_LABEL: "false"}), {}, SkipReason.EXCLUDED_BY_LABEL, id="any-value"
        ),
        pytest.param(
            Node("node-1", {EXCLUDE_FROM_LB_LABEL: ""}), {"ignore_exclude_label": True}, None, id="ignored"
        ),
        pytest.param(Node("node-1", {}, ready=False), {}, None, id="not-ready-still-advertises"),
    ],
)
def test_node_conditions(node: Node, options: Any, reason: SkipReason | None) -> None:
    result = plan(config(pool(), adv(), peer()), node=node, **options)
    if reason is None:
        assert result.announced == ("ns/web",)
    else:
        assert result.skipped["ns/web"].reason is reason and result.announced == ()
        assert result.routes == {"r1": {}}


@pytest.mark.parametrize(
    ("local", "seen", "options", "reason"),
    [
        pytest.param(True, Serving.HERE, {}, None, id="local-here"),
        pytest.param(True, Serving.ELSEWHERE, {}, SkipReason.NO_LOCAL_ENDPOINTS, id="local-elsewhere"),
        pytest.param(True, Serving.NONE, {}, SkipReason.NO_LOCAL_ENDPOINTS, id="local-none"),
        pytest.param(True, None, {"require_endpoints": False}, SkipReason.NO_LOCAL_ENDPOINTS, id="local-lab"),
        pytest.param(False, Serving.HERE, {}, None, id="cluster-here"),
        pytest.param(False, Serving.ELSEWHERE, {}, None, id="cluster-elsewhere"),
        pytest.param(False, Serving.NONE, {}, SkipReason.NO_ENDPOINTS, id="cluster-none"),
        pytest.param(False, None, {}, SkipReason.NO_ENDPOINTS, id="cluster-no-slice"),
        pytest.param(False, None, {"require_endpoints": False}, None, id="cluster-lab"),
    ],
)
def test_endpoints(local: bool, seen: Serving | None, options: Any, reason: SkipReason | None) -> None:
    endpoints = {} if seen is None else {"ns/web": seen}
    result = plan(config(pool(), adv(), peer()), [service(local_only=local)], endpoints=endpoints, **options)
    assert (result.skipped["ns/web"].reason if reason else None) == reason
    assert bool(result.prefixes()) == (reason is None)


def test_endpoints_may_be_a_callable() -> None:
    result = plan(
        config(pool(), adv(), peer()), [service(local_only=True)], endpoints=lambda key: Serving.HERE
    )
    assert result.announced == ("ns/web",)


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        pytest.param(Endpoint("node-1"), Serving.HERE, id="conditions-unset"),
        pytest.param(Endpoint("node-1", ready=True), Serving.HERE, id="ready"),
        pytest.param(
            Endpoint("node-1", ready=False, serving=True, terminating=True), Serving.HERE, id="serving"
        ),
        pytest.param(
            Endpoint("node-1", ready=False, serving=False, terminating=True), Serving.NONE, id="terminating"
        ),
        pytest.param(Endpoint("node-1", ready=False), Serving.NONE, id="not-ready"),
        pytest.param(Endpoint("node-2", ready=True), Serving.ELSEWHERE, id="elsewhere"),
        pytest.param(Endpoint(None, ready=True), Serving.ELSEWHERE, id="no-node"),
    ],
)
def test_serving(endpoint: Endpoint, expected: Serving) -> None:
    assert serving([EndpointSlice("ns/web", (endpoint,))], "node-1") == {"ns/web": expected}


def test_serving_takes_the_best_over_slices() -> None:
    slices = [
        EndpointSlice("ns/web", (Endpoint("node-2"),)),
        EndpointSlice("ns/web", (Endpoint("node-1"), Endpoint("node-3", ready=False))),
        EndpointSlice("ns/web", (Endpoint("node-1", ready=False),)),
        EndpointSlice("ns/db", ()),
    ]
    assert serving(slices, "node-1") == {"ns/web": Serving.HERE, "ns/db": Serving.NONE}


def test_peers_left_out_get_no_routes() -> None:
    cfg = config(pool(), adv(), peer(), peer("red", peerAddress="192.0.2.5", vrf="red"))
    assert set(plan(cfg).routes) == {"r1"}


def test_the_plan_does_not_depend_on_input_order() -> None:
    docs = [
        pool(),
        adv("a", communities=["1:1"]),
        adv("b", communities=["2:2"], aggregationLength=24),
        *TWO_PEERS,
    ]
    services = [service("ns/a", "203.0.113.7"), service("ns/b", "203.0.113.9")]
    one = plan(config(*docs), services)
    two = plan(config(*reversed(docs)), list(reversed(services)))
    assert one == two and one.routes == two.routes and one.service_peers == two.service_peers


# -- reading API objects ------------------------------------------------------------------------------------

CFG = config(pool(), pool("v6", "2001:db8::/120"), adv(), peer())


def api_service(**extra: Any) -> dict[str, Any]:
    svc: dict[str, Any] = {
        "metadata": {"namespace": "ns", "name": "web", "labels": {"tier": "fe"}, **extra.pop("metadata", {})},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", **extra.pop("spec", {})},
        "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}, {"ip": "2001:db8::7"}]}},
    }
    return svc | extra


def test_bgp_service_from_api() -> None:
    assert bgp_service_from_api(api_service(), CFG) == BgpService(
        "ns/web", ("203.0.113.7", "2001:db8::7"), "blue", local_only=True, labels={"tier": "fe"}
    )
    annotated = bgp_service_from_api(
        api_service(metadata={"annotations": {"metallb.io/ip-allocated-from-pool": "v6"}}), CFG
    )
    assert annotated is not None and annotated.pool == "v6", "the pool the controller recorded wins"
    cluster = bgp_service_from_api(api_service(spec={"externalTrafficPolicy": "Cluster"}), CFG)
    assert cluster is not None and not cluster.local_only


@pytest.mark.parametrize(
    "svc",
    [
        pytest.param(api_service(spec={"type": "ClusterIP"}), id="not-a-load-balancer"),
        pytest.param(api_service(spec={"loadBalancerClass": "other"}), id="other-class"),
        pytest.param(api_service(status={}), id="no-address"),
        pytest.param(
            api_service(status={"loadBalancer": {"ingress": [{"ip": "10.1.1.1"}]}}), id="in-no-pool"
        ),
    ],
)
def test_services_bgp_mode_ignores(svc: dict[str, Any]) -> None:
    assert bgp_service_from_api(svc, CFG) is None


def test_lb_class() -> None:
    svc = api_service(spec={"loadBalancerClass": "mine"})
    assert bgp_service_from_api(svc, CFG, "mine") is not None


def test_secret_from_api() -> None:
    encoded = base64.b64encode(b"pw").decode()
    obj_ = {
        "metadata": {"namespace": "metallb-system", "name": "bgp-auth"},
        "type": BASIC_AUTH,
        "data": {"password": encoded, "junk": "%%%", "binary": base64.b64encode(b"\xff").decode()},
    }
    read = secret_from_api(obj_)
    assert read == (("metallb-system", "bgp-auth"), SecretData(BASIC_AUTH, {"password": "pw"}))
    assert read[1].data == {"password": "pw"}, "undecodable values are left out"
    assert secret_from_api({"metadata": {}}) is None
    result = plan_sessions(config(peer(passwordSecret={"name": "bgp-auth"})), secrets=dict([read]))
    assert result.sessions[0].password == "pw"


# -- the whole picture: tests/fixtures/bgp-crds.yaml ---------------------------------------------------------

FIXTURE = Path(__file__).parent.parent / "fixtures" / "bgp-crds.yaml"
RACK_A = Node("node-a", {"rack": "a"})
ADDRESSES = ("192.0.2.11", "2001:db8:ff::11")
MD5 = {("metallb-system", "tor-md5"): SecretData(BASIC_AUTH, {"password": "s3cret"})}


def test_fixture_sessions_on_rack_a() -> None:
    result = sessions(load_config(FIXTURE.read_text()), RACK_A, ADDRESSES, MD5)
    assert result.problems == {} and result.notes == {}
    assert result.sessions == (
        PeerSession(
            name="edge6",
            address="2001:db8::1",
            my_asn=64500,
            router_id="192.0.2.11",
            dynamic_asn="external",
            ebgp_multihop=True,
            families=("ipv4", "ipv6"),
            next_hop_v4="192.0.2.11",
        ),
        PeerSession(
            name="reflector",
            address="192.0.2.2",
            my_asn=64500,
            router_id="10.255.0.1",
            peer_asn=64500,
            port=1179,
            hold_time=30.0,
            keepalive_time=10.0,
            families=("ipv4",),
        ),
        PeerSession(
            name="tor",
            address="192.0.2.1",
            my_asn=64510,
            router_id="192.0.2.11",
            peer_asn=64501,
            hold_time=9.0,
            keepalive_time=3.0,
            connect_time=5.0,
            password="s3cret",
            families=("ipv4",),
        ),
    )
    rack_b = sessions(load_config(FIXTURE.read_text()), Node("node-b", {"rack": "b"}), ADDRESSES, MD5)
    assert [s.name for s in rack_b.sessions] == ["edge6", "tor"] and rack_b.not_selected == ("reflector",)


FIXTURE_SERVICES = [
    BgpService("default/web", ("203.0.113.10", "2001:db8:100::10"), "public", labels={"app": "web"}),
    BgpService("default/db", ("203.0.113.20",), "public", local_only=True, labels={"app": "db"}),
    BgpService("default/db-elsewhere", ("203.0.113.21",), "public", local_only=True),
    BgpService("office/printer", ("198.51.100.20",), "office"),
]
FIXTURE_ENDPOINTS = {
    "default/web": Serving.HERE,
    "default/db": Serving.HERE,
    "default/db-elsewhere": Serving.ELSEWHERE,
    "office/printer": Serving.ELSEWHERE,
}


def fixture_plan(node: Node) -> RoutePlan:
    cfg = load_config(FIXTURE.read_text())
    peers = sessions(cfg, node, ADDRESSES, MD5).sessions
    return routes(cfg, node, FIXTURE_SERVICES, FIXTURE_ENDPOINTS, peers)


def test_fixture_routes_on_rack_a() -> None:
    result = fixture_plan(RACK_A)
    no_export = ("65535:65281",)
    web = Route(None, ("64500:80", "65535:65281"), ("large:64500:80:1",))
    assert result.routes == {
        "edge6": {
            "198.51.100.20/32": Route(),
            "2001:db8:100::/120": Route(),
            "2001:db8:100::10/128": web,
            "203.0.113.0/24": Route(),
            "203.0.113.10/32": web,
            "203.0.113.20/32": Route(None, no_export),
        },
        "reflector": {  # iBGP: LOCAL_PREF; not in public-aggregate's peers
            "198.51.100.20/32": Route(),
            "203.0.113.10/32": dataclasses.replace(web, local_pref=200),
            "203.0.113.20/32": Route(200, no_export),
        },
        "tor": {
            "198.51.100.20/32": Route(),
            "203.0.113.0/24": Route(),
            "203.0.113.10/32": web,
            "203.0.113.20/32": Route(None, no_export),
        },
    }
    assert result.announced == ("default/db", "default/web", "office/printer")
    assert result.service_peers == {
        "default/db": ("edge6", "reflector", "tor"),
        "default/web": ("edge6", "reflector", "tor"),
        "office/printer": ("edge6", "reflector", "tor"),
    }
    assert {k: s.reason for k, s in result.skipped.items()} == {
        "default/db-elsewhere": SkipReason.NO_LOCAL_ENDPOINTS
    }


def test_fixture_routes_on_rack_b() -> None:
    result = fixture_plan(Node("node-b", {"rack": "b"}))
    assert set(result.routes) == {"edge6", "tor"}
    assert result.skipped["office/printer"].reason is SkipReason.NOT_OWNER
    assert "198.51.100.20/32" not in result.prefixes()
