"""The routing daemons' configuration and the parsing of their views, without root: nothing here starts a
daemon. The view samples are what FRR 8.4, BIRD 2.0.12 and GoBGP 3.10 printed in the lab (trimmed)."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from metallb_py.errors import MetalLBError
from metallb_py.testing import (
    BFD_STATES,
    BfdConfig,
    BfdCounters,
    BfdPeerView,
    BgpPath,
    GracefulRestartView,
    ListenRange,
    NetnsLab,
    NextHop,
    Origination,
    Peer,
    Peering,
    RouterConfig,
    RouterError,
    make_router,
)
from metallb_py.testing.bgplab import node_config, router_config
from metallb_py.testing.routers import (
    bird_config,
    frr_config,
    gobgp_config,
    parse_bird_bfd_sessions,
    parse_bird_graceful_restart,
    parse_bird_protocols,
    parse_bird_routes,
    parse_frr_bfd_counters,
    parse_frr_bfd_peers,
    parse_frr_graceful_restart,
    parse_frr_neighbors,
    parse_frr_routes,
    parse_gobgp_neighbors,
    parse_gobgp_routes,
    parse_ip_routes,
)

# -- configuration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RouterConfig(0, "192.0.2.1"), "AS number"),
        (lambda: RouterConfig(64512, "2001:db8::1"), "IPv4 address"),
        (lambda: RouterConfig(64512, "192.0.2.1", [Peer("192.0.2.2", 1), Peer("192.0.2.2", 2)]), "repeat"),
        (lambda: RouterConfig(64512, "192.0.2.1", max_paths=0), "max_paths"),
        (lambda: RouterConfig(64512, "192.0.2.1", originate=["192.0.2.9", "192.0.2.9/32"]), "repeat"),
        (lambda: RouterConfig(64512, "192.0.2.1", next_hop_v6="192.0.2.1"), "IPv6"),
        (lambda: Peer("192.0.2.300", 1), "not an IP address"),
        (lambda: Peer("192.0.2.2", 1, password="two words"), "MD5 password"),
        (lambda: Peer("192.0.2.2", 1, password='quo"te'), "MD5 password"),
        (lambda: Peer("192.0.2.2", 1, hold_time=2), "hold_time"),
        (lambda: Peer("192.0.2.2", 1, hold_time=9, keepalive_time=9), "below hold_time"),
        (lambda: Peer("192.0.2.2", 1, keepalive_time=3), "needs hold_time"),
        (lambda: Peer("192.0.2.2", 1, families=(5,)), "families"),
        (lambda: Peer("192.0.2.2", 1, multihop_ttl=256), "multihop_ttl"),
        (lambda: ListenRange("192.0.2.1/24"), "host bits"),
        (lambda: Origination("192.0.2.0/24", communities=("65536:1",)), "16-bit"),
        (lambda: Origination("192.0.2.0/24", large_communities=("1:2:3",)), "large:A:B:C"),
    ],
)
def test_bad_configuration_is_refused_with_the_reason(build: object, message: str) -> None:
    with pytest.raises(RouterError, match=message):
        build()  # type: ignore[operator]
    assert issubclass(RouterError, MetalLBError)


def test_originations_are_normalized() -> None:
    config = RouterConfig(
        64512,
        "192.0.2.1",
        originate=[
            "192.168.1.11",
            "2001:db8:1::11",
            Origination(
                "192.168.1.0/24", communities=("no-export", "65000:0100"), large_communities=("large:1:02:3",)
            ),
        ],
    )
    assert [o.prefix for o in config.originate] == ["192.168.1.11/32", "2001:db8:1::11/128", "192.168.1.0/24"]
    assert config.originate[2].communities == ("65535:65281", "65000:100")
    assert config.originate[2].large_communities == ("large:1:2:3",)
    assert [o.prefix for o in config.originated(6)] == ["2001:db8:1::11/128"]


def config_with_everything() -> RouterConfig:
    shared = ("65000:100",)
    return RouterConfig(
        64512,
        "198.51.100.254",
        [
            Peer("198.51.100.1", 64513, password="s3cret", hold_time=9, multihop_ttl=2),
            Peer("2001:db8:100::2", 64512, families=(6,), passive=True, multihop_ttl=3, port=1179),
        ],
        [ListenRange("203.0.113.0/24", 64600, families=(4,))],
        max_paths=4,
        originate=[
            Origination("192.168.1.11/32", communities=shared),
            Origination("192.168.1.12/32", communities=shared),
            Origination("2001:db8:1::11/128", communities=shared, local_pref=250),
        ],
        next_hop_v4="198.51.100.254",
        next_hop_v6="2001:db8:100::254",
    )


def test_frr_config_renders_every_option() -> None:
    files = frr_config(config_with_everything(), "router")
    assert set(files) == {"zebra.conf", "bgpd.conf"}
    bgpd = files["bgpd.conf"].splitlines()
    for line in (
        "router bgp 64512",
        " bgp router-id 198.51.100.254",
        " no bgp ebgp-requires-policy",
        " bgp graceful-restart-disable",
        " neighbor 198.51.100.1 remote-as 64513",
        " neighbor 198.51.100.1 password s3cret",
        " neighbor 198.51.100.1 ebgp-multihop 2",
        " neighbor 198.51.100.1 timers 3 9",
        " neighbor 2001:db8:100::2 passive",
        " neighbor 2001:db8:100::2 port 1179",
        " bgp listen range 203.0.113.0/24 peer-group RANGE-1",
        " neighbor RANGE-1 remote-as 64600",
        "  maximum-paths 4",
        "  maximum-paths ibgp 4",
        "  network 192.168.1.11/32 route-map ORIGINATE-1",
        "  network 192.168.1.12/32 route-map ORIGINATE-1",  # shared attributes, one route map
        "  network 2001:db8:1::11/128 route-map ORIGINATE-2",
        " set ip next-hop 198.51.100.254",
        " set ipv6 next-hop global 2001:db8:100::254",
        " set local-preference 250",
    ):
        assert line in bgpd, line
    # iBGP is multihop already: FRR refuses ebgp-multihop on it, so it is not written.
    assert " neighbor 2001:db8:100::2 ebgp-multihop 3" not in bgpd
    ipv6 = bgpd[bgpd.index(" address-family ipv6 unicast") :]
    assert "  neighbor 2001:db8:100::2 activate" in ipv6 and "  neighbor RANGE-1 activate" not in ipv6
    assert bgpd.count("route-map ORIGINATE-1 permit 10") == 1


def test_listen_addresses() -> None:
    config = RouterConfig(
        64512,
        "192.0.2.1",
        [Peer("192.0.2.2", 64513), Peer("2001:db8::2", 64513)],
        listen_addresses=["192.0.2.1", "2001:db8::1"],
    )
    bird = bird_config(config, Path("/tmp/x/bird.log")).splitlines()
    assert bird.count("  strict bind on;") == 2
    assert "  local 192.0.2.1 as 64512;" in bird and "  local 2001:db8::1 as 64512;" in bird
    gobgp = tomllib.loads(gobgp_config(config))
    assert gobgp["global"]["config"]["local-address-list"] == ["192.0.2.1", "2001:db8::1"]


def test_frr_config_asks_for_bfdd_only_with_a_bfd_peer() -> None:
    assert "bfdd.conf" not in frr_config(RouterConfig(64512, "192.0.2.1"), "r")
    with_bfd = RouterConfig(64512, "192.0.2.1", [Peer("192.0.2.2", 64513, bfd=True)])
    assert "bfdd.conf" in frr_config(with_bfd, "r")
    assert " neighbor 192.0.2.2 bfd" in frr_config(with_bfd, "r")["bgpd.conf"].splitlines()


# -- BFD and graceful restart: configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: BfdConfig(receive_interval_ms=9),
            "BFD receive_interval_ms 9 must be 10..60000 milliseconds",
        ),
        (lambda: BfdConfig(receive_interval_ms=60001), "BFD receive_interval_ms 60001 must be 10..60000"),
        (lambda: BfdConfig(receive_interval_ms=100.0), "BFD receive_interval_ms 100.0 must be"),  # type: ignore[arg-type]
        (lambda: BfdConfig(transmit_interval_ms=0), "BFD transmit_interval_ms 0 must be 10..60000"),
        (lambda: BfdConfig(transmit_interval_ms=True), "BFD transmit_interval_ms True must be"),
        (lambda: BfdConfig(echo_interval_ms=60001), "BFD echo_interval_ms 60001 must be 10..60000"),
        (lambda: BfdConfig(echo=True, echo_interval_ms=5), "BFD echo_interval_ms 5 must be"),
        (lambda: BfdConfig(detect_multiplier=1), "BFD detect_multiplier 1 must be 2..255"),
        (lambda: BfdConfig(detect_multiplier=256), "BFD detect_multiplier 256 must be 2..255"),
        (lambda: BfdConfig(detect_multiplier=True), "BFD detect_multiplier True must be"),
        (lambda: BfdConfig(minimum_ttl=0), "BFD minimum_ttl 0 must be 1..254"),
        (lambda: BfdConfig(minimum_ttl=255), "BFD minimum_ttl 255 must be 1..254"),
        (lambda: Peer("192.0.2.2", 1, bfd="fast"), "peer 192.0.2.2: bfd 'fast' is not a BfdConfig"),  # type: ignore[arg-type]
        (lambda: Peer("192.0.2.2", 1, bfd=1), "peer 192.0.2.2: bfd 1 is not a BfdConfig"),  # type: ignore[arg-type]
        (
            lambda: Peer("192.0.2.2", 1, bfd=BfdConfig(minimum_ttl=64)),
            "peer 192.0.2.2: BFD minimum_ttl applies to multihop sessions only",
        ),
        (
            lambda: Peer("192.0.2.2", 1, multihop_ttl=2, bfd=BfdConfig(echo=True)),
            "peer 192.0.2.2: BFD echo mode is single hop only",
        ),
        (
            lambda: ListenRange("192.0.2.0/24", bfd=BfdConfig(minimum_ttl=64)),
            "listen range 192.0.2.0/24: BFD minimum_ttl applies to multihop sessions only",
        ),
        (
            lambda: ListenRange("192.0.2.0/24", multihop_ttl=3, bfd=BfdConfig(echo=True)),
            "listen range 192.0.2.0/24: BFD echo mode is single hop only",
        ),
    ],
)
def test_bad_bfd_settings_are_refused_with_the_reason(build: object, message: str) -> None:
    with pytest.raises(RouterError, match=re.escape(message)):
        build()  # type: ignore[operator]


@pytest.mark.parametrize("ttl", ["64", True, 64.5])
def test_a_minimum_ttl_that_is_not_an_integer_is_refused(ttl: object) -> None:
    with pytest.raises(RouterError, match="minimum_ttl"):
        BfdConfig(minimum_ttl=ttl)  # type: ignore[arg-type]


def test_bfd_true_means_metallbs_defaults_and_the_limits_are_accepted() -> None:
    # MetalLB's BFDProfile defaults: 300 ms both ways, multiplier 3, echo at 50 ms (off).
    peer = Peer("192.0.2.2", 64513, bfd=True)
    assert peer.bfd == BfdConfig() == BfdConfig(300, 300, 3, passive=False, echo=False, echo_interval_ms=50)
    assert (peer.bfd_multihop, Peer("192.0.2.2", 64513, multihop_ttl=2, bfd=True).bfd_multihop) == (
        False,
        True,
    )
    assert Peer("192.0.2.2", 64513, bfd=False).bfd is None and Peer("192.0.2.2", 64513).bfd is None
    assert ListenRange("192.0.2.0/24", bfd=True).bfd == BfdConfig()
    low = BfdConfig(10, 10, 2, minimum_ttl=1, echo_interval_ms=10)
    high = BfdConfig(60000, 60000, 255, minimum_ttl=254, echo=True, echo_interval_ms=60000)
    assert (low.receive_interval_ms, low.detect_multiplier, low.minimum_ttl) == (10, 2, 1)
    assert (high.transmit_interval_ms, high.detect_multiplier, high.minimum_ttl) == (60000, 255, 254)


def test_what_bird_cannot_do_with_bfd_is_refused_before_it_starts() -> None:
    echo = RouterConfig(1, "192.0.2.1", [Peer("192.0.2.2", 2, bfd=BfdConfig(echo=True))])
    ttl = RouterConfig(1, "192.0.2.1", [Peer("192.0.2.2", 2, multihop_ttl=2, bfd=BfdConfig(minimum_ttl=64))])
    with pytest.raises(RouterError, match="BIRD's BFD has no echo mode: use FrrRouter"):
        make_router("bird", "ns", echo)
    with pytest.raises(RouterError, match="BIRD's multihop BFD checks no minimum TTL: use FrrRouter"):
        make_router("bird", "ns", ttl)
    # FRR's bfdd does both.
    assert make_router("frr", "ns", echo).config.bfd and make_router("frr", "ns", ttl).config.bfd
    unbound = RouterConfig(1, "192.0.2.1", [Peer("192.0.2.2", 2, multihop_ttl=2, bfd=True)])
    with pytest.raises(RouterError, match=r"peer 192.0.2.2: BIRD runs multihop BFD only from a known local"):
        make_router("bird", "ns", unbound)
    bound = [Peer("192.0.2.2", 2, multihop_ttl=2, bfd=True, source_address="192.0.2.1")]
    assert make_router("bird", "ns", RouterConfig(1, "192.0.2.1", bound)).config.bfd
    listening = RouterConfig(1, "192.0.2.1", unbound.peers, listen_addresses=["192.0.2.1"])
    assert make_router("bird", "ns", listening).config.bfd


QUICK = BfdConfig(receive_interval_ms=100, transmit_interval_ms=120, detect_multiplier=4, passive=True)
HOPS = BfdConfig(minimum_ttl=64)


def config_with_bfd(*, graceful_restart: bool = True, echo: bool = True) -> RouterConfig:
    """Sessions with BFD settings shared, distinct and absent; multihop, iBGP on and off the link."""
    peers = [
        Peer("198.51.100.1", 64513, bfd=QUICK),
        Peer("198.51.100.2", 64514, bfd=replace(QUICK)),  # equal settings: the same profile
        Peer("203.0.113.9", 64515, multihop_ttl=2, source_address="203.0.113.1", bfd=HOPS),
        Peer("198.51.100.3", 64512, bfd=True),  # iBGP on the link
        Peer("203.0.113.10", 64512, multihop_ttl=2, source_address="203.0.113.1", bfd=True),  # iBGP, far
        Peer("198.51.100.5", 64513),  # no BFD
    ]
    if echo:
        peers.append(Peer("198.51.100.4", 64513, bfd=BfdConfig(echo=True, echo_interval_ms=70)))
    return RouterConfig(
        64512,
        "198.51.100.254",
        peers,
        [ListenRange("192.0.2.0/24", 64600, bfd=QUICK)],
        graceful_restart=graceful_restart,
    )


def test_frr_config_renders_one_bfdd_profile_per_distinct_setting() -> None:
    config = config_with_bfd()
    assert config.bfd_settings == (QUICK, HOPS, BfdConfig(), BfdConfig(echo=True, echo_interval_ms=70))
    files = frr_config(config, "router")
    assert set(files) == {"zebra.conf", "bgpd.conf", "bfdd.conf"}
    bfdd = files["bfdd.conf"].splitlines()
    # FRR 8.4's `bfdd --dryrun` takes these lines.
    assert bfdd[bfdd.index("bfd") :] == [
        "bfd",
        " profile BFD-1",
        "  receive-interval 100",
        "  transmit-interval 120",
        "  detect-multiplier 4",
        "  passive-mode",
        " exit",
        " !",
        " profile BFD-2",
        "  receive-interval 300",
        "  transmit-interval 300",
        "  detect-multiplier 3",
        "  minimum-ttl 64",
        " exit",
        " !",
        " profile BFD-3",
        "  receive-interval 300",
        "  transmit-interval 300",
        "  detect-multiplier 3",
        " exit",
        " !",
        " profile BFD-4",
        "  receive-interval 300",
        "  transmit-interval 300",
        "  detect-multiplier 3",
        "  echo-mode",
        "  echo transmit-interval 70",
        "  echo receive-interval 70",
        " exit",
        " !",
        "exit",
        "!",
    ]
    bgpd = files["bgpd.conf"].splitlines()
    profiles = {
        "198.51.100.1": "BFD-1",
        "198.51.100.2": "BFD-1",
        "203.0.113.9": "BFD-2",
        "198.51.100.3": "BFD-3",
        "203.0.113.10": "BFD-3",
        "198.51.100.4": "BFD-4",
        "RANGE-1": "BFD-1",
    }
    for neighbor, profile in profiles.items():
        assert f" neighbor {neighbor} bfd" in bgpd, neighbor
        assert f" neighbor {neighbor} bfd profile {profile}" in bgpd, neighbor
    assert not [line for line in bgpd if line.startswith(" neighbor 198.51.100.5 bfd")]
    assert [line for line in bgpd if "bfd" in line and "profile" not in line] == [
        f" neighbor {n} bfd" for n in profiles
    ]
    # Graceful restart in both roles, with the stale-path time written out; never both settings.
    assert " bgp graceful-restart" in bgpd and " bgp graceful-restart stalepath-time 360" in bgpd
    assert " bgp graceful-restart-disable" not in bgpd
    without = frr_config(config_with_bfd(graceful_restart=False), "router")["bgpd.conf"].splitlines()
    assert " bgp graceful-restart-disable" in without
    assert not [line for line in without if line.startswith(" bgp graceful-restart ")]
    assert " bgp graceful-restart" not in without


def bird_blocks(text: str) -> dict[str, list[str]]:
    """bird.conf's multi-line protocol blocks by protocol name (their inner lines)."""
    blocks: dict[str, list[str]] = {}
    name: str | None = None
    for line in text.splitlines():
        if line.startswith("protocol ") and line.endswith("{"):
            name = line.split()[2]
            blocks[name] = []
        elif line == "}":
            name = None
        elif name is not None:
            blocks[name].append(line)
    return blocks


