"""`metallb-py status` against the lab: a real API server, the controller and a speaker per node.

What the command shows is compared with the objects it is drawn from, read by the test itself: the pools'
usage with the Services' addresses, each Service's announcer with its ServiceL2Status, the speakers with the
lab's nodes, and the configuration's warnings with what the controller published. `--watch` is run as a
user would (a process, stopped with Ctrl-C).
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from metallb_py.k8s.resources import SERVICES
from metallb_py.status import register
from metallb_py.status.cluster import run
from metallb_py.status.render import bar
from metallb_py.testing import LabCluster

from .conftest import CONTROL_PLANE, create_web_service, seeded_cluster

NS = "metallb-system"
WAIT = 60.0
SEED_POOL = "nginx-ip-range"  # 192.168.1.11-192.168.1.13
# autoAssign off, so no Service takes from it; a CIDR with host bits (a warning), and no advertisement.
EXTRA_POOL = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: extra, namespace: metallb-system}
spec:
  addresses: [198.51.100.5/30]
  autoAssign: false
"""


@pytest.fixture(scope="module")
def cluster(kubernetes_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    with seeded_cluster("mlbstat", tmp_path_factory.mktemp("status-logs")) as the_cluster:
        the_cluster.kubectl("apply", "-f", "-", stdin=EXTRA_POOL)
        create_web_service(the_cluster)
        api = {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "api", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "api"}, "ports": [{"port": 8080}]},
        }
        the_cluster.client.create(SERVICES, api, "default")
        the_cluster.publish_endpoints("default", "api")
        the_cluster.wait_for(
            lambda: all(the_cluster.announcer("default", n) for n in ("web", "api")),
            WAIT,
            "an announcer of web and api",
        )
        yield the_cluster


def arguments(cluster: LabCluster, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["status", f"--kubeconfig={cluster.kubeconfig}", f"--namespace={NS}", *extra])


def status(cluster: LabCluster, *extra: str) -> str:
    out = io.StringIO()
    assert run(arguments(cluster, *extra), out) == 0
    return out.getvalue()


def status_json(cluster: LabCluster) -> dict[str, Any]:
    data = json.loads(status(cluster, "-o", "json"))
    assert isinstance(data, dict)
    return data


def by_name(rows: list[dict[str, Any]], field: str = "name") -> dict[str, dict[str, Any]]:
    return {row[field]: row for row in rows}


def test_pools_usage_counts_the_services_addresses(cluster: LabCluster) -> None:
    addresses = {ip for name in ("web", "api") for ip in cluster.external_ips("default", name)}
    assert len(addresses) == 2
    pools = by_name(status_json(cluster)["pools"])
    seed = pools[SEED_POOL]
    assert (seed["kind"], seed["modes"], seed["used"], seed["total"]) == ("ConfigMap", ["layer2"], 2, 3)
    extra = pools["extra"]
    assert (extra["kind"], extra["modes"], extra["used"], extra["total"]) == ("IPAddressPool", [], 0, 4)
    text = status(cluster)
    assert f"2/3   {bar(2, 3)}" in text


def test_each_service_is_announced_by_the_node_its_servicel2status_names(cluster: LabCluster) -> None:
    services = {f"{s['namespace']}/{s['name']}": s for s in status_json(cluster)["services"]}
    assert set(services) == {"default/web", "default/api"}
    for name in ("web", "api"):
        shown = services[f"default/{name}"]
        assert shown["addresses"] == cluster.external_ips("default", name)
        assert shown["pool"] == SEED_POOL and shown["modes"] == ["layer2"]
        assert shown["source"] == "ServiceL2Status"
        assert [a["node"] for a in shown["announcers"]] == cluster.announcers("default", name)
        assert CONTROL_PLANE not in cluster.announcers("default", name)


def test_speakers_are_every_node_and_members(cluster: LabCluster) -> None:
    speakers = by_name(status_json(cluster)["speakers"], "node")
    assert set(speakers) == set(cluster.nodes)
    assert {s["membership"] for s in speakers.values()} == {"member"}
    assert [n for n, s in speakers.items() if s["excluded"]] == [CONTROL_PLANE]
    assert all(s["gossip_address"] for s in speakers.values())


def test_configuration_state_and_warnings_are_the_controllers(cluster: LabCluster) -> None:
    def warned() -> dict[str, Any] | None:
        shown = status_json(cluster)
        return shown if shown["config"]["warnings"] else None

    shown = cluster.wait_for(warned, WAIT, "the controller to publish the configuration's warnings")
    config = shown["config"]
    assert (config["source"], config["result"], config["error"]) == ("ConfigurationState", "Valid", "")
    assert any("198.51.100.5/30" in w for w in config["warnings"])
    assert shown["controller"]["holder"] and not shown["controller"]["stale"]
    assert any(w.startswith("pool extra: no L2Advertisement") for w in shown["warnings"])


def test_a_speaker_that_stops_renewing_is_flagged_stale(cluster: LabCluster) -> None:
    # The control-plane node never announces: pausing its speaker moves no address.
    def membership() -> str:
        return str(by_name(status_json(cluster)["speakers"], "node")[CONTROL_PLANE]["membership"])

    cluster.pause_speaker(CONTROL_PLANE)
    try:
        cluster.wait_for(
            lambda: membership() == "stale", WAIT, f"{CONTROL_PLANE} to show stale", interval=0.5
        )
        assert f"speaker {CONTROL_PLANE}: its gossip Lease is not renewed" in status(cluster)
    finally:
        cluster.resume_speaker(CONTROL_PLANE)
    cluster.wait_for(
        lambda: membership() == "member", WAIT, f"{CONTROL_PLANE} to show a member", interval=0.5
    )


def test_watch_prints_json_lines_until_ctrl_c_or_sigterm(cluster: LabCluster) -> None:
    argv = [
        sys.executable,
        "-m",
        "metallb_py.cli",
        "status",
        f"--kubeconfig={cluster.kubeconfig}",
        f"--namespace={NS}",
    ]
    argv += ["-o", "json", "--watch", "--interval", "0.2"]
    for stop in (signal.SIGINT, signal.SIGTERM):
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
            assert child.stdout is not None and child.stderr is not None
            frames = [json.loads(child.stdout.readline()) for _ in range(2)]
            child.send_signal(stop)
            try:
                rest, errors = child.communicate(timeout=WAIT)
            except subprocess.TimeoutExpired:
                child.kill()  # not left running into the next test
                _, errors = child.communicate()
                pytest.fail(f"status --watch still ran {WAIT} s after {stop.name}; it said: {errors}")
        assert child.returncode == 0, errors
        assert "Traceback" not in errors
        assert frames[0]["namespace"] == NS and frames[1]["taken_at"] >= frames[0]["taken_at"]
        # Whatever it printed before the signal are whole documents.
        assert all(json.loads(line)["namespace"] == NS for line in rest.splitlines())


def test_the_text_screen_has_every_section(cluster: LabCluster) -> None:
    text = status(cluster)
    for section in ("POOLS", "SERVICES", "SPEAKERS", "WARNINGS"):
        assert f"\n{section}\n" in text
    for name in ("web", "api"):
        node = cluster.announcer("default", name)
        assert node is not None
        line = next(line for line in text.splitlines() if line.startswith(f"default/{name} "))
        assert node in line.split(SEED_POOL, 1)[1]
