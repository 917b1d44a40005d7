"""The work queue: one entry per object key, first in first out, with delayed retries.

Shared by the controller (a key per Service, plus its resync and configuration keys) and the speaker's status
reporter. As client-go's workqueue: a key added while already queued is not queued twice (ten changes to one
Service before the worker gets to it cost one reconcile); a key added while being processed is queued again
once the worker calls `done()`, so one key is never processed by two workers at once and no change is lost.
`add_rate_limited` re-adds a key after a per-key exponential delay (`metallb_py.backoff.KeyedBackoff`:
retries of failed writes), `forget` resets that delay after a success.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable

from metallb_py.backoff import KeyedBackoff

__all__ = ["WorkQueue"]


class WorkQueue:
    """Keys to process; see the module docstring. `clock` (monotonic seconds) decides when delayed keys are
    due, so a test drives retries with a fake clock."""

    def __init__(
        self,
        *,
        base_delay: float = 0.05,
        max_delay: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backoff = KeyedBackoff(base_delay, max_delay)
        self._clock = clock
        self._cond = threading.Condition()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()  # queued, or to be queued again when done
        self._processing: set[str] = set()
        self._delayed: list[tuple[float, int, str]] = []
        self._sequence = itertools.count()
        self._shutdown = False

    def add(self, key: str) -> None:
        with self._cond:
            self._add(key)

    def add_all(self, keys: list[str], *, in_order: bool = False) -> None:
        """Adds each key. With `in_order`, the keys that are waiting move too, so the batch is handled in
        exactly this order: allocation order (oldest Service first) must not depend on earlier adds."""
        with self._cond:
            if in_order:
                waiting = set(keys).intersection(self._queue)
                if waiting:
                    self._queue = deque(k for k in self._queue if k not in waiting)
                    self._dirty -= waiting
            for key in keys:
                self._add(key)

    def _add(self, key: str) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._cond.notify()

    def add_after(self, key: str, delay: float) -> None:
        if delay <= 0:
            self.add(key)
            return
        with self._cond:
            if self._shutdown:
                return
            heapq.heappush(self._delayed, (self._clock() + delay, next(self._sequence), key))
            self._cond.notify()

    def add_rate_limited(self, key: str) -> float:
        """Re-adds `key` after base_delay * 2^(failures so far), capped at max_delay; returns the delay."""
        delay = self._backoff.next(key)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """After a success: the key's next retry waits base_delay again."""
        self._backoff.forget(key)

    def failures(self, key: str) -> int:
        """Retries of `key` scheduled since it was last forgotten."""
        return self._backoff.failures(key)

    def get(self, timeout: float | None = None) -> str | None:
        """The next key, marked as processing (call done(key) after); None on timeout or after shutdown."""
        deadline = None if timeout is None else self._clock() + timeout
        with self._cond:
            while True:
                if self._shutdown:
                    return None
                self._promote_due()
                if self._queue:
                    key = self._queue.popleft()
                    self._dirty.discard(key)
                    self._processing.add(key)
                    return key
                now = self._clock()
                waits = []
                if deadline is not None:
                    if now >= deadline:
                        return None
                    waits.append(deadline - now)
                if self._delayed:
                    waits.append(max(0.0, self._delayed[0][0] - now))
                self._cond.wait(min(waits) if waits else None)

    def _promote_due(self) -> None:
        now = self._clock()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, key = heapq.heappop(self._delayed)
            self._add(key)

    def done(self, key: str) -> None:
        with self._cond:
            self._processing.discard(key)
            if key in self._dirty:
                self._queue.append(key)
                self._cond.notify()

    def shutdown(self) -> None:
        with self._cond:
            self._shutdown = True
            self._cond.notify_all()

    def __len__(self) -> int:
        """Keys waiting now (not the delayed ones, nor those being processed)."""
        with self._cond:
            return len(self._queue)

    def idle(self) -> bool:
        """Nothing queued, delayed or being processed."""
        with self._cond:
            return not self._queue and not self._processing and not self._delayed
