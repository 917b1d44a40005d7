"""Interfaces that come and go under a running responder: a link created later, deleted, created again.

The responder serves r0 from the start; the late link appears afterwards, as a VLAN r0.100 (the client on
c0.100, the same VLAN: the frames arrive tagged on r0, whose socket refuses tagged frames, so an answer there
comes from the VLAN's socket) where the kernel has 802.1Q, and as a veth pair r1 <-> c1 everywhere (a
kernel without the 8021q module, as in some containers, cannot create VLANs: that case is skipped, not
faked). The client asks with iputils-arping and ndisc6. Link notifications are checked with LinkWatch in the
same namespaces.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from metallb_py._core import LinkWatch, Responder
from metallb_py.errors import NetnsError, ResponderError

from ._lab import OTHER_V4, VIP_V4, VIP_V6, Lab, Pair, arping, capture, ndisc6, run, wait_for
from .test_responder import gratuitous_arp, unsolicited_na

pytestmark = pytest.mark.netns

LATE_V4 = "192.0.2.1/24"
LATE_V6 = "2001:db8:100::1/64"


def kernel_has_vlans(lab: Lab) -> bool:
    ns = lab.namespace("vlan-probe")
    run("ip", "-n", ns, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
    probe = run(
        "ip", "-n", ns, "link", "add", "link", "p0", "name", "p0.5", "type", "vlan", "id", "5", check=False
    )
    return probe.returncode == 0


@dataclass
class LateLink:
    """A link of the responder's namespace created after the responder started (`name`), and the client's
    interface on the same segment (`client_if`)."""

    pair: Pair
    kind: str  # "vlan" or "veth"

    @property
    def name(self) -> str:
        return "r0.100" if self.kind == "vlan" else "r1"

    @property
    def client_if(self) -> str:
        return "c0.100" if self.kind == "vlan" else "c1"

    def prepare_client(self) -> None:
        if self.kind == "vlan":
            self._vlan(self.pair.client_ns, "c0", self.client_if)
            self._client_addresses()

    def create(self) -> None:
        lab, rsp, cli = self.pair.lab, self.pair.responder_ns, self.pair.client_ns
        if self.kind == "vlan":
            self._vlan(rsp, "r0", self.name)
        else:
            lab.veth(rsp, self.name, cli, self.client_if)
            self._client_addresses()

    def delete(self) -> None:
        run("ip", "-n", self.pair.responder_ns, "link", "del", self.name)

    def mac(self) -> str:
        return self.pair.lab.mac(self.pair.responder_ns, self.name)

    def _vlan(self, ns: str, parent: str, name: str) -> None:
        run("ip", "-n", ns, "link", "add", "link", parent, "name", name, "type", "vlan", "id", "100")
        run("ip", "-n", ns, "link", "set", name, "up")

    def _client_addresses(self) -> None:
        self.pair.lab.address(self.pair.client_ns, self.client_if, LATE_V4)
        self.pair.lab.address(self.pair.client_ns, self.client_if, LATE_V6)


@pytest.fixture(params=["vlan", "veth"])
def late(request: pytest.FixtureRequest, pair: Pair) -> LateLink:
    if request.param == "vlan" and not kernel_has_vlans(pair.lab):
        pytest.skip("this kernel cannot create VLAN interfaces (no 8021q module)")
    link = LateLink(pair, request.param)
    link.prepare_client()
    return link


@pytest.fixture
def responder(pair: Pair) -> Iterator[Responder]:
    # One burst per announce: the counters asserted on do not move on their own afterwards.
    with Responder([pair.responder_if], netns=pair.responder_ns, gratuitous_duration=0) as r:
        yield r


def asked_over(late: LateLink, ip: str) -> list[str]:
    return arping(late.pair.lab, late.pair.client_ns, late.client_if, ip, count=1)


def ndisc6_over(late: LateLink, ip: str) -> str | None:
    return ndisc6(late.pair.lab, late.pair.client_ns, late.client_if, ip)


def test_a_link_added_later_is_served_with_gratuitous_announcements(
    late: LateLink, responder: Responder
) -> None:
    r = responder
    r.announce(VIP_V4)
    r.announce(VIP_V6)
    late.create()
    mac = late.mac()
    assert asked_over(late, VIP_V4) == [], "answered over a link the responder does not serve"
    with capture(late.pair.client_ns, late.client_if) as client:
        change = r.set_interfaces(["r0", late.name])
        assert change == {"added": [late.name], "removed": [], "failed": {}}
        # Addresses announced on all interfaces are announced on the new one at once.
        assert client.wait_for(gratuitous_arp(mac, VIP_V4), 2), client.frames()
        assert client.wait_for(unsolicited_na(mac, VIP_V6), 1), client.frames()
    assert r.interfaces == ["r0", late.name]
    assert r.announced() == {
        ipaddress.ip_address(VIP_V4): ["r0", late.name],
        ipaddress.ip_address(VIP_V6): ["r0", late.name],
    }
    assert asked_over(late, VIP_V4) == [mac]
    assert ndisc6_over(late, VIP_V6) == mac
    assert r.set_interfaces(["r0", late.name]) == {"added": [], "removed": [], "failed": {}}, "nothing to do"


def test_announcing_on_one_more_interface_announces_only_there(late: LateLink, responder: Responder) -> None:
    r = responder
    late.create()
    r.set_interfaces(["r0", late.name])
    r.announce(OTHER_V4, interfaces=["r0"])
    before = r.stats()["ips"][OTHER_V4]["gratuitous_sent"]
    assert before == 2, "one burst: a gratuitous ARP in both forms"
    with capture(late.pair.client_ns, late.client_if) as client:
        assert r.announce(OTHER_V4, interfaces=["r0", late.name]) is True
        assert client.wait_for(gratuitous_arp(late.mac(), OTHER_V4), 2), client.frames()
    # One burst in all (counted when sent, before announce returned): r0's neighbours were not told again.
    assert r.stats()["ips"][OTHER_V4]["gratuitous_sent"] - before == 2


def test_a_deleted_link_is_closed_by_the_thread_and_the_others_keep_answering(
    late: LateLink, responder: Responder
) -> None:
    lab, r = late.pair.lab, responder
    late.create()
    r.set_interfaces(["r0", late.name])
    r.announce(VIP_V4)
    r.announce(OTHER_V4, interfaces=[late.name])
    r.announce(VIP_V6, interfaces=[late.name])
    assert asked_over(late, OTHER_V4) != []
    before = r.stats()

    late.delete()
    # Nobody tells the responder: it follows the namespace's link notifications itself.
    assert wait_for(lambda: r.interfaces, lambda names: names == ["r0"]) == ["r0"]
    assert r.running
    # Addresses named on the gone link stay announced, answered nowhere until it comes back.
    assert r.announced() == {
        ipaddress.ip_address(VIP_V4): ["r0"],
        ipaddress.ip_address(OTHER_V4): [],
        ipaddress.ip_address(VIP_V6): [],
    }
    our_mac = lab.mac(late.pair.responder_ns, "r0")
    assert arping(lab, late.pair.client_ns, "c0", VIP_V4, count=2) == [our_mac] * 2
    after = r.stats()
    assert (after["socket_errors"], after["send_errors"]) == (before["socket_errors"], before["send_errors"])
    assert after["link_down"] - before["link_down"] <= 1, "the gone link's error is reported once, not looped"
    # The next set_interfaces reports what the thread closed.
    assert r.set_interfaces(["r0"]) == {"added": [], "removed": [late.name], "failed": {}}

    # Back under the same name: addresses named on it are answered there again, and announced.
    late.create()  # a veth pair's client end went with it, and comes back with it
    mac = late.mac()
    with capture(late.pair.client_ns, late.client_if) as client:
        assert r.set_interfaces(["r0", late.name]) == {"added": [late.name], "removed": [], "failed": {}}
        assert client.wait_for(gratuitous_arp(mac, OTHER_V4), 2), client.frames()
        assert client.wait_for(unsolicited_na(mac, VIP_V6), 1), client.frames()
    assert asked_over(late, OTHER_V4) == [mac]
    assert r.announced()[ipaddress.ip_address(VIP_V6)] == [late.name]
    assert ndisc6_over(late, VIP_V6) == mac


def test_a_link_recreated_between_two_calls_is_reopened(late: LateLink, responder: Responder) -> None:
    r = responder
    late.create()
    r.set_interfaces(["r0", late.name])
    r.announce(VIP_V4)
    late.delete()
    late.create()
    # Another link under the old name: the old socket never receives again, a new one is opened.
    assert r.set_interfaces(["r0", late.name]) == {"added": [late.name], "removed": [late.name], "failed": {}}
    assert asked_over(late, VIP_V4) == [late.mac()]


def test_interfaces_removed_from_the_set_stop_answering(late: LateLink, responder: Responder) -> None:
    lab, r, rsp = late.pair.lab, responder, late.pair.responder_ns
    late.create()
    r.set_interfaces(["r0", late.name])
    r.announce(VIP_V6)
    group = "ff02::1:ff00:10"  # solicited-node group of 2001:db8::10
    assert group in lab.multicast_groups(rsp, late.name)
    assert r.set_interfaces(["r0"]) == {"added": [], "removed": [late.name], "failed": {}}
    assert group not in lab.multicast_groups(rsp, late.name), "the group was not left"
    assert ndisc6_over(late, VIP_V6) is None
    assert ndisc6(lab, late.pair.client_ns, "c0", VIP_V6) == lab.mac(rsp, "r0")
    # With no interface at all it answers nowhere and still runs.
    assert r.set_interfaces([]) == {"added": [], "removed": ["r0"], "failed": {}}
    assert r.running and r.interfaces == []
    assert ndisc6(lab, late.pair.client_ns, "c0", VIP_V6) is None


def test_interfaces_that_cannot_be_opened_are_reported_and_the_others_served(
    pair: Pair, responder: Responder
) -> None:
    r = responder
    late = LateLink(pair, "veth")
    late.create()
    change = r.set_interfaces(["r0", "nosuch0", "lo", late.name])
    assert change["added"] == [late.name] and change["removed"] == []
    assert sorted(change["failed"]) == ["lo", "nosuch0"]
    assert 'no network interface named "nosuch0"' in change["failed"]["nosuch0"]
    assert "no Ethernet MAC address" in change["failed"]["lo"]
    assert r.interfaces == ["r0", late.name]
    r.announce(VIP_V4)
    assert asked_over(late, VIP_V4) != []
    for bad in (["r0", "r0"], [f"if{n}" for n in range(65)]):
        with pytest.raises(ValueError, match=r"twice|at most 64"):
            r.set_interfaces(bad)
    assert r.interfaces == ["r0", late.name], "a refused list changes nothing"
    r.stop()
    with pytest.raises(ResponderError, match="not running"):
        r.set_interfaces(["r0"])
    assert r.interfaces == ["r0"], "stopped: the constructor's list, which a start opens"


def events_until(watch: LinkWatch, done: Any) -> list[dict[str, Any]]:
    """Every event `watch` gives until `done(events)` (or a wait yields nothing for 5 s)."""
    seen: list[dict[str, Any]] = []
    while not done(seen):
        got = watch.wait(5.0)
        if not got:
            break
        seen.extend(dict(e) for e in got)
    return seen


def test_link_watch_reports_a_link_created_up_and_deleted(pair: Pair) -> None:
    ns = pair.responder_ns
    watch = LinkWatch(ns)
    assert watch.wait(0.0) == []
    late = LateLink(pair, "veth")
    late.create()

    def about_it(events: list[dict[str, Any]]) -> list[tuple[str, bool]]:
        return [(e["kind"], e["up"]) for e in events if e["name"] == late.name]

    created = events_until(watch, lambda events: ("changed", True) in about_it(events))
    assert ("changed", True) in about_it(created), created
    index = next(e["index"] for e in created if e["name"] == late.name)
    late.delete()
    deleted = events_until(watch, lambda events: ("removed", False) in about_it(events))
    assert {"kind": "removed", "index": index, "name": late.name, "up": False} in deleted, deleted
    watch.close()
    with pytest.raises(ResponderError):
        watch.wait(0.0)
    watch.close()  # idempotent


def test_link_watch_sees_only_its_namespace(pair: Pair) -> None:
    watch = LinkWatch(pair.responder_ns)
    pair.lab.sh(pair.client_ns, "ip", "link", "set", "c0", "mtu", "1400")
    pair.lab.sh(pair.responder_ns, "ip", "link", "set", "r0", "mtu", "1400")
    events = events_until(watch, lambda events: any(e["name"] == "r0" for e in events))
    assert {e["name"] for e in events} == {"r0"}, events
    with pytest.raises(NetnsError, match="does not exist"):
        LinkWatch(f"{pair.responder_ns}-missing")
