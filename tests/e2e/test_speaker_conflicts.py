"""Another host on the segment claims an address a speaker announces (issue 12; MetalLB is silent here): the
announcing speaker counts it in metallb_py_speaker_address_conflicts_total and records a Warning Event
AddressConflict on the Service, naming the other host's MAC and the interface."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from metallb_py.k8s.resources import EVENTS
from metallb_py.speaker.conflicts import REASON
from metallb_py.testing import LabCluster

from .conftest import create_web_service, seeded_cluster

WAIT = 60.0


@pytest.fixture(scope="module")
def cluster(kubernetes_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    with seeded_cluster("mlbconf", tmp_path_factory.mktemp("e2e-conflicts-logs")) as the_cluster:
        yield the_cluster


def conflict_events(cluster: LabCluster, service: str) -> list[dict[str, Any]]:
    return [
        e
        for e in cluster.client.list(EVENTS, "default").items
        if e.get("reason") == REASON and e["involvedObject"]["name"] == service
    ]


def test_a_host_claiming_the_announced_address_is_an_event_and_a_metric(cluster: LabCluster) -> None:
    vip = create_web_service(cluster, WAIT)
    node = cluster.wait_for(lambda: cluster.announcer("default", "web"), WAIT, "an announcer for web")
    assert conflict_events(cluster, "web") == []

    # The client, another host on the nodes' segment, takes the address and says so (gratuitous ARP).
    lab, ns, dev = cluster.lab, cluster.lab.client_ns, cluster.lab.client_interface
    mac = str(json.loads(lab.exec(ns, "ip", "-j", "link", "show", "dev", dev))[0]["address"]).lower()
    lab.exec(ns, "ip", "addr", "add", f"{vip}/32", "dev", dev)
    try:
        lab.exec(ns, "arping", "-U", "-c", "2", "-I", dev, vip)

        def counted() -> float | None:
            scrape = cluster.speaker_metrics(node)
            labels = {"ip": vip, "interface": lab.node_interface(node)}
            return scrape.value("metallb_py_speaker_address_conflicts_total", labels) if scrape else None

        assert cluster.wait_for(counted, WAIT, f"{node} to count the conflict on {vip}") >= 1
        events = cluster.wait_for(lambda: conflict_events(cluster, "web"), WAIT, "an AddressConflict Event")
    finally:
        lab.exec(ns, "ip", "addr", "del", f"{vip}/32", "dev", dev)
    assert {e["type"] for e in events} == {"Warning"}
    message = events[0]["message"]
    assert vip in message and mac in message.lower() and lab.node_interface(node) in message
    assert {e.get("reportingInstance") for e in events} == {node}
    # Only the announcer tells it: the others do not announce the address.
    for other in cluster.nodes:
        if other != node:
            scrape = cluster.speaker_metrics(other)
            assert scrape is not None and scrape.series("metallb_py_speaker_address_conflicts_total") == []
