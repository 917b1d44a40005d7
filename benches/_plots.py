"""Turns the raw samples the benches left in the results directory (benches/_results.py) into PNG plots and
REPORT.md beside them. Pure: reads JSON, writes files, measures nothing.

Parts: layer 2 failover (`failover-<label>.json`: a timeline of every kill, and ours against keepalived and
the floor), allocation cost against n with the linear-scan baseline (`allocator.json`), ARP answer latency,
ours against the kernel (`l2.json`). A part with no file gets a line in the report naming the bench that
writes it; a file that cannot be read gets a line saying which and why. Drawn through matplotlib's
object-oriented API onto Agg canvases (no pyplot, no display, no global state).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

__all__ = ["Rendered", "render"]

REPORT = "REPORT.md"
DPI = 110

# Events of a kill, in the order they happen, with how each is drawn.
EVENTS = (
    ("detected", "a survivor takes it over (member held / down)", "v", "tab:blue"),
    ("announced", "the new node logs 'announcing'", "s", "tab:orange"),
    ("answered", "first ARP answer from the new node", "o", "tab:green"),
    ("recorded", "ServiceL2Status names the new node", "D", "tab:purple"),
)
OURS, KERNEL, BASELINE = "tab:green", "tab:gray", "tab:red"
WAKE = "waking a thread asleep in poll(), p50 (l2-bench wake)"


@dataclass
class Rendered:
    """What `render` wrote: the report, the images (in report order), and the parts it left out, why."""

    report: Path
    images: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Part:
    """One file's document, or why there is none."""

    path: Path
    document: dict[str, Any] | None
    problem: str | None

    @property
    def data(self) -> dict[str, Any]:
        assert self.document is not None
        data = self.document.get("data")
        return data if isinstance(data, dict) else {}

    def provenance(self) -> str:
        doc = self.document or {}
        commit = doc.get("commit")
        return f"Measured {doc.get('written_at', 'at an unknown time')}" + (
            f" at commit `{commit}`" if commit else ""
        )


def _load(path: Path) -> _Part:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        return _Part(
            path, None, f"`{path.name}` could not be read ({err}); run its bench again to rewrite it"
        )
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        return _Part(path, None, f"`{path.name}` has no `data` object; run its bench again to rewrite it")
    return _Part(path, document, None)


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank, as benches/_measure.py reports them (with 20 values p99 is the largest)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def _numbers(values: Any) -> list[float]:
    """The finite numbers of a JSON list (null stands for 'not seen')."""
    if not isinstance(values, list):
        return []
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, metadata={"Software": None})
    return path


def _ms(values: Sequence[float]) -> list[float]:
    return [1000 * v for v in values]


def _summary(values_ms: Sequence[float]) -> str:
    if not values_ms:
        return "-"
    return f"{_percentile(values_ms, 50):.1f} / {_percentile(values_ms, 99):.1f}"


# -- failover ------------------------------------------------------------------------------------------------


def _failover_timeline(label: str, data: dict[str, Any], path: Path) -> Path:
    kills: dict[str, list[dict[str, Any]]] = data.get("kills", {})
    deaths: dict[str, str] = data.get("deaths", {})
    most = max((len(rounds) for rounds in kills.values()), default=1)
    figure = Figure(figsize=(6 * max(1, len(kills)), 1.6 + 0.28 * most), layout="constrained")
    axes = figure.subplots(1, max(1, len(kills)), squeeze=False, sharex=True)[0]
    for ax, (death, rounds) in zip(axes, kills.items(), strict=False):
        for row, kill in enumerate(rounds, start=1):
            times = {name: kill.get(name) for name, *_ in EVENTS}
            seen = [1000 * t for t in times.values() if isinstance(t, (int, float))]
            if seen:
                ax.hlines(row, 0, max(seen), color="0.8", linewidth=1, zorder=1)
            for name, what, marker, colour in EVENTS:
                t = times[name]
                if isinstance(t, (int, float)):
                    ax.scatter([1000 * t], [row], marker=marker, color=colour, s=28, zorder=2, label=what)
        ax.axvline(0, color="black", linewidth=1.2, label="death (t = 0)")
        ax.set_title(f"{deaths.get(death, death)} ({len(rounds)} kills)")
        ax.set_xlabel("ms since the death")
        ax.set_ylabel("kill")
        ax.set_ylim(len(rounds) + 0.7, 0.3)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    figure.legend(unique.values(), unique.keys(), loc="outside lower center", ncols=3, fontsize="small")
    figure.suptitle(f"Layer 2 failover, {label}: every kill, from the death to the ServiceL2Status")
    return _save(figure, path)


