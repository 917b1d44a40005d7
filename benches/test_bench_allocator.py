"""Allocator benchmarks through the Python API, with a side-by-side baseline.

Measures allocate() from a fresh allocator at n = 1k, 10k and 65,534 (a full /16), 100k allocations in an
IPv6 /64, and churn (release + allocate) in a half-full /16. The baseline is MetalLB's own strategy, a linear
scan of the pool for the first usable address, written in plain Python and run in the same session.
Prints ops/s and the per-op cost ratio between n = 65,534 and n = 1k (target: at most 2), and records every
round's seconds in the results directory (benches/_results.py) for the cost-against-n plot.
"""

from __future__ import annotations

import ipaddress
import random
import statistics
import time
from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from _results import record
from metallb_py import Allocator, Pool, Port

SLASH16 = "198.18.0.1-198.18.255.254"  # 65,534 addresses, like a /16 without network and broadcast
PORTS = [Port(80, "TCP")]


def fill(n: int, pool: Pool, families: tuple[str, ...] = ("IPv4",)) -> Callable[[], Allocator]:
    keys = [f"bench/svc-{i}" for i in range(n)]

    def run() -> Allocator:
        allocator = Allocator([pool])
        allocate = allocator.allocate
        for key in keys:
            allocate(key, ports=PORTS, ip_families=families)
        return allocator

    return run


def median_per_op(benchmark: BenchmarkFixture, n: int) -> float:
    return float(benchmark.stats.stats.median) / n


def record_rounds(series: str, n: int, benchmark: BenchmarkFixture) -> None:
    """Every round's seconds for n allocations, under `series` of allocator.json."""
    record("allocator", {series: {str(n): [float(s) for s in benchmark.stats.stats.data]}}, merge=True)


@pytest.mark.parametrize("n", [1_000, 10_000, 65_534])
def test_allocate_ipv4(benchmark: BenchmarkFixture, figures: dict[str, float], n: int) -> None:
    allocator = benchmark.pedantic(fill(n, Pool("bench", [SLASH16])), rounds=5, iterations=1)
    assert len(allocator) == n
    assert allocator.counters("bench")["in_use"] == n
    record_rounds("ours", n, benchmark)
    per_op = median_per_op(benchmark, n)
    figures[f"allocate IPv4, n={n}: ops/s"] = 1 / per_op
    figures[f"allocate IPv4, n={n}: us/op"] = per_op * 1e6
    if n == 65_534:
        figures["allocate IPv4, full /16: seconds"] = float(benchmark.stats.stats.median)


def test_allocate_ipv6_slash64(benchmark: BenchmarkFixture, figures: dict[str, float]) -> None:
    n = 100_000
    pool = Pool("bench6", ["2001:db8:0:1::/64"])
    allocator = benchmark.pedantic(fill(n, pool, ("IPv6",)), rounds=3, iterations=1)
    assert allocator.counters("bench6")["in_use_ipv6"] == n
    record_rounds("ours_ipv6", n, benchmark)
    figures["allocate IPv6 /64, n=100k: ops/s"] = 1 / median_per_op(benchmark, n)


def test_churn(benchmark: BenchmarkFixture, figures: dict[str, float]) -> None:
    allocator = fill(32_767, Pool("bench", [SLASH16]))()
    rng = random.Random(7)
    victims = [f"bench/svc-{rng.randrange(32_767)}" for _ in range(20_000)]

    def churn() -> None:
        for key in victims:
            allocator.release(key)
            allocator.allocate(key, ports=PORTS)

    benchmark.pedantic(churn, rounds=5, iterations=1)
    assert len(allocator) == 32_767
    figures["churn (release+allocate) in half-full /16: pairs/s"] = 1 / median_per_op(benchmark, len(victims))


def linear_scan_fill(n: int, first: str, last: str) -> Callable[[], dict[str, ipaddress.IPv4Address]]:
    """The baseline: for each service, walk the pool from its start to the first address nobody holds."""
    lo, hi = int(ipaddress.IPv4Address(first)), int(ipaddress.IPv4Address(last))

    def run() -> dict[str, ipaddress.IPv4Address]:
        used: set[int] = set()
        out: dict[str, ipaddress.IPv4Address] = {}
        for i in range(n):
            x = lo
            while x in used:
                x += 1
            assert x <= hi
            used.add(x)
            out[f"bench/svc-{i}"] = ipaddress.IPv4Address(x)
        return out

    return run


@pytest.mark.parametrize("n", [1_000, 3_000, 10_000])
def test_baseline_linear_scan(benchmark: BenchmarkFixture, figures: dict[str, float], n: int) -> None:
    out = benchmark.pedantic(linear_scan_fill(n, "198.18.0.1", "198.18.255.254"), rounds=1, iterations=1)
    assert len(out) == n
    record_rounds("baseline", n, benchmark)
    figures[f"baseline linear scan, n={n}: ops/s"] = 1 / median_per_op(benchmark, n)


def test_cost_ratio_paired(figures: dict[str, float]) -> None:
    """Per-op cost at n = 65,534 over n = 1k, each round timing both back to back so that load changes on a
    shared machine hit both sides alike; the median of the rounds' ratios."""
    pool = Pool("bench", [SLASH16])
    small, large = fill(1_000, pool), fill(65_534, pool)
    ratios = []
    for _ in range(9):
        start = time.perf_counter()
        small()
        middle = time.perf_counter()
        large()
        end = time.perf_counter()
        ratios.append(((end - middle) / 65_534) / ((middle - start) / 1_000))
    record("allocator", {"paired_ratio": ratios}, merge=True)
    figures["per-op cost ratio n=65,534 / n=1k, paired (target <= 2)"] = statistics.median(ratios)


def test_zz_ratios(figures: dict[str, float]) -> None:
    """Runs last (by name): turns the figures above into the ratios the README quotes."""
    small, large = figures.get("allocate IPv4, n=1000: us/op"), figures.get("allocate IPv4, n=65534: us/op")
    if small and large:
        figures["per-op cost ratio n=65,534 / n=1k, separate runs"] = large / small
    ours, base = (
        figures.get("allocate IPv4, n=10000: ops/s"),
        figures.get("baseline linear scan, n=10000: ops/s"),
    )
    if ours and base:
        figures["speed-up over the linear-scan baseline at n=10k"] = ours / base
