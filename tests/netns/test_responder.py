"""The layer 2 responder against real clients in namespaces: iputils-arping, ndisc6, Linux neighbour tables.

The announced addresses are never configured on the responder's interface, so every answer seen comes from
the responder, not the kernel; each test first checks that nothing answers before the announce.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from metallb_py._core import Responder
from metallb_py.errors import (
    InterfaceNotFoundError,
    NetnsError,
    NoMacAddressError,
    PermissionDeniedError,
    ResponderError,
)

from ._lab import (
    OTHER_V4,
    OTHER_V6,
    VIP_V4,
    VIP_V6,
    Lab,
    Pair,
    arping,
    capture,
    make_pair,
    ndisc6,
    send_udp,
    wait_for,
)

pytestmark = pytest.mark.netns

BROADCAST = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"


def responder(pair: Pair, **options: float | None) -> Responder:
    return Responder([pair.responder_if], netns=pair.responder_ns, **options)  # type: ignore[arg-type]


def test_arping_gets_our_mac_for_the_announced_address_only(pair: Pair) -> None:
    lab = pair.lab
    our_mac = lab.mac(pair.responder_ns, pair.responder_if)
    assert arping(lab, pair.client_ns, pair.client_if, VIP_V4, count=1) == [], "something answers already"
    with responder(pair) as r:
        assert r.announce(VIP_V4) is True
        assert r.announce(VIP_V4) is False, "announcing again changes nothing"
        # arping broadcasts the first request and unicasts the next ones to the MAC it learnt.
        assert arping(lab, pair.client_ns, pair.client_if, VIP_V4, count=3) == [our_mac] * 3
        assert arping(lab, pair.client_ns, pair.client_if, OTHER_V4, count=2) == []
        stats = r.stats()
    assert stats["ips"][VIP_V4]["requests_received"] == 3
    assert stats["ips"][VIP_V4]["responses_sent"] == 3
    assert OTHER_V4 not in stats["ips"]
    assert stats["drops"]["not_announced"] >= 2
    assert stats["send_errors"] == 0


def test_withdraw_stops_answers_at_once(pair: Pair) -> None:
    lab = pair.lab
    with responder(pair) as r:
        r.announce(VIP_V4)
        r.announce(VIP_V6)
        assert arping(lab, pair.client_ns, pair.client_if, VIP_V4, count=1) != []
        assert r.withdraw(VIP_V4) is True
        assert r.withdraw(VIP_V4) is False
        assert arping(lab, pair.client_ns, pair.client_if, VIP_V4, count=2) == []
        assert r.announced() == {ipaddress.ip_address(VIP_V6): [pair.responder_if]}
        r.withdraw(VIP_V6)
        assert ndisc6(lab, pair.client_ns, pair.client_if, VIP_V6) is None
        assert r.announced() == {}


def test_muted_it_answers_nothing_and_unmuted_it_announces_everything_again(pair: Pair) -> None:
    """What the gossip does the moment its node hears no peer (issue 13): the addresses stay, the answers
    stop; back, every address is announced at once (a gratuitous ARP reaches the client)."""
    lab = pair.lab
    our_mac = lab.mac(pair.responder_ns, pair.responder_if)
    with capture(pair.client_ns, pair.client_if) as client, responder(pair, gratuitous_duration=0.0) as r:
        r.announce(VIP_V4)
        assert arping(lab, pair.client_ns, pair.client_if, VIP_V4, count=1) == [our_mac]
        assert r.set_muted(True) is True
        assert r.set_muted(True) is False, "muting again changes nothing"
        assert arping(lab, pair.client_ns, pair.client_if, VIP_V4, count=2) == []
        assert r.announced() == {ipaddress.ip_address(VIP_V4): [pair.responder_if]}, "the addresses stay"
        before = len(client.frames(gratuitous_arp(our_mac, VIP_V4)))
        assert r.set_muted(False) is True
        assert len(client.wait_for(gratuitous_arp(our_mac, VIP_V4), before + 2)) >= before + 2
        assert arping(lab, pair.client_ns, pair.client_if, VIP_V4, count=1) == [our_mac]
        assert r.stats()["drops"]["muted"] >= 2


def test_ndisc6_gets_a_neighbor_advertisement_and_the_group_is_joined(pair: Pair) -> None:
    lab = pair.lab
    our_mac = lab.mac(pair.responder_ns, pair.responder_if)
    group = "ff02::1:ff00:10"  # solicited-node group of 2001:db8::10
    assert ndisc6(lab, pair.client_ns, pair.client_if, VIP_V6) is None
    assert group not in lab.multicast_groups(pair.responder_ns, pair.responder_if)
    with responder(pair) as r:
        r.announce(VIP_V6)
        assert group in lab.multicast_groups(pair.responder_ns, pair.responder_if), "no MLD join"
        assert ndisc6(lab, pair.client_ns, pair.client_if, VIP_V6) == our_mac
        assert ndisc6(lab, pair.client_ns, pair.client_if, OTHER_V6) is None
        stats = r.stats()
        r.withdraw(VIP_V6)
        assert group not in lab.multicast_groups(pair.responder_ns, pair.responder_if), "group not left"
    assert stats["ips"][VIP_V6]["responses_sent"] >= 1
    assert stats["group_fallbacks"] == 0


def test_unicast_solicitations_from_the_kernel_are_answered(pair: Pair) -> None:
    """Neighbour unreachability detection: a STALE entry is probed with unicast NS / ARP to the cached MAC."""
    lab = pair.lab
    our_mac = lab.mac(pair.responder_ns, pair.responder_if)
    ns, dev = pair.client_ns, pair.client_if
    lab.sysctl(ns, f"net.ipv6.neigh.{dev}.delay_first_probe_time", "0")
    lab.sysctl(ns, f"net.ipv4.neigh.{dev}.delay_first_probe_time", "0")
    with responder(pair, gratuitous_duration=0) as r:
        r.announce(VIP_V6)
        r.announce(VIP_V4)
        for vip in (VIP_V6, VIP_V4):
            lab.sh(ns, "ip", "neigh", "replace", vip, "lladdr", our_mac, "dev", dev, "nud", "stale")
            before = r.stats()["ips"][vip]["responses_sent"]
            send_udp(lab, ns, vip)
            entry = wait_for(
                partial(lab.neighbour, ns, vip, dev), lambda e: e is not None and "REACHABLE" in e[1]
            )
            assert entry == (our_mac, ["REACHABLE"]), f"{vip}: probe not answered: {entry}"
            assert r.stats()["ips"][vip]["responses_sent"] > before


def test_duplicate_address_detection_fails_for_an_announced_address(pair: Pair) -> None:
    """The client's kernel probes 2001:db8::10 from :: before using it; our NA to ff02::1 makes DAD fail."""
    lab = pair.lab
    ns, dev = pair.client_ns, pair.client_if
    lab.sysctl(ns, f"net.ipv6.conf.{dev}.accept_dad", "1")
    lab.sysctl(ns, f"net.ipv6.conf.{dev}.dad_transmits", "1")
    with responder(pair, gratuitous_duration=0) as r:
        r.announce(VIP_V6)
        lab.sh(ns, "ip", "addr", "add", f"{VIP_V6}/64", "dev", dev)
        flags = wait_for(
            lambda: lab.sh(ns, "ip", "-6", "addr", "show", "dev", dev).stdout,
            lambda out: "dadfailed" in out,
            timeout=5,
        )
    assert "dadfailed" in flags, flags


