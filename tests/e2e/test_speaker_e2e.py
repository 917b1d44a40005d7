"""The speaker end to end: the seed scenario and every way an announcer goes away, on a LabCluster.

One cluster (control plane, lab of node1-3 plus an excluded control-plane node, controller, four speakers)
serves the module; each test leaves every speaker running again. What a client sees is checked from the
lab's client namespace (HTTP answered by the node that owns the VIP, its neighbour table); what the cluster
says, through the API (Service status, ServiceL2Status, Events). Nothing here bounds how long a failover
takes: the figures are measured by benches/test_bench_failover.py; deadlines in waits only stop a hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from metallb_py.k8s.resources import EVENTS, SERVICES
from metallb_py.speaker import SECRET_ENV, SECRET_NAME
from metallb_py.testing import FetchError, LabCluster

REPO = Path(__file__).resolve().parents[2]
SEED_CONFIG = REPO / "examples" / "seed" / "metallb-l2config.yaml"
NS = "metallb-system"
WAIT = 60.0
NODE_ASSIGNED = "nodeAssigned"  # the Event reason a speaker gives when it starts announcing a Service
WORKERS = ("node1", "node2", "node3")
CONTROL_PLANE = "control-plane"

# Addresses beyond the seed's three, for the other tests (the lab's client reaches 192.168.1.0/24).
EXTRA_POOL = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: e2e, namespace: metallb-system}
spec:
  addresses: [192.168.1.64/27]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: e2e, namespace: metallb-system}
spec:
  ipAddressPools: [e2e]
"""


