"""Leader election through a coordination.k8s.io/v1 Lease, as client-go does it.

Every replica runs a `LeaderElector`. The holder renews the Lease every `retry_period`; the others read it
every `retry_period` and take it over once it has not changed for the holder's `leaseDurationSeconds`,
measured on their own monotonic clock from when they saw it change (so wall-clock skew between nodes does
not matter). Updates carry the Lease's resourceVersion, so of two replicas racing for it exactly one wins.

A leader that cannot renew stops considering itself leader `renew_deadline` after its last successful renewal
(`is_leader()` turns false by itself, before anyone else may take over at `lease_duration`), so two replicas
never both believe they lead, provided renew_deadline + the API request timeout < lease_duration.
On a clean shutdown the leader releases the Lease (empty holder) so another replica takes over at once.

`decide` is the pure decision, tested without an API server.
"""

from __future__ import annotations

import datetime as _dt
import enum
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metallb_py.k8s.client import KubeClient
from metallb_py.k8s.errors import ApiError, ConflictError, NotFoundError
from metallb_py.k8s.resources import LEASES

__all__ = ["LeaderElector", "LeaseAction", "LeaseRecord", "decide", "micro_time"]

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
        self._observed: LeaseRecord | None = None
        self._observed_at = float("-inf")
        self._observed_version = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rng = random.Random()
        self.transitions = 0  # times this replica became leader

    def is_leader(self) -> bool:
        """True while this replica holds the Lease and renewed it within renew_deadline.

        Once it has answered False during a term (the deadline passed, e.g. while the API server was
        restarting), that term is over for the caller, who may have dropped work: the next successful
        renewal starts a new term, with on_stopped_leading then on_started_leading, even though the Lease
        never changed hands.
        """
        with self._lock:
            if not self._leading:
                return False
            if self._clock() < self._renewed_at + self.renew_deadline:
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
            self._renewed_at = started
            lapsed, self._lapsed = self._lapsed, False
            became = not self._leading or lapsed
            self._leading = True
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
