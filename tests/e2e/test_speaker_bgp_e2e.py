"""The speaker in BGP mode end to end: a LabCluster whose client sits behind a real FRR router that peers with
every node's speaker, so the client reaches a Service only through the routes our speakers advertise.

One cluster (control plane, node1-3 plus an excluded control-plane node, controller, four speakers, FRR in
the router namespace) serves the module; each test leaves every speaker and link as it found them. What the
network sees is read from FRR itself (`show bgp ... json`, its neighbors) and from the router namespace's
kernel FIB; what the cluster says through the API (ServiceBGPStatus, Events) and the speakers' metrics.
Deadlines in waits only stop a hang: convergence figures are benches/test_bench_bgp.py's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

import pytest

from metallb_py.k8s.resources import EVENTS, SERVICE_BGP_STATUSES, SERVICES
from metallb_py.testing import FetchError, LabCluster
from metallb_py.testing.bgplab import DEFAULT_NODE_ASN, DEFAULT_ROUTER_ASN, Peering
from metallb_py.testing.routers import NextHop

NS = "metallb-system"
WAIT = 60.0
WORKERS = ("node1", "node2", "node3")
CONTROL_PLANE = "control-plane"
VIP_HNAME, VIP_IP = "192.168.1.11", "192.168.1.12"
ROUTER = "198.51.100.254"
ROUTER_V6 = "2001:db8:100::254"
PEER_LABEL = f"{ROUTER}:179"

CONFIG = f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: nginx-ip-range, namespace: {NS}}}
spec: {{addresses: [192.168.1.11-192.168.1.13]}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: tor, namespace: {NS}}}
spec:
  myASN: {DEFAULT_NODE_ASN}
  peerASN: {DEFAULT_ROUTER_ASN}
  peerAddress: {ROUTER}
  holdTime: 3s
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {{name: aliases, namespace: {NS}}}
spec:
  communities:
  - {{name: edge, value: "64513:100"}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: seed, namespace: {NS}}}
spec:
  ipAddressPools: [nginx-ip-range]
  communities: [edge]
"""


