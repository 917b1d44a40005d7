"""`metallb-py controller` wiring: flags, defaults and metric names (no API server needed)."""

from __future__ import annotations

import pytest
from prometheus_client import generate_latest

from metallb_py import Allocator, Pool
from metallb_py.cli import build_parser
from metallb_py.controller.main import default_identity, options_from_args
from metallb_py.controller.metrics import Metrics
from metallb_py.runtime import default_namespace


def test_flags_map_to_options() -> None:
    args = build_parser().parse_args(
        [
            "controller",
            "--kubeconfig=/k",
            "--namespace=lb",
            "--lb-class=example.com/x",
            "--metrics-port=9100",
            "--lease-name=l",
            "--identity=me",
            "--no-leader-elect",
            "--lease-duration=6",
            "--renew-deadline=4",
            "--retry-period=1",
            "--strict",
        ]
    )
    options = options_from_args(args)
    assert args.kubeconfig == "/k"
    assert (options.namespace, options.lb_class, options.identity, options.lease_name) == (
        "lb",
        "example.com/x",
        "me",
        "l",
    )
    assert not options.leader_election
    assert (options.lease_duration, options.renew_deadline, options.retry_period) == (6, 4, 1)
    assert options.metrics_port == 9100
    assert options.strict


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METALLB_NAMESPACE", raising=False)
    monkeypatch.delenv("POD_NAME", raising=False)
    options = options_from_args(build_parser().parse_args(["controller", "--metrics-port=0"]))
    assert options.namespace == default_namespace() == "metallb-system"
    assert options.lb_class is None
    assert options.leader_election
    assert options.metrics_port is None  # 0 disables the server
    assert options.lease_name == "metallb-controller"
    assert not options.strict  # warnings are warnings unless asked otherwise
    # Two processes on one host never share an identity.
    assert options.identity != default_identity()
    monkeypatch.setenv("POD_NAME", "controller-abc")
    monkeypatch.setenv("METALLB_NAMESPACE", "lb-system")
    assert default_identity() == "controller-abc"
    assert default_namespace() == "lb-system"


def test_metric_names_are_metallbs() -> None:
    metrics = Metrics()
    allocator = Allocator([Pool("a", ["192.0.2.0/30"]), Pool("b", ["2001:db8::/64"])])
    allocator.allocate("x/y")
    metrics.set_pools(allocator, ["a", "b"])
    metrics.set_config(loaded=True, stale=False)
    metrics.updates.inc()
    metrics.count_requests(lambda: {("patch", "services"): 2})
    text = generate_latest(metrics.registry).decode()
    assert 'metallb_allocator_addresses_total{pool="a"} 4.0' in text
    assert 'metallb_allocator_addresses_in_use_total{pool="a"} 1.0' in text
    assert 'metallb_allocator_addresses_total{pool="b"} 1.8446744073709552e+19' in text
    assert "metallb_k8s_client_config_loaded_bool 1.0" in text
    assert "metallb_k8s_client_config_stale_bool 0.0" in text
    assert "metallb_k8s_client_updates_total 1.0" in text
    assert "metallb_k8s_client_update_errors_total 0.0" in text
    assert 'metallb_py_k8s_client_requests_total{resource="services",verb="patch"} 2.0' in text
    # A pool that disappears from the configuration disappears from the metrics.
    metrics.set_pools(allocator, ["a"])
    assert 'pool="b"' not in generate_latest(metrics.registry).decode()