def test_bird_config_renders_bfd_per_session_and_graceful_restart() -> None:
    text = bird_config(config_with_bfd(echo=False), Path("/tmp/x/bird.log"))
    blocks = bird_blocks(text)
    quick = "  bfd { min rx interval 100 ms; min tx interval 120 ms; multiplier 4; passive on; };"
    default = "  bfd { min rx interval 300 ms; min tx interval 300 ms; multiplier 3; passive off; };"
    # bird_config writes minimum_ttl nowhere (BirdRouter refuses it before): the far eBGP peer gets defaults.
    expected = {
        "peer_198_51_100_1": quick,
        "peer_198_51_100_2": quick,
        "peer_203_0_113_9": default,
        "peer_198_51_100_3": default,
        "peer_203_0_113_10": default,
        "range_1": quick,
    }
    for name, line in expected.items():
        assert [b for b in blocks[name] if b.lstrip().startswith("bfd")] == [line], name
    assert not [b for b in blocks["peer_198_51_100_5"] if "bfd" in b]
    # Only the iBGP neighbor on the link is `direct` (single-hop BFD, as FRR's end): BIRD's iBGP is
    # multihop otherwise, and so would its BFD session be.
    assert [name for name, lines in blocks.items() if "  direct;" in lines] == ["peer_198_51_100_3"]
    assert "  multihop 2;" in blocks["peer_203_0_113_10"]
    assert text.splitlines().count("protocol bfd { }") == 1
    sessions = [name for name in blocks if name.startswith(("peer_", "range_"))]
    assert all("  graceful restart on;" in blocks[name] for name in sessions)
    assert "graceful restart off" not in text
    without = bird_blocks(bird_config(config_with_bfd(graceful_restart=False, echo=False), Path("/x")))
    for name in sessions:
        assert (
            "  graceful restart off;" in without[name]
            and "  long lived graceful restart off;" in without[name]
        )
        assert "  graceful restart on;" not in without[name]
    no_bfd = bird_config(RouterConfig(64512, "192.0.2.1", [Peer("192.0.2.2", 64513)]), Path("/x"))
    assert "protocol bfd" not in no_bfd and "bfd {" not in no_bfd


