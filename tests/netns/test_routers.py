"""The BGP lab without our speaker: real routing daemons (FRR, BIRD 2, GoBGP) in the router namespace and in
node namespaces standing in for speakers, checked through each daemon's own view, the router's kernel FIB,
and HTTP from the client behind the router.

A daemon whose binaries are missing skips its tests with the reason; with METALLB_PY_REQUIRE_NETNS=1 (CI) it
fails them instead. Root and iproute2 are required for every `netns` test (tests/conftest.py).
"""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from metallb_py.testing import (
    BgpLab,
    FetchError,
    FrrRouter,
    NextHop,
    Peering,
    RouterDaemon,
    cleanup_stale,
    missing_binaries,
)
from metallb_py.testing.routers import APT_PACKAGES, RouterKind

pytestmark = pytest.mark.netns

VIP4 = "192.168.1.11"
VIP6 = "2001:db8:1::11"
HOST4 = f"{VIP4}/32"
HOST6 = f"{VIP6}/128"
NODE_ASN = 64513
COMMUNITY = "65000:100"
LARGE = "large:64513:1:2"
STALE_PREFIX = "mlbbgpstale"


def need(*kinds: RouterKind) -> None:
    """Skips the test when a daemon it runs is not installed (fails it when CI requires every netns test)."""
    missing = {kind: missing_binaries(kind) for kind in kinds}
    absent = {kind: names for kind, names in missing.items() if names}
    if not absent:
        return
    message = "; ".join(
        f"{kind} needs {', '.join(names)} (apt-get install {APT_PACKAGES[kind]})"
        for kind, names in absent.items()
    )
    if os.environ.get("METALLB_PY_REQUIRE_NETNS") == "1":
        pytest.fail(f"METALLB_PY_REQUIRE_NETNS=1 but {message}")
    pytest.skip(message)


@pytest.fixture
def make_lab() -> Iterator[Callable[..., BgpLab]]:
    """Builds and starts BgpLabs; every one is closed at the end of the test, failed or not."""
    labs: list[BgpLab] = []

    def make(*nodes: str, router: RouterKind = "frr", peering: Peering | None = None) -> BgpLab:
        lab = BgpLab(nodes=nodes or ("node1",), router=router, peering=peering)
        labs.append(lab)
        lab.start()
        return lab

    yield make
    for lab in labs:
        lab.close()


def legs(fib: dict[str, list[NextHop]], prefix: str) -> set[str | None]:
    return {hop.gateway for hop in fib.get(prefix, [])}


def node_v6_hops(bgp: BgpLab, node: str) -> set[str]:
    """The addresses a router may use as the IPv6 next hop towards `node`: global or link-local."""
    return {bgp.lab.node_address(node, 6), bgp.lab.node_link_local(node)}


def answer(bgp: BgpLab, vip: str) -> str:
    status, body = bgp.lab.fetch(vip, timeout=2.0)
    assert status == 200, body
    return body.strip()


