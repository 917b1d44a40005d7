"""Gossip Leases: how speakers find each other without pods, and whom each expects to hear.

Each speaker publishes its gossip address in a Lease `metallb-py-speaker-<node>` in its namespace, labelled
`GOSSIP_LABEL`, and renews it while it runs. The builders and `PeerLeases` are pure; `LeaseKeeper` does the
API calls (publish, renew, take the Lease back when it is deleted) and answers "whom to expect now".

The API cost is one write per RENEW_PERIOD (10 s) per speaker at steady state: failure detection is the
gossip's (SWIM and the heartbeats), the Lease only says where a peer is and that it still runs, so it can be
renewed rarely and go stale late (LEASE_DURATION, 30 s). The one decision that waits on a Lease going stale
is a speaker's that hears none of its peers (gate.cut_off): cut off, or the last one standing? It does not
wait 30 s for that: it asks (its renewal carries GOSSIP_ASK_ANNOTATION), every running speaker answers by
renewing at once, and the peers that did not answer within ANSWER_WITHIN are no longer expected. So a lone
survivor announces a few seconds after the others crash, as when Leases were renewed every 2 s.

The time to answer counts from when this speaker's own watch shows its ask, and grows by twice the time that
took (its PATCH and the watch's delivery, which each peer's answer needs too): an API server slowed down by
load gives slow answers, and a speaker that took them for deaths would announce every address beside the
running speakers. Without that echo nobody is dropped on an ask (the Leases still go stale).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from metallb_py.k8s.client import KubeClient
from metallb_py.k8s.errors import ApiError, ConflictError, NotFoundError
from metallb_py.k8s.leader import micro_time
from metallb_py.k8s.resources import LEASES
from metallb_py.k8s.watch import Change

__all__ = [
    "ANSWER_WITHIN",
    "GOSSIP_ADDRESS_ANNOTATION",
    "GOSSIP_ASK_ANNOTATION",
    "GOSSIP_LABEL",
    "GOSSIP_PORT",
    "LEASE_DURATION",
    "RENEW_PERIOD",
    "RENEW_RETRY",
    "LeaseKeeper",
    "PeerLeases",
    "gossip_address",
    "gossip_lease",
    "gossip_lease_name",
    "lease_ask",
    "peer_from_lease",
]

log = logging.getLogger("metallb_py.speaker")

GOSSIP_LABEL = "metallb-py.io/gossip"
GOSSIP_ADDRESS_ANNOTATION = "metallb-py.io/gossip-address"
GOSSIP_ASK_ANNOTATION = "metallb-py.io/gossip-ask"
GOSSIP_PORT = 7946
# One write per speaker per RENEW_PERIOD at steady state (issue 14: at most one per 10 s). A peer whose Lease
# has not changed for LEASE_DURATION (three renewals missed) is no longer expected.
RENEW_PERIOD = 10.0
LEASE_DURATION = 30.0
# A renewal that failed is retried this soon (an API blip must not leave the Lease unrenewed for a period).
RENEW_RETRY = 1.0
# Seconds a running speaker has to answer an ask (see the module docstring): a watch event and one PATCH.
ANSWER_WITHIN = 3.0


def gossip_address(ip: str, port: int = GOSSIP_PORT) -> str:
    """`ip:port`, with brackets for IPv6 (what Membership takes)."""
    parsed = ipaddress.ip_address(ip)
    return f"[{parsed}]:{port}" if parsed.version == 6 else f"{parsed}:{port}"


def gossip_lease_name(node: str) -> str:
    return f"metallb-py-speaker-{node}"


def gossip_lease(
    node: str, namespace: str, address: str, now: _dt.datetime, duration: float = LEASE_DURATION
) -> dict[str, Any]:
    """The Lease a speaker publishes its gossip address in, renewed while it runs. The gossip decides who is
    alive; the Lease says where to ask, and whom to expect (see PeerLeases)."""
    stamp = micro_time(now)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {
            "name": gossip_lease_name(node),
            "namespace": namespace,
            "labels": {GOSSIP_LABEL: "true"},
            "annotations": {GOSSIP_ADDRESS_ANNOTATION: address},
        },
        "spec": {
            "holderIdentity": node,
            "acquireTime": stamp,
            "renewTime": stamp,
            "leaseDurationSeconds": max(1, math.ceil(duration)),
        },
    }


def peer_from_lease(obj: Mapping[str, Any]) -> tuple[str, str] | None:
    """(node, gossip address) from a speaker's Lease; None when it is not one or is malformed."""
    metadata = obj.get("metadata") or {}
    address = (metadata.get("annotations") or {}).get(GOSSIP_ADDRESS_ANNOTATION)
    node = (obj.get("spec") or {}).get("holderIdentity")
    if not address or not node:
        return None
    host, _, port = str(address).rpartition(":")
    try:
        ipaddress.ip_address(host.strip("[]"))
        if not 0 < int(port) < 65536:
            return None
    except ValueError:
        return None
    return str(node), str(address)


