"""The election's order cache (election._HashOrders): whatever sequence of addresses and candidate sets a
speaker asks about (nodes joining, leaving, coming back, a cluster replaced by another), the order is the
one MetalLB computes from scratch: sha256(node + "#" + address) as bytes, lowest first, then stably by
preference score."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from metallb_py.speaker.election import _HashOrders, election_order


def metallb_order(key: str, candidates: set[str], scores: dict[str, int] | None = None) -> list[str]:
    score = scores or {}
    return sorted(
        candidates, key=lambda n: (-score.get(n, 0), hashlib.sha256(f"{n}#{key}".encode()).digest())
    )


NODES = [f"node-{i}" for i in range(40)]
KEYS = [f"192.0.2.{i}" for i in range(1, 12)] + ["2001:db8::1", "2001:db8::a"]

asks = st.lists(
    st.tuples(st.sampled_from(KEYS), st.sets(st.sampled_from(NODES), max_size=len(NODES))),
    min_size=1,
    max_size=60,
)


@given(asks)
@settings(max_examples=300, deadline=None)
def test_any_sequence_of_asks_gets_the_order_computed_from_scratch(
    sequence: list[tuple[str, set[str]]],
) -> None:
    orders = _HashOrders()
    for key, candidates in sequence:
        assert orders.order(key, candidates) == metallb_order(key, candidates)


@given(asks, st.integers(min_value=1, max_value=8))
@settings(max_examples=100, deadline=None)
def test_small_bounds_evict_and_start_over_without_changing_an_order(
    sequence: list[tuple[str, set[str]]], max_keys: int
) -> None:
    orders = _HashOrders()
    orders.MAX_KEYS = max_keys
    orders.NODE_SLACK = 1  # start over whenever a node beyond the widest set seen appears
    for key, candidates in sequence:
        assert orders.order(key, candidates) == metallb_order(key, candidates)
    assert len(orders._orders) <= max_keys


def test_a_cluster_replaced_node_by_node_keeps_the_cache_bounded() -> None:
    orders = _HashOrders()
    for generation in range(50):
        live = {f"gen{generation}-node{i}" for i in range(10)}
        assert orders.order("198.51.100.7", live) == metallb_order("198.51.100.7", live)
    assert len(orders._nodes) <= orders.NODE_SLACK * 16


@given(
    st.sampled_from(KEYS),
    st.sets(st.sampled_from(NODES), min_size=1),
    st.dictionaries(st.sampled_from(NODES), st.integers(min_value=-3, max_value=3)),
)
@settings(max_examples=200, deadline=None)
def test_election_order_with_scores_is_metallbs(
    key: str, candidates: set[str], scores: dict[str, int]
) -> None:
    assert election_order(key, candidates, scores) == metallb_order(key, candidates, scores)
    assert election_order(key, list(candidates) * 2, scores) == metallb_order(key, candidates, scores)