def test_bird_config_renders_every_option() -> None:
    text = bird_config(config_with_everything(), Path("/tmp/x/bird.log"))
    for line in (
        "router id 198.51.100.254;",
        "  neighbor 198.51.100.1 port 179 as 64513;",
        '  password "s3cret";',
        "  multihop 2;",
        "  hold time 9;",
        "  neighbor 2001:db8:100::2 port 1179 as 64512;",
        "  passive on;",
        "  neighbor range 203.0.113.0/24 as 64600;",
        "  graceful restart off;",
        "  route 192.168.1.11/32 blackhole { bgp_community.add((65000,100)); };",
        "  route 2001:db8:1::11/128 blackhole { bgp_community.add((65000,100)); bgp_local_pref = 250; };",
        '  ipv4 { import all; export where proto = "originate_ipv4"; next hop address 198.51.100.254; };',
    ):
        assert line in text.splitlines(), line
    assert "merge paths on limit 4;" in text


def test_gobgp_config_is_valid_toml_with_every_option() -> None:
    data = tomllib.loads(gobgp_config(config_with_everything()))
    assert data["global"]["config"] == {"as": 64512, "router-id": "198.51.100.254", "port": 179}
    first, second = data["neighbors"]
    assert first["config"] == {
        "neighbor-address": "198.51.100.1",
        "peer-as": 64513,
        "auth-password": "s3cret",
    }
    assert first["timers"]["config"] == {"hold-time": 9, "keepalive-interval": 3, "connect-retry": 2}
    assert first["ebgp-multihop"]["config"] == {"enabled": True, "multihop-ttl": 2}
    assert [a["config"]["afi-safi-name"] for a in first["afi-safis"]] == ["ipv4-unicast", "ipv6-unicast"]
    assert second["transport"]["config"] == {"passive-mode": True, "remote-port": 1179}
    assert data["dynamic-neighbors"][0]["config"] == {"prefix": "203.0.113.0/24", "peer-group": "range-1"}
    assert data["peer-groups"][0]["config"] == {"peer-group-name": "range-1", "peer-as": 64600}


def test_what_a_daemon_cannot_do_is_refused_before_it_starts() -> None:
    with pytest.raises(RouterError, match="GoBGP has no BFD"):
        make_router("gobgp", "ns", RouterConfig(1, "192.0.2.1", [Peer("192.0.2.2", 2, bfd=True)]))
    with pytest.raises(RouterError, match="listen_port 0"):
        make_router("bird", "ns", RouterConfig(1, "192.0.2.1", listen_port=0))
    with pytest.raises(RouterError, match="expected one of frr, bird, gobgp"):
        make_router("quagga", "ns", RouterConfig(1, "192.0.2.1"))  # type: ignore[arg-type]


def test_starting_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("metallb_py.testing.routers.os.geteuid", lambda: 1000)
    router = make_router("frr", "ns", RouterConfig(1, "192.0.2.1"))
    with pytest.raises(RouterError, match="needs root"), router:
        pass
    assert router.pids == [] and not router.running


