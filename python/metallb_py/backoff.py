"""Capped exponential retry delays: the one backoff every retry loop in metallb-py uses.

`Backoff` is one sequence of retries (a watch reconnecting, a lease renewal failing): each `next()` counts a
failure and returns the delay before the next try, `reset()` after a success starts over. `KeyedBackoff`
keeps one such count per key (a work queue's per-object retries), without jitter so a key's delays are
predictable. Both are plain arithmetic over a failure count: no clock, no sleeping; callers wait.

Delay for failure n (counting from 0): ``min(cap, base * factor**n)``. With `jitter` j, `Backoff` returns a
random value in ``[delay * (1 - j), delay]``, so a fleet that failed together does not retry together.
"""

from __future__ import annotations

import random
import threading

__all__ = ["Backoff", "KeyedBackoff"]


def _delay(base: float, cap: float, factor: float, failures: int) -> float:
    try:
        return min(cap, base * factor**failures)
    except OverflowError:  # factor**failures beyond a float: long past the cap
        return cap


def _check(base: float, cap: float, factor: float) -> None:
    if base < 0 or cap < base:
        raise ValueError(f"backoff needs 0 <= base <= cap, got base={base} cap={cap}")
    if factor < 1:
        raise ValueError(f"backoff factor must be at least 1, got {factor}")


class Backoff:
    """Delays for one sequence of retries; see the module docstring."""

    def __init__(
        self,
        base: float,
        cap: float,
        *,
        factor: float = 2.0,
        jitter: float = 0.0,
        rng: random.Random | None = None,
    ) -> None:
        _check(base, cap, factor)
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"backoff jitter must be within [0, 1], got {jitter}")
        self.base, self.cap, self.factor, self.jitter = base, cap, factor, jitter
        self._rng = rng or random.Random()
        self._failures = 0

    @property
    def failures(self) -> int:
        """Failures counted since the last reset()."""
        return self._failures

    def next(self) -> float:
        """Counts a failure; the delay before the next try."""
        delay = _delay(self.base, self.cap, self.factor, self._failures)
        self._failures += 1
        if self.jitter:
            delay -= self._rng.random() * self.jitter * delay
        return delay

    def reset(self) -> None:
        """After a success: the next failure waits `base` again."""
        self._failures = 0


class KeyedBackoff:
    """One failure count per key; `next(key)` counts a failure of that key and returns its delay.

    Thread-safe: a work queue's workers share one.
    """

    def __init__(self, base: float, cap: float, *, factor: float = 2.0) -> None:
        _check(base, cap, factor)
        self.base, self.cap, self.factor = base, cap, factor
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}

    def next(self, key: str) -> float:
        """Counts a failure of `key`; the delay before its next retry."""
        with self._lock:
            failures = self._failures.get(key, 0)
            self._failures[key] = failures + 1
        return _delay(self.base, self.cap, self.factor, failures)

    def forget(self, key: str) -> None:
        """After a success (or when the key is gone): its next failure waits `base` again."""
        with self._lock:
            self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        """Failures of `key` counted since it was last forgotten."""
        with self._lock:
            return self._failures.get(key, 0)

    def keys(self) -> list[str]:
        """The keys with at least one failure counted."""
        with self._lock:
            return list(self._failures)
