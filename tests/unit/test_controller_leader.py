"""Leader election decisions (metallb_py.k8s.leader), without an API server.

`decide` is tested as a table; `LeaderElector` against an in-memory Lease store that enforces
resourceVersion preconditions as the API server does, with a fake clock, so takeover timing is exact.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest

from metallb_py.k8s.errors import ApiUnavailableError, ConflictError, NotFoundError
from metallb_py.k8s.leader import LeaderElector, LeaseAction, LeaseRecord, decide

HELD = LeaseRecord("other", 15, "t0", "t0", 3)


@pytest.mark.parametrize(
    ("record", "observed_at", "now", "action", "wait"),
    [
        (None, 0.0, 0.0, LeaseAction.CREATE, 0.0),
        (LeaseRecord("me", 15), 0.0, 100.0, LeaseAction.RENEW, 0.0),
        (LeaseRecord("", 1), 0.0, 0.0, LeaseAction.ACQUIRE, 0.0),
        (HELD, 10.0, 10.0, LeaseAction.WAIT, 15.0),
        (HELD, 10.0, 24.0, LeaseAction.WAIT, 1.0),
        (HELD, 10.0, 25.0, LeaseAction.ACQUIRE, 0.0),
        (HELD, 10.0, 99.0, LeaseAction.ACQUIRE, 0.0),
    ],
    ids=["no lease", "ours", "released", "fresh", "about to expire", "expired", "long expired"],
)
def test_decide(
    record: LeaseRecord | None, observed_at: float, now: float, action: LeaseAction, wait: float
) -> None:
    assert decide(record, identity="me", observed_at=observed_at, now=now) == (action, wait)


class FakeLeases:
    """The Lease API: get, create, update with resourceVersion preconditions."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.down = False
        self.requests = 0

    def _check(self) -> None:
        self.requests += 1
        if self.down:
            raise ApiUnavailableError(0, "", "connection refused")

    def get(self, resource: object, name: str, namespace: str | None = None) -> dict[str, Any]:
        self._check()
        if self.lease is None:
            raise NotFoundError(404, "NotFound", "no lease")
        return copy.deepcopy(self.lease)

    def create(self, resource: object, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self._check()
        if self.lease is not None:
            raise ConflictError(409, "AlreadyExists", "exists")
        return self._store(body)

    def replace(
        self, resource: object, name: str, body: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        self._check()
        assert self.lease is not None
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ConflictError(409, "Conflict", "modified")
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        stored = copy.deepcopy(body)
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.lease = stored
        return copy.deepcopy(stored)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(leases: FakeLeases, clock: Clock, identity: str, events: list[str]) -> LeaderElector:
    return LeaderElector(
        leases,  # type: ignore[arg-type]
        namespace="ns",
        name="lease",
        identity=identity,
        lease_duration=15,
        renew_deadline=10,
        retry_period=2,
        on_started_leading=lambda: events.append(f"{identity} started"),
        on_stopped_leading=lambda: events.append(f"{identity} stopped"),
        clock=clock,
        wall_clock=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    )


def test_one_leader_and_takeover_after_the_lease_duration() -> None:
    leases, clock = FakeLeases(), Clock()
    events: list[str] = []
    a, b = elector(leases, clock, "a", events), elector(leases, clock, "b", events)
    assert a.try_acquire_or_renew()  # creates the Lease
    assert leases.lease is not None and leases.lease["spec"]["holderIdentity"] == "a"
    assert not b.try_acquire_or_renew()  # sees it held; starts its own expiry clock now
    assert b.holder == "a"
    # a dies (stops renewing). b waits the full duration from when it last saw the record change.
    clock.now += 14.9
    assert not b.try_acquire_or_renew()
    clock.now += 0.2
    assert b.try_acquire_or_renew()
    spec = leases.lease["spec"]
    assert spec["holderIdentity"] == "b"
    assert spec["leaseTransitions"] == 1
    assert spec["leaseDurationSeconds"] == 15
    assert spec["renewTime"] == "2026-01-01T00:00:00.000000Z"


def test_renewals_keep_followers_waiting() -> None:
    leases, clock = FakeLeases(), Clock()
    events: list[str] = []
    a, b = elector(leases, clock, "a", events), elector(leases, clock, "b", events)
    assert a.try_acquire_or_renew()
    for _ in range(20):
        clock.now += 2
        assert a.try_acquire_or_renew()  # renews: the record changes each time
        assert not b.try_acquire_or_renew()
    assert leases.lease is not None and leases.lease["spec"]["leaseTransitions"] == 0


class SlowLeases(FakeLeases):
    """A GET that takes `delay` seconds, during which the holder renews (the answer carries the renewal)."""

    def __init__(self, clock: Clock, delay: float) -> None:
        super().__init__()
        self.clock, self.delay = clock, delay
        self.renew: Callable[[], object] = lambda: None
        self.slow = False

    def get(self, resource: object, name: str, namespace: str | None = None) -> dict[str, Any]:
        if self.slow:
            self.slow = False
            self.clock.now += self.delay
            self.renew()
        return super().get(resource, name, namespace)


def test_a_slow_get_does_not_shorten_the_holders_lease() -> None:
    """Regression: the follower dated a renewal it saw from when its GET started, so after a 6 s GET it took
    the Lease 6 s early, while the old holder still believed it led."""
    clock = Clock()
    events: list[str] = []
    leases = SlowLeases(clock, 6.0)
    a, b = elector(leases, clock, "a", events), elector(leases, clock, "b", events)
    leases.renew = a.try_acquire_or_renew
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    leases.slow = True  # b's next GET takes 6 s; a renews meanwhile, then dies
    clock.now += 1
    assert not b.try_acquire_or_renew()
    renewed_at = clock.now  # a's last renewal happened at the end of the slow GET
    clock.now = renewed_at + 14.9
    assert not b.try_acquire_or_renew(), "took the lease before a full duration after the last renewal"
    clock.now = renewed_at + 15.1
    assert b.try_acquire_or_renew()


def test_racing_for_an_expired_lease_has_one_winner() -> None:
    leases, clock = FakeLeases(), Clock()
    events: list[str] = []
    a, b, c = (elector(leases, clock, n, events) for n in "abc")
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    assert not c.try_acquire_or_renew()
    clock.now += 16
    # b and c both read the expired Lease, then both try to update it: the second update conflicts.
    original_get = leases.get
    snapshot = original_get(None, "lease")
    leases.get = lambda *args, **kwargs: copy.deepcopy(snapshot)  # type: ignore[method-assign]
    results = [b.try_acquire_or_renew(), c.try_acquire_or_renew()]
    assert results == [True, False]


def test_is_leader_turns_false_by_itself_after_the_renew_deadline() -> None:
    leases, clock = FakeLeases(), Clock()
    events: list[str] = []
    a = elector(leases, clock, "a", events)
    assert a.try_acquire_or_renew()
    with a._lock:
        a._leading, a._renewed_at = True, clock.now
    assert a.is_leader()
    leases.down = True  # the API server is gone: renewals fail
    clock.now += 9.9
    assert a.is_leader()
    clock.now += 0.2
    assert not a.is_leader()  # before anyone may take over (15 s)


def test_release_lets_another_replica_take_over_at_once() -> None:
    leases, clock = FakeLeases(), Clock()
    events: list[str] = []
    a, b = elector(leases, clock, "a", events), elector(leases, clock, "b", events)
    assert a.try_acquire_or_renew()
    with a._lock:
        a._leading, a._renewed_at = True, clock.now
    assert not b.try_acquire_or_renew()
    a.stop(release=True)
    assert events == ["a stopped"]
    assert leases.lease is not None and leases.lease["spec"]["holderIdentity"] == ""
    assert b.try_acquire_or_renew()  # no waiting for expiry


def test_bad_timings_are_refused() -> None:
    with pytest.raises(ValueError, match="retry_period < renew_deadline < lease_duration"):
        LeaderElector(FakeLeases(), namespace="n", name="l", identity="i", lease_duration=5, renew_deadline=5)  # type: ignore[arg-type]


def test_a_lapse_seen_by_the_worker_starts_a_new_term_on_the_next_renewal() -> None:
    """Regression: after the API server came back, a renewal slower than the renew deadline left the worker
    seeing is_leader() False (it dropped its resync) while the elector never announced a new term."""
    leases, clock = FakeLeases(), Clock()
    events: list[str] = []
    a = elector(leases, clock, "a", events)
    a.round()
    assert events == ["a started"] and a.is_leader()
    clock.now += 10.5  # past the renew deadline: the worker asks, and drops its work
    assert not a.is_leader()
    a.round()  # renewed (the Lease is still ours): a new term, announced
    assert events == ["a started", "a stopped", "a started"]
    assert a.is_leader()
    clock.now += 2
    a.round()  # an ordinary renewal: nothing to announce
    assert events == ["a started", "a stopped", "a started"]
    assert a.transitions == 2


def test_failed_renewals_step_down_after_the_deadline_only() -> None:
    leases, clock = FakeLeases(), Clock()
    events: list[str] = []
    a = elector(leases, clock, "a", events)
    a.round()
    leases.down = True
    for _ in range(4):
        clock.now += 2
        a.round()
    assert events == ["a started"]  # 8 s without renewal: still within the 10 s deadline
    clock.now += 2.5
    a.round()
    assert events == ["a started", "a stopped"]
    leases.down = False
    a.round()  # the Lease still names us: we take it back at once
    assert events == ["a started", "a stopped", "a started"]


def test_a_renewal_after_the_renew_deadline_starts_a_new_term_though_nobody_asked_meanwhile() -> None:
    """Regression: a leader paused (SIGSTOP) past its renew deadline and then continued renewed the Lease it
    still held and carried on in the same term when no thread had asked is_leader() during the pause; its
    worker kept the previous term's state though another replica could have led meanwhile."""
    leases, clock = FakeLeases(), Clock()
    events: list[str] = []
    a = elector(leases, clock, "a", events)
    a.round()
    clock.now += 10.5  # paused past the renew deadline (not the lease): nobody asked
    a.round()
    assert events == ["a started", "a stopped", "a started"]
