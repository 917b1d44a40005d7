"""LabCluster's manifests, checks and helpers, and the demo's pure parts: no root, no API server."""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from metallb_py import demo
from metallb_py.cli import build_parser
from metallb_py.testing import LabCluster, LabClusterError, Probe
from metallb_py.testing import labcluster as labcluster_module
from metallb_py.testing.labcluster import (
    CONTROL_PLANE_ROLE_LABEL,
    EXCLUDE_FROM_LB_LABEL,
    EndpointPort,
    clock_offset_line,
    endpoint_ports,
    endpoint_slice_manifest,
    faketime_env,
    faketime_sleep_fix,
    libfaketime,
    memberlist_secret,
    node_manifest,
    node_status,
    parse_metrics,
)

REPO = Path(__file__).resolve().parents[2]


def test_a_worker_node_may_announce_and_the_control_plane_node_may_not() -> None:
    worker = node_manifest("node1")
    assert worker["metadata"] == {
        "name": "node1",
        "labels": {"kubernetes.io/hostname": "node1", "kubernetes.io/os": "linux"},
    }
    assert worker["spec"] == {}
    control = node_manifest("control-plane", control_plane=True)
    labels = control["metadata"]["labels"]
    assert labels[EXCLUDE_FROM_LB_LABEL] == "" and labels[CONTROL_PLANE_ROLE_LABEL] == ""
    assert control["spec"]["taints"] == [{"key": CONTROL_PLANE_ROLE_LABEL, "effect": "NoSchedule"}]