@pytest.mark.parametrize(
    ("router", "originator"),
    [("frr", "bird"), ("bird", "gobgp"), ("gobgp", "frr")],
    ids=["frr-router-bird-node", "bird-router-gobgp-node", "gobgp-router-frr-node"],
)
def test_a_node_announces_its_vips_and_the_client_reaches_them_through_the_router(
    make_lab: Callable[..., BgpLab], router: RouterKind, originator: RouterKind
) -> None:
    need(router, originator)
    bgp = make_lab("node1", router=router)
    bgp.lab.serve(VIP4)
    bgp.lab.serve(VIP6)
    # The router knows no VIP until a node announces it: the client has no way there yet.
    with pytest.raises(FetchError):
        bgp.lab.fetch(VIP4, timeout=0.5)

    node = bgp.originator(
        "node1", [VIP4, VIP6], kind=originator, communities=[COMMUNITY], large_communities=[LARGE]
    )
    node4, node6 = bgp.lab.node_address("node1", 4), bgp.lab.node_address("node1", 6)
    # The session, seen from both ends.
    assert bgp.router.wait_established(node4).remote_asn == NODE_ASN
    assert node.wait_established(bgp.lab.router_address(4)).remote_asn == bgp.peering.router_asn

    # A path shows before the best-path run that selects it (FRR queues that work): wait for the choice.
    rib4 = bgp.router.wait_routes(lambda rib: any(p.best for p in rib.get(HOST4, [])))
    (path,) = rib4[HOST4]
    assert (path.next_hop, path.peer, path.as_path, path.best) == (node4, node4, (NODE_ASN,), True)
    assert (path.communities, path.large_communities) == ((COMMUNITY,), (LARGE,))
    rib6 = bgp.router.wait_routes(lambda rib: HOST6 in rib, family=6)
    (path6,) = rib6[HOST6]
    assert (path6.next_hop, path6.as_path, path6.communities) == (node6, (NODE_ASN,), (COMMUNITY,))
    assert bgp.router.wait_neighbors(lambda n: n[node4].prefixes_received == 2)[node4].established

    if router == "gobgp":
        # GoBGP keeps routes in its own table only: nothing reaches the kernel, so nothing is forwarded.
        assert HOST4 not in bgp.router.fib(4)
        with pytest.raises(FetchError):
            bgp.lab.fetch(VIP4, timeout=0.5)
        return
    assert legs(bgp.router.wait_fib(lambda fib: HOST4 in fib), HOST4) == {node4}
    assert legs(bgp.router.wait_fib(lambda fib: HOST6 in fib, family=6), HOST6) <= node_v6_hops(bgp, "node1")
    assert answer(bgp, VIP4) == "node1"
    assert answer(bgp, VIP6) == "node1"


@pytest.mark.parametrize("router", ["frr", "bird"])
def test_ecmp_over_two_nodes_and_a_killed_node_leaves_the_fib(
    make_lab: Callable[..., BgpLab], router: RouterKind
) -> None:
    need(router, "bird")
    # Different ASes: FRR combines them only with multipath-relax, which the lab router turns on.
    bgp = make_lab(
        "node1", "node2", router=router, peering=Peering(node_asn={"node1": 64513, "node2": 64514})
    )
    bgp.lab.serve(VIP4)
    nodes = {n: bgp.originator(n, [VIP4, VIP6]) for n in ("node1", "node2")}
    both4 = {bgp.lab.node_address(n, 4) for n in nodes}
    assert legs(bgp.router.wait_fib(lambda fib: len(fib.get(HOST4, [])) == 2), HOST4) == both4
    fib6 = bgp.router.wait_fib(lambda fib: len(fib.get(HOST6, [])) == 2, family=6)
    assert all(len(legs(fib6, HOST6) & node_v6_hops(bgp, n)) == 1 for n in nodes)
    rib = bgp.router.routes(4)
    assert {p.peer for p in rib[HOST4]} == both4 and sum(p.best for p in rib[HOST4]) == 1

    # New connections hash over both legs (layer 4 hashing): the client meets both nodes.
    seen: set[str] = set()
    for _ in range(64):
        seen.add(answer(bgp, VIP4))
        if len(seen) == 2:
            break
    assert seen == {"node1", "node2"}

    # A crash, as a speaker's SIGKILL: TCP closes, the router drops that leg at once (no graceful restart).
    nodes["node1"].kill()
    node2 = bgp.lab.node_address("node2", 4)
    assert legs(bgp.router.wait_fib(lambda fib: legs(fib, HOST4) == {node2}), HOST4) == {node2}
    assert not bgp.router.neighbors()[bgp.lab.node_address("node1", 4)].established
    assert {answer(bgp, VIP4) for _ in range(8)} == {"node2"}


