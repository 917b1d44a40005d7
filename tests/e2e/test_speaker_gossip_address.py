"""Issue 12's report, end to end: Nodes without an InternalIP and the Service address bound on every node's
`lo` (as kube-proxy in IPVS mode binds every LoadBalancer address on kube-ipvs0). Each speaker must gossip
from its node's own address and hear the others, and at most one node may answer ARP for the address, as a
client on the segment sees with a real `arping`.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator

import pytest

from metallb_py.k8s.resources import LEASES, NODES
from metallb_py.speaker.leases import GOSSIP_ADDRESS_ANNOTATION, GOSSIP_LABEL, GOSSIP_PORT
from metallb_py.speaker.speaker import Speaker, SpeakerError, SpeakerOptions
from metallb_py.testing import LabCluster

from .conftest import WORKERS, create_web_service, seeded_cluster

WAIT = 60.0
_REPLY = re.compile(r"reply from (\S+) \[([0-9A-Fa-f:]{17})\]")


@pytest.fixture(scope="module")
def cluster(kubernetes_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    with seeded_cluster("mlbgaddr", tmp_path_factory.mktemp("e2e-gossip-address-logs")) as the_cluster:
        yield the_cluster


def arp_replies(cluster: LabCluster, ip: str, requests: int = 3) -> set[str]:
    """The MAC addresses that answer `requests` ARP requests for `ip` sent by the client (iputils arping:
    every reply is printed, duplicates included)."""
    lab = cluster.lab
    argv = ["ip", "netns", "exec", lab.client_ns, "arping", "-c", str(requests), "-w", str(requests + 1)]
    done = subprocess.run(
        [*argv, "-I", lab.client_interface, ip], capture_output=True, text=True, check=False, timeout=30
    )
    return {mac.lower() for who, mac in _REPLY.findall(done.stdout) if who == ip}


def gossip_addresses(cluster: LabCluster) -> dict[str, str]:
    """node -> the gossip address its speaker published in its Lease."""
    leases = cluster.client.list(LEASES, cluster.namespace, label_selector=f"{GOSSIP_LABEL}=true").items
    return {
        str(lease["spec"]["holderIdentity"]): str(lease["metadata"]["annotations"][GOSSIP_ADDRESS_ANNOTATION])
        for lease in leases
    }


def joined(cluster: LabCluster) -> bool:
    """Every speaker counts every speaker alive (it hears the others)."""
    for node in cluster.nodes:
        scrape = cluster.speaker_metrics(node)
        alive = scrape.value("metallb_py_speaker_members_alive") if scrape is not None else None
        if alive != len(cluster.nodes):
            return False
    return True


def test_nodes_without_internal_ip_and_the_vip_on_lo_elect_one_announcer(cluster: LabCluster) -> None:
    # The reported set-up: every speaker starts when its Node has no InternalIP and the Service address is
    # on the node's lo (the lab's VIPs live there, as kube-proxy's live on kube-ipvs0).
    for node in cluster.nodes:
        assert cluster.stop_speaker(node) == 0
        cluster.client.patch(
            NODES,
            node,
            {"status": {"addresses": [{"type": "Hostname", "address": node}]}},
            subresource="status",
        )
    vip = create_web_service(cluster, WAIT)
    cluster.lab.serve(vip, "hname")  # on every node's lo, answered over HTTP by every worker
    for node in cluster.nodes:
        assert vip in cluster.lab.exec(cluster.lab.node_ns(node), "ip", "-brief", "addr", "show", "dev", "lo")
        cluster.start_speaker(node)

    # Either outcome ends the wait: the speakers hear each other, or more than one node answers the VIP.
    seen: set[str] = set()

    def settled() -> bool:
        seen.update(arp_replies(cluster, vip))
        return len(seen) > 1 or (joined(cluster) and bool(seen))

    cluster.wait_for(settled, WAIT, f"the speakers to join, or several nodes to answer {vip}")
    macs = {cluster.lab.node_mac(node).lower(): node for node in cluster.nodes}
    assert len(seen) == 1, f"several nodes answer ARP for {vip}: {sorted(macs.get(m, m) for m in seen)}"
    assert macs[next(iter(seen))] in WORKERS

    # Each speaker gossips from its node's own address, none from the VIP, and each hears every other.
    assert gossip_addresses(cluster) == {
        node: f"{cluster.lab.node_address(node)}:{GOSSIP_PORT}" for node in cluster.nodes
    }
    assert joined(cluster)
    assert len(arp_replies(cluster, vip)) == 1


def hostile(cluster: LabCluster, node: str) -> float:
    """The datagrams `node`'s speaker dropped as forged or broken, from its gossip counters."""
    scrape = cluster.speaker_metrics(node)
    assert scrape is not None
    names = ("metallb_py_speaker_gossip_bad_tag_total", "metallb_py_speaker_gossip_malformed_total")
    values = [scrape.value(name) for name in names]
    assert None not in values, f"{node} exports no gossip counters"
    return sum(v for v in values if v is not None)


def test_hostile_datagrams_are_counted_in_the_speakers_metrics(cluster: LabCluster) -> None:
    node = "node2"
    before = hostile(cluster, node)
    target = (cluster.lab.node_address(node), GOSSIP_PORT)
    send = (
        "import os, socket; "
        f"socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(os.urandom(96), {target!r})"
    )
    cluster.lab.exec(cluster.lab.client_ns, sys.executable, "-c", send)
    cluster.wait_for(lambda: hostile(cluster, node) > before, WAIT, f"{node} to count the forged datagram")
    assert joined(cluster), "a forged datagram changes nobody's view"


def test_a_configured_gossip_address_every_node_holds_is_refused_at_start(cluster: LabCluster) -> None:
    vip = cluster.external_ips("default", "web")[0]
    options = SpeakerOptions(node_name="node1", netns=cluster.lab.node_ns("node1"), gossip_address=vip)
    speaker = Speaker(cluster.client, options)
    with pytest.raises(SpeakerError, match=rf"--gossip-address {vip} is refused: .*loopback interface lo"):
        speaker.start()
    # Nothing of it runs, and node1's own speaker keeps its place.
    assert speaker.responder is None and speaker.membership is None
    assert gossip_addresses(cluster)["node1"] == f"{cluster.lab.node_address('node1')}:{GOSSIP_PORT}"
