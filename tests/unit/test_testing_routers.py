"""The routing daemons' configuration and the parsing of their views, without root: nothing here starts a
daemon. The view samples are what FRR 8.4, BIRD 2.0.12 and GoBGP 3.10 printed in the lab (trimmed)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from metallb_py.errors import MetalLBError
from metallb_py.testing import (
    BgpPath,
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
    parse_bird_protocols,
    parse_bird_routes,
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