@pytest.mark.parametrize("originator", ["bird", "gobgp", "frr"])
def test_md5_between_frr_and_a_node(make_lab: Callable[..., BgpLab], originator: RouterKind) -> None:
    need("frr", originator)
    bgp = make_lab("node1", "node2", router="frr", peering=Peering(password="lab-secret"))
    bgp.originator("node1", [VIP4], kind=originator)
    wrong = bgp.originator("node2", [VIP4], kind=originator, peering=Peering(password="not-the-secret"))
    node1, node2 = (bgp.lab.node_address(n, 4) for n in ("node1", "node2"))
    bgp.router.wait_established(node1)
    assert legs(bgp.router.wait_fib(lambda fib: HOST4 in fib), HOST4) == {node1}
    # The wrong key: whichever end receives a segment signed with it drops it, and counts it.
    ends = (bgp.lab.router_ns, bgp.lab.node_ns("node2"))
    bgp.router.wait_neighbors(lambda _: sum(md5_failures(ns) for ns in ends) > 0)
    assert not bgp.router.neighbors()[node2].established
    assert not wrong.neighbors()[bgp.lab.router_address(4)].established
    assert {p.peer for p in bgp.router.routes(4)[HOST4]} == {node1}


def md5_failures(netns: str) -> int:
    """TcpExt TCPMD5Failure of a namespace: segments whose MD5 signature did not match the key."""
    lines = subprocess.run(
        ["ip", "netns", "exec", netns, "cat", "/proc/net/netstat"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True)).get("TCPMD5Failure", 0))
    raise AssertionError("no TcpExt counters in /proc/net/netstat")


def test_a_cut_cable_ends_the_session_after_the_hold_time(make_lab: Callable[..., BgpLab]) -> None:
    need("frr", "bird")
    bgp = make_lab("node1", "node2", router="frr", peering=Peering(hold_time=3, keepalive_time=1))
    for node in ("node1", "node2"):
        bgp.originator(node, [VIP4])
    node1, node2 = (bgp.lab.node_address(n, 4) for n in ("node1", "node2"))
    bgp.router.wait_fib(lambda fib: legs(fib, HOST4) == {node1, node2})
    assert bgp.router.neighbors()[node1].established

    # No FIN, no RST, no carrier loss on the router's side: only the hold timer can tell.
    bgp.lab.kill_link("node1")
    assert legs(bgp.router.wait_fib(lambda fib: legs(fib, HOST4) == {node2}), HOST4) == {node2}
    assert not bgp.router.neighbors()[node1].established

    bgp.lab.restore_link("node1")
    bgp.router.wait_established(node1, timeout=20)
    assert legs(bgp.router.wait_fib(lambda fib: len(fib.get(HOST4, [])) == 2), HOST4) == {node1, node2}


def test_bfd_comes_up_beside_the_session_when_asked(make_lab: Callable[..., BgpLab]) -> None:
    need("frr", "bird")
    bgp = make_lab("node1", router="frr", peering=Peering(bfd=True))
    assert isinstance(bgp.router, FrrRouter) and "bfdd" in bgp.router.daemons
    node = bgp.originator("node1", [VIP4])
    node1 = bgp.lab.node_address("node1", 4)
    bgp.router.wait_established(node1)
    view = bgp.router.wait_bfd(node1)
    # Peering(bfd=True) is MetalLB's default profile on both ends.
    assert (view.multihop, view.interface, view.local_address) == (False, "eth0", bgp.lab.router_address(4))
    assert (view.receive_interval_ms, view.transmit_interval_ms, view.detect_multiplier) == (300, 300, 3)
    assert (view.remote_receive_interval_ms, view.remote_transmit_interval_ms) == (300, 300)
    assert node.wait_bfd(bgp.lab.router_address(4)).multihop is False


