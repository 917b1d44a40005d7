"""NetnsLab end to end: the seed's VIPs answered by whichever node's responder announces them.

Each test builds its own lab (about 40 ms) and checks from the client namespace, as the seed's browser did,
that the VIP reaches exactly the announcing node, that a takeover moves it, and that nothing is left behind.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from metallb_py import Responder
from metallb_py.testing import FetchError, NetnsLab, Probe, cleanup_stale, neighbour_table_fulls

pytestmark = pytest.mark.netns

HNAME_VIP = "192.168.1.11"
IP_VIP = "192.168.1.12"
V6_VIP = "2001:db8:1::11"


@pytest.fixture
def nlab() -> Iterator[NetnsLab]:
    with NetnsLab(nodes=["node1", "node2", "node3"], extra_nodes=["control-plane"]) as lab:
        yield lab


def responder(lab: NetnsLab, node: str) -> Responder:
    """The node's responder, not started yet (`with` starts and stops it)."""
    return Responder([lab.node_interface(node)], netns=lab.node_ns(node))


def answered_by(lab: NetnsLab, vip: str, timeout: float = 0.3) -> str | None:
    try:
        status, body = lab.fetch(vip, timeout=timeout)
    except FetchError:
        return None
    assert status == 200, body
    return body.strip()


def eventually(probe: Callable[[], object], expected: object, timeout: float = 5.0) -> object:
    deadline = time.monotonic() + timeout
    value = probe()
    while value != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value


def namespaces() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.parametrize("vip", [HNAME_VIP, V6_VIP])
def test_only_the_announcing_node_answers_and_a_takeover_moves_the_vip(nlab: NetnsLab, vip: str) -> None:
    nlab.serve(vip, kind="hname")
    # Every node has the VIP on lo, yet no kernel answers ARP/NDP for it: unreachable until announced.
    with pytest.raises(FetchError) as unreachable:
        nlab.fetch(vip, timeout=0.3)
    assert unreachable.value.reason == "timeout"

    with responder(nlab, "node2") as node2, responder(nlab, "node3") as node3:
        node2.announce(vip)
        assert nlab.fetch(vip) == (200, "node2\n")
        owner = {n.ip: n.lladdr for n in nlab.neighbours()}
        assert owner[vip] == nlab.node_mac("node2")

        node3.announce(vip)  # the new owner first, then the old one lets go, as a speaker hands over
        node2.withdraw(vip)
        assert eventually(lambda: answered_by(nlab, vip), "node3") == "node3"
        assert {n.ip: n.lladdr for n in nlab.neighbours()}[vip] == nlab.node_mac("node3")


def test_echo_ip_answers_with_the_method_and_the_client_address(nlab: NetnsLab) -> None:
    nlab.serve(HNAME_VIP, kind="hname")
    nlab.serve(IP_VIP, kind="ip")
    with responder(nlab, "node1") as r:
        r.announce(HNAME_VIP)
        r.announce(IP_VIP)
        assert nlab.fetch(IP_VIP, method="POST") == (200, "request_method : POST | ip_dest: 198.51.100.200\n")
        assert nlab.fetch(IP_VIP) == (200, "request_method : GET | ip_dest: 198.51.100.200\n")
        # Same node, same port, other VIP: the server dispatches on the destination address.
        assert nlab.fetch(HNAME_VIP) == (200, "node1\n")
        status, body = nlab.fetch(nlab.node_address("node1"))
        assert status == 404 and "nothing is served" in body


def test_extra_nodes_have_no_pods(nlab: NetnsLab) -> None:
    nlab.serve(HNAME_VIP)
    with responder(nlab, "control-plane") as r:
        r.announce(HNAME_VIP)
        with pytest.raises(FetchError, match="refused"):
            nlab.fetch(HNAME_VIP)


def test_a_cut_link_silences_the_node_until_restored(nlab: NetnsLab) -> None:
    nlab.serve(HNAME_VIP)
    with responder(nlab, "node2") as node2:
        node2.announce(HNAME_VIP)
        assert answered_by(nlab, HNAME_VIP) == "node2"
        nlab.kill_link("node2")
        assert answered_by(nlab, HNAME_VIP) is None
        nlab.restore_link("node2")
        assert eventually(lambda: answered_by(nlab, HNAME_VIP), "node2") == "node2"
        # The node kept its addresses through the cut, IPv6 included.
        addresses = nlab.exec(nlab.node_ns("node2"), "ip", "-br", "addr", "show", "dev", "eth0")
        assert "198.51.100.2/24" in addresses and "2001:db8:100::2/64" in addresses


