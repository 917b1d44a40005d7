"""The Makefile's newcomer surface: `make help` lists every documented target, and `make clean` says what it
keeps (read through `make -n`, which runs nothing)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKEFILE = REPO / "Makefile"

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

# A target line with its `## ` description, as the Makefile documents them.
_DOCUMENTED = re.compile(r"^([^\s:#=]+):[^=].*## (.+)$", re.MULTILINE)


def _make(*args: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_help_lists_every_documented_target_with_its_description() -> None:
    documented = _DOCUMENTED.findall(MAKEFILE.read_text())
    names = [name for name, _ in documented]
    # The targets a digit once hid from the list, so the check cannot pass vacuously on them.
    assert {"k8s", "bench-l2", "soak-l2"} <= set(names)
    listed = {}
    for line in _make("help").splitlines():
        parts = line.split(maxsplit=2)
        assert parts[:1] == ["make"], line
        listed[parts[1]] = parts[2] if len(parts) > 2 else ""
    assert listed == {name: text.strip() for name, text in documented}


def test_clean_keeps_go_caches_and_says_how_to_empty_them() -> None:
    plan = _make("-n", "clean")
    assert "go clean" not in plan
    assert "~/go/pkg/mod" in plan and "~/.cache/go-build" in plan and "make clean-go-caches" in plan
    assert "go clean -modcache -cache" in _make("-n", "clean-go-caches")


def test_dev_rebuilds_the_extension_only_after_a_rust_or_manifest_change(tmp_path: Path) -> None:
    # The Makefile in a tree of its own with stamps newer than every source (times set, not slept for).
    (tmp_path / "Makefile").write_text(MAKEFILE.read_text())
    sources = ["Cargo.toml", "Cargo.lock", "pyproject.toml", "rust/core/Cargo.toml", "rust/core/src/lib.rs"]
    built = ["rust/core/fuzz/target/debug/build/out.rs"]  # build output under a target/ is no source
    for index, name in enumerate([*sources, *built, ".venv/.deps-stamp", ".venv/.ext-stamp"]):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        os.utime(path, (1_000_000 + index, 1_000_000 + index))

    def plan() -> str:
        return subprocess.run(
            ["make", "--no-print-directory", "-n", "dev"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    assert "maturin" not in plan()  # a second `make demo` starts at once
    os.utime(tmp_path / built[0], (2_000_000, 2_000_000))
    assert "maturin" not in plan()
    for name in sources:
        os.utime(tmp_path / name, (2_000_000, 2_000_000))
        assert "maturin develop --release --skip-install" in plan(), name
        os.utime(tmp_path / name, (1_000_000, 1_000_000))
