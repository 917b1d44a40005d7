"""Every mistake of a configuration in one load (issue 14): each object, each address of a pool and each item
of a legacy ConfigMap is checked on its own, and all their mistakes come back together, each naming its
object, source and field. One mistake stays the ConfigError it always was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py._core import Allocator
from metallb_py.cli import main
from metallb_py.config import ConfigErrors, load_config, load_objects
from metallb_py.controller.config import ConfigState
from metallb_py.errors import ConfigError

GOOD_POOL = """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: good, namespace: metallb-system}
spec: {addresses: [198.51.100.0/28]}
"""

# Three objects with a mistake each: a pool whose first and third addresses are wrong, a pool with an unknown
# field, a peer with an ASN out of range; one good pool between them.
THREE_BAD = (
    """\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: typos, namespace: metallb-system}
spec: {addresses: [192.0.2.300/32, 192.0.2.10-192.0.2.20, 203.0.113.9-203.0.113.1]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: misspelt, namespace: metallb-system}
spec: {adresses: [203.0.113.64/28]}
---
"""
    + GOOD_POOL
    + """\
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 4294967296, peerAddress: 198.51.100.254}
"""
)


def _errors(text: str, *, strict: bool = False) -> list[str]:
    with pytest.raises(ConfigErrors) as caught:
        load_config(text, source="bad.yaml", strict=strict)
    return [str(e) for e in caught.value.errors]


def test_every_bad_object_and_every_bad_address_is_reported_in_one_load() -> None:
    errors = _errors(THREE_BAD)
    # Reading's mistakes (object by object) come first, then those of the checks across objects (addresses).
    assert [e.split(": ")[0] + ": " + e.split(": ")[1] for e in errors] == [
        'IPAddressPool "misspelt" (bad.yaml, document 2): spec.addresses',
        'BGPPeer "router" (bad.yaml, document 4): spec.peerASN',
        'IPAddressPool "typos" (bad.yaml, document 1): spec.addresses[0]',
        'IPAddressPool "typos" (bad.yaml, document 1): spec.addresses[2]',
    ]
    assert 'unknown field "adresses"' in errors[0]


def test_the_message_lists_every_mistake() -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_config(THREE_BAD, source="bad.yaml")
    message = str(caught.value)
    assert message.startswith("4 mistakes in the configuration:\n")
    assert all(f"- {e}" in message for e in caught.value.errors)


def test_one_mistake_is_the_plain_config_error_it_always_was() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(GOOD_POOL.replace("198.51.100.0/28", "198.51.100.0/33"), source="one.yaml")
    assert type(caught.value) is ConfigError
    assert str(caught.value).startswith('IPAddressPool "good" (one.yaml, document 1): spec.addresses[0]: ')


def test_every_bad_pool_of_a_legacy_configmap_is_reported() -> None:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config", "namespace": "metallb-system"},
        "data": {
            "config": yaml.safe_dump(
                {
                    "address-pools": [
                        {"name": "a", "protocol": "layer3", "addresses": ["192.0.2.0/28"]},
                        {"name": "b", "protocol": "layer2", "addresses": ["192.0.2.16/28"]},
                        {"name": "c", "protocol": "layer2", "addresses": ["192.0.2.999/32"]},
                    ],
                    "peers": [{"peer-address": "198.51.100.254", "peer-asn": 64512}],  # no my-asn
                }
            )
        },
    }
    with pytest.raises(ConfigErrors) as caught:
        load_objects([configmap], source="cluster")
    errors = [str(e) for e in caught.value.errors]
    assert len(errors) == 3, errors
    assert any("peers[0]" in e and "my-asn" in e for e in errors)
    assert any('address-pools[0] "a": protocol' in e and "layer3" in e for e in errors)
    assert any('address-pools[2] "c": addresses[0]' in e for e in errors)
    assert all(e.startswith("ConfigMap metallb-system/config (cluster, object 1): ") for e in errors)


def test_mistakes_across_objects_are_all_reported() -> None:
    text = "\n---\n".join(
        [
            GOOD_POOL,
            GOOD_POOL.replace("name: good", "name: twin").replace("198.51.100.0/28", "198.51.100.8/29"),
            GOOD_POOL.replace("198.51.100.0/28", "203.0.113.0/28"),  # a second pool named good
            """\
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.254, bfdProfile: nowhere}
""",
        ]
    )
    errors = _errors(text)
    assert len(errors) == 3, errors
    duplicate, overlap, profile = errors
    assert 'duplicate IPAddressPool name "good"' in duplicate
    assert overlap.startswith('IPAddressPool "twin" (bad.yaml, document 2): spec.addresses[0]: ')
    assert "overlaps" in overlap
    assert profile.startswith('BGPPeer "router" (bad.yaml, document 4): spec.bfdProfile: unknown BFDProfile')


def test_a_reference_to_an_object_that_could_not_be_read_is_not_reported_again() -> None:
    text = """\
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: metallb-system}
spec: {receiveInterval: -1}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.254, bfdProfile: fast}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {ipAddressPools: [broken]}
---
""" + GOOD_POOL.replace("name: good", "name: broken").replace("198.51.100.0/28", "not-an-address")
    with pytest.raises(ConfigErrors) as caught:
        load_config(text, source="bad.yaml", strict=True)  # strict: an unknown pool would be an error too
    errors = [str(e) for e in caught.value.errors]
    assert len(errors) == 2, errors
    assert errors[0].startswith('BFDProfile "fast" (bad.yaml, document 1): spec.receiveInterval')
    assert errors[1].startswith('IPAddressPool "broken" (bad.yaml, document 4): spec.addresses[0]')


def test_strict_reports_every_warning_as_a_mistake() -> None:
    text = (
        GOOD_POOL.replace("198.51.100.0/28", "198.51.100.5/28")
        + "\n---\n"
        + GOOD_POOL.replace("name: good", "name: other").replace("198.51.100.0/28", "203.0.113.7/28")
    )
    assert load_config(text).warnings  # two CIDRs with host bits: accepted, as MetalLB does
    errors = _errors(text, strict=True)
    assert len(errors) == 2, errors
    assert all("has host bits set (refused in strict mode" in e for e in errors)


def test_validate_prints_every_mistake_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(THREE_BAD)
    also = tmp_path / "also.yaml"
    also.write_text(GOOD_POOL.replace("name: good", "name: twin"))  # overlaps good in bad.yaml
    assert main(["config", "validate", str(bad), str(also)]) == 1
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[-1] == "5 errors"
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 5, err
    named = [line.split(": ")[1] for line in errors]
    assert sorted(named) == sorted(
        [
            f'BGPPeer "router" ({bad}, document 4)',
            f'IPAddressPool "misspelt" ({bad}, document 2)',
            f'IPAddressPool "twin" ({also}, document 1)',
            f'IPAddressPool "typos" ({bad}, document 1)',
            f'IPAddressPool "typos" ({bad}, document 1)',
        ]
    )
    assert out == ""


def _objects(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def test_the_controller_keeps_its_last_good_configuration_and_names_every_mistake() -> None:
    state = ConfigState("metallb-system")
    allocator = Allocator()
    assert state.apply(_objects(GOOD_POOL), allocator).loaded
    good = state.config
    refused = state.apply(_objects(THREE_BAD), allocator)
    assert not refused.loaded
    assert state.config is good and state.stale
    assert refused.error is not None and refused.error.startswith("4 mistakes in the configuration:\n")
    assert refused.error.count("\n- ") == 4
    assert [p.name for p in allocator.pools()] == ["good"]
