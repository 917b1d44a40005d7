"""Renders the benchmark plots and REPORT.md from the JSON results of earlier bench runs, without running any.

    .venv/bin/python benches/plot_report.py [--out DIR]

DIR defaults to $METALLB_PY_BENCH_OUT, else bench-results/ at the repository root (what `make bench` fills
and renders at its end).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benches/ is not a package

from _plots import render
from _results import results_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help="the results directory")
    args = parser.parse_args(argv)
    folder: Path = args.out or results_dir()
    if not folder.is_dir():
        print(
            f"{folder} does not exist: run `make bench` (or one bench) first, or pass --out", file=sys.stderr
        )
        return 2
    rendered = render(folder)
    for image in rendered.images:
        print(image)
    for reason in rendered.skipped:
        print(f"skipped: {reason}")
    print(rendered.report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