def test_ibgp_carries_local_preference(make_lab: Callable[..., BgpLab]) -> None:
    need("frr", "bird")
    bgp = make_lab("node1", router="frr", peering=Peering(router_asn=64512, node_asn=64512))
    bgp.originator("node1", [VIP4, VIP6], local_pref=250, communities=[COMMUNITY])
    (path,) = bgp.router.wait_routes(lambda rib: HOST4 in rib)[HOST4]
    assert (path.local_pref, path.as_path, path.communities) == (250, (), (COMMUNITY,))
    (path6,) = bgp.router.wait_routes(lambda rib: HOST6 in rib, family=6)[HOST6]
    assert path6.local_pref == 250


def test_ebgp_multihop_to_the_routers_far_address(make_lab: Callable[..., BgpLab]) -> None:
    need("frr", "bird")
    bgp = make_lab("node1", router="frr", peering=Peering(multihop_ttl=2))
    bgp.lab.serve(VIP4)
    node = bgp.originator("node1", [VIP4])
    far = bgp.lab.router_client_side_address(4)
    assert ipaddress.ip_address(far) not in ipaddress.ip_network(bgp.lab.node_network(4))
    node.wait_established(far)
    node4 = bgp.lab.node_address("node1", 4)
    assert legs(bgp.router.wait_fib(lambda fib: HOST4 in fib), HOST4) == {node4}
    assert answer(bgp, VIP4) == "node1"


@pytest.mark.parametrize("router", ["frr", "bird", "gobgp"])
def test_dynamic_neighbors_from_a_listen_range(make_lab: Callable[..., BgpLab], router: RouterKind) -> None:
    need(router, "bird")
    bgp = make_lab("node1", "node2", router=router, peering=Peering(dynamic=True))
    assert bgp.router.neighbors() == {}  # nobody configured, nobody connected yet
    for node in ("node1", "node2"):
        bgp.originator(node, [VIP4])
    bgp.wait_sessions()
    addresses = {bgp.lab.node_address(n, 4) for n in ("node1", "node2")}
    assert set(bgp.router.neighbors()) == addresses
    rib = bgp.router.wait_routes(lambda rib: len(rib.get(HOST4, [])) == 2)
    assert {p.peer for p in rib[HOST4]} == addresses


def test_an_ipv6_session_carries_ipv4_prefixes_too(make_lab: Callable[..., BgpLab]) -> None:
    need("frr", "bird")
    bgp = make_lab("node1", router="frr", peering=Peering(session_families=(6,)))
    bgp.lab.serve(VIP4)
    bgp.originator("node1", [VIP4, VIP6])
    node6 = bgp.lab.node_address("node1", 6)
    bgp.router.wait_established(node6)
    assert set(bgp.router.neighbors()) == {node6}
    (path,) = bgp.router.wait_routes(lambda rib: HOST4 in rib)[HOST4]
    assert (path.peer, path.next_hop) == (node6, bgp.lab.node_address("node1", 4))
    assert bgp.router.wait_routes(lambda rib: HOST6 in rib, family=6)[HOST6][0].peer == node6
    bgp.router.wait_fib(lambda fib: HOST4 in fib)
    assert answer(bgp, VIP4) == "node1"


@pytest.mark.parametrize(("router", "originator"), [("frr", "bird"), ("bird", "frr")])
def test_a_node_with_the_wrong_as_is_refused(
    make_lab: Callable[..., BgpLab], router: RouterKind, originator: RouterKind
) -> None:
    need(router, originator)
    bgp = make_lab("node1", router=router)
    # The node believes the router is AS 64999: it refuses the router's OPEN with a NOTIFICATION (Bad Peer
    # AS), which the router reports as the session's last error.
    node = bgp.originator("node1", [VIP4], kind=originator, peering=Peering(router_asn=64999))
    node1 = bgp.lab.node_address("node1", 4)
    seen = bgp.router.wait_neighbors(lambda n: "bad peer as" in (n[node1].last_error or "").lower())
    assert not seen[node1].established
    assert not node.neighbors()[bgp.lab.router_address(4)].established
    if originator == "bird":  # BIRD also names the error it sent (FRR records only those it receives)
        assert "bad peer as" in (node.neighbors()[bgp.lab.router_address(4)].last_error or "").lower()
    assert bgp.router.routes(4) == {}