def test_the_lab_peering_on_both_sides() -> None:
    lab = NetnsLab(nodes=["node1", "node2"], extra_nodes=["cp"], router=True)
    peering = Peering(node_asn={"node1": 64513, "node2": 64514, "cp": 64515}, password="pw", hold_time=3)
    router = router_config(lab, peering)
    assert [(p.address, p.asn, p.password, p.hold_time) for p in router.peers] == [
        ("198.51.100.1", 64513, "pw", 3),
        ("198.51.100.2", 64514, "pw", 3),
        ("198.51.100.3", 64515, "pw", 3),
    ]
    assert (router.asn, router.router_id, router.max_paths) == (64512, "198.51.100.254", 8)
    node = node_config(lab, "node2", peering, ["192.168.1.11"])
    ((peer),) = node.peers
    assert (peer.address, peer.asn, peer.source_address) == ("198.51.100.254", 64512, "198.51.100.2")
    assert (node.asn, node.next_hop_v4, node.next_hop_v6, node.install_routes) == (
        64514,
        "198.51.100.2",
        "2001:db8:100::2",
        False,
    )
    # Multihop: the router's far side, one hop past the nodes' network, on both ends.
    far = Peering(multihop_ttl=2)
    assert router_config(lab, far).peers[0].source_address == "203.0.113.1"
    assert node_config(lab, "node1", far).peers[0].address == "203.0.113.1"
    # A listen range over the nodes' network: one per session family, with the nodes' AS if they share it.
    dynamic = router_config(lab, Peering(dynamic=True, session_families=(4, 6)))
    assert [(r.prefix, r.asn) for r in dynamic.listen_ranges] == [
        ("198.51.100.0/24", 64513),
        ("2001:db8:100::/64", 64513),
    ]
    assert dynamic.peers == ()
    with pytest.raises(RouterError, match="no AS for node 'node2'"):
        router_config(lab, Peering(node_asn={"node1": 1}))


def test_a_lab_without_router_says_so() -> None:
    lab = NetnsLab(nodes=["node1"])
    with pytest.raises(MetalLBError, match="no router"):
        _ = lab.router_ns
    assert NetnsLab(nodes=["node1"], router=True).client_address(4) == "203.0.113.2"


# -- views ---------------------------------------------------------------------------------------------------

FRR8_ROUTES: dict[str, Any] = {
    "routes": {
        "192.168.1.11/32": [
            {"prefix": "192.168.1.11/32", "version": 1, "advertisedTo": {"198.51.100.1": {}}},
            {
                "aspath": {"string": "64513", "length": 1},
                "valid": True,
                "multipath": True,
                "nexthops": [{"ip": "198.51.100.2", "afi": "ipv4", "used": True}],
                "peer": {"peerId": "198.51.100.2", "type": "external"},
            },
            {
                "aspath": {"string": "64513", "length": 1},
                "valid": True,
                "bestpath": {"overall": True, "selectionReason": "Router ID"},
                "community": {"string": "65000:100 no-export graceful-shutdown", "list": ["..."]},
                "largeCommunity": {"string": "1:2:3", "list": ["1:2:3"]},
                "nexthops": [{"ip": "198.51.100.1", "afi": "ipv4", "used": True}],
                "peer": {"peerId": "198.51.100.1", "type": "external"},
            },
        ],
        "2001:db8:2::1/128": [
            {"prefix": "2001:db8:2::1/128"},
            {
                "aspath": {"string": "Local", "length": 0},
                "valid": True,
                "locPrf": 250,
                "metric": 0,
                "bestpath": {"overall": True},
                "nexthops": [
                    {"ip": "fe80::1", "scope": "link-local"},
                    {"ip": "2001:db8:100::1", "scope": "global"},
                ],
                "peer": {"peerId": "::"},
            },
        ],
    }
}


def test_frr_routes_of_frr_8_and_of_later_versions() -> None:
    rib = parse_frr_routes(FRR8_ROUTES)
    assert rib["192.168.1.11/32"] == [
        BgpPath("198.51.100.2", (64513,), None, (), (), False, "198.51.100.2"),
        BgpPath(
            "198.51.100.1",
            (64513,),
            None,
            ("65000:100", "65535:65281", "65535:0"),
            ("large:1:2:3",),
            True,
            "198.51.100.1",
        ),
    ]
    assert rib["2001:db8:2::1/128"] == [BgpPath("2001:db8:100::1", (), 250, (), (), True, None, 0)]
    # FRR 9 and later nest the paths under the prefix: the same view comes out.
    nested = {
        "routes": {
            prefix: {"prefix": prefix, "paths": [p for p in entries if "nexthops" in p]}
            for prefix, entries in FRR8_ROUTES["routes"].items()
        }
    }
    assert parse_frr_routes(nested) == rib


def test_frr_neighbors() -> None:
    view = parse_frr_neighbors(
        {
            "198.51.100.1": {
                "remoteAs": 64513,
                "bgpState": "Established",
                "bgpTimerUpMsec": 12000,
                "addressFamilyInfo": {
                    "ipv4Unicast": {"acceptedPrefixCounter": 2},
                    "ipv6Unicast": {"acceptedPrefixCounter": 1},
                },
            },
            "2001:db8:100::2": {
                "remoteAs": 64514,
                "bgpState": "OpenSent",
                "bgpTimerUpMsec": 5,
                "lastNotificationReason": "OPEN Message Error/Bad Peer AS",
            },
        }
    )
    assert view["198.51.100.1"].established and view["198.51.100.1"].uptime_s == 12.0
    assert view["198.51.100.1"].prefixes_received == 3
    assert (view["2001:db8:100::2"].state, view["2001:db8:100::2"].uptime_s) == ("opensent", None)
    assert view["2001:db8:100::2"].last_error == "OPEN Message Error/Bad Peer AS"


BIRD_ROUTES = """\
Table master4:
192.168.1.12/32      unicast [peer_198_51_100_1 00:44:59.930] * (100) [AS64513i]
\tvia 198.51.100.1 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64513
\tBGP.next_hop: 198.51.100.1
\tBGP.local_pref: 100
                     unicast [peer_198_51_100_2 00:44:59.889 from 198.51.100.2] (100) [AS64514i]
\tvia 198.51.100.2 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 64514 64600
\tBGP.next_hop: 198.51.100.2
\tBGP.med: 5
\tBGP.local_pref: 100
\tBGP.community: (65000,100) (65535,65281)
\tBGP.large_community: (1, 2, 3) (4, 5, 6)
2001:db8:1::11/128   unicast [range_1_1 00:44:59.930] * (100) [AS64513i]
\tvia 2001:db8:100::1 on eth0
\tType: BGP univ
\tBGP.next_hop: 2001:db8:100::1 fe80::204d:caff:fe9d:89c0
\tBGP.as_path: 64513
"""

BIRD_PROTOCOLS = """\
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     1796431495.000
peer_198_51_100_1 BGP        ---        up     1796431499.250  Established
  BGP state:          Established
    Neighbor address: 198.51.100.1
    Neighbor AS:      64513
  Channel ipv4
    Routes:         2 imported, 0 exported, 2 preferred
  Channel ipv6
    Routes:         1 imported, 0 exported, 1 preferred

peer_198_51_100_2 BGP        ---        start  1796431495.000  Idle          Received: Bad peer AS
  BGP state:          Idle
    Neighbor address: 198.51.100.2
    Neighbor AS:      64514
    Last error:       Received: Bad peer AS
range_1    BGP        ---        start  1796431495.000  Passive
  BGP state:          Passive
"""


