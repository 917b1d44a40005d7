"""Leader election through a coordination.k8s.io/v1 Lease, as client-go does it.

Every replica runs a `LeaderElector`. The holder renews the Lease every `retry_period`; the others read it
every `retry_period` and take it over once it has not changed for the holder's `leaseDurationSeconds`,
measured on their own monotonic clock from when they saw it change (so wall-clock skew between nodes does
not matter). Updates carry the Lease's resourceVersion, so of two replicas racing for it exactly one wins.

A leader that cannot renew stops considering itself leader `renew_deadline` after its last successful renewal
(`is_leader()` turns false by itself, before anyone else may take over at `lease_duration`). Each stretch of
leading is a numbered term: a renewal that comes after the renew deadline (the API server was away, or the
process was paused, as by SIGSTOP) starts a new term even though the Lease never changed hands, because
another replica may have led in between.
On a clean shutdown the leader releases the Lease (empty holder) so another replica takes over at once.

`TermFence` ties writes to the term their work was decided in: a client made with
`client.fenced(fence.margin)` sends a write only while that term is the current one, with a request timeout
that ends before anyone else may take the Lease over (`LeaderElector.write_margin`). What is left: a write
the API server took off the wire before the timeout but committed after it (its handling past a client's
disconnect, normally milliseconds), and a difference in the rates of the replicas' monotonic clocks over
one lease_duration. Every write the controller makes also carries a resourceVersion precondition, so such a
late write can only land on the version it was decided on.

`decide` is the pure decision, tested without an API server.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import enum
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from metallb_py.k8s.client import KubeClient
from metallb_py.k8s.errors import ApiError, ConflictError, NotFoundError
from metallb_py.k8s.resources import LEASES

__all__ = ["LeaderElector", "LeaseAction", "LeaseRecord", "TermFence", "decide", "micro_time"]

log = logging.getLogger("metallb_py.k8s.leader")


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def micro_time(t: _dt.datetime) -> str:
    """A Lease's MicroTime: RFC 3339 in UTC with exactly six fractional digits."""
    return t.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease's spec that leader election uses."""

    holder: str = ""
    lease_duration: int = 0  # seconds
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            lease_duration=int(spec.get("leaseDurationSeconds") or 0),
            acquire_time=spec.get("acquireTime"),
            renew_time=spec.get("renewTime"),
            transitions=int(spec.get("leaseTransitions") or 0),
        )

    def to_spec(self) -> dict[str, Any]:
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.lease_duration,
            "acquireTime": self.acquire_time,
            "renewTime": self.renew_time,
            "leaseTransitions": self.transitions,
        }


class LeaseAction(enum.Enum):
    CREATE = "create"  # no Lease yet: create it, holding it
    RENEW = "renew"  # we hold it: refresh renewTime
    ACQUIRE = "acquire"  # released or expired: take it over
    WAIT = "wait"  # another replica holds it and it has not expired


def decide(
    record: LeaseRecord | None, *, identity: str, observed_at: float, now: float
) -> tuple[LeaseAction, float]:
    """What to do with the Lease as last read, and (for WAIT) the seconds until it may be taken over.

    `observed_at` is when (monotonic seconds) the record was last seen to change; `now` the same clock now.
    """
    if record is None:
        return LeaseAction.CREATE, 0.0
    if record.holder == identity:
        return LeaseAction.RENEW, 0.0
    if not record.holder:
        return LeaseAction.ACQUIRE, 0.0
    expires = observed_at + record.lease_duration
    if now < expires:
        return LeaseAction.WAIT, expires - now
    return LeaseAction.ACQUIRE, 0.0