def test_node_status_reports_the_internal_ip_and_ready() -> None:
    now = dt.datetime(2025, 1, 2, 3, 4, 5, 678, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    status = node_status("node2", "198.51.100.2", now)
    assert status["addresses"] == [
        {"type": "InternalIP", "address": "198.51.100.2"},
        {"type": "Hostname", "address": "node2"},
    ]
    (ready,) = status["conditions"]
    assert ready["type"] == "Ready" and ready["status"] == "True"
    assert ready["lastHeartbeatTime"] == ready["lastTransitionTime"] == "2025-01-02T01:04:05Z"


def test_memberlist_secret_carries_the_key_base64_encoded() -> None:
    secret = memberlist_secret("metallb-system", b"\x00\xff" * 16)
    assert secret["metadata"] == {"name": "memberlist", "namespace": "metallb-system"}
    assert base64.b64decode(secret["data"]["secretkey"]) == b"\x00\xff" * 16


def test_endpoint_ports_follow_the_service_ports() -> None:
    # As `kubectl expose deployment ... --port=80` writes it: one unnamed port, targetPort 80.
    exposed = {"spec": {"ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}]}}
    assert endpoint_ports(exposed) == [EndpointPort("", 80, "TCP")]
    several = {
        "spec": {
            "ports": [
                {"name": "http", "port": 80, "targetPort": 8080},
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": "dns"},
            ]
        }
    }
    assert endpoint_ports(several) == [EndpointPort("http", 8080, "TCP"), EndpointPort("dns", 53, "UDP")]
    assert endpoint_ports({"spec": {}}) == []


def test_endpoint_slice_has_one_ready_endpoint_per_node() -> None:
    slice_ = endpoint_slice_manifest(
        "default",
        "lb-hname-svc",
        [("node1", "198.51.100.1"), ("node2", "198.51.100.2")],
        owner_uid="1234",
    )
    metadata = slice_["metadata"]
    assert metadata["name"] == "lb-hname-svc-lab-ipv4" and metadata["namespace"] == "default"
    assert metadata["labels"]["kubernetes.io/service-name"] == "lb-hname-svc"
    assert metadata["ownerReferences"][0] | {"uid": "x"} == {
        "apiVersion": "v1",
        "kind": "Service",
        "name": "lb-hname-svc",
        "uid": "x",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert slice_["addressType"] == "IPv4"
    assert slice_["endpoints"] == [
        {
            "addresses": [address],
            "conditions": {"ready": True, "serving": True, "terminating": False},
            "nodeName": node,
        }
        for node, address in [("node1", "198.51.100.1"), ("node2", "198.51.100.2")]
    ]
    assert slice_["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]


def test_endpoint_slice_of_ipv6_and_without_endpoints() -> None:
    slice_ = endpoint_slice_manifest("default", "web", [], family=6, ports=[EndpointPort("http", 8080)])
    assert slice_["metadata"]["name"] == "web-lab-ipv6" and "ownerReferences" not in slice_["metadata"]
    assert slice_["addressType"] == "IPv6" and slice_["endpoints"] == []
    assert slice_["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    with pytest.raises(ValueError, match="family 5"):
        endpoint_slice_manifest("default", "web", [], family=5)


def test_a_scrape_reads_samples_by_name_and_labels() -> None:
    registry = CollectorRegistry()
    announced = Gauge("announced", "", ["ip", "node"], registry=registry)
    announced.labels("192.168.1.11", "node1").set(1)
    announced.labels("192.168.1.12", "node1").set(1)
    Gauge("members_alive", "", registry=registry).set(4)
    Counter("requests_received", "", ["ip"], registry=registry)  # a family without samples yet
    scrape = parse_metrics(generate_latest(registry).decode())
    assert scrape.value("members_alive") == 4
    assert scrape.value("announced", {"node": "node1", "ip": "192.168.1.12"}) == 1
    assert scrape.value("announced", {"ip": "192.168.1.12"}) is None, "labels must match exactly"
    assert scrape.value("announced") is None
    ips = sorted(labels["ip"] for labels, _ in scrape.series("announced"))
    assert ips == ["192.168.1.11", "192.168.1.12"]
    assert scrape.series("requests_received_total") == []
    assert {"announced", "members_alive", "requests_received"} <= scrape.families


def test_refuses_bad_arguments() -> None:
    with pytest.raises(LabClusterError, match="at least one worker"):
        LabCluster(workers=())
    with pytest.raises(LabClusterError, match="both a worker and the control-plane node"):
        LabCluster(workers=("node1", "cp"), control_plane_node="cp")


def test_using_a_cluster_that_is_not_started_says_so() -> None:
    cluster = LabCluster()
    assert cluster.nodes == ("node1", "node2", "node3", "control-plane")
    for call in (lambda: cluster.client, lambda: cluster.lab, lambda: cluster.kubectl("get", "nodes")):
        with pytest.raises(LabClusterError, match="not running"):
            call()
    with pytest.raises(LabClusterError, match="no node 'node9'"):
        cluster.kill_speaker("node9")
    assert not cluster.speaker_running("node1")
    assert cluster.speaker_metrics("node1") is None
    cluster.close()  # nothing to clean up, and safe to call again
    cluster.close()


def test_progress_lines_are_handed_on_whole() -> None:
    lines: list[str] = []
    sink = labcluster_module._ProgressLines(lines.append)
    sink.write("one\ntw")
    sink.write("o\n\nthree")
    assert lines == ["one", "two"]
    sink.write("\n")
    assert lines == ["one", "two", "three"]


def test_demo_needs_root(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)
    args = build_parser().parse_args(["demo"])
    assert args.prefix == "mlbdemo" and args.keep_logs is None
    assert demo.run(args) == 2
    assert "metallb-py demo needs root (network namespaces); run it with sudo" in capsys.readouterr().err


def test_demo_embeds_the_seed_configmap_as_written() -> None:
    seed = (REPO / "examples" / "seed" / "metallb-l2config.yaml").read_text()
    assert seed == demo.SEED_CONFIGMAP


def test_requests_lost_in_a_failover_are_those_sent_after_the_kill_until_the_first_answer() -> None:
    def probe(sent: float, answer: str | None) -> Probe:
        return Probe(sent=sent, received=sent + 0.001, answer=answer, error=None if answer else "timeout")

    first = probe(1.5, "node3")
    probes = [
        probe(0.9, None),
        probe(1.0, "node2"),
        probe(1.1, None),
        probe(1.2, None),
        first,
        probe(1.6, None),
    ]
    assert demo._failed_between(probes, 1.0, first) == 2


# -- clock steps under libfaketime ---------------------------------------------------------------------------


def test_a_faketime_environment_steps_only_the_wall_clock(tmp_path: Path) -> None:
    library, clock, fix = Path("/lib/faketime.so"), tmp_path / "clock", tmp_path / "fix.so"
    env = faketime_env(library, clock, fix)
    # The sleep fix first, so its clock_nanosleep is the one the program calls.
    assert env["LD_PRELOAD"] == f"{fix} {library}"
    assert env["FAKETIME_TIMESTAMP_FILE"] == str(clock)
    assert env["FAKETIME_NO_CACHE"] == "1" and env["FAKETIME_DONT_FAKE_MONOTONIC"] == "1"
    assert faketime_env(library, clock)["LD_PRELOAD"] == str(library)
    assert clock_offset_line(-7200) == "-7200.000000\n"
    assert clock_offset_line(0.25) == "+0.250000\n"


def test_without_libfaketime_the_error_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(LabClusterError, match="apt-get install faketime"):
        libfaketime((str(tmp_path / "missing.so"),))


def test_a_clock_step_needs_a_speaker_under_faketime() -> None:
    with pytest.raises(LabClusterError, match="log directory"):
        LabCluster().set_speaker_clock("node1", 3600)


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler for the sleep fix")
def test_a_program_under_faketime_sleeps_and_its_clock_steps_while_it_runs(tmp_path: Path) -> None:
    try:
        library = libfaketime()
    except LabClusterError as exc:
        pytest.skip(str(exc))
    clock = tmp_path / "clock"
    clock.write_text(clock_offset_line(0))
    program = (
        "import sys, time\n"
        "for line in sys.stdin:\n"
        "    started = time.monotonic()\n"
        "    time.sleep(0.01)\n"  # clock_nanosleep on CLOCK_MONOTONIC, absolute: EINVAL without the fix
        "    print(time.time(), time.monotonic() - started, flush=True)\n"
    )
    env = {**os.environ, **faketime_env(library, clock, faketime_sleep_fix(tmp_path))}
    with subprocess.Popen(
        [sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    ) as child:
        assert child.stdin is not None and child.stdout is not None
        stdin, stdout = child.stdin, child.stdout

        def wall_clock_offset() -> float:
            stdin.write("\n")
            stdin.flush()
            seen, slept = map(float, stdout.readline().split())
            assert slept >= 0.01
            return seen - time.time()

        assert abs(wall_clock_offset()) < 60
        clock.write_text(clock_offset_line(-7200))
        assert -7260 < wall_clock_offset() < -7140
        clock.write_text(clock_offset_line(7200))
        assert 7140 < wall_clock_offset() < 7260
        stdin.close()
    assert child.returncode == 0
