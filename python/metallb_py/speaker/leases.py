"""Gossip Leases: how speakers find each other without pods, and whom each expects to hear.

Each speaker publishes its gossip address in a Lease `metallb-py-speaker-<node>` in its namespace, labelled
`GOSSIP_LABEL`, and renews it while it runs. The builders and `PeerLeases` are pure; `LeaseKeeper` does the
API calls (publish, renew, take the Lease back when it is deleted) and answers "whom to expect now".
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
    "GOSSIP_ADDRESS_ANNOTATION",
    "GOSSIP_LABEL",
    "GOSSIP_PORT",
    "LeaseKeeper",
    "PeerLeases",
    "gossip_address",
    "gossip_lease",
    "gossip_lease_name",
    "peer_from_lease",
]

log = logging.getLogger("metallb_py.speaker")

GOSSIP_LABEL = "metallb-py.io/gossip"
GOSSIP_ADDRESS_ANNOTATION = "metallb-py.io/gossip-address"
GOSSIP_PORT = 7946


def gossip_address(ip: str, port: int = GOSSIP_PORT) -> str:
    """`ip:port`, with brackets for IPv6 (what Membership takes)."""
    parsed = ipaddress.ip_address(ip)
    return f"[{parsed}]:{port}" if parsed.version == 6 else f"{parsed}:{port}"


def gossip_lease_name(node: str) -> str:
    return f"metallb-py-speaker-{node}"


def gossip_lease(
    node: str, namespace: str, address: str, now: _dt.datetime, duration: float = 6.0
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


class PeerLeases:
    """Whom a speaker expects to hear in the gossip: the speakers whose Leases are renewed.

    A peer's Lease counts while it changed less than `duration` seconds ago on this speaker's own clock
    (`observe` is called with time.monotonic(); the Lease's timestamps come from other clocks and are only
    compared for change, as client-go's leader election does). A crashed speaker stops renewing, so after
    `duration` the survivors stop expecting it: a lone survivor is then no longer "cut off" and announces.
    Only while this speaker can renew its own Lease, though (`api_healthy`): one cut off from the API as well
    sees every Lease go stale, and must keep expecting its peers rather than announce beside them.
    """

    def __init__(self, duration: float) -> None:
        self.duration = duration
        self._seen: dict[str, tuple[str, str, float]] = {}  # node -> (address, renewTime, observed at)

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

    def expected(self, now: float, *, api_healthy: bool) -> dict[str, str]:
        """node -> gossip address of the peers to expect."""
        return {
            node: address
            for node, (address, _, seen) in sorted(self._seen.items())
            if not api_healthy or now - seen < self.duration
        }


class LeaseKeeper:
    """This speaker's gossip Lease, and the peers' as its Lease watch reports them.

    `address` None (no gossip): nothing is published, the peers' Leases are still tracked. `on_news` is
    called when a peer appears, changes address or goes away (renewals alone are not news: expiry is a
    matter of time, which `expected` checks).
    """

    def __init__(
        self,
        client: KubeClient,
        node: str,
        namespace: str,
        address: str | None,
        *,
        on_news: Callable[[], None],
        renew: float = 2.0,
        duration: float = 6.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client, self.node, self.namespace, self.address = client, node, namespace, address
        self.name = gossip_lease_name(node)
        self.renew, self.duration = renew, duration
        self._on_news, self._clock = on_news, clock
        self._lock = threading.Lock()
        self._peers = PeerLeases(duration)
        self._last_renewed = float("-inf")

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
        self._renewed()

    def run(self, stop: threading.Event) -> None:
        """Renews the Lease every `renew` seconds until `stop` (peers stop expecting a speaker that stops)."""
        while not stop.wait(self.renew):
            patch = {"spec": {"renewTime": micro_time(_dt.datetime.now(_dt.UTC))}}
            try:
                self.client.patch(LEASES, self.name, patch, self.namespace)
            except NotFoundError:
                with contextlib.suppress(ApiError, OSError):
                    self.publish()
                continue
            except (ApiError, OSError) as exc:
                log.warning("cannot renew the gossip Lease", extra={"error": str(exc)})
                continue
            self._renewed()

    def _renewed(self) -> None:
        with self._lock:
            self._last_renewed = self._clock()

    def on_lease(self, change: Change, *, stopping: bool = False) -> None:
        """The Lease watch's handler."""
        with self._lock:
            if change.type == "DELETED":
                peer = peer_from_lease(change.obj)
                if peer is not None:
                    self._peers.forget(peer[0])
                news = True
            else:
                news = self._peers.observe(change.obj, self._clock())
        own = change.key.endswith("/" + self.name)
        if change.type == "DELETED" and own and not stopping and self.address is not None:
            log.warning("own gossip Lease deleted; publishing it again")
            try:
                self.publish()
            except (ApiError, OSError) as exc:
                log.error("cannot publish the gossip Lease", extra={"error": str(exc)})
        if news:
            self._on_news()

    def expected(self, now: float) -> dict[str, str]:
        """node -> gossip address of the peers to expect now (this node excluded): those with fresh Leases
        while this speaker's own renewals work, every known one otherwise (see PeerLeases)."""
        with self._lock:
            healthy = now - self._last_renewed < self.duration
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
