"""metallb_py.backoff: capped exponential delays, reset, jitter bounds, per-key independence."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metallb_py.backoff import Backoff, KeyedBackoff

bases = st.floats(min_value=0.001, max_value=5.0)
caps = st.floats(min_value=0.0, max_value=100.0)
factors = st.floats(min_value=1.0, max_value=10.0)


def test_delays_double_from_base_to_cap() -> None:
    backoff = Backoff(0.5, 5.0)
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert backoff.failures == 6


def test_reset_starts_over() -> None:
    backoff = Backoff(0.5, 5.0, factor=3.0)
    assert [backoff.next() for _ in range(3)] == [0.5, 1.5, 4.5]
    backoff.reset()
    assert backoff.failures == 0
    assert backoff.next() == 0.5


@given(base=bases, extra=caps, factor=factors, count=st.integers(min_value=1, max_value=200))
def test_delays_never_shrink_and_stop_at_cap(base: float, extra: float, factor: float, count: int) -> None:
    cap = base + extra
    backoff = Backoff(base, cap, factor=factor)
    delays = [backoff.next() for _ in range(count)]
    assert delays[0] == base
    assert delays == sorted(delays)
    assert all(base <= d <= cap for d in delays)


def test_a_thousand_failures_stay_at_the_cap() -> None:
    backoff = Backoff(0.2, 10.0, factor=1e6)
    delays = [backoff.next() for _ in range(1000)]
    assert delays[-1] == 10.0


@given(
    base=bases,
    extra=caps,
    jitter=st.floats(min_value=0.0, max_value=1.0),
    count=st.integers(min_value=0, max_value=40),
    seed=st.integers(),
)
def test_jittered_delay_stays_within_its_share_of_the_nominal_one(
    base: float, extra: float, jitter: float, count: int, seed: int
) -> None:
    cap = base + extra
    plain = Backoff(base, cap)
    jittered = Backoff(base, cap, jitter=jitter, rng=random.Random(seed))
    for _ in range(count):
        plain.next(), jittered.next()
    nominal, delay = plain.next(), jittered.next()
    assert nominal * (1 - jitter) - 1e-12 <= delay <= nominal


def test_jitter_spreads_delays() -> None:
    backoff = Backoff(1.0, 1.0, jitter=0.5, rng=random.Random(7))
    delays = {backoff.next() for _ in range(20)}
    assert len(delays) > 1


@pytest.mark.parametrize(
    ("base", "cap", "factor", "jitter"),
    [(-1.0, 1.0, 2.0, 0.0), (2.0, 1.0, 2.0, 0.0), (0.1, 1.0, 0.5, 0.0), (0.1, 1.0, 2.0, 1.5)],
)
def test_nonsense_parameters_are_refused(base: float, cap: float, factor: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(base, cap, factor=factor, jitter=jitter)
    if jitter == 0.0:
        with pytest.raises(ValueError):
            KeyedBackoff(base, cap, factor=factor)


def test_keyed_delays_grow_per_key_until_forgotten() -> None:
    backoff = KeyedBackoff(0.05, 0.3)
    assert [backoff.next("a") for _ in range(4)] == [0.05, 0.1, 0.2, 0.3]
    assert backoff.failures("a") == 4
    backoff.forget("a")
    assert backoff.failures("a") == 0
    assert backoff.keys() == []
    assert backoff.next("a") == 0.05


def test_forgetting_an_unknown_key_is_harmless() -> None:
    backoff = KeyedBackoff(1.0, 2.0)
    backoff.forget("never-failed")
    assert backoff.failures("never-failed") == 0


@given(script=st.lists(st.tuples(st.sampled_from("abc"), st.booleans()), max_size=60))
def test_keys_count_independently(script: list[tuple[str, bool]]) -> None:
    """Each key's delays are those of a lone Backoff fed only that key's failures and successes."""
    keyed = KeyedBackoff(0.1, 3.0)
    alone = {key: Backoff(0.1, 3.0) for key in "abc"}
    for key, failed in script:
        if failed:
            assert keyed.next(key) == alone[key].next()
        else:
            keyed.forget(key)
            alone[key].reset()
    for key in "abc":
        assert keyed.failures(key) == alone[key].failures
    assert sorted(keyed.keys()) == sorted(key for key in "abc" if alone[key].failures)
