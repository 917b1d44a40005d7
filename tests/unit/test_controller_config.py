"""metallb_py.controller.config: reloads keep the last good configuration and say what a bad one broke."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from metallb_py import Allocator
from metallb_py.controller.config import ConfigState

FIXTURES = Path(__file__).parent.parent / "fixtures"
SEED_CONFIGMAP: dict[str, Any] = yaml.safe_load((FIXTURES / "seed-configmap.yaml").read_text())


def configmap(addresses: str = "192.168.1.11-192.168.1.13", text: str | None = None) -> dict[str, Any]:
    cm = copy.deepcopy(SEED_CONFIGMAP)
    cm["metadata"]["resourceVersion"] = "5"
    if text is not None:
        cm["data"]["config"] = text
    else:
        cm["data"]["config"] = cm["data"]["config"].replace("192.168.1.11-192.168.1.13", addresses)
    return cm


def pool(name: str, *addresses: str) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": "metallb-system"},
        "spec": {"addresses": list(addresses)},
    }


def test_first_good_configuration() -> None:
    state, allocator = ConfigState("metallb-system"), Allocator()
    outcome = state.apply([configmap()], allocator)
    assert outcome.loaded and outcome.first and outcome.changed
    assert outcome.evicted == ()
    assert outcome.summary == "1 pool (3 addresses), 1 L2Advertisement"
    assert [p.name for p in allocator.pools()] == ["nginx-ip-range"]
    assert state.loaded and not state.stale


def test_same_configuration_again_changes_nothing() -> None:
    state, allocator = ConfigState("metallb-system"), Allocator()
    state.apply([configmap()], allocator)
    again = configmap()
    again["metadata"]["resourceVersion"] = "9"
    again["metadata"]["labels"] = {"touched": "yes"}
    outcome = state.apply([again], allocator)
    assert outcome.loaded and not outcome.first and not outcome.changed


def test_bad_configuration_keeps_the_last_good_one_and_every_address() -> None:
    state, allocator = ConfigState("metallb-system"), Allocator()
    state.apply([configmap()], allocator)
    allocator.allocate("default/a")
    allocator.allocate("default/b")
    bad = configmap(text="address-pools:\n- name: nginx-ip-range\n  protocl: layer2\n  addresses: [x]\n")
    outcome = state.apply([bad], allocator)
    assert not outcome.loaded
    assert outcome.culprit is bad
    assert outcome.error is not None
    assert "ConfigMap metallb-system/config" in outcome.error and "protocl" in outcome.error
    assert state.stale and not state.loaded
    assert state.config is not None and [p.name for p in state.config.pools] == ["nginx-ip-range"]
    assert [str(ip) for ip in allocator.ips("default/a")] == ["192.168.1.11"]
    assert [str(ip) for ip in allocator.ips("default/b")] == ["192.168.1.12"]
    # Fixing it clears the stale state.
    assert state.apply([configmap()], allocator).loaded
    assert state.loaded


def test_invalid_yaml_and_overlaps_are_refused() -> None:
    state, allocator = ConfigState("metallb-system"), Allocator()
    assert not state.apply([configmap(text="address-pools: [")], allocator).loaded
    overlapping = [pool("a", "10.0.0.0/24"), pool("b", "10.0.0.128/25")]
    outcome = state.apply(overlapping, allocator)
    assert not outcome.loaded
    assert outcome.culprit is overlapping[1]  # the object the message names first
    assert "overlaps" in (outcome.error or "")
    assert state.config is None  # nothing was ever in force


def test_no_configuration_object_is_not_an_empty_configuration() -> None:
    state, allocator = ConfigState("metallb-system"), Allocator()
    state.apply([configmap()], allocator)
    allocator.allocate("default/a")
    outcome = state.apply([], allocator)
    assert not outcome.loaded
    assert outcome.culprit is None
    assert "no MetalLB configuration in namespace metallb-system" in (outcome.error or "")
    assert allocator.keys() == ["default/a"]


def test_shrinking_a_pool_evicts_the_services_outside_it() -> None:
    state, allocator = ConfigState("metallb-system"), Allocator()
    state.apply([configmap()], allocator)
    for name in ("a", "b", "c"):
        allocator.allocate(f"default/{name}")
    outcome = state.apply([configmap(addresses="192.168.1.11-192.168.1.12")], allocator)
    assert outcome.loaded and outcome.changed
    assert outcome.evicted == ("default/c",)
    assert allocator.keys() == ["default/a", "default/b"]


def test_warnings_are_in_the_outcome_even_when_the_pools_are_the_same() -> None:
    state, allocator = ConfigState("metallb-system"), Allocator()
    outcome = state.apply([pool("a", "192.0.2.5/28")], allocator)
    assert outcome.loaded and len(outcome.warnings) == 1 and "192.0.2.5/28" in outcome.warnings[0]
    # The same pools written without host bits: the same configuration, without the warning.
    outcome = state.apply([pool("a", "192.0.2.0/28")], allocator)
    assert outcome.loaded and not outcome.changed and outcome.warnings == ()
    assert state.config is not None and state.config.warnings == ()


def test_strict_refuses_what_would_warn() -> None:
    state, allocator = ConfigState("metallb-system", strict=True), Allocator()
    assert state.apply([pool("a", "192.0.2.0/28")], allocator).loaded
    outcome = state.apply([pool("a", "192.0.2.5/28")], allocator)
    assert not outcome.loaded and outcome.error is not None and "strict" in outcome.error
    assert outcome.culprit is not None and outcome.culprit["metadata"]["name"] == "a"
    assert state.config is not None and [p.addresses for p in state.config.pools] == [["192.0.2.0/28"]]
