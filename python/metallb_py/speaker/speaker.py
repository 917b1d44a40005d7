"""The speaker's life cycle: builds its parts, starts them in order, stops them in order.

Parts (each its own module, each driven by tests on its own):
- ClusterWatches (here): one Reflector per watched resource: Services and EndpointSlices everywhere, Nodes,
  and in the speaker's namespace the configuration, the gossip Leases and the ServiceL2Status objects;
- leases.LeaseKeeper: this speaker's gossip Lease (publish, renew) and whom to expect;
- the gossip member (Rust) and a pump that turns its events into rounds;
- rounds.Rounds: the worker, one round at a time; gate.py decides settling and isolation, layer2.Layer2
  elects and drives the responder (Rust);
- reporter.StatusReporter: ServiceL2Status objects and nodeAssigned Events, after the fact.

Liveness comes from gossip (SWIM, failure detection in a few hundred milliseconds, authenticated); without
it (`gossip=False`) from the Nodes' Ready condition. A graceful stop ends the rounds, leaves the gossip (peers
take over at once), stops answering, then removes its Lease and its ServiceL2Status objects.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import subprocess
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from metallb_py._core import Membership, Responder
from metallb_py.errors import MetalLBError
from metallb_py.k8s.client import KubeClient
from metallb_py.k8s.config_watch import ConfigWatch
from metallb_py.k8s.errors import NotFoundError
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
from metallb_py.speaker.election import Link, eligible_interfaces, read_links
from metallb_py.speaker.layer2 import PROTOCOL, Layer2
from metallb_py.speaker.leases import GOSSIP_LABEL, GOSSIP_PORT, LeaseKeeper, gossip_address
from metallb_py.speaker.metrics import SpeakerMetrics
from metallb_py.speaker.objects import internal_ip
from metallb_py.speaker.ports import JSON, L2Responder, Members
from metallb_py.speaker.reporter import StatusReporter
from metallb_py.speaker.rounds import Rounds

__all__ = [
    "SECRET_ENV",
    "SECRET_KEY",
    "SECRET_NAME",
    "ClusterWatches",
    "Speaker",
    "SpeakerError",
    "SpeakerOptions",
    "stop_announcing",
]

log = logging.getLogger("metallb_py.speaker")

SECRET_ENV = "METALLB_ML_SECRET_KEY"
SECRET_NAME = "memberlist"
SECRET_KEY = "secretkey"


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
    # `lease_duration` seconds is no longer expected (see leases.PeerLeases).
    lease_renew: float = 2.0
    lease_duration: float = 6.0


class ClusterWatches:
    """The speaker's Reflectors, read by the rounds as a ports.ClusterView."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        *,
        on_change: Callable[[Change], None],
        on_config: Callable[[Change], None],
        on_lease: Callable[[Change], None],
        on_status: Callable[[Change], None],
        watch_timeout: int = 300,
    ) -> None:
        ns, timeout = namespace, watch_timeout
        self.service_watch = Reflector(client, SERVICES, on_change, watch_timeout=timeout)
        self.slice_watch = Reflector(client, ENDPOINT_SLICES, on_change, watch_timeout=timeout)
        self.node_watch = Reflector(client, NODES, on_change, watch_timeout=timeout)
        self.config = ConfigWatch(client, ns, on_config, watch_timeout=timeout)
        self.lease_watch = Reflector(
            client, LEASES, on_lease, namespace=ns, label_selector=f"{GOSSIP_LABEL}=true"
        )
        self.status_watch = Reflector(client, SERVICE_L2_STATUSES, on_status, namespace=ns)
        self.all = [
            self.service_watch,
            self.slice_watch,
            self.node_watch,
            *self.config.reflectors,
            self.lease_watch,
            self.status_watch,
        ]

    def synced(self) -> bool:
        # The ServiceL2Status watch is the reporter's: announcing never waits for it.
        return all(r.synced.is_set() or r.missing for r in self.all if r is not self.status_watch)

    def service_objects(self) -> list[JSON]:
        return self.service_watch.items()

    def endpoint_slices(self) -> list[JSON]:
        return self.slice_watch.items()

    def nodes(self) -> Mapping[str, JSON]:
        return {str((obj.get("metadata") or {}).get("name", "")): obj for obj in self.node_watch.items()}

    def config_objects(self) -> list[JSON]:
        return self.config.objects()

    def start(self) -> None:
        for reflector in self.all:
            reflector.start()

    def stop(self) -> None:
        for reflector in self.all:
            reflector.stop()


def stop_announcing(
    rounds: Rounds, members: Members | None, responder: L2Responder | None, *, graceful: bool, timeout: float
) -> None:
    """The order of a stop, which matters: no round may run once this member has left (alone in its view,
    it would claim every address); the peers take over as soon as it leaves, so it stops answering at once."""
    rounds.stop(timeout)
    if members is not None and graceful:
        members.leave()
    if responder is not None:
        responder.stop()