def test_interfaces_restrict_where_an_address_is_answered(netlab: Lab) -> None:
    rsp, cli = netlab.namespace("rsp"), netlab.namespace("cli")
    netlab.veth(rsp, "r0", cli, "c0")
    netlab.veth(rsp, "r1", cli, "c1")
    netlab.address(cli, "c0", "198.51.100.1/24")
    netlab.address(cli, "c1", "192.0.2.1/24")
    with Responder(["r0", "r1"], netns=rsp) as r:
        r.announce("192.0.2.10", interfaces=["r1"])
        assert arping(netlab, cli, "c1", "192.0.2.10", count=1) == [netlab.mac(rsp, "r1")]
        # Same address asked on the other link (the client's kernel picks c1's source address for it).
        assert arping(netlab, cli, "c0", "192.0.2.10", count=1) == []
        assert r.stats()["drops"]["interface_not_selected"] >= 1
        assert r.announced() == {ipaddress.ip_address("192.0.2.10"): ["r1"]}
        with pytest.raises(InterfaceNotFoundError, match="eth9"):
            r.announce("192.0.2.11", interfaces=["eth9"])


def test_neighbour_table_moves_to_the_new_speaker(netlab: Lab) -> None:
    """Two responders on one bridge: after a takeover the client's ARP and NDP entries move to the new MAC."""
    br, a, b, cli = (netlab.namespace(role) for role in ("br", "a", "b", "cli"))
    for ns, port in ((a, "pa"), (b, "pb"), (cli, "pc")):
        netlab.veth(ns, "eth0", br, port)
    netlab.bridge(br, "br0", ["pa", "pb", "pc"])
    netlab.address(cli, "eth0", "198.51.100.1/24")
    netlab.address(cli, "eth0", "2001:db8::1/64")
    netlab.sysctl(cli, "net.ipv4.conf.all.arp_accept", "1")
    netlab.sysctl(cli, "net.ipv4.conf.eth0.arp_accept", "1")
    mac_a, mac_b = netlab.mac(a, "eth0"), netlab.mac(b, "eth0")

    def entry(ip: str) -> str | None:
        found = netlab.neighbour(cli, ip, "eth0")
        return found[0] if found else None

    fast = {"gratuitous_interval": 0.2, "gratuitous_duration": 1.0}
    with Responder(["eth0"], netns=a, **fast) as ra, Responder(["eth0"], netns=b, **fast) as rb:  # type: ignore[arg-type]
        ra.announce(VIP_V4)
        ra.announce(VIP_V6)
        # IPv4: the gratuitous ARP alone creates the entry (arp_accept=1).
        assert wait_for(lambda: entry(VIP_V4), lambda mac: mac == mac_a) == mac_a
        # IPv6: unsolicited NAs only update existing entries, so let the client resolve the address first.
        send_udp(netlab, cli, VIP_V6)
        assert wait_for(lambda: entry(VIP_V6), lambda mac: mac == mac_a) == mac_a
        ra.withdraw(VIP_V4)
        ra.withdraw(VIP_V6)
        rb.announce(VIP_V4)
        rb.announce(VIP_V6)
        assert wait_for(lambda: entry(VIP_V4), lambda mac: mac == mac_b) == mac_b
        assert wait_for(lambda: entry(VIP_V6), lambda mac: mac == mac_b) == mac_b
        assert rb.stats()["ips"][VIP_V4]["gratuitous_sent"] >= 2