@pytest.fixture(scope="module")
def cluster(kubernetes_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    # The logs stay in pytest's temporary directory (the last three runs are kept), for a failed run.
    logs = tmp_path_factory.mktemp("e2e-logs")
    with LabCluster(WORKERS, CONTROL_PLANE, prefix="mlbe2e", log_dir=logs) as the_cluster:
        the_cluster.kubectl("apply", "-f", str(SEED_CONFIG))
        the_cluster.kubectl("apply", "-f", "-", stdin=EXTRA_POOL)
        yield the_cluster
        # The control-plane node is excluded from load balancers: whatever the tests did, it never announced
        # (its speaker ran all along: its counters cover the whole module).
        metrics = the_cluster.speaker_metrics(CONTROL_PLANE)
        assert metrics is not None
        assert metrics.series("metallb_speaker_announced") == []
        assert [v for _, v in metrics.series("metallb_layer2_gratuitous_sent_total") if v] == []
        assert [v for _, v in metrics.series("metallb_layer2_responses_sent_total") if v] == []
        assert assignments(the_cluster, CONTROL_PLANE) == 0


def body(cluster: LabCluster, vip: str, port: int = 80) -> str | None:
    """The answer to one request from the client, or None when nothing answered."""
    try:
        status, text = cluster.lab.fetch(vip, port, timeout=0.5)
    except FetchError:
        return None
    return text.strip() if status == 200 else None


def answered_by(cluster: LabCluster, vip: str, *, other_than: str | None = None, port: int = 80) -> str:
    """Waits until a node (other than `other_than`) answers `vip`; returns its name."""

    def other() -> str | None:
        node = body(cluster, vip, port)
        return node if node and node != other_than else None

    return cluster.wait_for(other, WAIT, f"a node other than {other_than} to answer {vip}")


def announcer(cluster: LabCluster, namespace: str, name: str, *, other_than: str | None = None) -> str:

    def other() -> str | None:
        node = cluster.announcer(namespace, name)
        return node if node and node != other_than else None

    return cluster.wait_for(
        other, WAIT, f"the ServiceL2Status of {namespace}/{name} to name a node other than {other_than}"
    )


def assignments(cluster: LabCluster, node: str, service: str | None = None) -> int:
    """How many nodeAssigned Events `node`'s speakers sent (about `service`, a name, if given), in every
    namespace: repeats of one Event count too."""
    return sum(
        int(e.get("count") or 1)
        for e in cluster.client.list(EVENTS).items
        if e.get("reason") == NODE_ASSIGNED
        and e.get("reportingInstance") == node
        and (service is None or e["involvedObject"]["name"] == service)
    )


def metric(cluster: LabCluster, node: str, name: str) -> float | None:
    """A sample without labels from `node`'s speaker's metrics; None when it does not answer."""
    scrape = cluster.speaker_metrics(node)
    return scrape.value(name) if scrape is not None else None


def json_lines(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    return records


def refusals(cluster: LabCluster, node: str) -> float:
    """How many configurations `node`'s speaker has refused."""
    return metric(cluster, node, "metallb_py_speaker_config_refusals_total") or 0.0


def running(cluster: LabCluster) -> int:
    return sum(cluster.speaker_running(node) for node in cluster.nodes)


def restart(cluster: LabCluster, node: str) -> None:
    """Starts `node`'s speaker again and waits until it has joined the others: it counts every running
    speaker alive, itself included."""
    cluster.start_speaker(node)
    cluster.wait_for(
        lambda: metric(cluster, node, "metallb_py_speaker_members_alive") == running(cluster),
        WAIT,
        f"{node} to rejoin",
    )


@contextlib.contextmanager
def speaker_down(cluster: LabCluster, node: str, *, graceful: bool = False) -> Iterator[None]:
    """Kills (or stops) `node`'s speaker for the block and starts it again after, also when the block fails,
    so the module's later tests find every speaker running."""
    if graceful:
        assert cluster.stop_speaker(node) == 0
    else:
        cluster.kill_speaker(node)
    try:
        yield
    finally:
        restart(cluster, node)


def lb_service(cluster: LabCluster, namespace: str, name: str, **spec: Any) -> list[str]:
    """Creates a LoadBalancer Service (annotations from `annotations`), publishes its endpoints (from
    `endpoints`, default every worker) and waits for its addresses."""
    annotations = spec.pop("annotations", {})
    endpoints = spec.pop("endpoints", None)
    port = spec.pop("port", 80)
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": port}], **spec},
    }
    cluster.client.create(SERVICES, manifest, namespace)
    cluster.publish_endpoints(namespace, name, endpoints)
    return cluster.wait_for(lambda: cluster.external_ips(namespace, name), WAIT, f"an address for {name}")


@pytest.fixture(scope="module")
def seed(cluster: LabCluster) -> dict[str, str]:
    """The seed's kubectl steps: two deployments, each exposed as a LoadBalancer Service; their VIPs."""
    k = cluster.kubectl
    k("create", "deployment", "lb-hname-pods", "--image=sysnet4admin/echo-hname")
    k("scale", "deployment", "lb-hname-pods", "--replicas=3")
    k("create", "deployment", "lb-ip-pods", "--image=sysnet4admin/echo-ip")
    k("scale", "deployment", "lb-ip-pods", "--replicas=3")
    k("expose", "deployment", "lb-hname-pods", "--type=LoadBalancer", "--name=lb-hname-svc", "--port=80")
    k("expose", "deployment", "lb-ip-pods", "--type=LoadBalancer", "--name=lb-ip-svc", "--port=80")
    vips = {}
    kinds: tuple[tuple[str, Literal["hname", "ip"]], ...] = (("lb-hname-svc", "hname"), ("lb-ip-svc", "ip"))
    for svc, kind in kinds:
        # No kubelet here: the harness publishes what the endpoint controller would, pods on node1-3.
        cluster.publish_endpoints("default", svc)
        vips[svc] = cluster.wait_for(lambda s=svc: cluster.external_ips("default", s), WAIT, svc)[0]  # type: ignore[misc]
        cluster.lab.serve(vips[svc], kind)
    return vips


def test_the_seed_scenario(cluster: LabCluster, seed: dict[str, str]) -> None:
    assert seed == {"lb-hname-svc": "192.168.1.11", "lb-ip-svc": "192.168.1.12"}
    table = cluster.kubectl("get", "services")
    rows = {line.split()[0]: line.split() for line in table.splitlines()[1:]}
    assert rows["lb-hname-svc"][3] == "192.168.1.11" and rows["lb-ip-svc"][3] == "192.168.1.12", table

    # The browser: each VIP answered by a worker, the one its ServiceL2Status names.
    node = answered_by(cluster, "192.168.1.11")
    assert node in WORKERS
    assert announcer(cluster, "default", "lb-hname-svc") == node
    status, text = cluster.lab.fetch("192.168.1.12")
    assert status == 200 and "request_method : GET" in text and cluster.lab.client_address() in text
    assert announcer(cluster, "default", "lb-ip-svc") in WORKERS
    # The client learnt each VIP at the MAC of its announcer.
    macs = {n.ip: n.lladdr for n in cluster.lab.neighbours()}
    assert macs["192.168.1.11"] == cluster.lab.node_mac(node)

    # The announcer said so with an Event on the Service (sent by a queue, after the fact).
    cluster.wait_for(
        lambda: assignments(cluster, node, "lb-hname-svc"), WAIT, f"a nodeAssigned Event from {node}"
    )


def test_sigkill_of_the_announcer_moves_the_vip(cluster: LabCluster, seed: dict[str, str]) -> None:
    vip = seed["lb-hname-svc"]
    old = answered_by(cluster, vip)
    before = {node: assignments(cluster, node, "lb-hname-svc") for node in WORKERS}
    with speaker_down(cluster, old):
        new = answered_by(cluster, vip, other_than=old)
        assert new in WORKERS
        assert announcer(cluster, "default", "lb-hname-svc", other_than=old) == new
        cluster.wait_for(
            lambda: assignments(cluster, new, "lb-hname-svc") > before[new],
            WAIT,
            f"a new nodeAssigned Event from {new}",
        )
    answered_by(cluster, vip)


def test_a_graceful_stop_hands_the_vip_over(cluster: LabCluster, seed: dict[str, str]) -> None:
    vip = seed["lb-ip-svc"]
    old = announcer(cluster, "default", "lb-ip-svc")
    with speaker_down(cluster, old, graceful=True):  # exit status 0, or the block does not run
        new = announcer(cluster, "default", "lb-ip-svc", other_than=old)
        # The client reaches the VIP again, and at the new announcer's MAC (echo-ip does not name its node).
        cluster.wait_for(lambda: body(cluster, vip), WAIT, f"an answer from {vip}")
        assert {n.ip: n.lladdr for n in cluster.lab.neighbours()}[vip] == cluster.lab.node_mac(new)
        # It removed its gossip Lease on the way out.
        leases = cluster.kubectl("get", "leases", "-n", NS, "-o", "name")
        assert f"metallb-py-speaker-{old}" not in leases


def test_a_cut_link_moves_the_vip_and_the_cut_node_stops_announcing(
    cluster: LabCluster, seed: dict[str, str]
) -> None:
    vip = seed["lb-hname-svc"]
    old = answered_by(cluster, vip)
    assert metric(cluster, old, "metallb_py_speaker_isolated_bool") == 0
    cluster.lab.kill_link(old)
    try:
        new = answered_by(cluster, vip, other_than=old)
        assert new in WORKERS

        def isolated_and_silent() -> bool:
            scrape = cluster.speaker_metrics(old)
            return (
                scrape is not None
                and scrape.value("metallb_py_speaker_isolated_bool") == 1
                and scrape.series("metallb_speaker_announced") == []
            )

        # On the other side of the cut, the node saw itself alone and withdrew rather than fight.
        cluster.wait_for(isolated_and_silent, WAIT, f"{old} to see itself cut off and withdraw")
    finally:
        cluster.lab.restore_link(old)
    cluster.wait_for(lambda: metric(cluster, old, "metallb_py_speaker_isolated_bool") == 0, WAIT, "the merge")
    # One owner again: answers come from one node, the one the ServiceL2Status names.
    owner = answered_by(cluster, vip)
    cluster.wait_for(lambda: cluster.announcer("default", "lb-hname-svc") == owner, WAIT, "agreement")


def test_external_traffic_policy_local_follows_the_endpoints(cluster: LabCluster) -> None:
    ns = "etp-local"
    cluster.kubectl("create", "namespace", ns)
    vip = lb_service(
        cluster,
        ns,
        "local",
        externalTrafficPolicy="Local",
        endpoints=["node2"],
        annotations={"metallb.io/address-pool": "e2e"},
    )[0]
    cluster.lab.serve(vip, "hname")
    assert announcer(cluster, ns, "local") == "node2"
    assert answered_by(cluster, vip) == "node2"
    cluster.publish_endpoints(ns, "local", ["node3"])
    assert announcer(cluster, ns, "local", other_than="node2") == "node3"
    assert answered_by(cluster, vip, other_than="node2") == "node3"
    # No endpoint that can serve: not announced at all (MetalLB's behaviour).
    cluster.publish_endpoints(ns, "local", [])
    cluster.wait_for(lambda: cluster.announcer(ns, "local") is None, WAIT, "the announcement to go")


def test_services_sharing_an_ip_share_its_announcer(cluster: LabCluster) -> None:
    ns = "shared"
    cluster.kubectl("create", "namespace", ns)
    annotations = {
        "metallb.io/address-pool": "e2e",
        "metallb.io/allow-shared-ip": "one-ip",
        "metallb.io/loadBalancerIPs": "192.168.1.70",
    }
    for name, port in (("web", 80), ("alt", 8080)):
        assert lb_service(cluster, ns, name, port=port, annotations=annotations) == ["192.168.1.70"]
    cluster.lab.serve("192.168.1.70", "hname", port=80)
    cluster.lab.serve("192.168.1.70", "hname", port=8080)
    owner = announcer(cluster, ns, "web")
    assert announcer(cluster, ns, "alt") == owner
    assert answered_by(cluster, "192.168.1.70") == owner
    assert answered_by(cluster, "192.168.1.70", port=8080) == owner
    # Moved together when the owner dies.
    with speaker_down(cluster, owner):
        new = answered_by(cluster, "192.168.1.70", other_than=owner)
        assert announcer(cluster, ns, "web", other_than=owner) == new
        assert announcer(cluster, ns, "alt", other_than=owner) == new
        assert answered_by(cluster, "192.168.1.70", port=8080) == new


def test_the_excluded_node_never_announces_even_when_it_is_the_last_one(
    cluster: LabCluster, seed: dict[str, str]
) -> None:
    for node in WORKERS:
        cluster.stop_speaker(node)
    try:
        cluster.wait_for(lambda: cluster.announcer("default", "lb-hname-svc") is None, WAIT, "no announcer")
        cluster.lab.flush_neighbours()
        assert body(cluster, seed["lb-hname-svc"]) is None, "nobody may answer ARP for the VIP"
    finally:
        for node in WORKERS:
            cluster.start_speaker(node)
    cluster.wait_for_speakers()
    answered_by(cluster, seed["lb-hname-svc"])


def test_an_ipv6_pool_answers_ndp(kubernetes_binaries: None) -> None:
    with LabCluster(
        ("node1", "node2"), CONTROL_PLANE, prefix="mlbe2e6", service_cluster_ip_range="2001:db8:96::/112"
    ) as cluster:
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            stdin=EXTRA_POOL.replace("[192.168.1.64/27]", "[2001:db8:1::100/120]").replace(
                "autoAssign: false", "autoAssign: true"
            ),
        )
        ns = "v6"
        cluster.kubectl("create", "namespace", ns)
        services = cluster.client
        services.create(
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "web", "namespace": ns},
                "spec": {
                    "type": "LoadBalancer",
                    "ipFamilies": ["IPv6"],
                    "ipFamilyPolicy": "SingleStack",
                    "selector": {"app": "web"},
                    "ports": [{"port": 80}],
                },
            },
            ns,
        )
        cluster.publish_endpoints(ns, "web", family=6)
        vip = cluster.wait_for(lambda: cluster.external_ips(ns, "web"), WAIT, "an IPv6 address")[0]
        assert vip.startswith("2001:db8:1::1")
        cluster.lab.serve(vip, "hname")
        owner = announcer(cluster, ns, "web")
        assert answered_by(cluster, vip) == owner
        # A real NDP client: ndisc6 from the client namespace gets the owner's MAC.
        out = subprocess.run(
            ["ip", "netns", "exec", cluster.lab.client_ns, "ndisc6", "-1", "-r", "3", vip, "eth0"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert cluster.lab.node_mac(owner).upper() in out.upper(), out
        cluster.kill_speaker(owner)
        other = "node2" if owner == "node1" else "node1"
        assert answered_by(cluster, vip, other_than=owner) == other
        assert announcer(cluster, ns, "web", other_than=owner) == other


def test_a_bad_configuration_changes_nothing(cluster: LabCluster, seed: dict[str, str]) -> None:
    owner = answered_by(cluster, seed["lb-hname-svc"])
    refused = refusals(cluster, owner)
    broken = SEED_CONFIG.read_text().replace("192.168.1.11-192.168.1.13", "192.168.1.13-192.168.1.11")
    cluster.kubectl("apply", "-f", "-", stdin=broken)
    try:
        cluster.wait_for(
            lambda: refusals(cluster, owner) > refused, WAIT, "the speaker to refuse the configuration"
        )
        assert metric(cluster, owner, "metallb_k8s_client_config_stale_bool") == 1
        assert answered_by(cluster, seed["lb-hname-svc"]) == owner
        assert cluster.announcer("default", "lb-hname-svc") == owner
    finally:
        cluster.kubectl("apply", "-f", str(SEED_CONFIG))


def test_without_a_gossip_secret_the_speaker_says_what_to_do(cluster: LabCluster) -> None:
    cluster.kubectl("create", "namespace", "no-secret")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "metallb_py.cli",
            "speaker",
            "--node-name=node1",
            f"--kubeconfig={cluster.kubeconfig}",
            "--namespace=no-secret",
            f"--netns={cluster.lab.node_ns('node1')}",
            "--metrics-port=0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "METALLB_ML_SECRET_KEY"},
        check=False,
    )
    assert done.returncode == 1, done.stderr
    # It says what to do: set the variable, or create the Secret (both named by the speaker's constants).
    errors = [r for r in json_lines(done.stderr) if r.get("level") == "error"]
    assert any(
        f"${SECRET_ENV}" in str(r.get("error")) and SECRET_NAME in str(r.get("error")) for r in errors
    ), done.stderr
