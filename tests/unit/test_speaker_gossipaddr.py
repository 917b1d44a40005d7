"""speaker.gossipaddr: the gossip address is the node's own, never one every node holds (issue 12)."""

from __future__ import annotations

import json

import pytest

from metallb_py.speaker.gossipaddr import (
    Claimed,
    GossipAddressError,
    NodeAddress,
    choose_gossip_address,
    claimed_from_api,
    parse_ip_addr,
    refusal,
    split_host_port,
)

VIP = "192.0.2.11"
OWN = "198.51.100.1"
LO = NodeAddress(VIP, "lo", link_type="loopback")
ETH0 = NodeAddress(OWN, "eth0")
NOTHING = Claimed()
POOLS = Claimed(pools={"web": ("192.0.2.10-192.0.2.20",), "v6": ("2001:db8:1::/64",)})


def choose(
    configured: str | None = None,
    internal: tuple[str, ...] = (),
    *addresses: NodeAddress,
    claimed: Claimed = NOTHING,
) -> tuple[str, int | None, str]:
    choice = choose_gossip_address(configured, internal, list(addresses), claimed, node="node1")
    return choice.ip, choice.port, choice.source


def test_the_report_a_vip_on_lo_before_the_node_address_is_passed_over() -> None:
    # The issue: no InternalIP, the Service address on lo (listed first: ifindex 1), the node's on eth0.
    assert choose(None, (), LO, ETH0) == (OWN, None, "interface eth0")


@pytest.mark.parametrize(
    ("address", "claimed", "why"),
    [
        (NodeAddress("127.0.0.2", "eth0"), Claimed(), "a loopback address"),
        (NodeAddress("::1", "eth0"), Claimed(), "a loopback address"),
        (NodeAddress(VIP, "lo", link_type="loopback"), Claimed(), "loopback interface lo"),
        (NodeAddress(VIP, "dummy0", kind="dummy"), Claimed(), "dummy interface dummy0"),
        (NodeAddress(VIP, "kube-ipvs0", kind="dummy"), Claimed(), "dummy interface kube-ipvs0"),
        (NodeAddress(VIP, "kube-ipvs0"), Claimed(), "kube-ipvs0, where kube-proxy"),
        (NodeAddress(VIP, "eth0"), POOLS, "inside address pool web (192.0.2.10-192.0.2.20)"),
        (NodeAddress("2001:db8:1::5", "eth0"), POOLS, "inside address pool v6"),
        (NodeAddress(VIP, "eth0"), Claimed(pools={"p": ("192.0.2.1/24",)}), "pool p (192.0.2.1/24)"),
        (NodeAddress(VIP, "eth0"), Claimed(services={VIP: "default/web"}), "Service default/web"),
    ],
)
def test_refused_addresses_say_why(address: NodeAddress, claimed: Claimed, why: str) -> None:
    found = refusal(address.ip, [address], claimed)
    assert found is not None and why in found
    with pytest.raises(GossipAddressError, match="no gossip address for node node1"):
        choose(None, (), address, claimed=claimed)


@pytest.mark.parametrize("configured", [VIP, f"{VIP}:7946", "127.0.0.1", "0.0.0.0", "[fe80::1]:7946"])
def test_a_configured_address_that_every_node_may_hold_is_refused(configured: str) -> None:
    with pytest.raises(GossipAddressError, match=r"--gossip-address .* is refused: .* is "):
        choose(configured, (OWN,), LO, ETH0, claimed=Claimed(services={VIP: "default/web"}))


def test_a_configured_address_comes_first_with_its_port() -> None:
    assert choose(f"{OWN}:7000", ("198.51.100.9",), ETH0) == (OWN, 7000, "--gossip-address")
    assert choose("[2001:db8::1]:7000", (), ETH0) == ("2001:db8::1", 7000, "--gossip-address")
    assert choose("2001:db8::1", (), ETH0) == ("2001:db8::1", None, "--gossip-address")
    assert choose(OWN, (), ETH0) == (OWN, None, "--gossip-address")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("node1", "not an IP address"),
        (f"{OWN}:0", "not 1-65535"),
        (f"{OWN}:x", "not 1-65535"),
        ("[::1", "expected"),
    ],
)
def test_a_malformed_configured_address_is_an_error(text: str, message: str) -> None:
    with pytest.raises(GossipAddressError, match=message):
        split_host_port(text)