def gratuitous_arp(mac: str, ip: str) -> Callable[[dict[str, Any]], bool]:
    """Matches a gratuitous ARP for `ip` from `mac`, broadcast, in either form: request (target hardware
    address zero, RFC 5227) or reply (target hardware address `mac`)."""

    def match(f: dict[str, Any]) -> bool:
        if f["kind"] != "arp" or (f["src"], f["sha"], f["dst"]) != (mac, mac, BROADCAST):
            return False
        return f["spa"] == f["tpa"] == ip and (f["op"], f["tha"]) in ((1, ZERO_MAC), (2, mac))

    return match


def unsolicited_na(mac: str, ip: str) -> Callable[[dict[str, Any]], bool]:
    """Matches an unsolicited Neighbor Advertisement for `ip` from `mac` to all nodes, with Override set, so
    neighbours replace the entry they have."""

    def match(f: dict[str, Any]) -> bool:
        if f["kind"] != "na" or (f["src"], f["dst"], f["ip_dst"]) != (mac, "33:33:00:00:00:01", "ff02::1"):
            return False
        return (
            (f["target"], f["lladdr"], f["hop_limit"]) == (ip, mac, 255)
            and f["override"]
            and not (f["solicited"] or f["router"])
        )

    return match


def test_gratuitous_bursts_reach_the_client_as_counted(pair: Pair) -> None:
    """Each burst is a gratuitous ARP in both forms and one unsolicited NA, and every frame the responder
    counts reaches a client on the link. When bursts fall is the schedule's own table test
    (rust/metallb-l2/src/schedule.rs), with time passed in."""
    our_mac = pair.lab.mac(pair.responder_ns, pair.responder_if)
    arp, na = gratuitous_arp(our_mac, VIP_V4), unsolicited_na(our_mac, VIP_V6)
    bursting = responder(pair, gratuitous_interval=0.1, gratuitous_duration=0.3)
    with capture(pair.client_ns, pair.client_if) as client, bursting as r:
        r.announce(VIP_V4)
        r.announce(VIP_V6)

        def seen_as_counted() -> tuple[int, int] | None:
            ips = r.stats()["ips"]
            counted = (ips[VIP_V4]["gratuitous_sent"], ips[VIP_V6]["gratuitous_sent"])
            seen = (len(client.frames(arp)), len(client.frames(na)))
            # Two bursts at least (the schedule repeats), each one whole (two ARP frames).
            whole = seen[0] >= 4 and seen[0] % 2 == 0 and seen[1] >= 2
            return seen if whole and seen == counted else None

        # The schedule ends after 0.3 s: the client has caught up with the counters then at the latest.
        caught_up = wait_for(seen_as_counted, lambda seen: seen is not None)
        assert caught_up is not None, (r.stats()["ips"], client.frames())
    ops = [f["op"] for f in client.frames(arp)]
    assert ops.count(1) == ops.count(2), ops
    assert all(arp(f) for f in client.frames(lambda f: f["kind"] == "arp")), "an ARP frame of another kind"


