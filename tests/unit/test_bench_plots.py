"""The benchmark plots (benches/_plots.py) rendered from results written through benches/_results.py: every
part drawn as a valid PNG and linked from REPORT.md, missing and broken parts named, 'not seen' times kept out
of the figures. Synthetic samples stand in for bench runs."""

from __future__ import annotations

import importlib
import json
import math
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHES = Path(__file__).resolve().parents[2] / "benches"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[ModuleType, ModuleType]]:
    """benches/ is not a package: its directory goes on sys.path for the test's length."""
    monkeypatch.syspath_prepend(str(BENCHES))
    yield importlib.import_module("_plots"), importlib.import_module("_results")
    for name in ("_plots", "_results"):
        sys.modules.pop(name, None)


@dataclass(frozen=True)
class FakeKill:
    """The fields of benches/test_bench_failover.py's Kill that the recorder reads."""

    vip: str
    killed: str
    taker: str
    answered: float
    detected: float
    announced: float
    recorded: float
    lost: int = 3
    back_lost: int = 0
    rejoin: float = 0.4
    spurious_downs: int = 0
    death: str = "cut"


@dataclass(frozen=True)
class FakeKeepalived:
    interval: float
    answered: list[float]
    lost: list[int] = field(default_factory=list)
    back_lost: list[int] = field(default_factory=list)


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, after checking the signature."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def kills(n: int, death: str) -> list[FakeKill]:
    return [
        FakeKill(
            vip=f"192.0.2.{10 + i}",
            killed="node-a",
            taker="node-b",
            detected=0.020 + 0.001 * i,
            announced=0.022 + 0.001 * i,
            answered=0.030 + 0.001 * i,
            # One kill whose ServiceL2Status the logs did not show.
            recorded=math.nan if i == 2 else 0.120 + 0.004 * i,
            death=death,
        )
        for i in range(n)
    ]


def write_everything(results: ModuleType, out: Path) -> None:
    deaths = {"cut": "cable cut, then SIGKILL", "kill": "SIGKILL alone"}
    results.record_failover(
        "idle",
        {death: kills(6, death) for death in deaths},
        [0.004, 0.005, 0.006],
        keepalived={
            "cut": FakeKeepalived(0.01, [0.038, 0.041, 0.045], [4, 4, 5], [1, 0, 1]),
            "kill": FakeKeepalived(0.01, [0.036, 0.040, 0.047], [4, 4, 4], [0, 0, 1]),
        },
        deaths=deaths,
        probe_interval=0.01,
        out=out,
    )
    for n, seconds in ((1_000, 0.0004), (10_000, 0.004), (65_534, 0.03)):
        results.record(
            "allocator", {"ours": {str(n): [seconds, seconds * 1.1, seconds * 0.95]}}, merge=True, out=out
        )
    for n, seconds in ((1_000, 0.05), (10_000, 5.0)):
        results.record("allocator", {"baseline": {str(n): [seconds]}}, merge=True, out=out)
    results.record("allocator", {"paired_ratio": [1.2, 1.3, 1.25]}, merge=True, out=out)
    results.record(
        "l2",
        {
            "runs": {
                "sleeping": {
                    "label": "sleeping in epoll",
                    "figures": {"latency_ours_p50_us": 30.0, "latency_ours_p99_us": 60.0},
                    "samples_us": {
                        "ours": [28.0 + i % 7 for i in range(200)],
                        "kernel": [15.0 + i % 5 for i in range(200)],
                    },
                },
                "busy-poll": {
                    "label": "busy poll",
                    "figures": {
                        f"latency_{who}_{q}_us": base * k
                        for who, base in (("ours", 20.0), ("kernel", 15.0))
                        for q, k in (("p50", 1), ("p90", 1.5), ("p99", 2))
                    },
                },
            },
            "wake": {"wake_same_cpu_p50_us": 6.0},
        },
        merge=True,
        out=out,
    )