@pytest.fixture(scope="module")
def cluster(kubernetes_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    logs = tmp_path_factory.mktemp("e2e-bgp-logs")
    # The router also has a neighbor on each node's IPv6 address: the wrong-ASN test's peer.
    peering = Peering(session_families=(4, 6))
    with LabCluster(
        WORKERS,
        CONTROL_PLANE,
        prefix="mlbbgpe",
        log_dir=logs,
        router="frr",
        peering=peering,
        service_cluster_ip_range="10.96.0.0/16,2001:db8:96::/112",  # dual-stack: the IPv6 test's Service
    ) as the_cluster:
        the_cluster.kubectl("apply", "-f", "-", stdin=CONFIG)
        yield the_cluster
        # The control-plane node peers (no nodeSelectors) but is excluded from load balancers: it never
        # advertised anything, and no ServiceBGPStatus names it.
        metrics = the_cluster.speaker_metrics(CONTROL_PLANE)
        assert metrics is not None
        assert metrics.series("metallb_speaker_announced") == []
        assert statuses(the_cluster, CONTROL_PLANE) == {}


@pytest.fixture(scope="module")
def seed(cluster: LabCluster) -> dict[str, str]:
    """The seed's kubectl steps, in BGP mode: two deployments exposed as LoadBalancer Services."""
    k = cluster.kubectl
    k("create", "deployment", "lb-hname-pods", "--image=sysnet4admin/echo-hname")
    k("create", "deployment", "lb-ip-pods", "--image=sysnet4admin/echo-ip")
    k("expose", "deployment", "lb-hname-pods", "--type=LoadBalancer", "--name=lb-hname-svc", "--port=80")
    k("expose", "deployment", "lb-ip-pods", "--type=LoadBalancer", "--name=lb-ip-svc", "--port=80")
    vips = {}
    kinds: tuple[tuple[str, Literal["hname", "ip"]], ...] = (("lb-hname-svc", "hname"), ("lb-ip-svc", "ip"))
    for svc, kind in kinds:
        cluster.publish_endpoints("default", svc)
        vips[svc] = cluster.wait_for(lambda s=svc: cluster.external_ips("default", s), WAIT, svc)[0]  # type: ignore[misc]
        cluster.lab.serve(vips[svc], kind)
    return vips


def next_hops(cluster: LabCluster, prefix: str) -> set[str]:
    """The gateways of `prefix` in the router's kernel FIB (ECMP: one per advertising node)."""
    hops: list[NextHop] = cluster.router.fib(4 if ":" not in prefix else 6).get(prefix, [])
    return {h.gateway for h in hops if h.gateway}


def wait_next_hops(cluster: LabCluster, prefix: str, nodes: tuple[str, ...]) -> None:
    wanted = {cluster.lab.node_address(n) for n in nodes}
    try:
        cluster.wait_for(lambda: next_hops(cluster, prefix) == wanted, WAIT, f"{prefix} via {sorted(nodes)}")
    except Exception as exc:
        family = 6 if ":" in prefix else 4
        router = cluster.router
        raise AssertionError(
            f"{exc}\nrouter BGP paths: {router.routes(family).get(prefix)}\n"
            f"router FIB: {router.fib(family).get(prefix)}\nneighbors: {router.neighbors()}\n"
            f"router log:\n{router.logs(60)}"
        ) from exc


def statuses(cluster: LabCluster, node: str) -> dict[str, list[str]]:
    """Service -> peers, from the ServiceBGPStatus objects naming `node`."""
    found = {}
    for obj in cluster.client.list(SERVICE_BGP_STATUSES, NS).items:
        status = obj.get("status") or {}
        if status.get("node") == node:
            found[f"{status['serviceNamespace']}/{status['serviceName']}"] = list(status.get("peers") or [])
    return found


def answers(cluster: LabCluster, vip: str) -> str | None:
    try:
        status, text = cluster.lab.fetch(vip, 80, timeout=0.5)
    except FetchError:
        return None
    return text.strip() if status == 200 else None


def opens_sent(cluster: LabCluster, node: str) -> float | None:
    scrape = cluster.speaker_metrics(node)
    return scrape.value("metallb_bgp_opens_sent", {"peer": PEER_LABEL}) if scrape else None


def test_the_seed_services_reach_the_client_through_the_router_over_every_node(
    cluster: LabCluster, seed: dict[str, str]
) -> None:
    assert seed == {"lb-hname-svc": VIP_HNAME, "lb-ip-svc": VIP_IP}
    for vip in (VIP_HNAME, VIP_IP):
        wait_next_hops(cluster, f"{vip}/32", WORKERS)  # ECMP over the three workers
    # FRR's own view: the path from each node carries the community, eBGP from the nodes' AS.
    paths = cluster.router.routes(4)[f"{VIP_HNAME}/32"]
    assert {p.next_hop for p in paths} == {cluster.lab.node_address(n) for n in WORKERS}
    assert all("64513:100" in p.communities for p in paths), paths
    assert all(p.as_path == (DEFAULT_NODE_ASN,) for p in paths), paths
    # The client, through the router: some worker answers each VIP.
    assert cluster.wait_for(lambda: answers(cluster, VIP_HNAME), WAIT, VIP_HNAME) in WORKERS
    assert "ip_dest" in str(cluster.wait_for(lambda: answers(cluster, VIP_IP), WAIT, VIP_IP))
    # What the cluster says: a ServiceBGPStatus per worker and Service, naming the peer; the metrics.
    for node in WORKERS:
        cluster.wait_for(
            lambda n=node: (
                statuses(cluster, n)  # type: ignore[misc]
                == {"default/lb-hname-svc": ["tor"], "default/lb-ip-svc": ["tor"]}
            ),
            WAIT,
            f"the ServiceBGPStatus objects of {node}",
        )
        scrape = cluster.speaker_metrics(node)
        assert scrape is not None
        assert scrape.value("metallb_bgp_session_up", {"peer": PEER_LABEL}) == 1
        assert scrape.value("metallb_bgp_announced_prefixes_total", {"peer": PEER_LABEL}) == 2
        assert (scrape.value("metallb_bgp_updates_total", {"peer": PEER_LABEL}) or 0) >= 1


def test_a_community_added_by_a_config_edit_reaches_the_router_without_a_session_reset(
    cluster: LabCluster, seed: dict[str, str]
) -> None:
    wait_next_hops(cluster, f"{VIP_HNAME}/32", WORKERS)
    before = {n: opens_sent(cluster, n) for n in WORKERS}
    uptimes = {a: v.uptime_s for a, v in cluster.router.neighbors().items() if v.established}
    patch = '{"spec": {"communities": ["edge", "large:64513:7:9"]}}'
    cluster.kubectl("patch", "bgpadvertisements.metallb.io", "seed", "-n", NS, "--type=merge", "-p", patch)
    try:
        cluster.router.wait_routes(
            lambda routes: (
                all("large:64513:7:9" in p.large_communities for p in routes.get(f"{VIP_HNAME}/32", []))
                and len(routes.get(f"{VIP_HNAME}/32", [])) == len(WORKERS)
            ),
            timeout=WAIT,
        )
        # No session was reset: no speaker sent another OPEN, and FRR's uptimes only grew.
        assert {n: opens_sent(cluster, n) for n in WORKERS} == before
        after = cluster.router.neighbors()
        for address, uptime in uptimes.items():
            assert after[address].established and (after[address].uptime_s or 0) >= (uptime or 0), address
    finally:
        back = '{"spec": {"communities": ["edge"]}}'
        cluster.kubectl("patch", "bgpadvertisements.metallb.io", "seed", "-n", NS, "--type=merge", "-p", back)


def test_a_killed_speaker_s_path_is_dropped_when_its_tcp_connection_closes(
    cluster: LabCluster, seed: dict[str, str]
) -> None:
    wait_next_hops(cluster, f"{VIP_HNAME}/32", WORKERS)
    cluster.kill_speaker("node3")
    try:
        wait_next_hops(cluster, f"{VIP_HNAME}/32", ("node1", "node2"))
        assert cluster.wait_for(lambda: answers(cluster, VIP_HNAME), WAIT, VIP_HNAME) in ("node1", "node2")
    finally:
        cluster.start_speaker("node3")
        cluster.wait_for_speakers(["node3"])
    wait_next_hops(cluster, f"{VIP_HNAME}/32", WORKERS)


def test_a_cut_cable_drops_the_node_s_path_when_the_hold_time_runs_out(
    cluster: LabCluster, seed: dict[str, str]
) -> None:
    wait_next_hops(cluster, f"{VIP_IP}/32", WORKERS)
    cluster.lab.kill_link("node2")
    try:
        # Nothing closes the TCP connection: FRR's 3 s hold timer (negotiated from holdTime) ends it.
        wait_next_hops(cluster, f"{VIP_IP}/32", ("node1", "node3"))
    finally:
        cluster.lab.restore_link("node2")
    wait_next_hops(cluster, f"{VIP_IP}/32", WORKERS)


def test_a_peer_with_the_wrong_asn_is_reported_and_disturbs_nothing_else(
    cluster: LabCluster, seed: dict[str, str]
) -> None:
    wait_next_hops(cluster, f"{VIP_HNAME}/32", WORKERS)
    before = opens_sent(cluster, "node1")
    wrong = f"""
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: wrong-asn, namespace: {NS}}}
spec: {{myASN: {DEFAULT_NODE_ASN}, peerASN: 65000, peerAddress: "{ROUTER_V6}"}}
"""
    cluster.kubectl("apply", "-f", "-", stdin=wrong)
    try:

        def refused() -> bool:
            scrape = cluster.speaker_metrics("node1")
            label = {"peer": f"{ROUTER_V6}:179"}
            return scrape is not None and (scrape.value("metallb_bgp_notifications_sent", label) or 0) >= 1

        cluster.wait_for(refused, WAIT, "node1 to refuse the router's OPEN (bad peer AS)")

        def about_the_peer() -> list[dict[str, Any]]:
            events = [
                e
                for e in cluster.client.list(EVENTS, NS).items
                if e["involvedObject"].get("name") == "wrong-asn" and e.get("reportingInstance") == "node1"
            ]
            return events if any("peer AS" in e["message"] for e in events) else []

        # Events are sent by a queue, after the fact (the metric is set at once).
        events = cluster.wait_for(
            about_the_peer, WAIT, "an Event from node1 on BGPPeer wrong-asn naming the AS"
        )
        assert events and all(e["type"] == "Warning" for e in events), events
        assert any("peer AS" in e["message"] for e in events), [e["message"] for e in events]
        scrape = cluster.speaker_metrics("node1")
        assert scrape is not None
        assert scrape.value("metallb_bgp_session_up", {"peer": f"{ROUTER_V6}:179"}) == 0
        # The good session never moved.
        assert scrape.value("metallb_bgp_session_up", {"peer": PEER_LABEL}) == 1
        assert opens_sent(cluster, "node1") == before
        assert next_hops(cluster, f"{VIP_HNAME}/32") == {cluster.lab.node_address(n) for n in WORKERS}
    finally:
        cluster.kubectl("delete", "bgppeers.metallb.io", "wrong-asn", "-n", NS)


V6_CONFIG = f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: v6, namespace: {NS}}}
spec: {{addresses: [2001:db8:1::100/120]}}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: tor6, namespace: {NS}}}
spec: {{myASN: {DEFAULT_NODE_ASN}, peerASN: {DEFAULT_ROUTER_ASN}, peerAddress: "{ROUTER_V6}"}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: v6, namespace: {NS}}}
spec: {{ipAddressPools: [v6], peers: [tor6], communities: ["large:64513:6:6"]}}
"""


def lb_service(cluster: LabCluster, namespace: str, name: str, nodes: tuple[str, ...], **spec: object) -> str:
    """A LoadBalancer Service with endpoints on `nodes`; its first address."""
    family = 6 if spec.get("ipFamilies") == ["IPv6"] else 4
    annotations = spec.pop("annotations", {})
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}], **spec},
    }
    cluster.client.create(SERVICES, manifest, namespace)
    cluster.publish_endpoints(namespace, name, nodes, family=family)
    return cluster.wait_for(lambda: cluster.external_ips(namespace, name), WAIT, f"an address for {name}")[0]


def test_local_traffic_policy_is_advertised_only_from_nodes_with_a_local_endpoint(
    cluster: LabCluster, seed: dict[str, str]
) -> None:
    vip = lb_service(cluster, "default", "local", ("node2",), externalTrafficPolicy="Local")
    cluster.lab.serve(vip, "hname")
    try:
        wait_next_hops(cluster, f"{vip}/32", ("node2",))
        assert cluster.wait_for(lambda: answers(cluster, vip), WAIT, vip) == "node2"
        # The endpoint moves: so does the route.
        cluster.publish_endpoints("default", "local", ["node1", "node3"])
        wait_next_hops(cluster, f"{vip}/32", ("node1", "node3"))
    finally:
        cluster.client.delete(SERVICES, "local", "default")
    cluster.wait_for(lambda: not next_hops(cluster, f"{vip}/32"), WAIT, f"{vip} withdrawn")


def test_an_ipv6_service_reaches_the_client_over_an_ipv6_session(
    cluster: LabCluster, seed: dict[str, str]
) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=V6_CONFIG)
    vip = lb_service(cluster, "default", "web6", WORKERS, ipFamilies=["IPv6"], ipFamilyPolicy="SingleStack")
    cluster.lab.serve(vip, "hname")
    try:
        prefix = f"{vip}/128"
        # MP_REACH over the IPv6 sessions; the next hops are the nodes' IPv6 addresses.
        wanted = {cluster.lab.node_address(n, 6) for n in WORKERS}
        cluster.wait_for(lambda: next_hops(cluster, prefix) == wanted, WAIT, f"{prefix} via every worker")
        paths = cluster.router.routes(6)[prefix]
        assert all("large:64513:6:6" in p.large_communities for p in paths), paths
        assert cluster.wait_for(lambda: answers(cluster, vip), WAIT, vip) in WORKERS
        # The IPv4 routes did not move to the IPv6 sessions, nor the IPv6 ones to the IPv4 sessions.
        assert f"{VIP_HNAME}/32" not in cluster.router.routes(6)
        assert prefix not in cluster.router.routes(4)
    finally:
        cluster.client.delete(SERVICES, "web6", "default")
        for kind, name in (("bgpadvertisements", "v6"), ("bgppeers", "tor6"), ("ipaddresspools", "v6")):
            cluster.kubectl("delete", f"{kind}.metallb.io", name, "-n", NS)


AGGREGATED = f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: agg, namespace: {NS}}}
spec: {{addresses: [192.168.1.64/27], autoAssign: false}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: agg, namespace: {NS}}}
spec: {{ipAddressPools: [agg], aggregationLength: 27}}
"""


def test_an_aggregated_advertisement_sends_the_aggregate_not_the_host_route(
    cluster: LabCluster, seed: dict[str, str]
) -> None:
    cluster.kubectl("apply", "-f", "-", stdin=AGGREGATED)
    try:
        vip = lb_service(
            cluster,
            "default",
            "agg",
            WORKERS,
            annotations={"metallb.io/address-pool": "agg"},
        )
        cluster.lab.serve(vip, "hname")
        wait_next_hops(cluster, "192.168.1.64/27", WORKERS)
        assert f"{vip}/32" not in cluster.router.routes(4)
        assert cluster.wait_for(lambda: answers(cluster, vip), WAIT, vip) in WORKERS
    finally:
        cluster.client.delete(SERVICES, "agg", "default")
        for kind, name in (("bgpadvertisements", "agg"), ("ipaddresspools", "agg")):
            cluster.kubectl("delete", f"{kind}.metallb.io", name, "-n", NS)
    cluster.wait_for(lambda: not next_hops(cluster, "192.168.1.64/27"), WAIT, "the aggregate withdrawn")