@pytest.mark.parametrize("originator", ["bird", "frr"])
def test_an_originator_loads_thousands_of_prefixes(
    make_lab: Callable[..., BgpLab], originator: RouterKind
) -> None:
    need("frr", originator)
    bgp = make_lab("node1", router="frr")
    base = ipaddress.ip_network("2001:db8:1000::/116")  # 4096 host routes, all documentation addresses
    prefixes = [f"{base[i]}/128" for i in range(1, 3001)]
    bgp.originator("node1", prefixes, kind=originator, communities=[COMMUNITY])
    assert bgp.router.wait_rib_size(3000, family=6, timeout=60) == 3000
    fib = bgp.router.wait_fib(lambda f: sum(p in f for p in prefixes) == 3000, family=6, timeout=60)
    assert legs(fib, prefixes[-1]) <= node_v6_hops(bgp, "node1")
    rib = bgp.router.routes(6)
    assert all(rib[p][0].communities == (COMMUNITY,) for p in prefixes)


def test_close_leaves_no_namespace_process_or_file(make_lab: Callable[..., BgpLab]) -> None:
    need("frr", "bird", "gobgp")
    bgp = make_lab("node1", "node2", router="frr")
    daemons: list[RouterDaemon] = [
        bgp.router,
        bgp.originator("node1", [VIP4], kind="bird"),
        bgp.originator("node2", [VIP4], kind="gobgp"),
    ]
    bgp.router.wait_routes(lambda rib: len(rib.get(HOST4, [])) == 2)
    pids = [pid for d in daemons for pid in d.pids]
    dirs = [d.state_dir for d in daemons]
    assert all(Path(f"/proc/{pid}").exists() for pid in pids) and all(d.is_dir() for d in dirs)
    bgp.close()
    assert not [ns for ns in namespaces() if ns.startswith(bgp.lab.name)]
    assert [pid for pid in pids if alive(pid)] == []
    assert [d for d in dirs if d.exists()] == []
    assert not [p for p in Path("/var/tmp/frr").glob("*") if p.name.split(".")[-1] in map(str, pids)]
    bgp.close()  # twice is fine


def test_cleanup_stale_removes_the_daemons_of_a_killed_run() -> None:
    need("frr", "bird")
    script = textwrap.dedent(
        f"""
        import time
        from metallb_py.testing import BgpLab
        bgp = BgpLab(nodes=["node1"], router="frr", prefix={STALE_PREFIX!r})
        bgp.start()
        node = bgp.originator("node1", ["192.168.1.11"])
        print(bgp.lab.name, *bgp.router.pids, flush=True)
        print(*node.pids, flush=True)
        print(bgp.router.state_dir, node.state_dir, flush=True)
        time.sleep(60)
        """
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as child:
        try:
            assert child.stdout is not None
            name, *frr_pids = child.stdout.readline().split()
            bird_pids = child.stdout.readline().split()
            dirs = [Path(d) for d in child.stdout.readline().split()]
        finally:
            os.kill(child.pid, signal.SIGKILL)  # no close(), no atexit: as if the test run was killed
    pids = [int(p) for p in (*frr_pids, *bird_pids)]
    # BIRD dies with its parent (PR_SET_PDEATHSIG), but zebra and bgpd drop that signal as they switch to
    # the frr user: they outlive the run, and only a clean-up ends them.
    assert len(frr_pids) == 2 and all(alive(int(pid)) for pid in frr_pids)
    removed = cleanup_stale(STALE_PREFIX)
    assert sorted(removed) == sorted(f"{name}-{role}" for role in ("client", "node1", "router", "switch"))
    assert [pid for pid in pids if alive(pid)] == []
    assert [d for d in dirs if d.exists()] == []


def namespaces() -> list[str]:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout.split()


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False