def _failover_distribution(label: str, data: dict[str, Any], path: Path) -> Path:
    kills: dict[str, list[dict[str, Any]]] = data.get("kills", {})
    deaths: dict[str, str] = data.get("deaths", {})
    keepalived: dict[str, dict[str, Any]] = data.get("keepalived", {})
    floor = _ms(_numbers(data.get("floor")))
    figure = Figure(figsize=(6 * max(1, len(kills)), 3.4), layout="constrained")
    axes = figure.subplots(1, max(1, len(kills)), squeeze=False, sharex=True)[0]
    for ax, (death, rounds) in zip(axes, kills.items(), strict=False):
        rows: list[tuple[str, list[float], str]] = [
            ("metallb-py", _ms(_numbers([k.get("answered") for k in rounds])), OURS)
        ]
        run = keepalived.get(death)
        if run is not None:
            interval = run.get("interval")
            advert = f"\n({1000 * interval:g} ms adverts)" if isinstance(interval, (int, float)) else ""
            rows.append((f"keepalived VRRPv3{advert}", _ms(_numbers(run.get("answered"))), BASELINE))
        if floor:
            rows.append(("floor: cut, then\nimmediate announce", floor, KERNEL))
        rows = [r for r in rows if r[1]]
        positions = list(range(1, len(rows) + 1))
        for pos, (_, values, colour) in zip(positions, rows, strict=True):
            # A box from the first to the third quartile, a line at the median (drawn by hand: boxplot's
            # orientation argument changed name between the matplotlib versions we allow).
            q1, q2, q3 = (_percentile(values, q) for q in (25, 50, 75))
            ax.barh(pos, q3 - q1, left=q1, height=0.5, fill=False, edgecolor="0.3")
            ax.vlines(q2, pos - 0.25, pos + 0.25, color="black", linewidth=2)
            jitter = [pos + 0.18 * ((i * 0.618) % 1 - 0.5) for i in range(len(values))]
            ax.scatter(values, jitter, color=colour, s=14, alpha=0.75, zorder=3)
        ax.set_yticks(positions, [r[0] for r in rows])
        ax.set_ylim(len(rows) + 0.6, 0.4)
        ax.set_xlim(left=0)
        ax.set_xlabel("ms from the death to the first answer")
        ax.set_title(deaths.get(death, death))
        ax.grid(axis="x", alpha=0.3)
    figure.suptitle(f"Layer 2 failover, {label}: time to the first answer (box: quartiles; dots: kills)")
    return _save(figure, path)