class LeaderElector:
    """Runs leader election for one identity on one Lease; see the module docstring.

    `on_started_leading` and `on_stopped_leading` run in the elector's thread and must return quickly.
    """

    def __init__(
        self,
        client: KubeClient,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callable[[], None] = lambda: None,
        on_stopped_leading: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], _dt.datetime] = _now,
    ) -> None:
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError("leader election needs 0 < retry_period < renew_deadline < lease_duration")
        self.client = client
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = (
            lease_duration,
            renew_deadline,
            retry_period,
        )
        self._on_started, self._on_stopped = on_started_leading, on_stopped_leading
        self._clock, self._wall = clock, wall_clock
        self._lock = threading.Lock()
        self._leading = False
        self._renewed_at = float("-inf")
        self._lapsed = False  # is_leader() said False during the current term
        self._term = 0  # the number of the current (or last) term
        self._observed: LeaseRecord | None = None
        self._observed_at = float("-inf")
        self._observed_version = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()
        self.transitions = 0  # times this replica became leader
        # Set once the first attempt ended (led or not): a caller may begin work that must start after the
        # first term did (a list read afresh for it) and should not be begun twice.
        self.first_round = threading.Event()

    def is_leader(self) -> bool:
        """True while this replica holds the Lease and renewed it within renew_deadline.

        Once it has answered False during a term (the deadline passed, e.g. while the API server was
        restarting), that term is over for the caller, who may have dropped work: the next successful
        renewal starts a new term, with on_stopped_leading then on_started_leading, even though the Lease
        never changed hands.
        """
        return self.term() is not None

    def term(self) -> int | None:
        """The number of the current term (1, 2, ... as this replica becomes leader again) while is_leader()
        would say True; else None (and, as for is_leader(), the term is over)."""
        with self._lock:
            return self._term if self._live(self._clock()) else None

    def write_margin(self, term: int) -> float | None:
        """Seconds a write decided in `term` and sent now may take: until lease_duration after the renewal
        that keeps the term alive, the earliest moment another replica may take the Lease over (it waits
        that long from when it saw that renewal, which came after the renewal began). None when `term` is
        not the current term or it lapsed: the write must not be sent.

        A write whose check passes (before the renew deadline) has at least lease_duration - renew_deadline.
        """
        with self._lock:
            now = self._clock()
            if term != self._term or not self._live(now):
                return None
            return self._renewed_at + self.lease_duration - now

    def _live(self, now: float) -> bool:
        """Whether the current term is alive at `now` (call with the lock held); marks it lapsed if not."""
        if not self._leading:
            return False
        if now < self._renewed_at + self.renew_deadline:
            return True
        self._lapsed = True
        return False

    @property
    def holder(self) -> str:
        """The identity in the Lease as last read ("" when none)."""
        with self._lock:
            return self._observed.holder if self._observed else ""

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name=f"leader-{self.name}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, *, release: bool = True, timeout: float = 5.0) -> None:
        """Stops campaigning; with `release`, a leader hands the Lease back so others need not wait."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if release:
            self._release()
        self._step_down()

    def run(self) -> None:
        while not self._stop.is_set():
            started = self._clock()
            self.round()
            # Followers retry with jitter, so replicas do not all hit the Lease at once.
            jitter = 0.0 if self.is_leader() else 0.2 * self._rng.random()
            self._stop.wait(max(0.0, self.retry_period * (1 + jitter) - (self._clock() - started)))

    def round(self) -> None:
        """One attempt to acquire or renew, and the callbacks it implies (run() calls it periodically)."""
        try:
            self._round()
        finally:
            self.first_round.set()

    def _round(self) -> None:
        started = self._clock()
        try:
            held = self.try_acquire_or_renew()
        except ApiError as exc:
            log.warning(
                "leader election: cannot reach the Lease", extra={"lease": self.name, "error": str(exc)}
            )
            held = False
        except Exception:
            log.exception("leader election failed", extra={"lease": self.name})
            held = False
        if not held:
            if not self.is_leader():
                self._step_down()
            return
        with self._lock:
            # Renewed after the deadline, though nobody asked is_leader() meanwhile (a process paused past
            # it): the term lapsed all the same, and another replica may have led in between.
            late = self._leading and started >= self._renewed_at + self.renew_deadline
            lapsed = self._leading and (self._lapsed or late)
            self._renewed_at = started
            self._lapsed = False
            became = not self._leading or lapsed
            self._leading = True
            if became:
                self._term += 1
        if lapsed:
            log.warning("leadership lapsed and was renewed: starting a new term", extra={"lease": self.name})
            self._on_stopped()
        if became:
            self.transitions += 1
            log.info("became leader", extra={"lease": self.name, "identity": self.identity})
            self._on_started()

    def _step_down(self) -> None:
        with self._lock:
            was = self._leading
            self._leading = self._lapsed = False
        if was:
            level = logging.INFO if self._stop.is_set() else logging.WARNING  # asked to stop, or lost it
            log.log(level, "stopped leading", extra={"lease": self.name, "identity": self.identity})
            self._on_stopped()

    def try_acquire_or_renew(self) -> bool:
        """One round: read the Lease, then create, renew or take it over when allowed. True when held."""
        # Our own renewals count from before the request (conservative for the renew deadline); another
        # holder's renewal counts from when its answer arrived, or a slow GET would shorten its lease.
        now = self._clock()
        try:
            lease = self.client.get(LEASES, self.name, self.namespace)
        except NotFoundError:
            lease = None
        received = self._clock()
        if lease is None:
            record = self._record(acquiring=True, previous=None)
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": record.to_spec(),
            }
            try:
                created = self.client.create(LEASES, body, self.namespace)
            except ConflictError:
                return False  # another replica created it first
            self._remember(created, now)
            return True
        record = LeaseRecord.from_lease(lease)
        version = str((lease.get("metadata") or {}).get("resourceVersion", ""))
        with self._lock:
            # Any write to the Lease (a renewal changes renewTime and the resourceVersion) restarts the wait.
            if record != self._observed or version != self._observed_version:
                self._observed, self._observed_at = record, received
            self._observed_version = version
            observed_at = self._observed_at
        action, _ = decide(record, identity=self.identity, observed_at=observed_at, now=received)
        if action is LeaseAction.WAIT:
            return False
        new = self._record(acquiring=action is LeaseAction.ACQUIRE, previous=record)
        lease = {**lease, "spec": new.to_spec()}
        try:
            updated = self.client.replace(LEASES, self.name, lease, self.namespace)
        except ConflictError:
            return False  # it changed since we read it: someone else renewed or took it
        self._remember(updated, now)
        return True

    def _record(self, *, acquiring: bool, previous: LeaseRecord | None) -> LeaseRecord:
        now = micro_time(self._wall())
        duration = max(1, math.ceil(self.lease_duration))
        if previous is None:
            return LeaseRecord(self.identity, duration, now, now, 0)
        if not acquiring:
            return LeaseRecord(self.identity, duration, previous.acquire_time, now, previous.transitions)
        return LeaseRecord(self.identity, duration, now, now, previous.transitions + 1)

    def _remember(self, lease: dict[str, Any], now: float) -> None:
        with self._lock:
            self._observed = LeaseRecord.from_lease(lease)
            self._observed_at = now
            self._observed_version = str((lease.get("metadata") or {}).get("resourceVersion", ""))

    def _release(self) -> None:
        if not self.is_leader():
            return
        try:
            lease = self.client.get(LEASES, self.name, self.namespace)
            record = LeaseRecord.from_lease(lease)
            if record.holder != self.identity:
                return
            now = micro_time(self._wall())
            spec = LeaseRecord("", 1, now, now, record.transitions).to_spec()
            self.client.replace(LEASES, self.name, {**lease, "spec": spec}, self.namespace)
            log.info("released the leader lease", extra={"lease": self.name, "identity": self.identity})
        except ApiError as exc:
            log.warning("could not release the leader lease", extra={"lease": self.name, "error": str(exc)})


class TermFence:
    """Ties writes to the leadership term their work was decided in; see the module docstring.

    A thread doing a term's work runs it inside `working(term)` (`term` as `current()` gave it when the work
    began); `margin()`, which a client made with `client.fenced(fence.margin)` asks right before each write,
    is then the seconds the write may take, or None (not sent) when that term is no longer the current one,
    when the thread works for no term, or once `close()` was called. Without an elector (no leader election)
    there is one term that never ends.
    """

    def __init__(self, elector: LeaderElector | None) -> None:
        self._elector = elector
        self._local = threading.local()
        self._closed = False

    def current(self) -> int | None:
        """The current term's number, None when not leading."""
        if self._closed:
            return None
        if self._elector is None:
            return 1
        return self._elector.term()

    def close(self) -> None:
        """Stopping: no write is sent any more."""
        self._closed = True

    @contextlib.contextmanager
    def working(self, term: int | None) -> Iterator[None]:
        """The calling thread works for `term` inside the block (None: for no term, nothing is written)."""
        previous = getattr(self._local, "term", None)
        self._local.term = term
        try:
            yield
        finally:
            self._local.term = previous

    def work_term(self) -> int | None:
        """The term the calling thread works for (inside `working`), else None."""
        term: int | None = getattr(self._local, "term", None)
        return term

    def margin(self) -> float | None:
        term = self.work_term()
        if term is None or self._closed:
            return None
        if self._elector is None:
            return math.inf if term == 1 else None
        return self._elector.write_margin(term)
