"""The layer 2 election in-process for simulated clusters: how its cost grows with the number of nodes.

For each n in `METALLB_PY_BENCH_SIM_NODES` (default 10,100,1000,5000): n Ready nodes, all live members, one
pool with one L2Advertisement for every node, Services with one endpoint each (externalTrafficPolicy
Cluster). Measured as CPU time of this thread (the machine is shared; wall time would count the others):

- one address: `announcer_for` for a single Service's address (the best of several addresses),
- 1,000 addresses: `announcers` over 1,000 Services, what a speaker computes each time membership, the
  Nodes or the Services change: the first round (every node new to the hash-order cache), and a round after
  one member left (what each change of the membership costs from then on).

Baseline, side by side: MetalLB's own work for an address, sha256 of every candidate and a sort (written out
here, `metallb_order`: our `election_order` caches hash orders between rounds), per address and times 1,000.
Growth is given against n = 100.

The membership engine's cost at scale is measured in Rust, on a simulated network:
`cargo test --release -p metallb-core --test membership_scale -- --ignored --nocapture`.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest

from metallb_py.config.model import L2Advertisement
from metallb_py.speaker.election import (
    Endpoint,
    EndpointSlice,
    L2Service,
    Node,
    announcer_for,
    announcers,
    election_order,
)

SIZES = [int(n) for n in os.environ.get("METALLB_PY_BENCH_SIM_NODES", "10,100,1000,5000").split(",")]
ADDRESSES = 1_000
SAMPLES = 7  # addresses timed one by one, the best kept
POOL = "bench"
ADVERTISEMENT = L2Advertisement("l2", ip_address_pools=(POOL,), pools=(POOL,))
REFERENCE = 100


def cluster(n: int) -> tuple[list[Node], list[str]]:
    nodes = [Node(f"worker-{i:05d}", labels={"kubernetes.io/hostname": f"worker-{i:05d}"}) for i in range(n)]
    return nodes, [node.name for node in nodes]


def services(count: int, names: list[str]) -> tuple[list[L2Service], list[EndpointSlice]]:
    svcs, slices = [], []
    for i in range(count):
        key = f"default/svc-{i:05d}"
        svcs.append(L2Service(key, POOL, (f"198.51.{100 + i // 250}.{i % 250 + 1}",)))
        slices.append(EndpointSlice(key, (Endpoint(names[i % len(names)], ready=True),)))
    return svcs, slices


def metallb_order(key: str, candidates: list[str]) -> list[str]:
    """MetalLB's sortL2Candidates without preferences, computed from scratch: the baseline."""
    return sorted(candidates, key=lambda node: hashlib.sha256(f"{node}#{key}".encode()).digest())


def cpu_seconds(run: Callable[[], object]) -> float:
    started = time.thread_time()
    run()
    return time.thread_time() - started


def measure(n: int) -> dict[str, float]:
    """CPU seconds: one address (best of SAMPLES), MetalLB's order alone (likewise), 1,000 addresses."""
    nodes, names = cluster(n)
    svcs, slices = services(ADDRESSES, names)
    common: dict[str, Any] = {"nodes": nodes, "l2_advertisements": [ADVERTISEMENT], "live_members": names}
    one = min(
        cpu_seconds(partial(announcer_for, svc.ips[0], [svc], endpoint_slices=[eps], **common))
        for svc, eps in zip(svcs[:SAMPLES], slices[:SAMPLES], strict=True)
    )
    order = min(cpu_seconds(partial(metallb_order, svc.ips[0], names)) for svc in svcs[:SAMPLES])
    baseline = cpu_seconds(lambda: [metallb_order(svc.ips[0], names) for svc in svcs])
    first = cpu_seconds(partial(announcers, svcs, endpoint_slices=slices, **common))
    common["live_members"] = names[1:]  # one member left
    every = cpu_seconds(partial(announcers, svcs, endpoint_slices=slices, **common))
    # Every address has an announcer, the one MetalLB's order puts first.
    elected = announcers(svcs, endpoint_slices=slices, **common)
    for svc in svcs[:: max(1, len(svcs) // 50)]:
        assert elected[svc.ips[0]].node == metallb_order(svc.ips[0], names[1:])[0]
        assert election_order(svc.ips[0], names[1:]) == metallb_order(svc.ips[0], names[1:])
    return {"one": one, "order": order, "baseline": baseline, "first": first, "every": every}


@pytest.fixture(scope="module")
def election_costs() -> dict[int, dict[str, float]]:
    return {n: measure(n) for n in SIZES}


def test_election_cost_by_cluster_size(
    election_costs: dict[int, dict[str, float]], figures: dict[str, float]
) -> None:
    reference = election_costs.get(REFERENCE)
    for n, cost in election_costs.items():
        at = f"election, {n:,} nodes:"
        figures[f"{at} one address, CPU ms"] = cost["one"] * 1e3
        figures[f"{at} baseline (MetalLB's order alone), CPU ms"] = cost["order"] * 1e3
        figures[f"{at} one address / baseline"] = cost["one"] / cost["order"]
        figures[f"{at} {ADDRESSES:,} addresses (announcers), first round, CPU ms"] = cost["first"] * 1e3
        figures[f"{at} {ADDRESSES:,} addresses (announcers), CPU ms"] = cost["every"] * 1e3
        figures[f"{at} {ADDRESSES:,} addresses, baseline (MetalLB's order), CPU ms"] = cost["baseline"] * 1e3
        figures[f"{at} {ADDRESSES:,} addresses / baseline"] = cost["every"] / cost["baseline"]
        if reference is not None:
            figures[f"{at} {ADDRESSES:,} addresses, x n={REFERENCE}"] = cost["every"] / reference["every"]
    assert all(cost["every"] > 0 for cost in election_costs.values())