def _failover_section(part: _Part, label: str, out: Path, rendered: Rendered) -> list[str]:
    data = part.data
    kills: dict[str, list[dict[str, Any]]] = data.get("kills", {})
    deaths: dict[str, str] = data.get("deaths", {})
    if not kills or not any(kills.values()):
        rendered.skipped.append(f"failover {label}: no kills recorded")
        return [f"## Layer 2 failover, {label}", "", f"`{part.path.name}` holds no kills.", ""]
    timeline = _failover_timeline(label, data, out / f"failover-{label}-timeline.png")
    spread = _failover_distribution(label, data, out / f"failover-{label}-distribution.png")
    rendered.images += [timeline, spread]
    floor = _ms(_numbers(data.get("floor")))
    lines = [
        f"## Layer 2 failover, {label}",
        "",
        f"{part.provenance()}. Times in ms from the death, p50 / p99 over the kills.",
        "",
        "| death | kills | detected | announcing | first answer | ServiceL2Status | keepalived first answer "
        "| requests lost per failover (max) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for death, rounds in kills.items():
        cells = [_summary(_ms(_numbers([k.get(name) for k in rounds]))) for name, *_ in EVENTS]
        run = data.get("keepalived", {}).get(death)
        vrrp = _summary(_ms(_numbers(run.get("answered")))) if run else "not run"
        lost = _numbers([k.get("lost") for k in rounds])
        most_lost = f"{max(lost):.0f}" if lost else "-"
        lines.append(
            f"| {deaths.get(death, death)} | {len(rounds)} | {' | '.join(cells)} | {vrrp} | {most_lost} |"
        )
    if floor:
        lines += ["", f"Floor (cable cut, then an immediate announce): p50 / p99 {_summary(floor)} ms."]
    lines += [
        "",
        f"![failover {label}, every kill]({timeline.name})",
        "",
        f"![failover {label}, ours against keepalived]({spread.name})",
        "",
    ]
    return lines


# -- allocator -----------------------------------------------------------------------------------------------


def _per_op_us(series: Any) -> dict[int, list[float]]:
    """{n: [seconds for n allocations, per round]} as {n: [microseconds per allocation]}."""
    out: dict[int, list[float]] = {}
    if isinstance(series, dict):
        for n, rounds in series.items():
            if str(n).isdigit() and int(n) > 0:
                values = [1e6 * s / int(n) for s in _numbers(rounds) if s > 0]
                if values:
                    out[int(n)] = values
    return dict(sorted(out.items()))


def _allocator_plot(data: dict[str, Any], path: Path) -> Path:
    figure = Figure(figsize=(7.5, 4.6), layout="constrained")
    ax: Axes = figure.subplots()
    series = [
        ("metallb-py allocate(), IPv4 pool of 65,534", _per_op_us(data.get("ours")), OURS, "o"),
        ("MetalLB-style linear scan (Python)", _per_op_us(data.get("baseline")), BASELINE, "s"),
        ("metallb-py allocate(), IPv6 /64", _per_op_us(data.get("ours_ipv6")), "tab:blue", "^"),
    ]
    # The scan is extrapolated as far as the IPv4 pool goes (it cannot walk a /64).
    biggest = max(series[0][1], default=1)
    for what, by_n, colour, marker in series:
        if not by_n:
            continue
        ns = list(by_n)
        medians = [_percentile(v, 50) for v in by_n.values()]
        low = [m - min(v) for m, v in zip(medians, by_n.values(), strict=True)]
        high = [max(v) - m for m, v in zip(medians, by_n.values(), strict=True)]
        ax.errorbar(ns, medians, yerr=[low, high], color=colour, marker=marker, capsize=3, label=what)
        if colour == BASELINE and ns[-1] < biggest:
            # Each scan walks past every address already taken: cost per allocation grows like n.
            ax.plot(
                [ns[-1], biggest],
                [medians[-1], medians[-1] * biggest / ns[-1]],
                color=colour,
                linestyle=":",
                label="linear scan, extrapolated (cost per allocation ∝ n)",
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n: Services allocated from an empty pool")
    ax.set_ylabel("µs per allocation (median, bars: min to max of rounds)")
    ax.set_title("Allocation cost against n")
    ax.grid(which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return _save(figure, path)


def _allocator_section(part: _Part, out: Path, rendered: Rendered) -> list[str]:
    data = part.data
    ours, base = _per_op_us(data.get("ours")), _per_op_us(data.get("baseline"))
    if not ours and not base:
        rendered.skipped.append("allocator: no rounds recorded")
        return ["## Allocation cost", "", f"`{part.path.name}` holds no rounds.", ""]
    image = _allocator_plot(data, out / "allocator-cost.png")
    rendered.images.append(image)
    lines = [
        "## Allocation cost against n",
        "",
        f"{part.provenance()}. Median µs per allocation, each n from an empty pool.",
        "",
        "| n | metallb-py | linear scan | speed-up |",
        "|---|---|---|---|",
    ]
    for n in sorted(set(ours) | set(base)):
        mine = _percentile(ours[n], 50) if n in ours else None
        theirs = _percentile(base[n], 50) if n in base else None
        speedup = f"{theirs / mine:.0f}x" if mine and theirs else "-"
        lines.append(
            f"| {n:,} | {f'{mine:.3f}' if mine else '-'} | {f'{theirs:.3f}' if theirs else '-'} | {speedup} |"
        )
    ratios = _numbers(data.get("paired_ratio"))
    if ratios:
        lines += [
            "",
            f"Per-allocation cost at n = 65,534 over n = 1,000, timed back to back: median "
            f"{_percentile(ratios, 50):.2f} over {len(ratios)} rounds (target at most 2).",
        ]
    return [*lines, "", f"![allocation cost against n]({image.name})", ""]


# -- layer 2 latency -----------------------------------------------------------------------------------------


def _latency_axes(ax: Axes, run: dict[str, Any], wake: dict[str, Any]) -> bool:
    """Draws one run; True when from every sample, False when from the percentiles alone."""
    figures: dict[str, Any] = run.get("figures", {})
    samples: dict[str, Any] = run.get("samples_us", {})
    sides = (("ours", "metallb-py responder", OURS), ("kernel", "Linux kernel", KERNEL))
    whole = all(_numbers(samples.get(who)) for who, *_ in sides)
    if whole:
        for who, what, colour in sides:
            values = sorted(v for v in _numbers(samples.get(who)) if v > 0)
            share = [(i + 1) / len(values) for i in range(len(values))]
            ax.step(values, share, where="post", color=colour, label=f"{what} ({len(values)} answers)")
        ax.set_ylabel("share of answers at most this late")
        ax.set_ylim(0, 1.02)
    else:
        quantiles = (("p50", 50), ("p90", 90), ("p99", 99))
        for row, (who, what, colour) in enumerate(sides):
            marks = [(q, figures.get(f"latency_{who}_{q}_us")) for q, _ in quantiles]
            known = [(q, v) for q, v in marks if isinstance(v, (int, float)) and v > 0]
            ax.plot([v for _, v in known], [row] * len(known), color=colour, marker="o", label=what)
            for i, (q, v) in enumerate(known):  # above and below in turn: close marks stay legible
                ax.annotate(
                    q,
                    (v, row),
                    textcoords="offset points",
                    xytext=(0, 7 if i % 2 == 0 else -14),
                    ha="center",
                    fontsize=8,
                )
        ax.set_yticks([0, 1], [what for _, what, _ in sides])
        ax.set_ylim(-0.6, 1.6)
    same = wake.get("wake_same_cpu_p50_us")
    if isinstance(same, (int, float)) and same > 0:
        ax.axvline(same, color="tab:orange", linestyle="--", label=WAKE)
    ax.set_xscale("log")
    # Plain numbers (20, 30, 50), not 2x10^1; fewer of them when the run spans decades.
    low, high = ax.get_xlim()
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 3.0, 5.0) if high < 30 * low else (1.0, 3.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("µs from the request leaving to the reply arriving (kernel timestamps)")
    ax.grid(which="both", alpha=0.3)
    if whole:
        ax.legend(fontsize="small", loc="lower right")
    else:  # the rows are named on the axis: only the wake-up line needs a legend
        handles, labels = ax.get_legend_handles_labels()
        kept = [(h, label) for h, label in zip(handles, labels, strict=True) if label == WAKE]
        if kept:
            ax.legend([h for h, _ in kept], [label for _, label in kept], fontsize="small", loc="upper left")
    return whole


def _l2_section(part: _Part, out: Path, rendered: Rendered) -> list[str]:
    data = part.data
    runs: dict[str, dict[str, Any]] = {k: v for k, v in data.get("runs", {}).items() if isinstance(v, dict)}
    if not runs:
        rendered.skipped.append("l2 latency: no runs recorded")
        return ["## ARP answer latency", "", f"`{part.path.name}` holds no runs.", ""]
    wake: dict[str, Any] = data.get("wake", {})
    figure = Figure(figsize=(7.5, 3.4 * len(runs)), layout="constrained")
    axes = figure.subplots(len(runs), 1, squeeze=False)[:, 0]
    whole = []
    for ax, (key, run) in zip(axes, runs.items(), strict=True):
        whole.append(_latency_axes(ax, run, wake))
        ax.set_title(str(run.get("label", key)), fontsize="medium")
    figure.suptitle("ARP answer latency, one request at a time: ours against the kernel")
    image = _save(figure, out / "l2-latency.png")
    rendered.images.append(image)
    lines = [
        "## ARP answer latency, ours against the kernel",
        "",
        f"{part.provenance()}. µs, p50 / p99.",
        "",
        "| mode | metallb-py | kernel | p50 ratio |",
        "|---|---|---|---|",
    ]
    for key, run in runs.items():
        f = run.get("figures", {})

        def pair(who: str, f: dict[str, Any] = f) -> str:
            p50, p99 = f.get(f"latency_{who}_p50_us"), f.get(f"latency_{who}_p99_us")
            return (
                f"{p50:.1f} / {p99:.1f}"
                if isinstance(p50, (int, float)) and isinstance(p99, (int, float))
                else "-"
            )

        ratio = f.get("latency_p50_ratio_ours_over_kernel")
        ratio_text = f"{ratio:.2f}x" if isinstance(ratio, (int, float)) else "-"
        lines.append(f"| {run.get('label', key)} | {pair('ours')} | {pair('kernel')} | {ratio_text} |")
    if not all(whole):
        lines += ["", "Some runs are drawn from their percentiles: the client printed no individual samples."]
    return [*lines, "", f"![ARP answer latency]({image.name})", ""]


# -- the report ----------------------------------------------------------------------------------------------

WRITERS = {
    "failover": "benches/test_bench_failover.py (`make bench-failover`, root)",
    "allocator": "benches/test_bench_allocator.py",
    "l2": "benches/test_bench_l2.py or benches/l2_bench.py (`make bench-l2`, root)",
}


def render(folder: Path) -> Rendered:
    """Writes the PNGs and REPORT.md into `folder` from the JSON there; parts without data are named in the
    report, not drawn."""
    folder.mkdir(parents=True, exist_ok=True)
    rendered = Rendered(report=folder / REPORT)
    body: list[str] = []
    missing: list[str] = []

    def absent(part: str) -> None:
        missing.append(f"- {part}: no results here; {WRITERS[part]} writes them.")
        rendered.skipped.append(f"{part}: no results")

    def broken(part: _Part) -> None:
        assert part.problem is not None
        missing.append(f"- {part.problem}.")
        rendered.skipped.append(part.problem)

    failovers = sorted(folder.glob("failover-*.json"), key=lambda p: (p.stem != "failover-idle", p.stem))
    if not failovers:
        absent("failover")
    for path in failovers:
        part = _load(path)
        if part.problem:
            broken(part)
        else:
            body += _failover_section(part, path.stem.removeprefix("failover-"), folder, rendered)
    for name, section in (("allocator", _allocator_section), ("l2", _l2_section)):
        path = folder / f"{name}.json"
        if not path.exists():
            absent(name)
            continue
        part = _load(path)
        if part.problem:
            broken(part)
        else:
            body += section(part, folder, rendered)
    head = [
        "# metallb-py benchmark plots",
        "",
        f"Rendered {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} by benches/plot_report.py from "
        "the JSON in this directory, which `make bench` fills; each part says when and at which commit it "
        "was measured.",
        "",
    ]
    if missing:
        head += ["Not in this report:", "", *missing, ""]
    rendered.report.write_text("\n".join(head + body).rstrip() + "\n")
    return rendered
