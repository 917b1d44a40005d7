"""The speaker loop: watches in, elections (election.py, state.py), the responder and the API out.

Threads:
- one Reflector per watched resource: Services and EndpointSlices everywhere, Nodes, and in the speaker's
  namespace the configuration (ConfigMap `config`, metallb.io resources) and the speakers' gossip Leases;
- the gossip member (a Rust thread) and a pump that turns its events into election rounds;
- the worker: one election round at a time, for every address, then the responder's announce/withdraw. It
  never waits on the API, so a failover costs one gossip detection plus one round, whatever the API's load;
- the reporter: ServiceL2Status objects and nodeAssigned Events, written after the fact and retried.

Liveness comes from gossip (SWIM, failure detection in a few hundred milliseconds, authenticated); without
it (`gossip=False`) from the Nodes' Ready condition. A speaker cut off from every peer (`isolated`) withdraws
everything rather than fight the rest of the cluster for its addresses, and resumes when it hears a peer.
A freshly started speaker announces nothing until it has heard a speaker on every Node, or a settle time
passed: alone in its own view, it would otherwise claim every address for a moment.
A graceful stop leaves the gossip first (peers take over at once), then withdraws and removes its Lease.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime as _dt
import json
import logging
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

from metallb_py._core import Membership, Responder
from metallb_py.config import Config, load_objects
from metallb_py.errors import ConfigError, MetalLBError
from metallb_py.k8s.client import KubeClient
from metallb_py.k8s.config_watch import ConfigWatch
from metallb_py.k8s.errors import ApiError, ConflictError, NotFoundError
from metallb_py.k8s.events import EventRecorder
from metallb_py.k8s.resources import (
    ENDPOINT_SLICES,
    LEASES,
    NODES,
    SECRETS,
    SERVICE_L2_STATUSES,
    SERVICES,
)
from metallb_py.k8s.watch import Change, Reflector
from metallb_py.speaker.election import (
    Decision,
    L2Service,
    Link,
    announcers,
    eligible_interfaces,
    interfaces_for,
    read_links,
)
from metallb_py.speaker.metrics import SpeakerMetrics
from metallb_py.speaker.state import (
    GOSSIP_LABEL,
    GOSSIP_PORT,
    PeerLeases,
    endpoint_slice_from_api,
    gossip_address,
    gossip_lease,
    gossip_lease_name,
    internal_ip,
    l2_service_from_api,
    l2_status,
    l2_status_name,
    lease_stamp,
    node_from_api,
    peer_from_lease,
    plan,
)

__all__ = ["SECRET_ENV", "Speaker", "SpeakerError", "SpeakerOptions"]

log = logging.getLogger("metallb_py.speaker")

SECRET_ENV = "METALLB_ML_SECRET_KEY"
SECRET_NAME = "memberlist"
SECRET_KEY = "secretkey"
NODE_ASSIGNED = "nodeAssigned"


class SpeakerError(MetalLBError):
    """The speaker cannot start; the message says what is missing and what to do."""


@dataclass(frozen=True)
class SpeakerOptions:
    """How a speaker runs; the CLI's flags map one to one."""

    node_name: str
    namespace: str = "metallb-system"
    netns: str | None = None
    gossip: bool = True
    gossip_address: str | None = None  # "ip" or "ip:port"; default the Node's InternalIP
    secret: bytes | None = None  # default: $METALLB_ML_SECRET_KEY, else the Secret memberlist
    settle_timeout: float = 3.0
    metrics_port: int | None = None
    metrics_address: str = "0.0.0.0"
    watch_timeout: int = 300
    ignore_exclude_label: bool = False
    lb_class: str | None = None  # announce Services of this loadBalancerClass (None: those without one)
    busy_poll: float = 0.0
    # The gossip Lease is renewed every `lease_renew` seconds; a peer whose Lease has not changed for
    # `lease_duration` seconds is no longer expected (see state.PeerLeases).
    lease_renew: float = 2.0
    lease_duration: float = 6.0


