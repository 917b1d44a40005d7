"""Another host claiming an address this node announces (MetalLB is silent here).

The layer 2 responder sees every ARP and NDP frame on the interfaces it serves, and keeps, de-duplicated, each
(address, MAC, interface) where a host that is not this node claims an announced address (its ARP sender
address, its Neighbor Advertisement). `ConflictReporter.check` takes what it kept since the last call and
tells each: a warning naming the address, the other MAC and the interface; the counter
metallb_py_speaker_address_conflicts_total{ip,interface}; and a Warning Event `AddressConflict` on each
Service this node announces the address for. `run` checks every CHECK_INTERVAL seconds (the responder only
collects; nothing is sent or waited for here).

A claim is told one check after it was seen, and only if this node still announces the address then. When an
address moves between nodes, the new owner's gratuitous announcement can reach the old owner a moment before
the old owner withdraws: that claim is a handover, not a conflict, and telling it would raise a false alarm
on every planned move. So a conflict is told within about two intervals.

A told conflict also re-announces the address (`reannounce`: gratuitous frames now and on a fresh schedule).
The claim moved the neighbours that heard it to the other host, and nothing else would bring them back while
this node keeps the address: a peer that took the address over for a moment (this node's heartbeats were late)
and gave it back leaves the client sending to it until the client's entry goes stale, tens of seconds later.

Repeats of a conflict on one address are counted but told, and re-announced, only after a hold-off that
doubles from REPEAT_BASE (the length of one announcement schedule) to REPEAT_CAP, and starts over once the
address saw no claim for REPEAT_CAP. Two hosts that both keep an address (a foreign host, or two speakers
whose views disagree for a while) would otherwise answer each other's announcements with announcements for
as long as both keep it: in a 50-speaker lab with 1,000 addresses that fed on itself into hundreds of
gratuitous frames a second, one Warning Event each, on every node.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from metallb_py.backoff import KeyedBackoff
from metallb_py.speaker.metrics import SpeakerMetrics

__all__ = [
    "CHECK_INTERVAL",
    "REASON",
    "REPEAT_BASE",
    "REPEAT_CAP",
    "ConflictReporter",
    "ConflictSource",
    "EventSink",
]

log = logging.getLogger("metallb_py.speaker")

REASON = "AddressConflict"
CHECK_INTERVAL = 1.0
# Hold-off before a repeated conflict on one address is told and re-announced again (module docstring).
REPEAT_BASE = 5.0
REPEAT_CAP = 300.0


class ConflictSource(Protocol):
    """The responder's conflicts (metallb_py.Responder.conflicts): (ip, mac, interface) seen since the last
    call, each once; `reannounce(ip)` announces an address again as if new (False when it is not announced
    or the responder is muted)."""

    def conflicts(self) -> list[tuple[str, str, str]]: ...

    def reannounce(self, ip: str) -> bool: ...


class EventSink(Protocol):
    """Where Events go (metallb_py.k8s.events.EventRecorder)."""

    def record(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None: ...


class ConflictReporter:
    """See the module docstring. `announced()`: address -> the Services (namespace/name) this node announces
    it for now; `service(key)`: the Service as watched (None once gone)."""

    def __init__(
        self,
        source: ConflictSource,
        node: str,
        *,
        announced: Callable[[], Mapping[str, tuple[str, ...]]],
        service: Callable[[str], dict[str, Any] | None],
        events: EventSink,
        metrics: SpeakerMetrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source, self.node = source, node
        self._announced, self._service = announced, service
        self.events, self.metrics = events, metrics
        self._clock = clock
        self._held: list[tuple[str, str, str]] = []  # seen at the last check, told at this one if they stand
        self._repeats = KeyedBackoff(REPEAT_BASE, REPEAT_CAP)
        self._quiet_until: dict[str, float] = {}  # address -> when a repeat is told again
        self._last_claim: dict[str, float] = {}  # address -> when a claim on it was last counted

    def check(self) -> list[tuple[str, str, str]]:
        """Counts each conflict seen at the previous check on an address this node still announces, and tells
        those not held off as repeats; returns those told. The ones seen now wait for the next check."""
        held, self._held = self._held, self.source.conflicts()
        now = self._clock()
        self._forget_quiet(now)
        if not held:
            return []
        announced = self._announced()
        claims: dict[str, list[tuple[str, str]]] = {}
        for ip, mac, interface in held:
            if announced.get(ip):
                claims.setdefault(ip, []).append((mac, interface))
            else:
                log.debug(
                    "a claim on an address this node no longer announces (a handover): not a conflict",
                    extra={"ip": ip, "mac": mac, "interface": interface},
                )
        told: list[tuple[str, str, str]] = []
        for ip, seen in claims.items():
            for _, interface in seen:
                self.metrics.address_conflicts.labels(ip, interface).inc()
            self._last_claim[ip] = now
            if now < self._quiet_until.get(ip, now):
                continue  # a repeat within its hold-off: counted only
            hold = self._repeats.next(ip)
            self._quiet_until[ip] = now + hold
            for mac, interface in seen:
                told.append((ip, mac, interface))
                self._tell(ip, mac, interface, announced[ip], hold)
            if self.source.reannounce(ip):
                log.info("announcing again to win back the neighbours the claim took", extra={"ip": ip})
        return told

    def _tell(self, ip: str, mac: str, interface: str, services: tuple[str, ...], hold: float) -> None:
        log.warning(
            "another host claims an address this node announces: two hosts answer for it",
            extra={
                "ip": ip,
                "mac": mac,
                "interface": interface,
                "services": list(services),
                "repeats_told_after_s": hold,
            },
        )
        message = (
            f"node {self.node}: the host at {mac} on {interface} claims {ip}, which this node announces; "
            "clients may reach either (remove the address from that host, or this Service's pool)"
        )
        for key in services:
            obj = self._service(key)
            if obj is not None:
                self.events.record(obj, "Warning", REASON, message)

    def _forget_quiet(self, now: float) -> None:
        """An address without a claim for REPEAT_CAP starts over: its next conflict is told at once."""
        for ip in [ip for ip, at in self._last_claim.items() if now - at >= REPEAT_CAP]:
            del self._last_claim[ip]
            self._quiet_until.pop(ip, None)
            self._repeats.forget(ip)

    def run(self, stop: threading.Event, interval: float = CHECK_INTERVAL) -> None:
        """Checks every `interval` seconds until `stop` is set. A failing read is logged once, until it works
        again (the responder stopped: the speaker's health check reports that)."""
        failing: str | None = None
        while not stop.wait(interval):
            try:
                self.check()
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                if error != failing:
                    log.warning("cannot read address conflicts", extra={"error": error})
                failing = error
            else:
                failing = None