def test_bird_routes() -> None:
    peers = {"peer_198_51_100_1": "198.51.100.1", "peer_198_51_100_2": "198.51.100.2"}
    rib = parse_bird_routes(BIRD_ROUTES.splitlines(), peers)
    assert rib["192.168.1.12/32"] == [
        BgpPath("198.51.100.1", (64513,), 100, (), (), True, "198.51.100.1"),
        BgpPath(
            "198.51.100.2",
            (64514, 64600),
            100,
            ("65000:100", "65535:65281"),
            ("large:1:2:3", "large:4:5:6"),
            False,
            "198.51.100.2",
            5,
        ),
    ]
    ((path6),) = rib["2001:db8:1::11/128"]
    assert (path6.next_hop, path6.best, path6.peer) == ("2001:db8:100::1", True, None)


def test_bird_protocols() -> None:
    found = parse_bird_protocols(BIRD_PROTOCOLS.splitlines(), now=1796431500.0)
    assert set(found) == {"peer_198_51_100_1", "peer_198_51_100_2"}  # the idle range has no neighbor yet
    address, up = found["peer_198_51_100_1"]
    assert (address, up.state, up.uptime_s, up.prefixes_received) == ("198.51.100.1", "established", 0.75, 3)
    _, down = found["peer_198_51_100_2"]
    assert (down.state, down.uptime_s, down.last_error, down.remote_asn) == (
        "idle",
        None,
        "Received: Bad peer AS",
        64514,
    )


GOBGP_RIB = json.loads(
    """{"192.168.1.11/32":[{"nlri":{"prefix":"192.168.1.11/32"},"age":1796431313,"best":true,
    "attrs":[{"type":1,"value":0},{"type":2,"as_paths":[{"segment_type":2,"num":2,"asns":[64512,64513]}]},
    {"type":3,"nexthop":"203.0.113.254"},{"type":4,"metric":7},{"type":5,"value":120},
    {"type":8,"communities":[4259840100,4294901760]},{"type":32,"value":[{"ASN":1,"LocalData1":2,"LocalData2":3}]}],
    "stale":false,"neighbor-ip":"203.0.113.254"}],
    "2001:db8:2::1/128":[{"nlri":{"prefix":"2001:db8:2::1/128"},"best":false,
    "attrs":[{"type":2,"as_paths":[]},{"type":14,"nexthop":"2001:db8:203::254","afi":2,"safi":1}],
    "neighbor-ip":"<nil>"}]}"""
)


def test_gobgp_routes_and_neighbors() -> None:
    rib = parse_gobgp_routes(GOBGP_RIB)
    assert rib["192.168.1.11/32"] == [
        BgpPath(
            "203.0.113.254",
            (64512, 64513),
            120,
            ("65000:100", "65535:0"),
            ("large:1:2:3",),
            True,
            "203.0.113.254",
            7,
        )
    ]
    assert rib["2001:db8:2::1/128"] == [BgpPath("2001:db8:203::254", (), None, (), (), False, None)]
    view = parse_gobgp_neighbors(
        [
            {
                "conf": {"neighbor_address": "203.0.113.254", "peer_asn": 64512},
                "state": {"neighbor_address": "203.0.113.254", "peer_asn": 64512, "session_state": 6},
                "timers": {"state": {"uptime": {"seconds": 1796431300}}},
                "afi_safis": [{"state": {"accepted": 2}}, {"state": {"accepted": 1}}],
            },
            {"conf": {"neighbor_address": "203.0.113.9"}, "state": {"session_state": 3}},
        ],
        now=1796431310.0,
    )
    assert (view["203.0.113.254"].state, view["203.0.113.254"].uptime_s) == ("established", 10.0)
    assert view["203.0.113.254"].prefixes_received == 3
    assert (view["203.0.113.9"].state, view["203.0.113.9"].uptime_s) == ("active", None)


def test_kernel_routes_with_ecmp_legs() -> None:
    rows: list[dict[str, Any]] = [
        {
            "dst": "192.168.1.11",
            "nhid": 13,
            "protocol": "bgp",
            "nexthops": [
                {"gateway": "198.51.100.1", "dev": "eth0", "weight": 1},
                {"gateway": "198.51.100.2", "dev": "eth0", "weight": 1},
            ],
        },
        {"dst": "198.51.100.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link"},
        {"dst": "default", "gateway": "198.51.100.254", "dev": "eth0"},
    ]
    assert parse_ip_routes(rows, 4) == {
        "192.168.1.11/32": [NextHop("198.51.100.1", "eth0"), NextHop("198.51.100.2", "eth0")],
        "198.51.100.0/24": [NextHop(None, "eth0")],
        "0.0.0.0/0": [NextHop("198.51.100.254", "eth0")],
    }
    six = [
        {"dst": "2001:db8:1::11", "gateway": "fe80::1", "dev": "eth0"},
        {"dst": "fe80::/64", "dev": "eth0"},
    ]
    assert parse_ip_routes(six, 6) == {"2001:db8:1::11/128": [NextHop("fe80::1", "eth0")]}


# -- BFD and graceful restart: views -------------------------------------------------------------------------
# Captured from FRR 8.4 (bfdd, bgpd) and BIRD 2.0.12 peering over a NetnsLab: FRR as the router
# (198.51.100.254, far side 203.0.113.1) and BIRD as node1 (198.51.100.1), or the other way round.

# Single hop, up: each end's own settings, and the other end's as its packets announce them.
FRR_BFD_UP: list[dict[str, Any]] = [
    {
        "multihop": False,
        "peer": "198.51.100.1",
        "local": "198.51.100.254",
        "vrf": "default",
        "interface": "eth0",
        "id": 925550591,
        "remote-id": 261574116,
        "passive-mode": False,
        "status": "up",
        "uptime": 2,
        "diagnostic": "ok",
        "remote-diagnostic": "ok",
        "receive-interval": 250,
        "transmit-interval": 120,
        "echo-receive-interval": 50,
        "echo-transmit-interval": 0,
        "detect-multiplier": 5,
        "remote-receive-interval": 200,
        "remote-transmit-interval": 150,
        "remote-echo-receive-interval": 0,
        "remote-detect-multiplier": 4,
        "rtt-min": 0,
        "rtt-avg": 0,
        "rtt-max": 0,
    }
]

# Multihop (eBGP multihop to the router's far side), FRR passive, accepting BIRD's TTL 64.
FRR_BFD_MULTIHOP = json.loads(
    """[{"multihop":true,"peer":"198.51.100.1","local":"203.0.113.1","vrf":"default","id":2389323947,
    "remote-id":4234816084,"passive-mode":true,"minimum-ttl":64,"status":"up","uptime":3,"diagnostic":"ok",
    "remote-diagnostic":"ok","receive-interval":100,"transmit-interval":100,"echo-receive-interval":50,
    "echo-transmit-interval":0,"detect-multiplier":3,"remote-receive-interval":100,
    "remote-transmit-interval":100,"remote-echo-receive-interval":0,"remote-detect-multiplier":3,
    "rtt-min":0,"rtt-avg":0,"rtt-max":0}]"""
)

# The states of one session (ids, echo and RTT fields trimmed): `init` while only BIRD's packets got
# through (a wrong MAC for BIRD in FRR's neighbour table); `down` after the switch port was blocked;
# `shutdown` after `bfd / peer ... / shutdown` in FRR; `down` at an FRR router whose FRR neighbor did that.
FRR_BFD_STATES: dict[str, str] = {
    "init": """[{"multihop":false,"peer":"198.51.100.1","local":"198.51.100.254","vrf":"default",
    "interface":"eth0","passive-mode":false,"status":"init","diagnostic":"control detection time expired",
    "remote-diagnostic":"ok","receive-interval":250,"transmit-interval":120,"detect-multiplier":5,
    "remote-receive-interval":200,"remote-transmit-interval":1000,"remote-detect-multiplier":4}]""",
    "cut": """[{"multihop":false,"peer":"198.51.100.1","local":"198.51.100.254","vrf":"default",
    "interface":"eth0","remote-id":0,"passive-mode":false,"status":"down","downtime":1,
    "diagnostic":"control detection time expired","remote-diagnostic":"ok","receive-interval":250,
    "transmit-interval":120,"detect-multiplier":5,"remote-receive-interval":200,
    "remote-transmit-interval":150,"remote-detect-multiplier":4}]""",
    "shutdown": """[{"multihop":false,"peer":"198.51.100.1","local":"198.51.100.254","vrf":"default",
    "interface":"eth0","passive-mode":false,"status":"shutdown","diagnostic":"ok","remote-diagnostic":"ok",
    "receive-interval":250,"transmit-interval":120,"detect-multiplier":5,"remote-receive-interval":200,
    "remote-transmit-interval":1000,"remote-detect-multiplier":4}]""",
    "neighbor shutdown": """[{"multihop":false,"peer":"198.51.100.1","local":"198.51.100.254",
    "vrf":"default","interface":"eth0","remote-id":0,"passive-mode":false,"status":"down","downtime":0,
    "diagnostic":"neighbor signaled session down","remote-diagnostic":"ok","receive-interval":100,
    "transmit-interval":100,"detect-multiplier":3,"remote-receive-interval":100,
    "remote-transmit-interval":100,"remote-detect-multiplier":3}]""",
}