class Speaker:
    """Announces the addresses this node wins; see the module docstring.

    speaker = Speaker(connect("kubeconfig"), SpeakerOptions(node_name="node1"))
    speaker.start()
    ...
    speaker.stop()            # graceful: peers take over at once
    """

    def __init__(
        self, client: KubeClient, options: SpeakerOptions, *, metrics: SpeakerMetrics | None = None
    ) -> None:
        self.options = options
        self.client = client
        self.me = options.node_name
        self.metrics = metrics if metrics is not None else SpeakerMetrics()
        self.metrics.count_requests(client.requests.snapshot)
        self.events = EventRecorder(client, component="metallb-speaker", instance=self.me)
        ns, timeout = options.namespace, options.watch_timeout
        self.services = Reflector(client, SERVICES, self._on_change, watch_timeout=timeout)
        self.slices = Reflector(client, ENDPOINT_SLICES, self._on_change, watch_timeout=timeout)
        self.nodes = Reflector(client, NODES, self._on_change, watch_timeout=timeout)
        self.config_watch = ConfigWatch(client, ns, self._on_config, watch_timeout=timeout)
        self.leases = Reflector(
            client, LEASES, self._on_lease, namespace=ns, label_selector=f"{GOSSIP_LABEL}=true"
        )
        self.statuses = Reflector(client, SERVICE_L2_STATUSES, self._on_status, namespace=ns)
        self.reflectors = [
            self.services,
            self.slices,
            self.nodes,
            *self.config_watch.reflectors,
            self.leases,
            self.statuses,
        ]
        self.responder: Responder | None = None
        self.membership: Membership | None = None
        self.links: list[Link] = []
        self.gossip_address: str | None = None
        self.metrics_port: int | None = None
        self._stop = threading.Event()
        self._stopped = False
        self._dirty = threading.Event()
        self._config_dirty = threading.Event()
        self._report_dirty = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        # Owned by the worker:
        self._config: Config | None = None
        self._config_error: str | None = None
        self._peers: list[str] | None = None
        self._settled = False
        self._settle_from: float | None = None  # when the peers were first known
        self._resettling = False  # settling again after a cut
        # Shared with the lease and reflector threads (under _lock):
        self._peer_leases = PeerLeases(options.lease_duration)
        self._last_renewed = 0.0
        self._isolated = False
        # Shared with the reporter (under _lock): address -> (interfaces, Services) announced now.
        self._announced: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        self.rounds = 0
        self._assigned: set[str] = set()  # reporter: Services it has claimed since it began announcing them
        self._takeovers: dict[str, tuple[float, float]] = {}  # reporter: Service -> (not before, backoff)
        self._report_again = False  # reporter: a takeover waits out its backoff
        self.ready = threading.Event()  # for callers: settled, the first round is done

    # -- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Opens the sockets and starts every thread. Raises SpeakerError (or the responder's and gossip's
        own errors) when it cannot; nothing keeps running then."""
        try:
            self._start()
        except BaseException:
            self.stop(graceful=False)
            raise

    def _start(self) -> None:
        o = self.options
        if self.options.metrics_port is not None:
            self.metrics_port = self.metrics.serve(o.metrics_port or 0, o.metrics_address)
        # What the user must fix comes first: the secret and the gossip address, then the sockets.
        secret = self._secret() if o.gossip else b""
        if o.gossip:
            self.gossip_address = self._gossip_address()
        self.links = read_links(o.netns)
        choice = eligible_interfaces(self.links)
        if not choice.interfaces:
            where = f"network namespace {o.netns}" if o.netns else "this network namespace"
            raise SpeakerError(
                f"no interface in {where} can announce: {dict(choice.excluded) or 'none found'}; "
                "layer 2 needs an up, non-loopback, ARP-capable interface"
            )
        self.responder = Responder(list(choice.interfaces), o.netns, busy_poll=o.busy_poll)
        self.responder.start()
        self.metrics.count_layer2(self.responder.stats)
        if self.gossip_address is not None:
            self.membership = Membership(self.me, self.gossip_address, secret, netns=o.netns)
            self.membership.start()
            self._publish_lease()
        self.events.start()
        for reflector in self.reflectors:
            reflector.start()
        self._spawn(self._work, "speaker-worker")
        self._spawn(self._report, "speaker-reporter")
        if self.membership is not None:
            self._spawn(self._pump, "speaker-gossip-events")
            self._spawn(self._renew, "speaker-lease")
        log.info(
            "speaker started",
            extra={
                "node": self.me,
                "namespace": o.namespace,
                "netns": o.netns,
                "interfaces": list(choice.interfaces),
                "gossip": self.gossip_address,
            },
        )

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, *, graceful: bool = True, timeout: float = 5.0) -> None:
        """Stops announcing. `graceful`: tell the peers first, so they take over at once, and remove this
        speaker's Lease; otherwise just stop (the peers detect it as they would a crash). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self._dirty.set()
        self._report_dirty.set()
        # The worker first: no round may run once this member has left (alone in its view, it would claim
        # every address).
        for thread in self._threads[:1]:
            thread.join(timeout)
        if self.membership is not None and graceful:
            self.membership.leave()
        # At once: the peers are taking over now, and the other threads may be in an API call.
        if self.responder is not None:
            self.responder.stop()
        for thread in self._threads[1:]:
            thread.join(timeout)
        if self.membership is not None:
            self.membership.stop()
        if graceful and self.gossip_address is not None:
            self._delete_own(LEASES, gossip_lease_name(self.me))
        if graceful:
            self._release_statuses()
        self.events.stop(timeout)
        for reflector in self.reflectors:
            reflector.stop()
        self.metrics.close()
        log.info("speaker stopped", extra={"node": self.me, "graceful": graceful})

    def healthy(self) -> str | None:
        """None while every part runs; else what stopped (the responder's or the gossip's thread, or one of
        the speaker's own): a speaker that still wins elections but can no longer answer must go."""
        if self._stop.is_set():
            return None
        if self.responder is not None and not self.responder.running:
            return "the layer 2 responder stopped"
        if self.membership is not None and not self.membership.running:
            return "the gossip member stopped"
        dead = [t.name for t in self._threads if not t.is_alive()]
        return f"threads ended: {', '.join(dead)}" if dead else None

    # -- start-up helpers ------------------------------------------------------------------------------------

    def _secret(self) -> bytes:
        if self.options.secret:
            return self.options.secret
        ns = self.options.namespace
        try:
            secret = self.client.get(SECRETS, SECRET_NAME, ns)
        except NotFoundError:
            raise SpeakerError(
                f"no gossip secret: set ${SECRET_ENV}, or create it with `kubectl -n {ns} create secret "
                f"generic {SECRET_NAME} --from-literal={SECRET_KEY}=$(openssl rand -base64 128)`, or run "
                "with --no-gossip (failover then waits for the Node to turn NotReady)"
            ) from None
        encoded = (secret.get("data") or {}).get(SECRET_KEY)
        try:
            value = base64.b64decode(str(encoded or ""), validate=True)
        except binascii.Error:
            value = b""
        if len(value) < 16:
            raise SpeakerError(
                f"Secret {ns}/{SECRET_NAME}: key {SECRET_KEY} must hold at least 16 bytes (got {len(value)})"
            )
        return value

    def _gossip_address(self) -> str:
        """--gossip-address, else the Node's InternalIP, else the first global address in the namespace."""
        configured = self.options.gossip_address
        if configured:
            if configured.count(":") == 1 or configured.startswith("["):
                return configured  # already ip:port
            return gossip_address(configured)
        try:
            node = self.client.get(NODES, self.me)
            ip = internal_ip(node) or internal_ip(node, 6)
        except NotFoundError:
            ip = None
        if ip is None:
            ip = _first_global_address(self.options.netns)
        if ip is None:
            raise SpeakerError(
                f"no gossip address: Node {self.me} has no InternalIP and no global address was found; "
                "pass --gossip-address"
            )
        return gossip_address(ip, GOSSIP_PORT)

    def _publish_lease(self) -> None:
        assert self.gossip_address is not None
        ns = self.options.namespace
        body = gossip_lease(
            self.me, ns, self.gossip_address, _dt.datetime.now(_dt.UTC), self.options.lease_duration
        )
        try:
            self.client.create(LEASES, body, ns)
        except ConflictError:  # already exists (a restart): take it over with the new address
            current = self.client.get(LEASES, body["metadata"]["name"], ns)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self.client.replace(LEASES, body["metadata"]["name"], body, ns)
        with self._lock:
            self._last_renewed = time.monotonic()

    def _renew(self) -> None:
        """Renews the gossip Lease while the speaker runs (peers stop expecting a speaker that stops)."""
        ns, name = self.options.namespace, gossip_lease_name(self.me)
        while not self._stop.wait(self.options.lease_renew):
            patch = {"spec": {"renewTime": lease_stamp(_dt.datetime.now(_dt.UTC))}}
            try:
                self.client.patch(LEASES, name, patch, ns)
            except NotFoundError:
                with contextlib.suppress(ApiError, OSError):
                    self._publish_lease()
                continue
            except (ApiError, OSError) as exc:
                log.warning("cannot renew the gossip Lease", extra={"error": str(exc)})
                continue
            with self._lock:
                self._last_renewed = time.monotonic()

    def _api_healthy(self, now: float) -> bool:
        with self._lock:
            return now - self._last_renewed < self.options.lease_duration

    def _delete_own(self, resource: Any, name: str) -> None:
        try:
            self.client.delete(resource, name, self.options.namespace)
        except NotFoundError:
            pass
        except (ApiError, OSError) as exc:
            log.warning(
                "could not delete", extra={"resource": str(resource), "name": name, "error": str(exc)}
            )

    # -- watch handlers --------------------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        self._dirty.set()

    def _on_config(self, change: Change) -> None:
        self._config_dirty.set()
        self._dirty.set()

    def _on_lease(self, change: Change) -> None:
        with self._lock:
            if change.type == "DELETED":
                peer = peer_from_lease(change.obj)
                if peer is not None:
                    self._peer_leases.forget(peer[0])
                news = True
            else:
                # Renewals arrive every couple of seconds from every speaker: only news wakes the worker.
                news = self._peer_leases.observe(change.obj, time.monotonic())
        own = change.key.endswith("/" + gossip_lease_name(self.me))
        if change.type == "DELETED" and own and not self._stop.is_set() and self.gossip_address is not None:
            log.warning("own gossip Lease deleted; publishing it again")
            try:
                self._publish_lease()
            except (ApiError, OSError) as exc:
                log.error("cannot publish the gossip Lease", extra={"error": str(exc)})
        if news:
            self._dirty.set()

    def _on_status(self, change: Change) -> None:
        self._report_dirty.set()

    def _pump(self) -> None:
        assert self.membership is not None
        while not self._stop.is_set():
            event = self.membership.next_event(timeout=0.5)
            if event is None:
                continue
            level = logging.DEBUG if event.kind in ("suspect", "alive") else logging.INFO
            log.log(level, f"member {event.kind}", extra={"member": event.name, "address": event.address})
            self._dirty.set()

    # -- the worker ------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            # Rounds are triggered by changes (watches, gossip events); an idle speaker only wakes to end
            # the settle wait or to catch an isolation change it was not told about.
            changed = self._dirty.wait(0.5)
            if self._stop.is_set():
                return
            if not changed and self._settled and not self._isolation_changed() and not self._peers_changed():
                continue
            self._dirty.clear()
            try:
                self._round()
            except Exception:
                log.exception("election round failed; retrying")
                time.sleep(0.5)
                self._dirty.set()

    def _expected(self) -> dict[str, str]:
        """node -> gossip address of the peers to expect now (this node excluded)."""
        now = time.monotonic()
        healthy = self._api_healthy(now)
        with self._lock:
            expected = self._peer_leases.expected(now, api_healthy=healthy)
        expected.pop(self.me, None)
        return expected

    def _expected_peers(self) -> list[str]:
        return sorted(self._expected().values())

    def _peers_changed(self) -> bool:
        return self.membership is not None and self._expected_peers() != self._peers

    def _isolation_changed(self) -> bool:
        return self.membership is not None and self.membership.isolated() != self._isolated

    def _synced(self) -> bool:
        # The ServiceL2Status watch is the reporter's: announcing never waits for it.
        return all(r.synced.is_set() or r.missing for r in self.reflectors if r is not self.statuses)

    def _round(self) -> None:
        if not self._synced():
            return
        if self._config_dirty.is_set() or (self._config is None and self._config_error is None):
            self._config_dirty.clear()
            self._reload_config()
        membership = self.membership
        if membership is not None:
            self._update_peers(membership)
            if self._isolated and not membership.isolated():
                # Back from a cut: its view may still be partial, and a partial view would claim (and
                # gratuitously announce) addresses their owners keep. Settle again first.
                self._isolated = False
                self.metrics.isolated.set(0)
                log.info("no longer cut off: settling before announcing")
                self._settled, self._settle_from, self._resettling = False, time.monotonic(), True
            if not self._settled and not self._settle(membership):
                return
            live: set[str] | None = set(membership.alive())
            isolated = membership.isolated()
            self.metrics.members_alive.set(len(live or ()))
        else:
            live, isolated = None, False
            self._settled = True
        if isolated != self._isolated:
            self._isolated = isolated
            self.metrics.isolated.set(1 if isolated else 0)
            if isolated:
                log.warning("cut off from every peer: withdrawing every address until one is heard again")
        config = self._config
        services = (
            [
                s
                for obj in self.services.items()
                if (s := l2_service_from_api(obj, config, self.options.lb_class))
            ]
            if config
            else []
        )
        decisions = {} if isolated or config is None else self._elect(services, live)
        self._apply(decisions, services)
        self.rounds += 1
        self.ready.set()

    def _reload_config(self) -> None:
        objects = self.config_watch.objects()
        if not objects:
            error = "no MetalLB configuration (ConfigMap config or metallb.io resources)"
        else:
            try:
                config = load_objects([dict(o) for o in objects], source="cluster")
            except ConfigError as exc:
                error = str(exc)
            else:
                if config != self._config:
                    log.info("configuration loaded", extra={"summary": config.summary()})
                self._config, self._config_error = config, None
                return
        if error != self._config_error:
            # No configuration yet is a normal first state (installed before configured); a bad one is not.
            level = logging.WARNING if not objects else logging.ERROR
            log.log(
                level,
                "configuration refused; the last good one stays in force",
                extra={"error": error, "in_force": self._config is not None},
            )
        self._config_error = error

    def _update_peers(self, membership: Membership) -> None:
        peers = self._expected_peers()
        if peers != self._peers:
            if self._peers is not None:
                gone, new = sorted(set(self._peers) - set(peers)), sorted(set(peers) - set(self._peers))
                log.info("expected peers changed", extra={"no_longer": gone, "new": new})
            membership.set_peers(peers)
            self._peers = peers
        if self._settle_from is None:
            self._settle_from = time.monotonic()

    def _settle(self, membership: Membership) -> bool:
        # Every node may run a speaker that is starting too (a cold start of the whole cluster): wait for
        # each Node to show up in the gossip, or for the settle time. Back from a cut, the speakers that
        # renew their Leases are those to wait for.
        nodes = set(self.nodes.keys()) - {self.me}
        expected = nodes & set(self._expected()) if self._resettling else nodes
        alive = set(membership.alive())
        waited = time.monotonic() - (self._settle_from or time.monotonic())
        if expected <= alive or waited >= self.options.settle_timeout:
            self._settled, self._resettling = True, False
            log.info(
                "joined the speakers",
                extra={
                    "alive": sorted(alive),
                    "missing": sorted(expected - alive),
                    "after": round(waited, 3),
                },
            )
            return True
        return False

    def _elect(self, services: list[L2Service], live: set[str] | None) -> dict[str, Decision]:
        config = self._config
        assert config is not None
        slices = [e for obj in self.slices.items() if (e := endpoint_slice_from_api(obj))]
        nodes = [node_from_api(obj) for obj in self.nodes.items()]
        return announcers(
            services,
            nodes=nodes,
            endpoint_slices=slices,
            l2_advertisements=config.l2_advertisements,
            live_members=live,
            ignore_exclude_label=self.options.ignore_exclude_label,
        )

    def _apply(self, decisions: dict[str, Decision], services: list[L2Service]) -> None:
        responder = self.responder
        assert responder is not None
        config = self._config
        me_obj = self.nodes.get(self.me)
        interfaces: dict[str, tuple[str, ...]] = {}
        if config is not None and me_obj is not None:
            me = node_from_api(me_obj)
            pools_by_ip: dict[str, set[str]] = {}
            for svc in services:
                for ip in svc.ips:
                    pools_by_ip.setdefault(ip, set()).add(svc.pool)
            for ip, decision in decisions.items():
                if decision.node == self.me:
                    choice = interfaces_for(me, pools_by_ip.get(ip, ()), config.l2_advertisements, self.links)
                    interfaces[ip] = tuple(i for i in choice.interfaces if i in responder.interfaces)
        with self._lock:
            current = dict(self._announced)
        todo = plan(decisions, self.me, interfaces, current)
        for ip in sorted(todo.withdraw):
            responder.withdraw(ip)
            log.info("withdrawn", extra={"ip": ip, "node": self.me, "services": list(current[ip][1])})
        for ip, (ifaces, keys) in sorted(todo.announce.items()):
            if current.get(ip, ((), ()))[0] != ifaces:
                responder.announce(ip, list(ifaces))
                log.info(
                    "announcing",
                    extra={"ip": ip, "node": self.me, "interfaces": list(ifaces), "services": list(keys)},
                )
        with self._lock:
            changed = self._announced != todo.announce
            self._announced = dict(todo.announce)
        if changed:
            self.metrics.set_announced(self.me, {ip: s for ip, (_, s) in todo.announce.items()})
            self._report_dirty.set()

    def announced(self) -> dict[str, tuple[str, ...]]:
        """Address -> the Services this node announces it for, now."""
        with self._lock:
            return {ip: services for ip, (_, services) in self._announced.items()}

    # -- the reporter ----------------------------------------------------------------------------------------

    def _report(self) -> None:
        while not self._stop.is_set():
            changed = self._report_dirty.wait(1.0)
            if self._stop.is_set():
                return
            if not changed and not self._report_again:
                continue  # idle: nothing to write, and no takeover waiting out its backoff
            self._report_again = False
            self._report_dirty.clear()
            if not self.statuses.synced.is_set() or not self.ready.is_set():
                self._report_again = True  # look again in a second
                continue
            try:
                self._report_once()
            except Exception:
                log.exception("ServiceL2Status reporting failed; retrying")
                self._stop.wait(1.0)
                self._report_dirty.set()

    def _report_once(self) -> None:
        try:
            self._write_statuses()
        except (ConflictError, NotFoundError) as exc:
            # Another speaker changed or removed the object meanwhile (a hand-over): read it afresh and
            # decide again at once.
            log.debug("ServiceL2Status changed meanwhile; again", extra={"error": str(exc)})
            self._refresh_statuses()
            self._report_dirty.set()
        except (ApiError, OSError) as exc:
            log.warning("cannot write ServiceL2Status; retrying", extra={"error": str(exc)})
            self._stop.wait(1.0)
            self._report_dirty.set()

    def _refresh_statuses(self) -> None:
        """Puts the API's current ServiceL2Status objects into the watched copy (a write lost a race; the
        watch may not have caught up yet)."""
        for obj in self.client.list(SERVICE_L2_STATUSES, self.options.namespace).items:
            self.statuses.observe(obj)
        self._stop.wait(0.05)  # whatever is still in flight lands before the next attempt

    def _wanted(self) -> dict[str, tuple[str, ...]]:
        with self._lock:
            announced = dict(self._announced)
        wanted: dict[str, set[str]] = {}
        for interfaces, services in announced.values():
            for service in services:
                wanted.setdefault(service, set()).update(interfaces)
        return {svc: tuple(sorted(ifaces)) for svc, ifaces in wanted.items()}

    def _write_statuses(self) -> None:
        ns = self.options.namespace
        wanted = self._wanted()
        for service, interfaces in sorted(wanted.items()):
            name = l2_status_name(service)
            body = l2_status(service, self.me, interfaces, ns)
            current = self.statuses.get(f"{ns}/{name}")
            previous = ((current or {}).get("status") or {}).get("node")
            if current is not None and previous not in (None, self.me):
                # Another node's claim (it died or lost the election): status.node is immutable, so the
                # object is replaced; at once the first time, then backing off, so two nodes that both
                # announce (a partition) do not replace each other's claim in a tight loop.
                now = time.monotonic()
                not_before, delay = self._takeovers.get(service, (0.0, 0.0))
                if now < not_before:
                    self._report_again = True
                    continue
                delay = min(max(2 * delay, 0.5), 30.0)
                self._takeovers[service] = (now + delay, delay)
                self._delete_own(SERVICE_L2_STATUSES, name)
                current = None
            if current is None:
                try:
                    current = self.client.create(SERVICE_L2_STATUSES, body, ns)
                except ConflictError:  # created meanwhile (by us, not echoed yet, or by another node)
                    current = self.client.get(SERVICE_L2_STATUSES, name, ns)
            if (
                current.get("status") != body["status"]
                or current["metadata"].get("labels") != (body["metadata"]["labels"])
            ):
                version = current["metadata"]["resourceVersion"]
                patch = {"metadata": {"labels": body["metadata"]["labels"], "resourceVersion": version}}
                updated = self.client.patch(SERVICE_L2_STATUSES, name, patch, ns)
                status = {"metadata": {"resourceVersion": updated["metadata"]["resourceVersion"]}}
                status["status"] = body["status"]
                updated = self.client.patch(SERVICE_L2_STATUSES, name, status, ns, subresource="status")
                self.statuses.observe(updated)
            if previous != self.me and service not in self._assigned:
                # The announcer changed to this node (a restart that finds itself named says nothing).
                svc = self.services.get(service)
                if svc is not None:
                    message = f'announcing from node "{self.me}" with protocol "layer2"'
                    self.events.record(svc, "Normal", NODE_ASSIGNED, message)
            self._assigned.add(service)
        self._assigned &= wanted.keys()
        self._takeovers = {k: v for k, v in self._takeovers.items() if k in wanted}
        for obj in self.statuses.items():
            status = obj.get("status") or {}
            key = f"{status.get('serviceNamespace')}/{status.get('serviceName')}"
            if status.get("node") == self.me and key not in wanted:
                self._delete_own(SERVICE_L2_STATUSES, obj["metadata"]["name"])

    def _release_statuses(self) -> None:
        """On a graceful stop: removes the ServiceL2Status objects that still name this node."""
        for obj in self.statuses.items():
            if (obj.get("status") or {}).get("node") == self.me:
                self._delete_own(SERVICE_L2_STATUSES, obj["metadata"]["name"])


def _first_global_address(netns: str | None) -> str | None:
    """The first global-scope address (IPv4 first) in this network namespace or the named one."""
    argv = ["ip", *(["-n", netns] if netns else []), "-j", "addr", "show", "scope", "global"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    found: dict[int, str] = {}
    for link in json.loads(done.stdout or "[]"):
        for info in link.get("addr_info", ()):
            family = 4 if info.get("family") == "inet" else 6
            found.setdefault(family, str(info.get("local")))
    return found.get(4) or found.get(6)
