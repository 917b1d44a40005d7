"""The dependency floor is a tested floor: ci/floor-constraints.txt pins exactly the lowest versions
pyproject.toml allows, and `make test-floor` (METALLB_PY_FLOOR=1) runs with those versions installed."""

from __future__ import annotations

import os
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[2]
CONSTRAINTS = REPO / "ci" / "floor-constraints.txt"


def declared_floors() -> dict[str, str]:
    """Each runtime dependency of pyproject.toml and the version its `>=` names."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    floors: dict[str, str] = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        lower = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        assert len(lower) == 1, f"{line!r}: a dependency needs one `>=` floor, tested by make test-floor"
        floors[canonicalize_name(requirement.name)] = lower[0]
    return floors


def pinned_floors() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in CONSTRAINTS.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        assert spec.operator == "==", f"{line!r}: the floor constraints pin versions with =="
        pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def test_the_constraints_pin_every_floor_of_pyproject() -> None:
    declared, pinned = declared_floors(), pinned_floors()
    assert sorted(pinned) == sorted(declared)
    # `>=30.1` allows 30.1.0 at the lowest: Version("30.1") == Version("30.1.0").
    mismatched = {
        name: (declared[name], pinned[name])
        for name in declared
        if Version(declared[name]) != Version(pinned[name])
    }
    assert mismatched == {}, "pyproject.toml floor vs ci/floor-constraints.txt pin"


@pytest.mark.skipif(os.environ.get("METALLB_PY_FLOOR") != "1", reason="only in `make test-floor`")
def test_the_floor_run_has_the_floor_installed() -> None:
    pinned = pinned_floors()
    installed = {name: metadata.version(name) for name in pinned}
    assert {name: Version(v) for name, v in installed.items()} == {
        name: Version(v) for name, v in pinned.items()
    }
