"""What `metallb-py --help` and each command's `--help` tell a newcomer, read from the parser itself."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

import pytest

from metallb_py.cli import build_parser, main
from metallb_py.speaker.speaker import GossipTiming


def _commands(
    parser: argparse.ArgumentParser, path: str = "metallb-py"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{path} {name}")


def _top_level_commands() -> list[str]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_the_description_names_every_command() -> None:
    description = build_parser().description or ""
    names = _top_level_commands()
    assert {"config", "ipam", "controller", "speaker", "demo"} <= set(names)
    assert [name for name in names if f"`{name}`" not in description] == []


def test_every_flag_and_argument_of_every_command_says_what_it_does() -> None:
    silent = [
        f"{path}: {'/'.join(action.option_strings) or action.dest}"
        for path, parser in _commands(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._VersionAction | argparse._SubParsersAction)
        and not action.help
    ]
    assert silent == []


def test_the_controller_lease_flags_are_described() -> None:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    controller = sub.choices["controller"]
    described = {opt: a.help for a in controller._actions for opt in a.option_strings}
    for flag in ("--lease-name", "--lease-duration", "--renew-deadline", "--retry-period"):
        assert described[flag] and described[flag] != argparse.SUPPRESS, flag


@pytest.mark.parametrize(
    "flags",
    [
        ["--renew-deadline", "20"],  # longer than the default lease duration
        ["--retry-period", "10"],  # as long as the default renew deadline
        ["--retry-period", "0"],
        ["--lease-duration", "5", "--renew-deadline", "5"],
    ],
)
def test_controller_refuses_lease_timings_leader_election_cannot_keep(
    capsys: pytest.CaptureFixture[str], flags: list[str]
) -> None:
    # Refused before any client exists: no kubeconfig is needed to get this answer.
    assert main(["controller", "--kubeconfig", "/nonexistent", *flags]) == 2
    err = capsys.readouterr().err
    assert "0 < --retry-period < --renew-deadline < --lease-duration" in err


@pytest.mark.parametrize("value", ["0", "0.001", "60", "-1"])
def test_speaker_refuses_a_gossip_probe_interval_out_of_range(
    capsys: pytest.CaptureFixture[str], value: str
) -> None:
    argv = ["speaker", "--node-name", "n1", "--kubeconfig", "/nonexistent", "--gossip-probe-interval", value]
    handlers = list(logging.getLogger().handlers)
    assert main(argv) == 2
    assert "--gossip-probe-interval" in capsys.readouterr().err
    # Refused before logging is set up: the handlers of the tests that follow are untouched.
    assert logging.getLogger().handlers == handlers and logging.getLogger("metallb_py").propagate


def test_the_default_gossip_probe_interval_gives_the_gossips_own_defaults() -> None:
    # The Rust Membership's keyword defaults (rust/metallb-py/src/gossip.rs) are 0.1 / 0.04 / 0.25 / 0.4.
    assert GossipTiming.scaled(0.1) == pytest.approx((0.1, 0.04, 0.25, 0.4))
    assert GossipTiming.scaled(0.5) == pytest.approx((0.5, 0.2, 1.25, 2.0))
