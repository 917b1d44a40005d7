"""MetalLB's newer layer 2 fields end to end, on a LabCluster: preferredNodeSelectors and serviceSelectors.

One cluster (control plane, node1-3 plus the excluded control-plane node, controller, speakers) serves the
module. What a client sees is asked with iputils-arping from the lab's client namespace (which MACs answer a
VIP); what the cluster says, through the ServiceL2Status objects, found by MetalLB's labels. Every step
waits on a condition; the deadline only stops a hang.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from metallb_py.k8s.resources import NODES, SERVICE_L2_STATUSES, SERVICES
from metallb_py.speaker.status import L2_STATUS_NODE_LABEL, service_selector, status_node
from metallb_py.testing import LabCluster

NS = "metallb-system"
WAIT = 60.0
WORKERS = ("node1", "node2", "node3")
PREFERRED = "example.com/l2-preferred"  # the Node label the preference selects
TIER = "example.com/tier"  # the Service label the serviceSelectors select
PREF_VIP = "192.168.1.70"
ARPING_REPLY = re.compile(r"reply from (\S+) \[([0-9A-Fa-f:]{17})\]")

CONFIG = f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: preferred, namespace: {NS}}}
spec:
  addresses: [192.168.1.64/28]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: preferred, namespace: {NS}}}
spec:
  ipAddressPools: [preferred]
  preferredNodeSelectors:
  - weight: 50
    preference:
      matchLabels: {{{PREFERRED}: "yes"}}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: selected, namespace: {NS}}}
spec:
  addresses: [192.168.1.80/28]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: front-only, namespace: {NS}}}
spec:
  ipAddressPools: [selected]
  serviceSelectors:
  - matchLabels: {{{TIER}: front}}
"""