def test_frr_bfd_peers_single_hop_and_multihop() -> None:
    assert parse_frr_bfd_peers(FRR_BFD_UP) == {
        "198.51.100.1": BfdPeerView(
            address="198.51.100.1",
            state="up",
            multihop=False,
            local_address="198.51.100.254",
            interface="eth0",
            passive=False,
            uptime_s=2.0,
            downtime_s=None,
            local_diagnostic="ok",
            remote_diagnostic="ok",
            receive_interval_ms=250,
            transmit_interval_ms=120,
            detect_multiplier=5,
            remote_receive_interval_ms=200,
            remote_transmit_interval_ms=150,
            remote_detect_multiplier=4,
        )
    }
    (view,) = parse_frr_bfd_peers(FRR_BFD_MULTIHOP).values()
    assert (view.multihop, view.local_address, view.interface, view.passive, view.minimum_ttl) == (
        True,
        "203.0.113.1",
        None,
        True,
        64,
    )
    # BIRD shows neither: its fields stay empty in FRR's view.
    assert (view.interval_ms, view.detection_time_ms) == (None, None)


@pytest.mark.parametrize(
    ("sample", "state", "uptime", "downtime", "diagnostics"),
    [
        ("init", "init", None, None, ("control detection time expired", "ok")),
        ("cut", "down", None, 1.0, ("control detection time expired", "ok")),
        ("shutdown", "admin-down", None, None, ("ok", "ok")),
        ("neighbor shutdown", "down", None, 0.0, ("neighbor signaled session down", "ok")),
    ],
)
def test_frr_bfd_session_states_and_diagnostics(
    sample: str, state: str, uptime: float | None, downtime: float | None, diagnostics: tuple[str, str]
) -> None:
    (view,) = parse_frr_bfd_peers(json.loads(FRR_BFD_STATES[sample])).values()
    assert (view.state, view.up, view.uptime_s, view.downtime_s) == (state, False, uptime, downtime)
    assert (view.local_diagnostic, view.remote_diagnostic) == diagnostics
    assert view.state in BFD_STATES


def test_frr_bfd_peers_of_both_families_and_missing_fields() -> None:
    # FRR as node1 peering with BIRD over IPv4 and IPv6 (trimmed to what differs).
    views = parse_frr_bfd_peers(
        [
            {"multihop": False, "peer": "2001:db8:100:0:0::254", "local": "2001:db8:100::1", "status": "up"},
            {"multihop": False, "peer": "198.51.100.254", "local": "198.51.100.1", "status": "up"},
        ]
    )
    assert list(views) == ["2001:db8:100::254", "198.51.100.254"]  # addresses in their short form
    assert views["2001:db8:100::254"].address == "2001:db8:100::254"
    # What FRR does not print stays None rather than a made-up value.
    (bare,) = parse_frr_bfd_peers([{"peer": "198.51.100.1", "status": "down"}]).values()
    assert (bare.state, bare.local_address, bare.interface, bare.passive, bare.uptime_s, bare.downtime_s) == (
        "down",
        None,
        None,
        None,
        None,
        None,
    )
    assert (bare.local_diagnostic, bare.remote_diagnostic, bare.minimum_ttl) == (None, None, None)
    assert (bare.receive_interval_ms, bare.transmit_interval_ms, bare.detect_multiplier) == (None, None, None)
    assert (
        bare.remote_receive_interval_ms,
        bare.remote_transmit_interval_ms,
        bare.remote_detect_multiplier,
    ) == (None, None, None)
    assert parse_frr_bfd_peers([]) == {}


def test_frr_bfd_counters() -> None:
    up, after_cuts, multihop = (
        json.loads(text)
        for text in (
            """[{"multihop":false,"peer":"198.51.100.1","local":"198.51.100.254","vrf":"default",
            "interface":"eth0","control-packet-input":10,"control-packet-output":12,"echo-packet-input":0,
            "echo-packet-output":0,"session-up":1,"session-down":0,"zebra-notifications":2}]""",
            """[{"multihop":false,"peer":"198.51.100.1","local":"198.51.100.254","vrf":"default",
            "interface":"eth0","control-packet-input":21,"control-packet-output":47,"echo-packet-input":0,
            "echo-packet-output":0,"session-up":3,"session-down":3,"zebra-notifications":7}]""",
            """[{"multihop":true,"peer":"198.51.100.1","local":"203.0.113.1","vrf":"default",
            "control-packet-input":38,"control-packet-output":36,"echo-packet-input":0,"echo-packet-output":0,
            "session-up":1,"session-down":0,"zebra-notifications":2}]""",
        )
    )
    assert parse_frr_bfd_counters(up) == {
        "198.51.100.1": BfdCounters("198.51.100.1", False, 10, 12, 0, 0, 1, 0)
    }
    counted = parse_frr_bfd_counters(after_cuts)["198.51.100.1"]
    assert (counted.up_events, counted.down_events, counted.control_sent) == (3, 3, 47)
    assert parse_frr_bfd_counters(multihop)["198.51.100.1"] == BfdCounters(
        "198.51.100.1", True, 38, 36, 0, 0, 1, 0
    )
    # Echo counters as an echo session shows them; an absent counter is zero.
    (echo,) = parse_frr_bfd_counters(
        [{"peer": "198.51.100.4", "echo-packet-input": 7, "echo-packet-output": 9}]
    ).values()
    assert echo == BfdCounters("198.51.100.4", False, 0, 0, 7, 9, 0, 0)


# `show bfd sessions` as the control socket returns it (Since in Unix time: bird_config's timeformat).
BIRD_BFD_UP = """\
bfd1:
IP address                Interface  State      Since         Interval  Timeout
198.51.100.254            eth0       Up         1796444753.316    0.250    1.000
"""
BIRD_BFD_BOTH_FAMILIES = """\
bfd1:
IP address                Interface  State      Since         Interval  Timeout
2001:db8:100::1           eth0       Up         1796444877.299    0.100    0.300
198.51.100.1              eth0       Up         1796444877.254    0.100    0.300
"""
BIRD_BFD_MULTIHOP = """\
bfd1:
IP address                Interface  State      Since         Interval  Timeout
203.0.113.1               ---        Up         1796444777.898    0.100    0.300
"""
# Down: FRR's end unheard (port blocked, or FRR shut the session down); Init: only FRR's Down packets
# arrive. AdminDown is written from BIRD's state names (bfd_state_names): BIRD 2.0.12 removes a session
# when its last client goes, so the lab never showed it.
BIRD_BFD_STATES = {
    "down": "198.51.100.254            eth0       Down       1796444763.033    1.000    0.000",
    "init": "198.51.100.254            eth0       Init       1796444760.470    1.000    5.000",
    "admin-down": "198.51.100.254            eth0       AdminDown  1796444764.168    1.000    0.000",
}


