"""convert_legacy / dump_crds: legacy ConfigMaps become equivalent, valid CRDs with Kubernetes names."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from metallb_py.config import Config, convert_legacy, dump_crds, load_config
from metallb_py.config.convert import kubernetes_names
from metallb_py.errors import ConfigError

FIXTURES = Path(__file__).parent.parent / "fixtures"


def pool_facts(config: Config) -> list[tuple[list[str], bool, bool]]:
    return [(p.addresses, p.auto_assign, p.avoid_buggy_ips) for p in config.pools]


@pytest.mark.parametrize("fixture", ["seed-configmap.yaml", "legacy-full.yaml"])
def test_round_trip_gives_the_same_pools(fixture: str) -> None:
    text = (FIXTURES / fixture).read_text()
    converted = convert_legacy(text, source=fixture)
    assert pool_facts(load_config(converted)) == pool_facts(load_config(text))


def test_seed_converts_to_a_pool_and_an_l2_advertisement() -> None:
    converted = convert_legacy((FIXTURES / "seed-configmap.yaml").read_text(), source="seed.yaml")
    docs = [d for d in yaml.safe_load_all(converted) if d is not None]
    assert [(d["apiVersion"], d["kind"], d["metadata"]) for d in docs] == [
        ("metallb.io/v1beta1", "IPAddressPool", {"name": "nginx-ip-range", "namespace": "metallb-system"}),
        ("metallb.io/v1beta1", "L2Advertisement", {"name": "nginx-ip-range", "namespace": "metallb-system"}),
    ]
    assert docs[0]["spec"] == {"addresses": ["192.168.1.11-192.168.1.13"]}
    assert docs[1]["spec"] == {"ipAddressPools": ["nginx-ip-range"]}
    # The equivalent hand-written CRDs load to the same configuration.
    assert load_config(converted) == load_config((FIXTURES / "seed-crds.yaml").read_text())


def test_everything_but_the_protocol_survives_when_names_are_valid() -> None:
    text = (
        (FIXTURES / "legacy-full.yaml")
        .read_text()
        .replace("Office LAN", "office")
        .replace("Fast Detect", "fast")
    )
    legacy, crds = load_config(text), load_config(convert_legacy(text))
    assert legacy.legacy_protocols and not crds.legacy_protocols
    assert crds == Config(**{**legacy.__dict__, "legacy_protocols": {}})


def test_invalid_names_become_unique_dns_labels_and_references_follow() -> None:
    text = (FIXTURES / "legacy-full.yaml").read_text()
    converted = convert_legacy(text)
    assert '# Pool "Office LAN" is now IPAddressPool "office-lan"' in converted
    config = load_config(converted)
    assert [p.name for p in config.pools] == ["office-lan", "transit", "uplink"]
    assert config.l2_advertisements[0].pools == ("office-lan",)
    assert config.bgp_peers[0].bfd_profile == "fast-detect"
    assert [b.name for b in config.bfd_profiles] == ["fast-detect"]


def test_kubernetes_names_keep_valid_names_and_deduplicate_deterministically() -> None:
    names = kubernetes_names(["a-b", "A b", "A_B", "ok", "---", "x" * 70])
    assert names["a-b"] == "a-b" and names["ok"] == "ok"
    assert {names["A b"], names["A_B"]} == {"a-b-2", "a-b-3"}
    assert names["A b"] == "a-b-2"  # name order: "A b" < "A_B"
    assert names["---"] == "unnamed"
    assert names["x" * 70] == "x" * 63
    assert kubernetes_names(["A_B", "A b", "a-b"]) == {k: names[k] for k in ("A_B", "A b", "a-b")}
    assert len(set(names.values())) == len(names)


def test_dump_crds_of_a_crd_config_loads_back_equal() -> None:
    text = (FIXTURES / "legacy-full.yaml").read_text()
    config = load_config(convert_legacy(text))
    assert load_config(dump_crds(config)) == config


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a}\n"
            "spec: {addresses: [10.0.0.0/8]}\n",
            'document (<config>, document 1): a string ("IPAddressPool") is not a legacy MetalLB ConfigMap',
        ),
        ("", "<config>: no legacy MetalLB ConfigMap found"),
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: |\n"
            "    address-pools: [{name: a, protocol: l2, addresses: [10.0.0.0/8]}]\n",
            'ConfigMap config (<config>, document 1): address-pools[0] "a": protocol: unknown protocol "l2"',
        ),
    ],
)
def test_convert_refuses_what_is_not_valid_legacy_configuration(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        convert_legacy(text)
    assert fragment in str(info.value)


def test_l2_service_and_preferred_node_selectors_convert_back() -> None:
    text = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: blue, namespace: metallb-system}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec:
  serviceSelectors: [{matchLabels: {tier: fe}}]
  preferredNodeSelectors:
  - weight: 80
    preference: {matchExpressions: [{key: zone, operator: In, values: [a, b]}]}
  - weight: 20
    preference: {matchLabels: {disk: ssd}}
"""
    config = load_config(text)
    [adv] = config.l2_advertisements
    assert [p.weight for p in adv.preferred_node_selectors] == [80, 20] and adv.service_selectors
    dumped = dump_crds(config)
    assert load_config(dumped) == config
    [l2] = [d for d in yaml.safe_load_all(dumped) if d and d["kind"] == "L2Advertisement"]
    assert l2["spec"]["preferredNodeSelectors"][1] == {
        "weight": 20,
        "preference": {"matchLabels": {"disk": "ssd"}},
    }


def test_what_loading_masked_is_written_masked_and_said_in_the_header() -> None:
    text = "address-pools:\n- {name: a, protocol: layer2, addresses: [10.0.0.7/24]}\n"
    converted = convert_legacy(text, source="cm.yaml")
    assert '# Warning: legacy config (cm.yaml, document 1): address-pools[0] "a": addresses[0]' in converted
    config = load_config(converted)
    assert config.pools[0].addresses == ["10.0.0.0/24"] and config.warnings == ()


def test_an_advertisement_of_a_pool_not_defined_yet_keeps_the_name() -> None:
    text = (
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n"
        "spec: {ipAddressPools: [later]}\n"
    )
    config = load_config(text)
    assert config.l2_advertisements[0].pools == ()
    assert "ipAddressPools:\n  - later" in dump_crds(config)
