"""IPAddressPool status: how many addresses of each pool are assigned and available, per family.

As MetalLB's controller, the leader writes `status.assignedIPv4`, `assignedIPv6`, `availableIPv4` and
`availableIPv6` of every IPAddressPool whose pool is in the configuration in force, through the status
subresource. The allocator counts them as MetalLB does (`Allocator.pool_status`): assigned is the distinct
addresses held by at least one Service (two Services sharing one count it once); available is what the pool
may hand out (buggy .0/.255 addresses excluded when the pool avoids them) minus the assigned ones, and a
family holding a prefix of 2^62 addresses or more (an IPv6 /66 or larger) never runs out: it shows the largest
int64 minus the assigned ones. Pools of a legacy ConfigMap have no object to write to; a pool removed from the
configuration gets no further write.

`PoolStatusWriter` owns the writes: the worker (which owns the allocator) hands it every pool's status with
`publish`, which never blocks; the writer's thread compares each with the pool object's watched copy and
writes only those that differ, each on the resourceVersion it compared with.
Statuses published while it writes replace the ones not written yet, so a burst of allocations costs one
write per pool, and a slow or refusing API server delays the counters, never an allocation. With a
`TermFence`, the writes are made for the leadership term the statuses were published in: once that term is
over, they are not sent (the next term publishes its own).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from metallb_py._core import Allocator
from metallb_py.backoff import Backoff
from metallb_py.controller.sync import ObjectApi, ObjectStore
from metallb_py.k8s.errors import ApiError, ConflictError, NotFoundError, NotLeaderError
from metallb_py.k8s.leader import TermFence
from metallb_py.k8s.resources import IP_ADDRESS_POOLS, meta

__all__ = ["MAX_INT64", "PoolStatus", "PoolStatusWriter", "pool_status"]

log = logging.getLogger("metallb_py.controller")

JSON = dict[str, Any]
MAX_INT64 = 2**63 - 1  # the status fields are int64: what a pool that never runs out shows
_CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class PoolStatus:
    """One IPAddressPool's `status`, in MetalLB's field names by `to_api`."""

    assigned_ipv4: int = 0
    assigned_ipv6: int = 0
    available_ipv4: int = 0
    available_ipv6: int = 0

    def to_api(self) -> dict[str, int]:
        return {
            "assignedIPv4": self.assigned_ipv4,
            "assignedIPv6": self.assigned_ipv6,
            "availableIPv4": self.available_ipv4,
            "availableIPv6": self.available_ipv6,
        }

    @classmethod
    def from_api(cls, obj: Mapping[str, Any] | None) -> PoolStatus | None:
        """The status an IPAddressPool object shows; None when it shows none (or not all four numbers)."""
        status = (obj or {}).get("status")
        if not isinstance(status, dict):
            return None
        values = [status.get(k) for k in ("assignedIPv4", "assignedIPv6", "availableIPv4", "availableIPv6")]
        numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
        return cls(*numbers) if len(numbers) == len(values) else None


def pool_status(allocator: Allocator, pool: str) -> PoolStatus:
    """The status of `pool` as the allocator counts it (`Allocator.pool_status`: MetalLB's rules)."""
    counted = allocator.pool_status(pool)
    return PoolStatus(
        assigned_ipv4=counted["assignedIPv4"],
        assigned_ipv6=counted["assignedIPv6"],
        available_ipv4=counted["availableIPv4"],
        available_ipv6=counted["availableIPv6"],
    )


class PoolStatusWriter:
    """Writes the statuses the worker publishes; see the module docstring.

    `publish(statuses)` replaces the wanted status of every pool (pools left out get no more writes);
    `pool_changed(name)` says the pool's object changed (created again, or its status edited by someone
    else): it is compared again. `clear()` forgets everything (leadership lost: the next leader writes).
    `write_pending()` is one pass, which the thread runs; a test can call it without the thread.
    """

    def __init__(
        self,
        api: ObjectApi,
        pools: ObjectStore,
        namespace: str,
        *,
        retry: Backoff | None = None,
        on_write: Callable[[], None] | None = None,
        fence: TermFence | None = None,
    ) -> None:
        self.api = api
        self.pools = pools
        self.namespace = namespace
        self._retry = retry if retry is not None else Backoff(0.2, 30.0, jitter=0.5)
        self._on_write = on_write
        self._fence = fence
        self._term: int | None = None  # the term the wanted statuses were published in
        self._cond = threading.Condition()
        self._wanted: dict[str, PoolStatus] = {}
        self._dirty: set[str] = set()  # pools to compare (and write if they differ)
        self._refused: dict[str, str] = {}  # pools whose write was refused for good, and why (reported once)
        self._stop = False
        self._thread: threading.Thread | None = None
        self.writes = 0  # statuses written; `on_write` is called after each too

    # -- from other threads ----------------------------------------------------------------------------------

    def publish(self, statuses: Mapping[str, PoolStatus], *, term: int | None = None) -> None:
        """`term`: the leadership term the statuses were counted in (with a fence, written for it only)."""
        with self._cond:
            self._term = term
            changed = {n for n, s in statuses.items() if self._wanted.get(n) != s}
            self._wanted = dict(statuses)
            self._dirty = (self._dirty & set(statuses)) | changed
            for name in changed:
                self._refused.pop(name, None)
            if self._dirty:
                self._cond.notify_all()

    def pool_changed(self, name: str) -> None:
        with self._cond:
            if name in self._wanted:
                self._dirty.add(name)
                self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._wanted.clear()
            self._dirty.clear()
            self._refused.clear()

    def wanted(self) -> dict[str, PoolStatus]:
        with self._cond:
            return dict(self._wanted)

    # -- the writer thread -----------------------------------------------------------------------------------

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, name="pool-status", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> bool:
        """Stops the thread; False when it has not ended within `timeout` (a write still in flight)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
            self._thread = None
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stop or bool(self._dirty))
                if self._stop:
                    return
            try:
                retry = self.write_pending()
            except Exception:
                log.exception("pool status not written; retrying")
                retry = True
            if not retry:
                self._retry.reset()
                continue
            delay = self._retry.next()
            with self._cond:
                if self._cond.wait_for(lambda: self._stop, delay):
                    return

    def write_pending(self) -> bool:
        """Compares and writes every pool marked since the last pass; True when one must be tried again
        later (the API server did not answer, or kept conflicting)."""
        with self._cond:
            dirty, self._dirty = self._dirty, set()
            term = self._term
        if self._fence is None:
            return self._write_all(dirty, term)
        with self._fence.working(term):
            return self._write_all(dirty, term)

    def _write_all(self, dirty: set[str], term: int | None) -> bool:
        retry = False
        for name in sorted(dirty):
            with self._cond:
                wanted = self._wanted.get(name)
            if wanted is None:
                continue  # no longer in the configuration
            try:
                done = self._write(name, wanted)
            except NotLeaderError:
                with self._cond:
                    if self._term == term:
                        self.clear()  # the Condition's lock is reentrant
                    else:
                        # A later term published meanwhile: what it wants is still to write (to compare,
                        # for the pools this pass had taken), in that term.
                        self._dirty |= dirty & set(self._wanted)
                return False
            except ApiError as exc:
                if exc.temporary:
                    done = False
                else:
                    self._report_refused(name, str(exc))
                    continue
            if not done:
                retry = True
                with self._cond:
                    self._dirty.add(name)
        return retry

    def _write(self, name: str, wanted: PoolStatus) -> bool:
        """Writes `wanted` unless the object shows it already; False when it kept conflicting."""
        obj = self.pools.get(f"{self.namespace}/{name}")
        for _ in range(_CONFLICT_RETRIES):
            if obj is None:
                return True  # no object (a legacy pool, or deleted): nothing to write to
            if PoolStatus.from_api(obj) == wanted:
                return True
            version = meta(obj, "resourceVersion")
            if not version:  # an empty one would make the write unconditional
                obj = self._read(name)
                continue
            body = {"metadata": {"resourceVersion": version}, "status": wanted.to_api()}
            try:
                written = self.api.patch(IP_ADDRESS_POOLS, name, body, self.namespace, subresource="status")
            except ConflictError:
                obj = self._read(name)
                continue
            except NotFoundError:
                current = self._read(name)
                if current is not None and meta(current, "uid") == meta(obj, "uid"):
                    raise  # the object is there: the status subresource is not (a CRD without it)
                obj = current  # deleted (nothing to write), or deleted and created again
                continue
            self.pools.observe(written)
            self.writes += 1
            if self._on_write is not None:
                self._on_write()
            log.debug("pool status written", extra={"pool": name, "status": wanted.to_api()})
            return True
        return False

    def _read(self, name: str) -> JSON | None:
        try:
            return self.api.get(IP_ADDRESS_POOLS, name, self.namespace)
        except NotFoundError:
            return None

    def _report_refused(self, name: str, error: str) -> None:
        """A write refused for good (RBAC without ipaddresspools/status, a CRD without the status
        subresource) is logged once, and tried again only when the counters or the object change."""
        with self._cond:
            if self._refused.get(name) == error:
                return
            self._refused[name] = error
        log.warning(
            "pool status refused by the API server; not retried until the pool or its counters change",
            extra={"pool": name, "error": error},
        )