def test_refresh_keeps_announcing(pair: Pair) -> None:
    """With a single burst (duration 0) and a refresh every 0.1 s, a client keeps receiving unsolicited NAs:
    four of them are the burst and three refreshes, each one counted."""
    our_mac = pair.lab.mac(pair.responder_ns, pair.responder_if)
    refreshing = responder(pair, gratuitous_interval=0.1, gratuitous_duration=0.0, refresh_interval=0.1)
    with capture(pair.client_ns, pair.client_if) as client, refreshing as r:
        r.announce(VIP_V6)
        received = client.wait_for(unsolicited_na(our_mac, VIP_V6), 4)
        counted = r.stats()["ips"][VIP_V6]["gratuitous_sent"]
    assert len(received) >= 4, client.frames()
    assert counted >= len(received)


def test_stop_is_quick_and_the_responder_restarts(pair: Pair, capsys: pytest.CaptureFixture[str]) -> None:
    r = responder(pair)
    r.start()
    r.announce(VIP_V4)
    started = time.perf_counter()
    r.stop()
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(f"\nResponder.stop() took {elapsed * 1000:.2f} ms")
    assert not r.running
    assert arping(pair.lab, pair.client_ns, pair.client_if, VIP_V4, count=1) == []
    with pytest.raises(ResponderError, match="not running"):
        r.announce(VIP_V4)
    r.start()
    try:
        assert r.running and r.announced() == {}
        r.announce(VIP_V4)
        assert arping(pair.lab, pair.client_ns, pair.client_if, VIP_V4, count=1) != []
        with pytest.raises(ResponderError, match="already running"):
            r.start()
    finally:
        r.stop()


def test_errors_at_start(pair: Pair) -> None:
    with pytest.raises(InterfaceNotFoundError, match="nosuch0"):
        Responder(["nosuch0"], netns=pair.responder_ns).start()
    with pytest.raises(NoMacAddressError, match=r"'lo'|\"lo\""):
        Responder(["lo"], netns=pair.responder_ns).start()
    with pytest.raises(NetnsError, match="does not exist"):
        Responder(["r0"], netns=f"{pair.responder_ns}-missing").start()
    with pytest.raises(NetnsError):
        Responder(["r0"], netns="../etc").start()
    with pytest.raises(ValueError, match="at least one"):
        Responder([])
    with pytest.raises(ValueError, match="gratuitous interval"):
        Responder(["r0"], gratuitous_interval=0.0)
    with responder(pair) as r:
        with pytest.raises(ValueError, match="not an IP"):
            r.announce("198.51.100.300")
        with pytest.raises(ValueError, match="multicast"):
            r.announce("ff02::1")


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop privileges")
def test_permission_error_names_cap_net_raw(pair: Pair) -> None:
    """As an unprivileged user the packet socket is refused; the error says what capability is missing."""
    code = (
        "from metallb_py._core import Responder\n"
        "from metallb_py.errors import PermissionDeniedError\n"
        "try:\n    Responder(['lo']).start()\n"
        "except PermissionDeniedError as err:\n    print(type(err).__name__, err)\n"
    )
    out = subprocess.run(
        [
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            sys.executable,
            "-c",
            code,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    if "No module named" in out.stderr:
        pytest.skip(f"the unprivileged user cannot import metallb_py from this checkout: {out.stderr[-200:]}")
    assert "PermissionDeniedError" in out.stdout and "CAP_NET_RAW" in out.stdout, out.stdout + out.stderr
    assert issubclass(PermissionDeniedError, PermissionError)


def test_responders_in_two_namespaces_from_one_process(netlab: Lab) -> None:
    """The netns option is per responder thread: the process itself stays in its own namespace."""
    first, second = make_pair(netlab), None
    own = os.readlink("/proc/self/ns/net")
    with responder(first) as r1:
        other = netlab.namespace("rsp2")
        cli2 = netlab.namespace("cli2")
        netlab.veth(other, "r0", cli2, "c0")
        netlab.address(cli2, "c0", "198.51.100.1/24")
        second = Pair(netlab, other, cli2)
        with responder(second) as r2:
            r1.announce(VIP_V4)
            r2.announce(OTHER_V4)
            assert arping(netlab, first.client_ns, "c0", VIP_V4, count=1) == [
                netlab.mac(first.responder_ns, "r0")
            ]
            assert arping(netlab, cli2, "c0", OTHER_V4, count=1) == [netlab.mac(other, "r0")]
            assert arping(netlab, cli2, "c0", VIP_V4, count=1) == []
    assert os.readlink("/proc/self/ns/net") == own


def test_busy_poll_pinned_to_a_cpu_answers(pair: Pair) -> None:
    cpu = max(os.sched_getaffinity(0))
    with responder(pair, busy_poll=0.001, cpu=cpu) as r:
        r.announce(VIP_V4)
        assert arping(pair.lab, pair.client_ns, pair.client_if, VIP_V4, count=1) == [
            pair.lab.mac(pair.responder_ns, pair.responder_if)
        ]
    with pytest.raises(ValueError, match="CPU 100000"):
        responder(pair, cpu=100_000).start()
