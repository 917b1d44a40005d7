"""speaker.conflicts: another host claiming an announced address is logged, counted and told to the
Services announcing it, from what a (fake) responder reports."""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any

import pytest

from metallb_py.speaker.conflicts import REASON, REPEAT_BASE, REPEAT_CAP, ConflictReporter
from metallb_py.speaker.metrics import SpeakerMetrics

VIP = "192.0.2.11"
MAC = "02:00:00:00:00:99"


class FakeResponder:
    """Hands out what it saw since the last call, as Responder.conflicts does."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.calls = 0
        self.reannounced: list[str] = []

    def conflicts(self) -> list[tuple[str, str, str]]:
        self.calls += 1
        seen, self.seen = self.seen, []
        return seen

    def reannounce(self, ip: str) -> bool:
        self.reannounced.append(ip)
        return True


class FakeEvents:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str, str, str]] = []

    def record(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        self.recorded.append((obj["metadata"]["name"], type, reason, message))


def svc(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"namespace": "default", "name": name}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock | None = None) -> tuple[ConflictReporter, FakeResponder, FakeEvents, SpeakerMetrics]:
    responder, events, metrics = FakeResponder(), FakeEvents(), SpeakerMetrics()
    services = {"default/web": svc("web"), "default/web2": svc("web2")}
    reporter = ConflictReporter(
        responder,
        "node1",
        announced=lambda: {VIP: ("default/web", "default/web2", "default/gone")},
        service=services.get,
        events=events,
        metrics=metrics,
        clock=clock or Clock(),
    )
    return reporter, responder, events, metrics


def count(metrics: SpeakerMetrics, ip: str, interface: str) -> float | None:
    return metrics.registry.get_sample_value(
        "metallb_py_speaker_address_conflicts_total", {"ip": ip, "interface": interface}
    )


def test_a_conflict_is_logged_counted_and_an_event_on_each_service(caplog: pytest.LogCaptureFixture) -> None:
    reporter, responder, events, metrics = make()
    responder.seen = [(VIP, MAC, "eth0"), ("192.0.2.99", MAC, "eth1")]
    assert reporter.check() == [], "told one check later, once it still stands"
    assert count(metrics, VIP, "eth0") is None and events.recorded == []
    with caplog.at_level(logging.WARNING, "metallb_py.speaker"):
        assert reporter.check() == [(VIP, MAC, "eth0")]
    assert count(metrics, VIP, "eth0") == 1
    assert count(metrics, "192.0.2.99", "eth1") is None, "not announced by this node: a handover, not told"
    # A Service no longer watched gets none.
    assert [(name, type_, reason) for name, type_, reason, _ in events.recorded] == [
        ("web", "Warning", REASON),
        ("web2", "Warning", REASON),
    ]
    message = events.recorded[0][3]
    assert VIP in message and MAC in message and "eth0" in message and "node1" in message
    warned = [
        (r.__dict__["ip"], r.__dict__["mac"], r.__dict__["interface"])
        for r in caplog.records
        if r.levelno == logging.WARNING
    ]
    assert warned == [(VIP, MAC, "eth0")]
    assert responder.reannounced == [VIP], "announced again, to win back the neighbours the claim took"


def test_several_claims_on_one_address_announce_it_again_once() -> None:
    reporter, responder, _, _ = make()
    responder.seen = [(VIP, MAC, "eth0"), (VIP, "02:00:00:00:00:98", "eth0"), (VIP, MAC, "eth1")]
    reporter.check()
    assert len(reporter.check()) == 3
    assert responder.reannounced == [VIP]


def test_a_claim_on_an_address_withdrawn_before_the_next_check_is_a_handover() -> None:
    responder, events, metrics = FakeResponder(), FakeEvents(), SpeakerMetrics()
    announced = {VIP: ("default/web",)}
    reporter = ConflictReporter(
        responder,
        "node1",
        announced=lambda: announced,
        service={"default/web": svc("web")}.get,
        events=events,
        metrics=metrics,
    )
    responder.seen = [(VIP, MAC, "eth0")]  # the new owner's gratuitous ARP, heard before this node withdrew
    reporter.check()
    announced.clear()  # withdrawn: the address moved
    assert reporter.check() == []
    assert events.recorded == [] and count(metrics, VIP, "eth0") is None
    assert responder.reannounced == [], "not this node's any more: nothing to win back"


def test_nothing_new_tells_nothing_and_a_repeat_after_its_hold_off_is_told_again() -> None:
    clock = Clock()
    reporter, responder, events, metrics = make(clock)
    assert reporter.check() == []
    assert events.recorded == [] and count(metrics, VIP, "eth0") is None
    responder.seen = [(VIP, MAC, "eth0")]
    reporter.check()
    responder.seen = [(VIP, MAC, "eth0")]  # seen again after the last drain
    assert len(reporter.check()) == 1
    clock.now += REPEAT_BASE
    assert len(reporter.check()) == 1, "past its hold-off: told again"
    assert count(metrics, VIP, "eth0") == 2 and len(events.recorded) == 4
    assert responder.reannounced == [VIP, VIP]


def test_a_standing_conflict_is_counted_every_check_but_told_ever_more_rarely() -> None:
    """Two hosts keeping one address would answer each other's announcements for as long as both keep it:
    every claim is counted, but told (warning, Events) and re-announced at 0, 5, 15, 35 s... up to every
    REPEAT_CAP."""
    clock = Clock()
    reporter, responder, events, metrics = make(clock)
    told_at: list[float] = []
    start = clock.now
    for _ in range(2000):  # a claim before every check, one check a second
        responder.seen = [(VIP, MAC, "eth0")]
        if reporter.check():
            told_at.append(clock.now - start)
        clock.now += 1.0
    assert count(metrics, VIP, "eth0") == 1999
    assert told_at[:5] == [1.0, 6.0, 16.0, 36.0, 76.0]
    gaps = [b - a for a, b in itertools.pairwise(told_at)]
    assert max(gaps) == REPEAT_CAP and len(told_at) < 15
    assert responder.reannounced == [VIP] * len(told_at) and len(events.recorded) == 2 * len(told_at)


def test_an_address_quiet_for_the_cap_starts_over() -> None:
    clock = Clock()
    reporter, responder, _, _ = make(clock)
    for _ in range(8):  # told at once and after REPEAT_BASE, then held off longer
        responder.seen = [(VIP, MAC, "eth0")]
        reporter.check()
        clock.now += 1.0
    reporter.check()  # the last claim, counted within its hold-off
    assert len(responder.reannounced) == 2
    clock.now += REPEAT_CAP  # no claim for that long
    reporter.check()
    responder.seen = [(VIP, MAC, "eth0")]
    reporter.check()
    assert reporter.check() != [] and len(responder.reannounced) == 3, "told at once, as a first conflict"
    clock.now += REPEAT_BASE - 1.0
    responder.seen = [(VIP, MAC, "eth0")]
    reporter.check()
    assert reporter.check() == [], "and held off REPEAT_BASE again, not the longer hold-off of before"


def test_run_checks_until_stopped_and_survives_a_failing_read(caplog: pytest.LogCaptureFixture) -> None:
    reporter, responder, _, metrics = make()
    stop = threading.Event()
    calls: list[int] = []

    def conflicts() -> list[tuple[str, str, str]]:
        calls.append(1)
        if len(calls) <= 3:
            raise RuntimeError("the responder is not running")
        if len(calls) == 4:
            return [(VIP, MAC, "eth0")]
        if len(calls) == 6:
            stop.set()
        return []

    responder.conflicts = conflicts  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, "metallb_py.speaker"):
        reporter.run(stop, interval=0.0)
    assert len(calls) == 6 and count(metrics, VIP, "eth0") == 1
    failures = [r for r in caplog.records if r.getMessage() == "cannot read address conflicts"]
    assert len(failures) == 1, "the same failure is logged once"
