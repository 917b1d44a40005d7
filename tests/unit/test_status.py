"""metallb_py.status: from a snapshot of API objects to what `metallb-py status` shows (no cluster)."""

from __future__ import annotations

import argparse
import datetime as _dt
import ipaddress
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metallb_py._core import Pool
from metallb_py.controller.configreport import configuration_state_status
from metallb_py.controller.poolstatus import PoolStatus
from metallb_py.controller.reconcile import ALLOCATION_FAILED
from metallb_py.speaker import EXCLUDE_FROM_LB_LABEL
from metallb_py.speaker.leases import gossip_lease
from metallb_py.speaker.status import bgp_status, l2_status
from metallb_py.status import register
from metallb_py.status.model import Snapshot, build_status, pool_size
from metallb_py.status.render import BAR_WIDTH, bar, render_json, render_text

NS = "metallb-system"
NOW = _dt.datetime(2026, 12, 5, 12, 0, 0, tzinfo=_dt.UTC)
SEED = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "config", "namespace": NS},
    "data": {
        "config": "address-pools:\n- name: nginx-ip-range\n  protocol: layer2\n"
        "  addresses:\n  - 192.168.1.11-192.168.1.13\n"
    },
}


def service(
    name: str, *ips: str, namespace: str = "default", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


def named(obj: dict[str, Any], name: str) -> dict[str, Any]:
    """A status object as the API returns it: its generateName resolved."""
    obj["metadata"]["name"] = name
    return obj


def node(name: str, *, ready: bool = True, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def lease(name: str, renewed_ago: float, duration: float = 6.0) -> dict[str, Any]:
    return gossip_lease(name, NS, "10.0.0.1:7946", NOW - _dt.timedelta(seconds=renewed_ago), duration)


def pool(name: str, *addresses: str, status: PoolStatus | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"addresses": list(addresses)},
    }
    if status is not None:
        obj["status"] = status.to_api()
    return obj


def crd(kind: str, name: str, spec: dict[str, Any], version: str = "v1beta1") -> dict[str, Any]:
    return {
        "apiVersion": f"metallb.io/{version}",
        "kind": kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": spec,
    }


def state(*, error: str | None = None, warnings: tuple[str, ...] | None = ()) -> dict[str, Any]:
    return {"status": configuration_state_status(error=error, warnings=warnings, now="2026-12-05T11:00:00Z")}


def test_the_seed_in_layer_2() -> None:
    pending = service("other")
    failed = {
        "reason": ALLOCATION_FAILED,
        "message": "no available IPs",
        "involvedObject": {"kind": "Service", "namespace": "default", "name": "other"},
        "lastTimestamp": "2026-12-05T11:59:00Z",
    }
    snapshot = Snapshot(
        namespace=NS,
        now=NOW,
        config_objects=[SEED],
        services=[service("web", "192.168.1.11"), service("api", "192.168.1.12"), pending],
        l2_statuses=[
            named(l2_status("default/web", "node2", ["eth0"], NS), "l2-a"),
            named(l2_status("default/api", "node1", [], NS), "l2-b"),
        ],
        gossip_leases=[lease("node1", 1), lease("node2", 2), lease("node3", 60)],
        nodes=[
            node("node1"),
            node("node2"),
            node("node3", ready=False),
            node("cp", labels={EXCLUDE_FROM_LB_LABEL: ""}),
        ],
        configuration_state=state(),
        events=[failed],
    )
    status = build_status(snapshot)

    assert [(p.name, p.kind, p.modes, p.used, p.total) for p in status.pools] == [
        ("nginx-ip-range", "ConfigMap", ("layer2",), 2, 3)
    ]
    by_key = {s.key: s for s in status.services}
    assert [(a.node, a.interfaces) for a in by_key["default/web"].announcers] == [("node2", ("eth0",))]
    assert by_key["default/web"].source == "ServiceL2Status"
    assert [a.node for a in by_key["default/api"].announcers] == ["node1"]
    assert by_key["default/other"].addresses == ()
    assert by_key["default/other"].problem == f"{ALLOCATION_FAILED}: no available IPs"
    speakers = {s.node: s for s in status.speakers}
    assert {n: s.membership for n, s in speakers.items()} == {
        "cp": "no lease",
        "node1": "member",
        "node2": "member",
        "node3": "stale",
    }
    assert speakers["node3"].ready is False and speakers["cp"].excluded
    assert status.config.source == "ConfigurationState" and status.config.result == "Valid"
    assert any("default/other" in w for w in status.warnings)
    assert any("node3" in w for w in status.warnings)

    text = render_text(status)
    for shown in ("nginx-ip-range", "2/3", "default/web", "node2 (eth0)", "<pending>", "stale", "WARNINGS"):
        assert shown in text
    assert json.loads(render_json(status)) == json.loads(json.dumps(status.to_json()))


def test_several_claims_and_no_claim_are_flagged() -> None:
    snapshot = Snapshot(
        namespace=NS,
        now=NOW,
        config_objects=[SEED],
        services=[service("web", "192.168.1.11"), service("lone", "192.168.1.13")],
        l2_statuses=[
            named(l2_status("default/web", "node2", [], NS), "l2-a"),
            named(l2_status("default/web", "node1", [], NS), "l2-b"),
        ],
        configuration_state=state(),
    )
    status = build_status(snapshot)
    web = next(s for s in status.services if s.name == "web")
    assert [a.node for a in web.announcers] == ["node1", "node2"]
    assert any("claimed by several nodes (node1, node2)" in w for w in status.warnings)
    assert any("default/lone: no node announces 192.168.1.13" in w for w in status.warnings)


def test_configuration_state_warnings_and_errors_are_the_controllers() -> None:
    base = Snapshot(namespace=NS, now=NOW, config_objects=[SEED])
    warned = build_status(
        Snapshot(namespace=NS, now=NOW, config_objects=[SEED], configuration_state=state(warnings=("a", "b")))
    )
    assert warned.config.warnings == ("a", "b")
    assert "configuration: a" in warned.warnings
    refused = build_status(
        Snapshot(namespace=NS, now=NOW, config_objects=[SEED], configuration_state=state(error="bad pool"))
    )
    assert refused.config.result == "Invalid" and "configuration refused: bad pool" in refused.warnings
    # No ConfigurationState: checked here, and said so.
    local = build_status(base)
    assert local.config.source == "local" and local.config.result == "Valid"
    assert any("no ConfigurationState" in w for w in local.warnings)
    broken = build_status(Snapshot(namespace=NS, now=NOW, config_objects=[pool("p", "not-an-address")]))
    assert broken.config.result == "Invalid" and "not-an-address" in broken.config.error


def test_crd_pools_keep_the_controllers_counters_and_an_unadvertised_pool_is_flagged() -> None:
    reported = PoolStatus(assigned_ipv4=1, available_ipv4=3)
    objects = [pool("a", "198.51.100.0/30", status=reported), pool("b", "203.0.113.0/24")]
    objects.append(crd("L2Advertisement", "l2", {"ipAddressPools": ["a"]}))
    status = build_status(
        Snapshot(
            namespace=NS,
            now=NOW,
            config_objects=objects,
            services=[
                service("web", "198.51.100.1"),
                service("x", "203.0.113.7"),
                service("y", "203.0.113.7"),
            ],
            configuration_state=state(),
        )
    )
    a, b = status.pools
    assert (a.kind, a.modes, a.used, a.total, a.reported) == (
        "IPAddressPool",
        ("layer2",),
        1,
        4,
        reported.to_api(),
    )
    assert (b.modes, b.used, b.total) == ((), 1, 256)  # two Services sharing an address count it once
    assert any("pool b: no L2Advertisement or BGPAdvertisement" in w for w in status.warnings)


def test_bgp_shows_what_speakers_publish_else_what_the_configuration_selects() -> None:
    objects = [
        pool("p", "203.0.113.0/28"),
        crd("BGPPeer", "router", {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1"}, "v1beta2"),
        crd(
            "BGPAdvertisement",
            "adv",
            {"ipAddressPools": ["p"], "nodeSelectors": [{"matchLabels": {"bgp": "yes"}}]},
        ),
    ]
    nodes = [node("n1", labels={"bgp": "yes"}), node("n2", labels={"bgp": "yes"}), node("n3")]
    published = Snapshot(
        namespace=NS,
        now=NOW,
        config_objects=objects,
        services=[service("web", "203.0.113.1")],
        bgp_statuses=[named(bgp_status("default/web", "n1", ["router"], NS), "bgp-a")],
        nodes=nodes,
        configuration_state=state(),
    )
    web = build_status(published).services[0]
    assert web.modes == ("bgp",) and web.source == "ServiceBGPStatus"
    assert [(a.node, a.peers) for a in web.announcers] == [("n1", ("router",))]

    unpublished = Snapshot(
        namespace=NS,
        now=NOW,
        config_objects=objects,
        services=[service("web", "203.0.113.1")],
        nodes=nodes,
        configuration_state=state(),
    )
    web = build_status(unpublished).services[0]
    assert web.source == "configuration"
    assert [(a.node, a.peers) for a in web.announcers] == [("n1", ("router",)), ("n2", ("router",))]
    assert "no speaker published a ServiceBGPStatus" in render_text(build_status(unpublished))


def test_without_status_objects_the_nodeassigned_event_names_the_announcer() -> None:
    event = {
        "reason": "nodeAssigned",
        "message": 'announcing from node "node3" with protocol "layer2"',
        "reportingInstance": "node3",
        "involvedObject": {"kind": "Service", "namespace": "default", "name": "web"},
        "lastTimestamp": "2026-12-05T11:00:00Z",
    }
    older = {**event, "reportingInstance": "node1", "lastTimestamp": "2026-12-05T10:00:00Z"}
    snapshot = Snapshot(
        namespace=NS,
        now=NOW,
        config_objects=[SEED],
        services=[service("web", "192.168.1.11")],
        l2_statuses=None,
        events=[older, event],
        unavailable=("servicel2statuses.metallb.io: not found",),
    )
    status = build_status(snapshot)
    assert [a.node for a in status.services[0].announcers] == ["node3"]
    assert status.services[0].source == "Event"
    assert "NOT READ" in render_text(status)


@given(st.integers(0, 10**30), st.integers(0, 10**30))
def test_the_bar_has_one_width_and_is_full_only_when_the_pool_is(a: int, b: int) -> None:
    used, total = min(a, b), max(a, b)
    drawn = bar(used, total)
    assert len(drawn) == BAR_WIDTH + 2
    filled = drawn.count("#")
    assert (filled == BAR_WIDTH) == (total > 0 and used == total)
    assert (filled == 0) == (used == 0)


@given(st.integers(0, 2**32 - 1), st.integers(0, 700), st.booleans())
def test_pool_size_counts_what_the_pool_may_hand_out(start: int, length: int, avoid: bool) -> None:
    end = min(start + length, 2**32 - 1)
    first, last = ipaddress.IPv4Address(start), ipaddress.IPv4Address(end)
    subject = Pool("p", [f"{first}-{last}"], avoid_buggy_ips=avoid)
    expected = sum(1 for x in range(start, end + 1) if not (avoid and x % 256 in (0, 255)))
    assert pool_size(subject) == expected


@given(st.sets(st.integers(0, 63), max_size=20), st.sets(st.integers(0, 63), max_size=5))
def test_used_counts_the_distinct_service_addresses_inside_the_pool(
    inside: set[int], shared: set[int]
) -> None:
    services = [service(f"s{i}", f"198.51.100.{i}") for i in sorted(inside)]
    services += [service(f"t{i}", f"198.51.100.{i}") for i in sorted(shared)]
    services.append(service("outside", "203.0.113.1"))
    objects = [pool("p", "198.51.100.0/26"), crd("L2Advertisement", "l2", {})]
    status = build_status(Snapshot(namespace=NS, now=NOW, config_objects=objects, services=services))
    assert status.pools[0].used == len(inside | shared)
    assert status.pools[0].full == (len(inside | shared) == 64)


def test_the_command_line() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["status", "-o", "json", "--watch", "--interval", "0.5", "--namespace", "x"])
    assert (args.output, args.watch, args.interval, args.namespace) == ("json", True, 0.5, "x")
    with pytest.raises(SystemExit):
        parser.parse_args(["status", "--interval", "0"])


def unreachable(tmp_path: Path) -> Path:
    """A kubeconfig naming an API server that refuses connections."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n"
        "users: [{name: u, user: {token: x}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    return kubeconfig


def test_an_unreachable_api_server_is_exit_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["status", f"--kubeconfig={unreachable(tmp_path)}"])
    assert args.handler(args) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: cannot read the cluster at http://127.0.0.1:1")


def test_watch_says_on_stderr_that_it_cannot_read_and_keeps_stdout_for_snapshots(tmp_path: Path) -> None:
    kubeconfig = unreachable(tmp_path)
    argv = [sys.executable, "-m", "metallb_py.cli", "status", f"--kubeconfig={kubeconfig}", "-o", "json"]
    argv += ["--watch", "--interval", "0.1"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        assert child.stderr is not None
        first, second = child.stderr.readline(), child.stderr.readline()
        child.send_signal(signal.SIGTERM)
        out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    assert first.startswith("error: cannot read the cluster at http://127.0.0.1:1")
    assert second.startswith("error: cannot read the cluster")  # it went on trying
    assert out == ""


def test_services_of_another_load_balancer_class_are_not_metallbs() -> None:
    other = service("other")
    other["spec"]["loadBalancerClass"] = "example.com/lb"
    objects = [SEED]
    default = build_status(Snapshot(namespace=NS, now=NOW, config_objects=objects, services=[other]))
    assert default.services == ()
    classed = build_status(
        Snapshot(namespace=NS, now=NOW, config_objects=objects, services=[other], lb_class="example.com/lb")
    )
    assert [s.key for s in classed.services] == ["default/other"]


@given(
    st.dictionaries(
        st.sampled_from(["a", "b", "c"]),
        st.tuples(
            st.sampled_from(["192.168.1.11", "192.168.1.12", "192.168.1.13", None]),
            st.lists(st.sampled_from(["n1", "n2", "n3"]), max_size=3),
        ),
        max_size=3,
    )
)
def test_announcers_are_the_distinct_claimants_of_each_service(
    services: dict[str, tuple[str | None, list[str]]],
) -> None:
    objects = [service(name, *([ip] if ip else [])) for name, (ip, _) in services.items()]
    claims = [
        named(l2_status(f"default/{name}", claimant, [], NS), f"l2-{name}-{i}")
        for name, (_, claimants) in services.items()
        for i, claimant in enumerate(claimants)
    ]
    status = build_status(
        Snapshot(namespace=NS, now=NOW, config_objects=[SEED], services=objects, l2_statuses=claims)
    )
    for shown in status.services:
        ip, claimants = services[shown.name]
        expected = sorted(set(claimants)) if ip else []
        assert [a.node for a in shown.announcers] == expected
        several = any(f"{shown.key} is claimed by several nodes" in w for w in status.warnings)
        assert several == (len(expected) > 1)
    assert json.loads(render_json(status, lines=True)) == json.loads(render_json(status))
    text = render_text(status)
    assert all(f"default/{name}" in text for name in services)