def test_the_prober_times_a_failover_at_its_interval(nlab: NetnsLab) -> None:
    nlab.serve(HNAME_VIP)
    with responder(nlab, "node2") as node2, responder(nlab, "node3") as node3:
        node2.announce(HNAME_VIP)
        with nlab.prober(HNAME_VIP, interval=0.01, timeout=0.5) as prober:
            assert prober.wait_for_answer("node2", timeout=5) is not None
            nlab.kill_link("node2")
            killed = time.monotonic()
            time.sleep(0.2)  # requests sent now are lost: the dead node's MAC is still in the client's cache
            node3.announce(HNAME_VIP)
            assert prober.wait_for_answer("node3", timeout=5) is not None

            def sent_while_lost(results: list[Probe]) -> list[Probe]:
                return [p for p in results if killed <= p.sent < killed + 0.15]

            # The requests sent into the dead node's MAC end with their 0.5 s timeout: wait for two of them.
            results = prober.wait_until(lambda done: len(sent_while_lost(done)) >= 2, timeout=10)
            prober.stop()
        first = prober.first_answer(killed, other_than="node2")
        assert first is not None and first.answer == "node3"
        assert first.received - killed >= 0.2, "nothing answered before node3 announced"
        lost = sent_while_lost(results)
        assert lost and all(p.error == "timeout" for p in lost), lost
        # Requests start every 10 ms whatever happens to earlier ones: several were sent while the first lost
        # one still waited for its 0.5 s timeout (one at a time, there would be a single one).
        assert len(lost) >= 2 and all(p.sent < lost[0].received for p in lost), lost


def test_close_removes_namespaces_processes_and_files_even_after_a_failure() -> None:
    lab = NetnsLab(nodes=["node1", "node2"], prefix="mlbclose")
    with pytest.raises(RuntimeError), lab:
        lab.serve(HNAME_VIP)
        lab.fetch(lab.node_address("node1"))  # starts the client helper too
        pids = [int(pid) for ns in namespaces() if ns.startswith(lab.name) for pid in _pids(ns)]
        assert len(pids) >= 3  # two echo servers and the client
        raise RuntimeError("the test failed")
    assert not [ns for ns in namespaces() if ns.startswith(lab.name)]
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid)
    lab.close()  # twice is fine


def test_cleanup_stale_removes_what_a_killed_run_left() -> None:
    script = textwrap.dedent(
        """
        import sys, time
        from metallb_py.testing import NetnsLab
        lab = NetnsLab(nodes=["node1"], prefix="mlbstale")
        lab.start()
        lab.serve("192.168.1.11")
        print(lab.name, flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            name = child.stdout.readline().strip()
        finally:
            os.kill(child.pid, signal.SIGKILL)  # no close(), no atexit: as if the test run was killed
    left = sorted(ns for ns in namespaces() if ns.startswith(name))
    assert left == [f"{name}-client", f"{name}-node1", f"{name}-switch"]
    assert sorted(cleanup_stale("mlbstale")) == left
    assert not [ns for ns in namespaces() if ns.startswith(name)]


def test_cleanup_stale_leaves_a_live_lab_alone(nlab: NetnsLab) -> None:
    assert cleanup_stale(nlab.prefix) == []
    assert nlab.client_ns in namespaces()


def _pids(ns: str) -> list[str]:
    return subprocess.run(
        ["ip", "netns", "pids", ns], capture_output=True, text=True, check=False
    ).stdout.split()


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_pinned_neighbours_carry_a_lab_past_the_kernels_shared_arp_table() -> None:
    # Every namespace shares one kernel ARP table whose dynamic entries stop at gc_thresh3: enough nodes that
    # all talk to each other need more entries than that, and without pinning the kernel drops packets.
    limit = int(
        json.loads(
            subprocess.run(
                ["ip", "-j", "ntable", "show", "name", "arp_cache"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )[0]["thresh3"]
    )
    count = math.isqrt(limit) + 2
    nodes = [f"node{i}" for i in range(1, count + 1)]
    with NetnsLab(nodes=nodes, prefix="mlbpin", pin_neighbours=True) as lab:
        node1 = json.loads(
            subprocess.run(
                ["ip", "-n", lab.node_ns("node1"), "-j", "neigh", "show", "dev", lab.node_interface("node1")],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        pinned = {row["dst"]: row["lladdr"] for row in node1 if "PERMANENT" in row.get("state", [])}
        assert pinned == {
            **{lab.node_address(n, 4): lab.node_mac(n) for n in nodes[1:]},
            lab.client_address(4): lab.client_mac(),
        }
        before = neighbour_table_fulls()
        senders = [
            subprocess.Popen(
                ["ip", "netns", "exec", lab.node_ns(n), sys.executable, "-c", _SEND_TO_ALL % addresses]
            )
            for n in nodes
            for addresses in [[lab.node_address(m, 4) for m in nodes if m != n]]
        ]
        assert [sender.wait(timeout=60) for sender in senders] == [0] * count
        assert neighbour_table_fulls() == before
        # Each datagram reached its node: every node's counter of UDP datagrams to a closed port grew by
        # one per other node.
        for n in nodes:
            assert _udp_no_ports(lab.node_ns(n)) >= count - 1, n


_SEND_TO_ALL = """
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for address in %r:
    s.sendto(b"x", (address, 9))
"""


def _udp_no_ports(ns: str) -> int:
    snmp = subprocess.run(
        ["ip", "netns", "exec", ns, "cat", "/proc/net/snmp"], capture_output=True, text=True, check=True
    ).stdout
    header, values = [line.split() for line in snmp.splitlines() if line.startswith("Udp:")][:2]
    return int(values[header.index("NoPorts")])