def test_bird_bfd_sessions_single_hop_multihop_and_both_families() -> None:
    views = parse_bird_bfd_sessions(BIRD_BFD_UP.splitlines(), now=1796444755.316)
    ((address, view),) = views.items()
    assert address == "198.51.100.254"
    assert view == BfdPeerView(
        address="198.51.100.254",
        state="up",
        multihop=False,
        interface="eth0",
        uptime_s=pytest.approx(2.0),  # type: ignore[arg-type]
        downtime_s=None,
        interval_ms=250.0,  # BIRD's 150 ms, slowed to FRR's receive interval
        detection_time_ms=1000.0,  # FRR's multiplier 5 x BIRD's receive interval 200 ms
    )
    # What BIRD does not show stays None.
    assert (view.local_address, view.passive, view.local_diagnostic, view.receive_interval_ms) == (
        None,
        None,
        None,
        None,
    )
    (far,) = parse_bird_bfd_sessions(BIRD_BFD_MULTIHOP.splitlines(), now=1796444778.0).values()
    assert (far.address, far.multihop, far.interface, far.up) == ("203.0.113.1", True, None, True)
    both = parse_bird_bfd_sessions(BIRD_BFD_BOTH_FAMILIES.splitlines(), now=1796444878.0)
    assert sorted(both) == ["198.51.100.1", "2001:db8:100::1"]
    assert {(v.interval_ms, v.detection_time_ms, v.multihop) for v in both.values()} == {
        (100.0, 300.0, False)
    }
    # A protocol with no session left (its BGP protocol disabled) shows its header only.
    assert parse_bird_bfd_sessions(BIRD_BFD_UP.splitlines()[:2], now=0.0) == {}
    # A leading space (a continuation line as birdc prints it) is read the same.
    assert (
        parse_bird_bfd_sessions([" " + line for line in BIRD_BFD_UP.splitlines()], now=1796444755.316)
        == views
    )


@pytest.mark.parametrize(("state", "line"), list(BIRD_BFD_STATES.items()))
def test_bird_bfd_session_states(state: str, line: str) -> None:
    since = float(line.split()[3])
    (view,) = parse_bird_bfd_sessions(["bfd1:", line], now=since + 1.5).values()
    assert (view.state, view.up, view.uptime_s) == (state, False, None)
    assert view.downtime_s == pytest.approx(1.5)
    assert view.detection_time_ms == float(line.split()[5]) * 1000


# -- graceful restart views: FRR as the router helping BIRD (node1) restart, `graceful restart on` on both.
# `show bgp neighbors json`, trimmed to the fields the views read and those beside them.

FRR_GR_ESTABLISHED: dict[str, Any] = {
    "198.51.100.1": {
        "remoteAs": 64513,
        "bgpState": "Established",
        "bgpTimerUpMsec": 1000,
        "lastResetDueTo": "Waiting for peer OPEN",
        "neighborCapabilities": {
            "longLivedGracefulRestart": "advertisedAndReceived",
            "gracefulRestart": "advertisedAndReceived",
            "gracefulRestartRemoteTimerMsecs": 120000,
        },
        "gracefulRestartInfo": {
            "endOfRibSend": {"ipv4Unicast": True, "ipv6Unicast": True},
            "endOfRibRecv": {"ipv4Unicast": True, "ipv6Unicast": True},
            "localGrMode": "Restart*",
            "remoteGrMode": "Restart",
            "rBit": False,
            "nBit": False,
            "timers": {"configuredRestartTimer": 120, "receivedRestartTimer": 120},
        },
        "addressFamilyInfo": {
            "ipv4Unicast": {"acceptedPrefixCounter": 1},
            "ipv6Unicast": {"acceptedPrefixCounter": 1},
        },
    }
}
# After BIRD's `graceful restart`: the session is down without a NOTIFICATION, the restart timer runs.
FRR_GR_RESTARTING: dict[str, Any] = {
    "198.51.100.1": {
        "remoteAs": 64513,
        "bgpState": "Idle",
        "lastResetDueTo": "NSF peer closed the session",
        "gracefulRestartInfo": {
            "endOfRibSend": {},
            "endOfRibRecv": {},
            "gracefulRestartTimerMsecs": 119000,
            "gracefulStalepathTimerMsecs": 359000,
            "localGrMode": "Restart*",
            "remoteGrMode": "NotApplicable",
            "rBit": False,
            "nBit": False,
            "timers": {
                "configuredRestartTimer": 120,
                "receivedRestartTimer": 120,
                "restartTimerRemaining": 119,
            },
        },
        "addressFamilyInfo": {
            "ipv4Unicast": {"acceptedPrefixCounter": 1},
            "ipv6Unicast": {"acceptedPrefixCounter": 1},
        },
    }
}
# FRR as node1 with graceful restart off (`bgp graceful-restart-disable`), BIRD offering it: only received.
FRR_GR_RECEIVED_ONLY: dict[str, Any] = {
    "198.51.100.254": {
        "remoteAs": 64512,
        "bgpState": "Established",
        "bgpTimerUpMsec": 2000,
        "neighborCapabilities": {
            "longLivedGracefulRestart": "received",
            "gracefulRestartCapability": "received",
            "gracefulRestartRemoteTimerMsecs": 120000,
        },
        "gracefulRestartInfo": {
            "localGrMode": "Disable*",
            "remoteGrMode": "NotApplicable",
            "timers": {"configuredRestartTimer": 120, "receivedRestartTimer": 120},
        },
    }
}
# Graceful restart off on both ends, the session ended by BFD (the cut link above).
FRR_GR_OFF_BFD_DOWN: dict[str, Any] = {
    "198.51.100.1": {
        "remoteAs": 64513,
        "bgpState": "Idle",
        "lastResetDueTo": "BFD down received",
        "gracefulRestartInfo": {
            "localGrMode": "Disable*",
            "remoteGrMode": "NotApplicable",
            "timers": {"configuredRestartTimer": 120, "receivedRestartTimer": 0},
        },
    }
}
# `show bgp ipv4|ipv6 unicast json detail` while BIRD restarts (paths trimmed of their timestamps).
FRR_STALE_ROUTES = [
    json.loads(
        """{"routes":{"192.168.1.11/32":[{"prefix":"192.168.1.11/32","version":1},
        {"aspath":{"string":"64513","length":1},"stale":true,"origin":"IGP","valid":true,
        "bestpath":{"overall":true,"selectionReason":"First path received"},
        "gracefulRestartSecondsRemaining":119,
        "nexthops":[{"ip":"198.51.100.1","afi":"ipv4","metric":0,"accessible":true,"used":true}],
        "peer":{"peerId":"198.51.100.1","routerId":"198.51.100.1","type":"external"}}]}}"""
    ),
    json.loads(
        """{"routes":{"2001:db8:1::11/128":[{"prefix":"2001:db8:1::11/128","version":1},
        {"aspath":{"string":"64513","length":1},"stale":true,"origin":"IGP","valid":true,
        "bestpath":{"overall":true,"selectionReason":"First path received"},
        "gracefulRestartSecondsRemaining":119,
        "nexthops":[{"ip":"2001:db8:100::1","afi":"ipv6","scope":"global","metric":0,"accessible":true},
        {"ip":"fe80::5874:fbff:fedb:952e","afi":"ipv6","scope":"link-local","accessible":true,"used":true}],
        "peer":{"peerId":"198.51.100.1","routerId":"198.51.100.1","type":"external"}}]}}"""
    ),
]