def lease_ask(obj: Mapping[str, Any]) -> str | None:
    """The ask a speaker's Lease carries (see the module docstring), if any."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(GOSSIP_ASK_ANNOTATION)
    return str(value) if value else None


class PeerLeases:
    """Whom a speaker expects to hear in the gossip: the speakers whose Leases are renewed.

    A peer's Lease counts while it changed less than `duration` seconds ago on this speaker's own clock
    (`observe` is called with time.monotonic(); the Lease's timestamps come from other clocks and are only
    compared for change, as client-go's leader election does). A crashed speaker stops renewing, so after
    `duration` the survivors stop expecting it. Sooner after an ask (`asked`: this speaker's ask reached the
    API at that time): a peer whose Lease has not changed since, `answer_within` seconds later, no longer
    counts, so a lone survivor is no longer "cut off" and announces. Only while this speaker can renew its
    own Lease, though (`api_healthy`): one cut off from the API as well sees every Lease go stale (and no
    answer), and must keep expecting its peers rather than announce beside them.
    """

    def __init__(self, duration: float, answer_within: float = ANSWER_WITHIN) -> None:
        self.duration = duration
        self.answer_within = answer_within
        self._seen: dict[str, tuple[str, str, float]] = {}  # node -> (address, renewTime, observed at)
        self._asked: float | None = None  # when this speaker's last ask reached the API (its clock)
        self._answer_by: float | None = None  # until when peers may answer it (once its echo was seen)

    def observe(self, obj: Mapping[str, Any], now: float) -> bool:
        """Records a Lease as seen at `now`; True when it names a new peer or a new address (a renewal
        alone is not news: expiry is checked by time, not by events)."""
        peer = peer_from_lease(obj)
        if peer is None:
            return False
        node, address = peer
        renewed = str((obj.get("spec") or {}).get("renewTime") or "")
        known = self._seen.get(node)
        if known is None or known[:2] != (address, renewed):
            self._seen[node] = (address, renewed, now)
        return known is None or known[0] != address

    def forget(self, node: str) -> None:
        self._seen.pop(node, None)

    def asked(self, now: float) -> None:
        """This speaker's ask reached the API at `now`: every running peer renews soon (see `echoed`)."""
        self._asked = now
        self._answer_by = None

    def echoed(self, now: float, lag: float) -> None:
        """This speaker's watch showed its last ask at `now`, `lag` seconds after it was sent: peers have
        `answer_within` plus twice that lag from now to answer (a loaded API server delays answers too)."""
        self._answer_by = now + self.answer_within + 2.0 * max(lag, 0.0)

    def unanswered(self, now: float) -> frozenset[str]:
        """The peers that let this speaker's last ask go unanswered: their Leases have not changed since it
        reached the API, and the time to answer (from its echo: `echoed`) is over."""
        asked, answer_by = self._asked, self._answer_by
        if asked is None or answer_by is None or now < answer_by:
            return frozenset()
        return frozenset(node for node, (_, _, seen) in self._seen.items() if seen < asked)

    def expected(self, now: float, *, api_healthy: bool) -> dict[str, str]:
        """node -> gossip address of the peers to expect."""
        if not api_healthy:
            return dict(sorted((node, address) for node, (address, _, _) in self._seen.items()))
        silent = self.unanswered(now)
        return {
            node: address
            for node, (address, _, seen) in sorted(self._seen.items())
            if now - seen < self.duration and node not in silent
        }


class LeaseKeeper:
    """This speaker's gossip Lease, and the peers' as its Lease watch reports them.

    `address` None (no gossip): nothing is published, the peers' Leases are still tracked (and never asked).
    `on_news` is called when a peer appears, changes address or goes away (renewals alone are not news:
    expiry is a matter of time, which `expected` checks). `run` renews every `renew` seconds, at once when a
    peer asks (its Lease carries a new GOSSIP_ASK_ANNOTATION) or when `ask` is called; each renewal that
    succeeds is `renewals`.
    """

    def __init__(
        self,
        client: KubeClient,
        node: str,
        namespace: str,
        address: str | None,
        *,
        on_news: Callable[[], None],
        renew: float = RENEW_PERIOD,
        duration: float = LEASE_DURATION,
        answer_within: float = ANSWER_WITHIN,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < renew < duration:
            raise ValueError(f"the gossip Lease needs 0 < renew ({renew}) < duration ({duration})")
        self.client, self.node, self.namespace, self.address = client, node, namespace, address
        self.name = gossip_lease_name(node)
        self.renew, self.duration = renew, duration
        self._on_news, self._clock = on_news, clock
        self._lock = threading.Lock()
        self._peers = PeerLeases(duration, answer_within)
        self._last_renewed = float("-inf")
        self._asks: dict[str, str] = {}  # node -> the last ask seen in its Lease
        self._due = threading.Event()  # renew now: a peer asked, or this speaker asks
        self._ask_wanted = False
        self._ask_sent = float("-inf")  # when this speaker last sent an ask (its clock)
        # The ask in flight: its stamp, when its PATCH was sent, whether it reached the API, and when the
        # watch showed it (with the lag), each once.
        self._ask_stamp: str | None = None
        self._ask_sending = float("-inf")
        self._ask_landed = False
        self._ask_echo: tuple[float, float] | None = None
        self.renewals = 0
        self.asks = 0

    def publish(self) -> None:
        """Creates the Lease, or takes over the one a previous run left (with the new address)."""
        if self.address is None:
            return
        body = gossip_lease(self.node, self.namespace, self.address, _dt.datetime.now(_dt.UTC), self.duration)
        try:
            self.client.create(LEASES, body, self.namespace)
        except ConflictError:
            current = self.client.get(LEASES, self.name, self.namespace)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self.client.replace(LEASES, self.name, body, self.namespace)
        self._renewed(asked=False)

    def run(self, stop: threading.Event) -> None:
        """Renews the Lease every `renew` seconds (at once to answer or send an ask; RENEW_RETRY seconds after
        a failure) until `stop` (peers stop expecting a speaker that stops; `wake` makes the stop prompt)."""
        delay = self.renew
        while True:
            self._due.wait(delay)
            if stop.is_set():
                return
            self._due.clear()
            delay = self.renew if self.renew_now() else min(RENEW_RETRY, self.renew)

    def wake(self) -> None:
        """Ends `run`'s wait now (to renew, or to see its stop Event)."""
        self._due.set()

    def renew_now(self) -> bool:
        """One renewal (with an ask if one is wanted); False when it failed."""
        if self.address is None:
            return True
        stamp = micro_time(_dt.datetime.now(_dt.UTC))
        with self._lock:
            asking = self._ask_wanted
            if asking:
                self._ask_stamp, self._ask_sending = stamp, self._clock()
                self._ask_landed, self._ask_echo = False, None
        # An ask lives until the next renewal: a speaker that starts later does not answer an old one.
        patch = {
            "metadata": {"annotations": {GOSSIP_ASK_ANNOTATION: stamp if asking else None}},
            "spec": {"renewTime": stamp},
        }
        try:
            self.client.patch(LEASES, self.name, patch, self.namespace)
        except NotFoundError:
            with contextlib.suppress(ApiError, OSError):
                self.publish()
            return False
        except (ApiError, OSError) as exc:
            log.warning("cannot renew the gossip Lease", extra={"error": str(exc)})
            return False
        self._renewed(asked=asking)
        return True

    def ask(self, now: float) -> bool:
        """Asks every running speaker to renew its Lease now (this one hears none of them: see the module
        docstring): at most once per `renew` seconds. True when an ask is on its way."""
        if self.address is None:
            return False
        with self._lock:
            if self._ask_wanted or now - self._ask_sent < self.renew:
                return False
            self._ask_wanted = True
            self._ask_sent = now
        log.info("hearing none of the expected speakers: asking them to renew their Leases")
        self._due.set()
        return True

    def _renewed(self, *, asked: bool) -> None:
        with self._lock:
            now = self._clock()
            self._last_renewed = now
            self.renewals += 1
            if asked:
                self._ask_wanted = False
                self._peers.asked(now)
                self._ask_landed = True
                if self._ask_echo is not None:  # the watch was quicker than the PATCH's answer
                    self._peers.echoed(*self._ask_echo)
                self.asks += 1

    def on_lease(self, change: Change, *, stopping: bool = False) -> None:
        """The Lease watch's handler."""
        own = change.key.endswith("/" + self.name)
        answer = False
        with self._lock:
            if change.type == "DELETED":
                peer = peer_from_lease(change.obj)
                if peer is not None:
                    self._peers.forget(peer[0])
                    self._asks.pop(peer[0], None)
                news = True
            else:
                news = self._peers.observe(change.obj, self._clock())
                peer = peer_from_lease(change.obj)
                ask = lease_ask(change.obj)
                if peer is not None and not own and ask is not None and self._asks.get(peer[0]) != ask:
                    self._asks[peer[0]] = ask
                    answer = True
                if own and ask is not None and ask == self._ask_stamp and self._ask_echo is None:
                    now = self._clock()
                    self._ask_echo = (now, now - self._ask_sending)
                    if self._ask_landed:
                        self._peers.echoed(*self._ask_echo)
        if answer and not stopping and self.address is not None:
            self._due.set()  # a peer hears nobody: tell it this speaker runs
        if change.type == "DELETED" and own and not stopping and self.address is not None:
            log.warning("own gossip Lease deleted; publishing it again")
            try:
                self.publish()
            except (ApiError, OSError) as exc:
                log.error("cannot publish the gossip Lease", extra={"error": str(exc)})
        if news:
            self._on_news()

    def api_healthy(self, now: float) -> bool:
        """Whether this speaker's renewals work: one succeeded within one and a half periods. Shorter than the
        time a peer's Lease takes to go stale, so a speaker cut off from the API stops trusting staleness
        before any peer's Lease looks stale to it."""
        with self._lock:
            return now - self._last_renewed < min(self.duration, 1.5 * self.renew)

    def expected(self, now: float) -> dict[str, str]:
        """node -> gossip address of the peers to expect now (this node excluded): those with fresh Leases
        that answered this speaker's last ask while its own renewals work, every known one otherwise (see
        PeerLeases)."""
        healthy = self.api_healthy(now)
        with self._lock:
            expected = self._peers.expected(now, api_healthy=healthy)
        expected.pop(self.node, None)
        return expected

    def delete(self) -> None:
        """Removes this speaker's Lease (a graceful stop: the peers stop expecting it at once)."""
        if self.address is None:
            return
        try:
            self.client.delete(LEASES, self.name, self.namespace)
        except NotFoundError:
            pass
        except (ApiError, OSError) as exc:
            log.warning("could not delete the gossip Lease", extra={"error": str(exc)})