class Speaker:
    """Announces the addresses this node wins; see the module docstring.

    client = connect("kubeconfig", user_agent="metallb-py-speaker")
    speaker = Speaker(client, SpeakerOptions(node_name="node1"))
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
        self._stop = threading.Event()
        self._stopped = False
        self.watches = ClusterWatches(
            client,
            options.namespace,
            on_change=lambda _change: self._wake(),
            on_config=lambda _change: self._config_changed(),
            on_lease=lambda change: self.leases.on_lease(change, stopping=self._stop.is_set()),
            on_status=self._status_changed,
            watch_timeout=options.watch_timeout,
        )
        self.leases = LeaseKeeper(
            client,
            self.me,
            options.namespace,
            None,
            on_news=self._wake,
            renew=options.lease_renew,
            duration=options.lease_duration,
        )
        self.responder: Responder | None = None
        self.membership: Membership | None = None
        self.layer2: Layer2 | None = None
        self.rounds: Rounds | None = None
        self.reporter: StatusReporter | None = None
        self.links: list[Link] = []
        self.gossip_address: str | None = None
        self.metrics_port: int | None = None
        self._threads: list[threading.Thread] = []
        self.ready = threading.Event()  # for callers: settled, the first round is done

    # -- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Opens the sockets and starts every part. Raises SpeakerError (or the responder's and gossip's
        own errors) when it cannot; nothing keeps running then."""
        try:
            self._start()
        except BaseException:
            self.stop(graceful=False)
            raise

    def _start(self) -> None:
        o = self.options
        if o.metrics_port is not None:
            self.metrics_port = self.metrics.serve(o.metrics_port or 0, o.metrics_address)
        # What the user must fix comes first: the secret and the gossip address, then the sockets.
        secret = self._secret() if o.gossip else b""
        if o.gossip:
            self.gossip_address = self._gossip_address()
            self.leases.address = self.gossip_address
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
            self.leases.publish()
        self.layer2 = Layer2(
            self.me,
            self.responder,
            self.links,
            on_change=self._announced_changed,
            ignore_exclude_label=o.ignore_exclude_label,
            lb_class=o.lb_class,
        )
        self.rounds = Rounds(
            self.me,
            self.watches,
            self.layer2,
            self.membership,
            expected=self.leases.expected,
            metrics=self.metrics,
            settle_timeout=o.settle_timeout,
            ready=self.ready,
        )
        self.reporter = StatusReporter(
            self.client,
            self.me,
            o.namespace,
            wanted=self.layer2.wanted_statuses,
            statuses=self.watches.status_watch,
            services=self.watches.service_watch,
            events=self.events,
            protocol=PROTOCOL,
        )
        self.events.start()
        self.watches.start()
        self.rounds.start()
        reporter, statuses, ready = self.reporter, self.watches.status_watch.synced, self.rounds.ready
        self._spawn(
            lambda: reporter.run(self._stop, lambda: statuses.is_set() and ready.is_set()), "speaker-reporter"
        )
        if self.membership is not None:
            self._spawn(self._pump, "speaker-gossip-events")
            self._spawn(lambda: self.leases.run(self._stop), "speaker-lease")
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

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self, *, graceful: bool = True, timeout: float = 5.0) -> None:
        """Stops announcing. `graceful`: tell the peers first, so they take over at once, and remove this
        speaker's Lease and ServiceL2Status objects; otherwise just stop (the peers detect it as they would
        a crash). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self.reporter is not None:
            self.reporter.stop()
        if self.rounds is not None:
            stop_announcing(self.rounds, self.membership, self.responder, graceful=graceful, timeout=timeout)
        elif self.responder is not None:
            self.responder.stop()
        for thread in self._threads:
            thread.join(timeout)
        if self.membership is not None:
            self.membership.stop()
        if graceful:
            self.leases.delete()
            if self.reporter is not None:
                self.reporter.release()
        self.events.stop(timeout)
        self.watches.stop()
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
        if self.rounds is not None and not self.rounds.alive():
            dead.insert(0, "speaker-worker")
        return f"threads ended: {', '.join(dead)}" if dead else None

    def announced(self) -> dict[str, tuple[str, ...]]:
        """Address -> the Services this node announces it for, now."""
        return self.layer2.announced() if self.layer2 is not None else {}

    # -- wiring ----------------------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self.rounds is not None:
            self.rounds.wake()

    def _config_changed(self) -> None:
        if self.rounds is not None:
            self.rounds.config_changed()

    def _status_changed(self, change: Change) -> None:
        if self.reporter is not None:
            self.reporter.status_changed(change.obj)

    def _announced_changed(self, announced: Mapping[str, tuple[str, ...]]) -> None:
        self.metrics.set_announced(self.me, announced)
        if self.reporter is not None:
            self.reporter.announce_changed()

    def _pump(self) -> None:
        assert self.membership is not None
        while not self._stop.is_set():
            event = self.membership.next_event(timeout=0.5)
            if event is None:
                continue
            level = logging.DEBUG if event.kind in ("suspect", "alive") else logging.INFO
            log.log(level, f"member {event.kind}", extra={"member": event.name, "address": event.address})
            self._wake()

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
