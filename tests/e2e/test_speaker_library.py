"""The speaker as a library (in this process) with exactly the rights deploy/rbac.yaml gives it, its metrics,
and the Node-readiness fallback when gossip is off."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from metallb_py.k8s import connect
from metallb_py.k8s.resources import EVENTS, NODES, SERVICES
from metallb_py.speaker.speaker import Speaker, SpeakerOptions
from metallb_py.testing import LabCluster

REPO = Path(__file__).resolve().parents[2]
SEED_CONFIG = REPO / "examples" / "seed" / "metallb-l2config.yaml"
SA = "system:serviceaccount:metallb-system:speaker"
WAIT = 60.0


def lb_service(cluster: LabCluster, name: str, **spec: object) -> str:
    cluster.client.create(
        SERVICES,
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}], **spec},
        },
        "default",
    )
    return cluster.wait_for(lambda: cluster.external_ips("default", name), WAIT, f"an address for {name}")[0]


def token_kubeconfig(cluster: LabCluster, account: str, path: Path) -> Path:
    token = cluster.kubectl("create", "token", account, "-n", "metallb-system", "--duration=1h").strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "admin", "user": {"token": token}}]
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_embedded_speaker_with_least_privilege(kubernetes_binaries: None, tmp_path: Path) -> None:
    with LabCluster(prefix="mlblib") as cluster:
        cluster.kubectl("apply", "-f", str(REPO / "deploy" / "rbac.yaml"))
        allowed = [
            "list services -A",
            "list endpointslices.discovery.k8s.io -A",
            "watch nodes",
            "create events -n x",
            "get configmaps/config -n metallb-system",
            "list l2advertisements.metallb.io -n metallb-system",
            "create servicel2statuses.metallb.io -n metallb-system",
            "patch servicel2statuses.metallb.io/x -n metallb-system --subresource=status",
            "create servicebgpstatuses.metallb.io -n metallb-system",
            "patch servicebgpstatuses.metallb.io/x -n metallb-system --subresource=status",
            "create leases -n metallb-system",
            "get secrets/memberlist -n metallb-system",
            "list secrets -n metallb-system",  # BGPPeer passwordSecrets
        ]
        denied = [
            "patch services -n x",
            "patch services/status -n x",
            "get secrets/other -n default",
            "list secrets -A",
            "list pods -A",
            "create leases -n default",
            "update configmaps/config -n metallb-system",
        ]
        for check, expected in [(c, "yes") for c in allowed] + [(c, "no") for c in denied]:
            answer = cluster.control_plane.kubectl(
                "auth", "can-i", *check.split(), f"--as={SA}"
            ).stdout.strip()
            assert answer == expected, f"can-i {check}: {answer}"

        # node1's speaker runs here, as an embedding controller would run it, with the speaker's own token.
        cluster.stop_speaker("node1")
        client = connect(token_kubeconfig(cluster, "speaker", tmp_path / "speaker.kubeconfig"))
        speaker = Speaker(client, SpeakerOptions(node_name="node1", netns=cluster.lab.node_ns("node1")))
        speaker.start()
        try:
            cluster.kubectl("apply", "-f", str(SEED_CONFIG))
            vip = lb_service(cluster, "local", externalTrafficPolicy="Local")
            cluster.publish_endpoints("default", "local", ["node1"])
            cluster.lab.serve(vip, "hname")
            cluster.wait_for(
                lambda: speaker.announced() == {vip: ("default/local",)}, WAIT, "the announcement"
            )
            assert cluster.lab.fetch(vip) == (200, "node1\n")
            assert (
                cluster.wait_for(lambda: cluster.announcer("default", "local"), WAIT, "a status") == "node1"
            )
            cluster.wait_for(
                lambda: any(
                    e.get("reason") == "nodeAssigned" and e["involvedObject"]["name"] == "local"
                    for e in cluster.client.list(EVENTS, "default").items
                ),
                WAIT,
                "the nodeAssigned Event",
            )
            registry = speaker.metrics.registry
            labels = {"ip": vip, "node": "node1", "protocol": "layer2", "service": "default/local"}
            assert registry.get_sample_value("metallb_speaker_announced", labels) == 1
            assert (
                registry.get_sample_value("metallb_layer2_requests_received_total", {"ip": vip}) or 0
            ) >= 1
            assert (registry.get_sample_value("metallb_layer2_gratuitous_sent_total", {"ip": vip}) or 0) >= 1
            assert registry.get_sample_value("metallb_py_speaker_members_alive") == 4
            assert registry.get_sample_value("metallb_py_speaker_isolated_bool") == 0

            # Endpoints gone from node1: withdrawn, the gauge with it.
            cluster.publish_endpoints("default", "local", ["node2"])
            cluster.wait_for(lambda: speaker.announced() == {}, WAIT, "the withdrawal")
            assert registry.get_sample_value("metallb_speaker_announced", labels) is None
            assert cluster.wait_for(
                lambda: cluster.announcer("default", "local") == "node2", WAIT, "node2 to take over"
            )
        finally:
            speaker.stop()
            speaker.stop()  # idempotent
            client.close()


def test_without_gossip_node_readiness_decides(kubernetes_binaries: None) -> None:
    with LabCluster(prefix="mlbnogo", speaker_args=("--no-gossip",)) as cluster:
        cluster.kubectl("apply", "-f", str(SEED_CONFIG))
        vip = lb_service(cluster, "web")
        cluster.publish_endpoints("default", "web")
        cluster.lab.serve(vip, "hname")
        owner = cluster.wait_for(lambda: cluster.announcer("default", "web"), WAIT, "an announcer")
        assert cluster.lab.fetch(vip) == (200, f"{owner}\n")
        # The node lifecycle controller would mark a dead node NotReady; here the test does.
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        not_ready = {
            "type": "Ready",
            "status": "False",
            "reason": "NodeStatusUnknown",
            "message": "Kubelet stopped posting node status.",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        cluster.client.patch(NODES, owner, {"status": {"conditions": [not_ready]}}, subresource="status")
        new = cluster.wait_for(
            lambda: (node := cluster.announcer("default", "web")) != owner and node, WAIT, "a new announcer"
        )
        cluster.wait_for(lambda: cluster.lab.fetch(vip, timeout=0.5) == (200, f"{new}\n"), WAIT, "the move")


def test_a_lone_survivor_announces_once_the_dead_stop_renewing(kubernetes_binaries: None) -> None:
    """Every other speaker crashes: the survivor hears nobody, as if it were cut off, and withdraws; it asks
    the others to renew their Leases, and once they let its ask go unanswered for 3 s
    (leases.ANSWER_WITHIN) while its own Lease renews, it no longer expects them and announces everything."""
    with LabCluster(("node1", "node2"), "control-plane", prefix="mlblone") as cluster:
        cluster.kubectl("apply", "-f", str(SEED_CONFIG))
        vips = [lb_service(cluster, name) for name in ("a", "b", "c")]
        for name, vip in zip("abc", vips, strict=True):
            cluster.publish_endpoints("default", name)
            cluster.lab.serve(vip, "hname")
        for name in "abc":
            cluster.wait_for(lambda n=name: cluster.announcer("default", n), WAIT, f"an announcer of {name}")  # type: ignore[misc]
        for node in ("node2", "control-plane"):
            cluster.kill_speaker(node)
            cluster.lab.kill_link(node)

        def isolated() -> float | None:
            scrape = cluster.speaker_metrics("node1")
            return scrape.value("metallb_py_speaker_isolated_bool") if scrape is not None else None

        cluster.wait_for(lambda: isolated() == 1, WAIT, "node1 to see itself alone")
        cluster.wait_for(lambda: isolated() == 0, WAIT, "node1 to stop expecting them")
        for vip in vips:
            cluster.wait_for(lambda v=vip: cluster.lab.fetch(v, timeout=0.5) == (200, "node1\n"), WAIT, vip)  # type: ignore[misc]
