"""`metallb-py speaker --strict`: a configuration with warnings is refused and the last good one stays in
force, as `controller --strict` does, so both agree on what is configured. Driven through Rounds.run_round
with a fake view (no API server) and the real loader."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import pytest

from metallb_py.cli import build_parser
from metallb_py.config.model import Config
from metallb_py.speaker.main import options_from_args
from metallb_py.speaker.metrics import SpeakerMetrics
from metallb_py.speaker.ports import ClusterView
from metallb_py.speaker.rounds import Rounds

JSON = dict[str, Any]


def pool(cidr: str) -> JSON:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": "web", "namespace": "metallb-system"},
        "spec": {"addresses": [cidr]},
    }


class View:
    def __init__(self, *config: JSON) -> None:
        self.config = list(config)

    def synced(self) -> bool:
        return True

    def service_objects(self) -> list[JSON]:
        return []

    def endpoint_slices(self) -> list[JSON]:
        return []

    def nodes(self) -> Mapping[str, JSON]:
        return {}

    def config_objects(self) -> list[JSON]:
        return self.config


class Seen:
    """The configurations the rounds hand to the protocols."""

    def __init__(self) -> None:
        self.configs: list[Config] = []

    def elect_and_apply(self, config: Config, view: ClusterView, live: set[str] | None) -> None:
        self.configs.append(config)

    def withdraw_all(self) -> None:
        pass


def rounds(view: View, *, strict: bool) -> tuple[Rounds, Seen]:
    seen = Seen()
    return Rounds(
        "node1", view, seen, None, expected=lambda _now: {}, metrics=SpeakerMetrics(), strict=strict
    ), seen


def test_strict_refuses_a_configuration_with_warnings_and_keeps_the_last_good_one() -> None:
    view = View(pool("192.0.2.0/24"))
    strict, seen = rounds(view, strict=True)
    strict.run_round()
    good = strict.config
    assert good is not None and strict.config_error is None
    view.config = [pool("192.0.2.1/24")]  # host bits: MetalLB masks them, a warning here
    strict.config_changed()
    strict.run_round()
    assert strict.config is good, "the last good configuration stays in force"
    assert strict.config_error is not None and "host bits" in strict.config_error
    assert seen.configs == [good, good]

    lenient, seen = rounds(view, strict=False)
    lenient.run_round()
    assert lenient.config is not None and lenient.config.warnings and lenient.config_error is None


@pytest.mark.parametrize(("argv", "strict"), [([], False), (["--strict"], True)])
def test_the_strict_flag_reaches_the_options(argv: list[str], strict: bool) -> None:
    args: argparse.Namespace = build_parser().parse_args(["speaker", "--node-name", "node1", *argv])
    assert options_from_args(args).strict is strict
