"""`metallb-py speaker` flags that map to SpeakerOptions (no API server needed)."""

from __future__ import annotations

import pytest

from metallb_py.cli import build_parser
from metallb_py.speaker.main import options_from_args


def test_the_pod_name_comes_from_the_flag_else_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # The Pod owns the speaker's status objects; without one (a lab, a library user) they have no owner.
    monkeypatch.delenv("POD_NAME", raising=False)
    parse = build_parser().parse_args
    assert options_from_args(parse(["speaker", "--node-name=n1"])).pod_name is None
    monkeypatch.setenv("POD_NAME", "speaker-abc12")
    assert options_from_args(parse(["speaker", "--node-name=n1"])).pod_name == "speaker-abc12"
    assert options_from_args(parse(["speaker", "--node-name=n1", "--pod-name=p"])).pod_name == "p"
