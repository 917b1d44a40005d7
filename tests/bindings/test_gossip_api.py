"""metallb_py._core.Membership on loopback, without privileges: arguments, views, events, handover, errors.

No assertion here bounds how long anything takes (the machine is shared and noisy): a leave is told apart
from a detected crash by the events around it and by a detector set far slower than the wait, and the
measured detection figures live in benches/test_bench_gossip.py. Deadlines in waits only stop a hang.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from metallb_py import errors
from metallb_py._core import Membership, MembershipEvent

SECRET = b"binding-test-secret-0123456789ab"
LOOPBACK = "127.0.0.1:0"


def wait_for(done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as the_stack:
        yield the_stack


def started(stack: ExitStack, name: str, *, seeds: list[str] | None = None, **options: object) -> Membership:
    member = Membership(name, LOOPBACK, SECRET, seeds=seeds or [], **options)  # type: ignore[arg-type]
    member.start()
    stack.callback(member.stop)
    return member


def events_until(member: Membership, kind: str, name: str, timeout: float = 30.0) -> list[MembershipEvent]:
    seen: list[MembershipEvent] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = member.next_event(timeout=max(0.0, deadline - time.monotonic()))
        if event is None:
            break
        seen.append(event)
        if event.kind == kind and event.name == name:
            return seen
    raise AssertionError(f"no {kind} event for {name}: {seen}")


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"bind": "127.0.0.1"}, "not an address with a port"),
        ({"bind": "0.0.0.0:7946"}, "advertise"),
        ({"secret": b"short"}, "at least 16"),
        ({"name": ""}, "not a member name"),
        ({"seeds": ["192.0.2.1:0"]}, "port 0"),
        ({"seeds": ["[fe80::1]:7946"]}, "link-local"),
        ({"probe_timeout": 0.2}, "below probe_interval"),
        ({"probe_interval": 0.001}, "shorter than the minimum"),
        ({"suspect_timeout": -1.0}, "non-negative"),
        ({"indirect_probes": 0}, "at least 1"),
        ({"quorum": "most"}, "majority"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict[str, object], fragment: str) -> None:
    args: dict[str, object] = {"name": "a", "bind": LOOPBACK, "secret": SECRET, **kwargs}
    with pytest.raises(ValueError, match=fragment):
        Membership(**args)  # type: ignore[arg-type]


def test_members_find_each_other_and_report_views(stack: ExitStack) -> None:
    a = started(stack, "a")
    b = started(stack, "b", seeds=[a.address])
    c = started(stack, "c", seeds=[a.address])
    for member in (a, b, c):
        wait_for(lambda m=member: m.alive() == ["a", "b", "c"])  # type: ignore[misc]
    members = a.members()
    assert set(members) == {"a", "b", "c"}
    assert members["b"]["address"] == b.address
    assert members["b"]["state"] == "alive"
    assert isinstance(members["b"]["generation"], int)
    assert a.isolated() is False
    ups = {e.name for e in a.events() if e.kind == "up"}
    assert ups == {"b", "c"}
    assert b.peers() == [a.address]
    assert a.running and a.generation is not None
    assert repr(a).startswith("Membership(name='a', address='127.0.0.1:")


def test_stop_is_fast_and_looks_like_a_crash(stack: ExitStack) -> None:
    a = started(stack, "a")
    b = started(stack, "b", seeds=[a.address])
    wait_for(lambda: a.alive() == ["a", "b"])
    a.events()
    address = b.address
    stopped_at = time.monotonic()
    b.stop()
    assert not b.running and b.alive() == [] and b.members() == {}
    seen = events_until(a, "down", "b")
    down = seen[-1]
    assert down.address == address
    # A crash is detected, never announced: suspected first, declared down no sooner than the suspect timeout.
    assert [e.kind for e in seen if e.name == "b"][-2:] == ["suspect", "down"], seen
    assert down.at - stopped_at >= 0.25, seen
    assert a.members()["b"]["state"] == "down"


def test_leave_hands_over_at_once_and_with_block_leaves(stack: ExitStack) -> None:
    # `a` would need a full minute to declare a silent member down: a down seen before that is a leave.
    slow = 60.0
    a = started(stack, "a", suspect_timeout=slow)
    b = started(stack, "b", seeds=[a.address], suspect_timeout=slow)
    # A leave goes to the members the leaver knows: wait until `b` knows `a` as well as `a` knows `b` (the
    # test failed now and then when `b` left before `a`'s answer to its announce arrived).
    wait_for(lambda: a.alive() == ["a", "b"] and b.alive() == ["a", "b"])
    a.events()
    left_at = time.monotonic()
    b.leave()
    seen = events_until(a, "down", "b")
    assert seen[-1].at - left_at < slow, "a leave needs no detection"
    assert "suspect" not in [e.kind for e in seen], seen
    b.stop()

    with Membership("c", LOOPBACK, SECRET, seeds=[a.address], suspect_timeout=slow) as c:
        # As above: `c` must know `a` before it leaves.
        wait_for(lambda: "c" in a.alive() and "a" in c.alive())
        left_at = time.monotonic()
    seen = events_until(a, "down", "c")
    assert seen[-1].at - left_at < slow and "suspect" not in [e.kind for e in seen]
    assert not c.running


def test_a_member_whose_peers_all_stop_becomes_isolated(stack: ExitStack) -> None:
    a = started(stack, "a", isolation_timeout=0.3)
    b = started(stack, "b", seeds=[a.address])
    wait_for(lambda: a.alive() == ["a", "b"])
    a.set_peers([a.address, b.address])
    assert a.peers() == [b.address], "its own address is dropped from the list"
    b.stop()
    isolated = events_until(a, "isolated", "a")[-1]
    assert a.isolated()
    assert isolated.address == a.address
    # With the dead peer removed from its list, a lone survivor carries on.
    a.set_peers([])
    wait_for(lambda: not a.isolated())


def test_another_secret_is_counted_and_kept_out(stack: ExitStack) -> None:
    a = started(stack, "a")
    intruder = Membership("x", LOOPBACK, b"not-the-cluster-secret-012345678", seeds=[a.address])
    intruder.start()
    stack.callback(intruder.stop)
    wait_for(lambda: a.stats()["bad_tag"] > 0)
    assert a.alive() == ["a"]
    stats = a.stats()
    assert stats["replayed"] == 0
    assert set(stats) >= {"datagrams_sent", "datagrams_received", "refutations", "rejoins", "isolations"}


def test_waiting_for_events_releases_the_gil(stack: ExitStack) -> None:
    a = started(stack, "a")
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        assert a.next_event(timeout=0.3) is None
    finally:
        stop.set()
        counter.join()
    assert ticks > 50, "the other thread ran while we waited"
    assert a.events(timeout=0.05) == []


def test_join_and_set_peers_after_start_and_errors_when_stopped(stack: ExitStack) -> None:
    a = started(stack, "a")
    b = started(stack, "b")
    b.join([a.address])
    wait_for(lambda: a.alive() == ["a", "b"])
    with pytest.raises(ValueError, match="not an address"):
        b.set_peers(["nonsense"])
    b.stop()
    for call in (lambda: b.join([a.address]), b.leave, b.stats, lambda: b.next_event(0)):
        with pytest.raises(errors.GossipError, match="not running"):
            call()
    b.start()
    with pytest.raises(errors.GossipError, match="already running"):
        b.start()


def test_start_errors_map_to_their_classes(stack: ExitStack) -> None:
    a = started(stack, "a")
    with pytest.raises(errors.GossipBindError) as info:
        Membership("b", a.address, SECRET).start()
    assert type(info.value) is errors.GossipBindError
    with pytest.raises(errors.GossipNetnsError, match="does not exist"):
        Membership("b", LOOPBACK, SECRET, netns="mlb-no-such-namespace").start()
    assert issubclass(errors.GossipPermissionError, PermissionError)
    for cls in (errors.GossipBindError, errors.GossipNetnsError, errors.GossipPermissionError):
        assert issubclass(cls, errors.GossipError) and issubclass(cls, errors.MetalLBError)
