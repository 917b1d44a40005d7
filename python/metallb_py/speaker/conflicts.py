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
Two hosts that both keep the address re-announce in turn, once a check each, and the warning says so.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from metallb_py.speaker.metrics import SpeakerMetrics

__all__ = ["CHECK_INTERVAL", "REASON", "ConflictReporter", "ConflictSource", "EventSink"]

log = logging.getLogger("metallb_py.speaker")

REASON = "AddressConflict"
CHECK_INTERVAL = 1.0


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
    ) -> None:
        self.source, self.node = source, node
        self._announced, self._service = announced, service
        self.events, self.metrics = events, metrics
        self._held: list[tuple[str, str, str]] = []  # seen at the last check, told at this one if they stand

    def check(self) -> list[tuple[str, str, str]]:
        """Tells each conflict seen at the previous check on an address this node still announces; returns
        those told. The ones seen now wait for the next check."""
        held, self._held = self._held, self.source.conflicts()
        if not held:
            return []
        announced = self._announced()
        told: list[tuple[str, str, str]] = []
        reclaimed: set[str] = set()
        for ip, mac, interface in held:
            services = announced.get(ip, ())
            if not services:
                log.debug(
                    "a claim on an address this node no longer announces (a handover): not a conflict",
                    extra={"ip": ip, "mac": mac, "interface": interface},
                )
                continue
            told.append((ip, mac, interface))
            log.warning(
                "another host claims an address this node announces: two hosts answer for it",
                extra={"ip": ip, "mac": mac, "interface": interface, "services": list(services)},
            )
            self.metrics.address_conflicts.labels(ip, interface).inc()
            message = (
                f"node {self.node}: the host at {mac} on {interface} claims {ip}, which this node announces; "
                "clients may reach either (remove the address from that host, or this Service's pool)"
            )
            for key in services:
                obj = self._service(key)
                if obj is not None:
                    self.events.record(obj, "Warning", REASON, message)
            if ip not in reclaimed:
                reclaimed.add(ip)
                if self.source.reannounce(ip):
                    log.info("announcing again to win back the neighbours the claim took", extra={"ip": ip})
        return told

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