def linked_images(report: str) -> list[str]:
    return [line.split("](", 1)[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]


def test_every_part_is_drawn_as_a_png_and_linked_from_the_report(
    modules: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    plots, results = modules
    write_everything(results, tmp_path)
    rendered = plots.render(tmp_path)
    assert sorted(p.name for p in rendered.images) == [
        "allocator-cost.png",
        "failover-idle-distribution.png",
        "failover-idle-timeline.png",
        "l2-latency.png",
    ]
    for image in rendered.images:
        width, height = png_size(image)
        assert width > 300 and height > 200
    report = rendered.report.read_text()
    assert linked_images(report) == [p.name for p in rendered.images]
    assert rendered.skipped == []
    assert "Not in this report" not in report


def test_missing_parts_are_named_with_the_bench_that_writes_them(
    modules: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    plots, results = modules
    results.record("allocator", {"ours": {"1000": [0.0004]}}, out=tmp_path)
    rendered = plots.render(tmp_path)
    assert [p.name for p in rendered.images] == ["allocator-cost.png"]
    report = rendered.report.read_text()
    assert "failover: no results here; benches/test_bench_failover.py" in report
    assert "l2: no results here; benches/test_bench_l2.py" in report
    assert linked_images(report) == ["allocator-cost.png"]


def test_an_empty_directory_gives_a_report_and_no_images(
    modules: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    plots, _ = modules
    rendered = plots.render(tmp_path)
    assert rendered.images == []
    assert len(rendered.skipped) == 3
    assert linked_images(rendered.report.read_text()) == []


def test_a_broken_file_is_named_and_the_rest_still_drawn(
    modules: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    plots, results = modules
    write_everything(results, tmp_path)
    (tmp_path / "l2.json").write_text('{"data": {"runs": ')
    (tmp_path / "failover-loaded.json").write_text("[1, 2]")
    rendered = plots.render(tmp_path)
    report = rendered.report.read_text()
    assert "`l2.json` could not be read" in report
    assert "`failover-loaded.json` has no `data` object" in report
    assert {p.name for p in rendered.images} == {
        "allocator-cost.png",
        "failover-idle-distribution.png",
        "failover-idle-timeline.png",
    }


def test_failover_record_keeps_each_kill_and_turns_unseen_times_into_null(
    modules: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    _, results = modules
    write_everything(results, tmp_path)
    document = json.loads((tmp_path / "failover-idle.json").read_text())
    data: dict[str, Any] = document["data"]
    assert [len(rounds) for rounds in data["kills"].values()] == [6, 6]
    third = data["kills"]["cut"][2]
    assert third["recorded"] is None
    assert third["answered"] == pytest.approx(0.032)
    assert data["keepalived"]["kill"]["answered"] == [0.036, 0.040, 0.047]


def test_merge_adds_to_this_sessions_file_and_replaces_an_older_one(
    modules: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    _, results = modules
    path = tmp_path / "allocator.json"
    path.write_text(json.dumps({"session": "an earlier one", "data": {"ours": {"5": [1.0]}}}))
    results.record("allocator", {"ours": {"1000": [0.1]}}, merge=True, out=tmp_path)
    results.record("allocator", {"ours": {"2000": [0.2]}, "paired_ratio": [1.1]}, merge=True, out=tmp_path)
    data = json.loads(path.read_text())["data"]
    assert data == {"ours": {"1000": [0.1], "2000": [0.2]}, "paired_ratio": [1.1]}
    assert results.recorded_this_session()[-1] == path


@pytest.mark.parametrize("name", ["", "../escape", ".hidden"])
def test_a_result_name_that_is_not_a_plain_stem_is_refused(
    modules: tuple[ModuleType, ModuleType], tmp_path: Path, name: str
) -> None:
    _, results = modules
    with pytest.raises(ValueError, match="plain file stem"):
        results.record(name, {}, out=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_plot_report_script_renders_the_directory_given(
    modules: tuple[ModuleType, ModuleType], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, results = modules
    write_everything(results, tmp_path)
    plot_report = importlib.import_module("plot_report")
    try:
        assert plot_report.main(["--out", str(tmp_path)]) == 0
        assert plot_report.main(["--out", str(tmp_path / "absent")]) == 2
    finally:
        sys.modules.pop("plot_report", None)
    out, err = capsys.readouterr()
    assert str(tmp_path / "REPORT.md") in out
    assert "does not exist" in err
