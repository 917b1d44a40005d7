"""Another host on the segment claiming an announced address: the responder sees it and says so.

One bridge joins the responder, a client and another host. The other host configures the service address
and announces it the way a misconfigured server does (iputils-arping -U for IPv4; the kernel's unsolicited
neighbor advertisement with ndisc_notify for IPv6); `Responder.conflicts()` reports (address, its MAC,
interface) and `stats()["conflicts"]` counts it. A client's questions (an ARP request, a duplicate address
detection probe) and the responder's own announcements seen on another of its interfaces are not conflicts,
and the responder answers the client throughout.

No assertion waits a fixed time: absence of a conflict is checked once the frame that could have made one was
answered (the thread records a claim before it sends the answer to the same frame), or once the responder
counted it as received.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from metallb_py._core import Responder

from ._lab import CLIENT_V4, CLIENT_V6, VIP_V4, VIP_V6, Lab, arping, capture, ndisc6, send_udp, wait_for

pytestmark = pytest.mark.netns

Conflict = tuple[str, str, str]


@dataclass
class Segment:
    """The responder, a client and another host, each with `eth0` on one bridge."""

    lab: Lab
    responder_ns: str
    client_ns: str
    other_ns: str


@pytest.fixture
def segment(netlab: Lab) -> Segment:
    bridge, rsp, cli, other = (netlab.namespace(role) for role in ("br", "rsp", "cli", "oth"))
    for ns, port in ((rsp, "pr"), (cli, "pc"), (other, "po")):
        netlab.veth(ns, "eth0", bridge, port)
    netlab.bridge(bridge, "br0", ["pr", "pc", "po"])
    netlab.address(cli, "eth0", f"{CLIENT_V4}/24")
    netlab.address(cli, "eth0", f"{CLIENT_V6}/64")
    return Segment(netlab, rsp, cli, other)


def drain_until(r: Responder, done: Callable[[list[Conflict]], bool]) -> list[Conflict]:
    """Every conflict drained until `done(all so far)` (or the poll gives up); returns them all."""
    seen: list[Conflict] = []

    def drain() -> list[Conflict]:
        seen.extend(r.conflicts())
        return seen

    return wait_for(drain, done)


def our_arp_reply(mac: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["kind"] == "arp" and (f["op"], f["sha"], f["spa"]) == (2, mac, VIP_V4)


def our_na(mac: str) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f["kind"] == "na" and (f["lladdr"], f["target"]) == (mac, VIP_V6)


def test_another_host_claiming_an_announced_address_is_a_conflict(segment: Segment) -> None:
    lab, cli, other = segment.lab, segment.client_ns, segment.other_ns
    our_mac, their_mac = lab.mac(segment.responder_ns, "eth0"), lab.mac(other, "eth0")
    with Responder(["eth0"], netns=segment.responder_ns, gratuitous_duration=0) as r:
        r.announce(VIP_V4)
        r.announce(VIP_V6)

        # A client's questions: a plain ARP request, and duplicate address detection for the IPv6 address
        # (an NS from ::), which the responder defends. Both answered, neither a conflict.
        assert arping(lab, cli, "eth0", VIP_V4, count=1) == [our_mac]
        lab.sysctl(cli, "net.ipv6.conf.eth0.accept_dad", "1")
        lab.sysctl(cli, "net.ipv6.conf.eth0.dad_transmits", "1")
        lab.sh(cli, "ip", "-6", "addr", "add", f"{VIP_V6}/64", "dev", "eth0")
        flags = wait_for(
            lambda: lab.sh(cli, "ip", "-6", "addr", "show", "dev", "eth0").stdout, "dadfailed".__contains__
        )
        assert "dadfailed" in flags, "the probe was not answered"
        lab.sh(cli, "ip", "-6", "addr", "del", f"{VIP_V6}/64", "dev", "eth0")
        assert r.conflicts() == []
        assert r.stats()["conflicts"] == 0

        # IPv4: the other host takes the address and sends gratuitous ARP twice: one conflict in the drain.
        lab.address(other, "eth0", f"{VIP_V4}/32")
        lab.sh(other, "arping", "-U", "-c", "2", "-I", "eth0", VIP_V4)
        counted = wait_for(lambda: r.stats()["conflicts"], lambda n: n >= 2)
        assert counted >= 2, "both gratuitous ARPs counted"
        assert r.conflicts() == [(VIP_V4, their_mac, "eth0")]
        assert r.conflicts() == [], "drained"

        # IPv6: the kernel's unsolicited neighbor advertisement when the address is added. It is sent when
        # duplicate address detection ends, here at once (accept_dad is 0 in the lab's namespaces); `nodad`
        # would skip the tentative state and, with it, the advertisement.
        lab.sysctl(other, "net.ipv6.conf.eth0.accept_dad", "0")
        lab.sysctl(other, "net.ipv6.conf.eth0.ndisc_notify", "1")
        lab.sh(other, "ip", "-6", "addr", "add", f"{VIP_V6}/128", "dev", "eth0")
        want = (VIP_V6, their_mac, "eth0")
        seen = drain_until(r, lambda found: want in found)
        assert want in seen, seen
        assert set(seen) == {want}, seen
        assert r.stats()["conflicts"] > counted

        # Answering went on: the client still gets our answers (the other host's kernel answers too now).
        with capture(cli, "eth0") as client:
            arping(lab, cli, "eth0", VIP_V4, count=1)
            assert client.wait_for(our_arp_reply(our_mac), 1), client.frames()
            ndisc6(lab, cli, "eth0", VIP_V6)
            assert client.wait_for(our_na(our_mac), 1), client.frames()
        assert r.running


def test_reannouncing_wins_back_a_neighbour_another_host_took(segment: Segment) -> None:
    """After another host's claim the client sends to that host; `reannounce` brings it back at once, where
    the responder would otherwise stay silent until the client's entry went stale."""
    lab, cli, other = segment.lab, segment.client_ns, segment.other_ns
    our_mac, their_mac = lab.mac(segment.responder_ns, "eth0"), lab.mac(other, "eth0")
    lab.sysctl(cli, "net.ipv4.neigh.eth0.locktime", "0")  # the kernel takes every update at once

    def client_sends_to(mac: str) -> tuple[str | None, list[str]] | None:
        return wait_for(lambda: lab.neighbour(cli, VIP_V4, "eth0"), lambda e: e is not None and e[0] == mac)

    with Responder(["eth0"], netns=segment.responder_ns, gratuitous_duration=0) as r:
        assert r.reannounce(VIP_V4) is False, "not announced: nothing to send"
        r.announce(VIP_V4)
        assert arping(lab, cli, "eth0", VIP_V4, count=1) == [our_mac]
        send_udp(lab, cli, VIP_V4)  # the client resolves the VIP: its neighbour entry names our MAC
        entry = client_sends_to(our_mac)
        assert entry is not None and entry[0] == our_mac, entry
        lab.address(other, "eth0", f"{VIP_V4}/32")
        lab.sh(other, "arping", "-U", "-c", "1", "-I", "eth0", VIP_V4)
        entry = client_sends_to(their_mac)
        assert entry is not None and entry[0] == their_mac, f"the claim did not take the client: {entry}"
        lab.sh(other, "ip", "addr", "del", f"{VIP_V4}/32", "dev", "eth0")  # the other host gives it up

        assert r.reannounce(VIP_V4) is True
        entry = client_sends_to(our_mac)
        assert entry is not None and entry[0] == our_mac, f"the client still sends elsewhere: {entry}"

        r.set_muted(True)
        assert r.reannounce(VIP_V4) is False, "muted: it sends nothing"


def test_our_own_announcements_on_another_interface_are_not_conflicts(netlab: Lab) -> None:
    """Two interfaces of the responder on one bridge: each hears the other's gratuitous ARP and unsolicited
    NA for the address, from a MAC of this node."""
    bridge, rsp = netlab.namespace("br"), netlab.namespace("rsp")
    netlab.veth(rsp, "eth0", bridge, "p0")
    netlab.veth(rsp, "eth1", bridge, "p1")
    netlab.bridge(bridge, "br0", ["p0", "p1"])
    with Responder(["eth0", "eth1"], netns=rsp, gratuitous_interval=0.1, gratuitous_duration=0.3) as r:
        r.announce(VIP_V4)
        r.announce(VIP_V6)

        # Each interface receives the other's request-form gratuitous ARP, reply-form one and NA per burst.
        def heard_each_other(stats: dict[str, Any]) -> bool:
            return bool(stats["drops"]["gratuitous"] >= 2 and stats["drops"]["not_a_request"] >= 4)

        stats = wait_for(r.stats, heard_each_other)
        assert heard_each_other(stats), stats
        assert r.conflicts() == []
        assert r.stats()["conflicts"] == 0