def test_the_internal_ip_comes_before_the_interfaces_unless_it_is_refused() -> None:
    assert choose(None, ("198.51.100.9",), ETH0) == ("198.51.100.9", None, "the Node's InternalIP")
    choice = choose_gossip_address(None, (VIP, "2001:db8::9"), [LO, ETH0], Claimed(), node="node1")
    assert (choice.ip, choice.source) == ("2001:db8::9", "the Node's InternalIP")
    assert choice.passed_over == (
        (
            VIP,
            "the Node's InternalIP is bound on the loopback interface lo (where "
            "Service addresses are bound on every node)",
        ),
    )
    assert choose(None, (VIP,), LO, ETH0)[0] == OWN


def test_interfaces_ipv4_first_primary_first_up_usable_and_global_only() -> None:
    addresses = [
        NodeAddress("2001:db8::1", "eth0"),
        NodeAddress("198.51.100.7", "eth1", up=False),
        NodeAddress("198.51.100.8", "eth0", usable=False),
        NodeAddress("198.51.100.9", "eth0", scope="link"),
        NodeAddress("198.51.100.2", "eth0", secondary=True),
        NodeAddress("198.51.100.3", "eth2"),
    ]
    assert choose(None, (), *addresses) == ("198.51.100.3", None, "interface eth2")
    assert choose(None, (), *addresses[:1]) == ("2001:db8::1", None, "interface eth0")


def test_no_address_at_all_names_what_to_pass() -> None:
    with pytest.raises(GossipAddressError, match="pass --gossip-address") as caught:
        choose(None, (), LO)
    assert f"{VIP}: bound on the loopback interface lo" in str(caught.value)


def test_parse_ip_addr_reads_kind_scope_and_flags() -> None:
    rows = [
        {
            "ifname": "lo",
            "flags": ["LOOPBACK", "UP"],
            "link_type": "loopback",
            "addr_info": [
                {"family": "inet", "local": "127.0.0.1", "scope": "host"},
                {"family": "inet", "local": VIP, "scope": "global"},
            ],
        },
        {
            "ifname": "kube-ipvs0",
            "flags": ["BROADCAST", "NOARP"],
            "link_type": "ether",
            "linkinfo": {"info_kind": "dummy"},
            "addr_info": [{"family": "inet", "local": "192.0.2.12"}],
        },
        {
            "ifname": "eth0",
            "flags": ["UP"],
            "link_type": "ether",
            "linkinfo": {"info_kind": "veth"},
            "addr_info": [
                {"family": "inet6", "local": "2001:db8::1", "scope": "global", "tentative": True},
                {"family": "inet", "local": OWN, "scope": "global", "secondary": True},
            ],
        },
    ]
    assert parse_ip_addr(json.dumps(rows)) == [
        NodeAddress("127.0.0.1", "lo", link_type="loopback", scope="host"),
        NodeAddress(VIP, "lo", link_type="loopback"),
        NodeAddress("192.0.2.12", "kube-ipvs0", kind="dummy", up=False),
        NodeAddress("2001:db8::1", "eth0", kind="veth", usable=False),
        NodeAddress(OWN, "eth0", kind="veth", secondary=True),
    ]
    assert parse_ip_addr("") == []


def test_claimed_from_api_reads_pools_legacy_crd_and_refused_and_the_services_ingress() -> None:
    legacy = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config", "namespace": "metallb-system"},
        "data": {
            "config": "address-pools:\n- name: seed\n  protocol: layer2\n"
            "  addresses: [192.0.2.10-192.0.2.20]\n"
        },
    }
    pool = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "crd", "namespace": "metallb-system"},
        "spec": {"addresses": ["203.0.113.0/28"]},
    }
    bad = {**pool, "metadata": {"name": "bad"}, "spec": {"addresses": ["203.0.113.64/28"], "unknown": 1}}
    svc = {
        "metadata": {"namespace": "default", "name": "web"},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.50"}]}},
    }
    claimed = claimed_from_api([legacy, pool, bad], [svc, {"metadata": "x"}])
    assert dict(claimed.pools) == {
        "seed": ("192.0.2.10-192.0.2.20",),
        "crd": ("203.0.113.0/28",),
        "bad": ("203.0.113.64/28",),
    }
    assert dict(claimed.services) == {"198.51.100.50": "default/web"}