def test_frr_graceful_restart_established_restarting_and_off() -> None:
    tables = [parse_frr_routes(t) for t in FRR_STALE_ROUTES]
    assert [p.stale for t in tables for paths in t.values() for p in paths] == [True, True]
    fresh = [
        {prefix: [replace(p, stale=False) for p in paths] for prefix, paths in t.items()} for t in tables
    ]
    assert parse_frr_graceful_restart(FRR_GR_ESTABLISHED, fresh) == {
        "198.51.100.1": GracefulRestartView("198.51.100.1", True, False, 0, 120)
    }
    # Another neighbor's stale path and a stale path of no neighbor are not this neighbor's.
    others = {
        "192.168.1.12/32": [
            BgpPath("198.51.100.2", (64514,), None, (), (), True, "198.51.100.2", stale=True),
            BgpPath(None, (), None, (), (), False, None, stale=True),
        ]
    }
    assert parse_frr_graceful_restart(FRR_GR_RESTARTING, [*tables, others]) == {
        "198.51.100.1": GracefulRestartView("198.51.100.1", True, True, 2, 120)
    }
    # Offered by the neighbor only: not negotiated, though FRR shows the restart time it received.
    received_only = parse_frr_graceful_restart(FRR_GR_RECEIVED_ONLY, [])["198.51.100.254"]
    assert (received_only.negotiated, received_only.neighbor_restarting) == (False, False)
    assert received_only.neighbor_restart_time_s == 120
    # Down, but no restart timer runs: not restarting, nothing negotiated.
    off = parse_frr_graceful_restart(FRR_GR_OFF_BFD_DOWN, fresh)["198.51.100.1"]
    assert (off.negotiated, off.neighbor_restarting, off.stale_routes) == (False, False, 0)
    # The neighbors view agrees: negotiated only when both advertised, unknown while not established.
    neighbors = {
        **parse_frr_neighbors(FRR_GR_ESTABLISHED),
        **parse_frr_neighbors(FRR_GR_RECEIVED_ONLY),
    }
    assert neighbors["198.51.100.1"].graceful_restart is True
    assert neighbors["198.51.100.254"].graceful_restart is False
    assert parse_frr_neighbors(FRR_GR_RESTARTING)["198.51.100.1"].graceful_restart is None


# `show protocols all`: BIRD as node1 peering with the FRR router, both with graceful restart on (channel
# statistics trimmed; FRR's restart time edited from 120 to 90 so that it differs from BIRD's own); a BIRD
# router while BIRD node1 restarts; a BIRD router (graceful restart on) with FRR as node1 (off).
BIRD_GR_ESTABLISHED = """\
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     1796444785.884
peer_198_51_100_254 BGP        ---        up     1796444786.698  Established
  BGP state:          Established
    Neighbor address: 198.51.100.254
    Neighbor AS:      64512
    Local AS:         64513
    Neighbor ID:      198.51.100.254
    Local capabilities
      Multiprotocol
        AF announced: ipv4 ipv6
      Route refresh
      Graceful restart
        Restart time: 120
        AF supported: ipv4 ipv6
        AF preserved:
      4-octet AS numbers
      Enhanced refresh
      Long-lived graceful restart
    Neighbor capabilities
      Multiprotocol
        AF announced: ipv4 ipv6
      Route refresh
      Extended message
      Graceful restart
        Restart time: 90
        Restart recovery
        AF supported: ipv4 ipv6
        AF preserved:
      4-octet AS numbers
      ADD-PATH
        RX: ipv4 ipv6
        TX:
      Enhanced refresh
      Long-lived graceful restart
        LL stale time: 0
        AF supported:
        AF preserved: ipv4 ipv6
      Hostname: router
    Session:          external AS4
    Source address:   198.51.100.1
    Hold timer:       152.410/180
    Keepalive timer:  48.751/60
  Channel ipv4
    State:          UP
    Routes:         0 imported, 1 exported, 0 preferred
    BGP Next hop:   198.51.100.1
  Channel ipv6
    State:          UP
    Routes:         0 imported, 1 exported, 0 preferred
    BGP Next hop:   2001:db8:100::1 fe80::5874:fbff:fedb:952e

bfd1       BFD        ---        up     1796444785.884
"""
BIRD_GR_RESTARTING = """\
Name       Proto      Table      State  Since         Info
device1    Device     ---        up     1796444787.475
peer_198_51_100_1 BGP        ---        start  1796444788.486  Active        Socket: Connection closed
  BGP state:          Active
    Neighbor address: 198.51.100.1
    Neighbor AS:      64513
    Local AS:         64512
    Neighbor graceful restart active
    Connect delay:    0.852/1
    Restart timer:    119.993/-
    Last error:       Socket: Connection closed
  Channel ipv4
    State:          START
    Table:          master4
    Preference:     100
    Input filter:   ACCEPT
    Output filter:  REJECT
    Routes:         1 imported, 0 exported, 1 preferred
    Route change stats:     received   rejected   filtered    ignored   accepted
      Import updates:              1          0          0          0          1
      Import withdraws:            0          0        ---          0          0
      Export updates:              1          1          0        ---          0
      Export withdraws:            0        ---        ---        ---          0
    Neighbor GR:    Regular
  Channel ipv6
    State:          START
    Table:          master6
    Preference:     100
    Input filter:   ACCEPT
    Output filter:  REJECT
    Routes:         1 imported, 0 exported, 1 preferred
    Route change stats:     received   rejected   filtered    ignored   accepted
      Import updates:              1          0          0          0          1
      Import withdraws:            0          0        ---          0          0
      Export updates:              1          1          0        ---          0
      Export withdraws:            0        ---        ---        ---          0
    Neighbor GR:    Regular
"""
BIRD_GR_LOCAL_ONLY = """\
Name       Proto      Table      State  Since         Info
peer_198_51_100_1 BGP        ---        up     1796444875.693  Established
  BGP state:          Established
    Neighbor address: 198.51.100.1
    Neighbor AS:      64513
    Local AS:         64512
    Neighbor ID:      198.51.100.1
    Local capabilities
      Multiprotocol
        AF announced: ipv4 ipv6
      Route refresh
      Graceful restart
        Restart time: 120
        AF supported: ipv4 ipv6
        AF preserved:
      4-octet AS numbers
      Enhanced refresh
      Long-lived graceful restart
    Neighbor capabilities
      Multiprotocol
        AF announced: ipv4 ipv6
      Route refresh
      Extended message
      4-octet AS numbers
      ADD-PATH
        RX: ipv4 ipv6
        TX:
      Enhanced refresh
      Hostname: node1
    Session:          external AS4
    Source address:   198.51.100.254
  Channel ipv4
    State:          UP
    Routes:         1 imported, 0 exported, 1 preferred
"""


def test_bird_graceful_restart_established_restarting_and_one_sided() -> None:
    established = parse_bird_graceful_restart(BIRD_GR_ESTABLISHED.splitlines())
    # The restart time is the neighbor's (90), from its capability, not BIRD's own (120).
    assert established == {"198.51.100.254": GracefulRestartView("198.51.100.254", True, False, 0, 90)}
    # While node1 restarts, every route imported from it is stale; BIRD lists no capabilities then.
    restarting = parse_bird_graceful_restart(BIRD_GR_RESTARTING.splitlines())
    assert restarting == {"198.51.100.1": GracefulRestartView("198.51.100.1", True, True, 2, None)}
    local_only = parse_bird_graceful_restart(BIRD_GR_LOCAL_ONLY.splitlines())
    assert local_only == {"198.51.100.1": GracefulRestartView("198.51.100.1", False, False, 0, None)}
    # The neighbors view agrees.
    (_, up), (_, down), (_, one_sided) = (
        next(iter(parse_bird_protocols(text.splitlines(), now=1796444790.0).values()))
        for text in (BIRD_GR_ESTABLISHED, BIRD_GR_RESTARTING, BIRD_GR_LOCAL_ONLY)
    )
    assert (up.address, up.graceful_restart, up.remote_asn) == ("198.51.100.254", True, 64512)
    assert (down.state, down.graceful_restart, down.last_error) == (
        "active",
        None,
        "Socket: Connection closed",
    )
    assert one_sided.graceful_restart is False