@pytest.fixture(scope="module")
def cluster(kubernetes_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    logs = tmp_path_factory.mktemp("l2-parity-logs")
    with LabCluster(WORKERS, "control-plane", prefix="mlbl2p", log_dir=logs) as the_cluster:
        the_cluster.kubectl("apply", "-f", "-", stdin=CONFIG)
        # The API server keeps the new fields only if the CRDs declare them (it prunes unknown ones).
        ad = the_cluster.kubectl("get", "l2advertisements", "-n", NS, "preferred", "-o", "yaml")
        assert PREFERRED in ad, ad
        yield the_cluster


def arping(cluster: LabCluster, vip: str) -> list[str]:
    """The MACs that answer one ARP request for `vip` from the client (iputils-arping), sorted."""
    done = subprocess.run(
        [
            *("ip", "netns", "exec", cluster.lab.client_ns),
            *("arping", "-c", "1", "-w", "1", "-I", cluster.lab.client_interface, vip),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return sorted(mac.lower() for addr, mac in ARPING_REPLY.findall(done.stdout) if addr == vip)


def answered_only_by(cluster: LabCluster, vip: str, node: str) -> bool:
    return arping(cluster, vip) == [cluster.lab.node_mac(node)]


def statuses(cluster: LabCluster, namespace: str, name: str) -> list[dict[str, Any]]:
    """The Service's ServiceL2Status objects, as a MetalLB user lists them (by its labels)."""
    selector = service_selector(f"{namespace}/{name}")
    return cluster.client.list(SERVICE_L2_STATUSES, NS, label_selector=selector).items


def label_node(cluster: LabCluster, node: str, value: str | None) -> None:
    cluster.client.patch(NODES, node, {"metadata": {"labels": {PREFERRED: value}}})


def service(
    cluster: LabCluster,
    namespace: str,
    name: str,
    vip: str,
    pool: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> None:
    """A LoadBalancer Service asking for `vip` from `pool`, with endpoints on every worker and an echo
    server answering it on each; waits until it has its address."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels or {},
            "annotations": {"metallb.io/address-pool": pool, "metallb.io/loadBalancerIPs": vip}
            | (annotations or {}),
        },
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]},
    }
    cluster.client.create(SERVICES, manifest, namespace)
    cluster.publish_endpoints(namespace, name)
    cluster.wait_for(lambda: cluster.external_ips(namespace, name) == [vip], WAIT, f"{vip} for {name}")
    cluster.lab.serve(vip, "hname")


def moved_to(cluster: LabCluster, namespace: str, name: str, vip: str, node: str) -> None:
    """Waits until only `node` answers ARP for `vip` and the Service's ServiceL2Status objects are one,
    naming `node`."""
    cluster.wait_for(lambda: answered_only_by(cluster, vip, node), WAIT, f"only {node} to answer for {vip}")
    cluster.wait_for(
        lambda: [status_node(s) for s in statuses(cluster, namespace, name)] == [node],
        WAIT,
        f"the ServiceL2Status of {name} to name {node} alone",
    )


def test_preferred_node_selectors_move_the_announcement(cluster: LabCluster) -> None:
    ns = "preferred"
    cluster.kubectl("create", "namespace", ns)
    service(cluster, ns, "web", PREF_VIP, "preferred")
    # No node carries the label yet: the hash order's first node announces.
    plain = cluster.wait_for(lambda: cluster.announcer(ns, "web"), WAIT, "an announcer")
    moved_to(cluster, ns, "web", PREF_VIP, plain)
    [obj] = statuses(cluster, ns, "web")
    assert obj["metadata"]["name"].startswith("l2-")
    assert obj["metadata"]["labels"][L2_STATUS_NODE_LABEL] == plain

    first, second = (n for n in WORKERS if n != plain)
    try:
        # The preference lifts a node the hash ranks lower: it takes the address.
        label_node(cluster, first, "yes")
        moved_to(cluster, ns, "web", PREF_VIP, first)
        # The preference changes to another node: the address follows it.
        label_node(cluster, second, "yes")
        label_node(cluster, first, None)
        moved_to(cluster, ns, "web", PREF_VIP, second)
        # The preferred node's speaker dies: the others fall back to the hash order, and the first of them
        # deletes the dead node's claim.
        cluster.kill_speaker(second)
        try:
            moved_to(cluster, ns, "web", PREF_VIP, plain)
        finally:
            cluster.start_speaker(second)
        cluster.wait_for_speakers()
        moved_to(cluster, ns, "web", PREF_VIP, second)
    finally:
        for node in WORKERS:
            label_node(cluster, node, None)
    # No preference any more: back to the hash order's node.
    moved_to(cluster, ns, "web", PREF_VIP, plain)


def test_service_selectors_choose_the_services_answered(cluster: LabCluster) -> None:
    ns = "selected"
    cluster.kubectl("create", "namespace", ns)
    # The Services not to be announced come first: the speakers have seen them, with their addresses,
    # before the round that announces the selected one.
    service(cluster, ns, "unlabelled", "192.168.1.81", "selected")
    shared = {"metallb.io/allow-shared-ip": "key"}
    front = {TIER: "front"}
    # MetalLB refuses allow-shared-ip with serviceSelectors, even on a Service they select.
    service(cluster, ns, "shared", "192.168.1.82", "selected", labels=front, annotations=shared)
    service(cluster, ns, "front", "192.168.1.83", "selected", labels=front)
    owner = cluster.wait_for(lambda: cluster.announcer(ns, "front"), WAIT, "an announcer of front")
    moved_to(cluster, ns, "front", "192.168.1.83", owner)

    for name, vip in (("unlabelled", "192.168.1.81"), ("shared", "192.168.1.82")):
        assert arping(cluster, vip) == [], f"{name} is answered"
        assert statuses(cluster, ns, name) == [], f"{name} has a ServiceL2Status"

    # Labelled later, the unlabelled Service is selected and answered; unlabelled again, it is withdrawn
    # and its ServiceL2Status deleted.
    patch = {"metadata": {"labels": front}}
    cluster.client.patch(SERVICES, "unlabelled", patch, ns)
    node = cluster.wait_for(lambda: cluster.announcer(ns, "unlabelled"), WAIT, "an announcer of unlabelled")
    moved_to(cluster, ns, "unlabelled", "192.168.1.81", node)
    cluster.client.patch(SERVICES, "unlabelled", {"metadata": {"labels": {TIER: None}}}, ns)
    cluster.wait_for(lambda: arping(cluster, "192.168.1.81") == [], WAIT, "192.168.1.81 to go unanswered")
    cluster.wait_for(lambda: statuses(cluster, ns, "unlabelled") == [], WAIT, "its ServiceL2Status to go")
    assert answered_only_by(cluster, "192.168.1.83", owner)
