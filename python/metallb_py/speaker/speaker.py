"""The speaker's life cycle: builds its parts, starts them in order, stops them in order.

Parts (each its own module, each driven by tests on its own):
- ClusterWatches (here): one Reflector per watched resource: Services and EndpointSlices everywhere, Nodes,
  and in the speaker's namespace the configuration, the gossip Leases, the Secrets (BGPPeer passwords), the
  ServiceL2Status objects and this node's ServiceBGPStatus objects;
- leases.LeaseKeeper: this speaker's gossip Lease (publish, renew) and whom to expect;
- the gossip member (Rust) and a pump that turns its events into rounds;
- rounds.Rounds: the worker, one round at a time; gate.py decides settling and isolation, then both protocols
  act: layer2.Layer2 elects and drives the responder (Rust), bgp.Bgp opens the BGP sessions and sets each
  peer's routes in the BgpSpeaker (Rust); ConfigWarnings (here) logs each new configuration's warnings;
- LinkFollower (here): rescans the node's interfaces after each burst of link notifications (LinkWatch,
  Rust), so an interface created later (a VLAN) is served without a restart and one deleted is dropped;
  names MetalLB's ConfigMap metallb-excludel2 excludes (default: MetalLB's list, the CNI's veths and
  bridges) are never served, and a change of that ConfigMap applies at once (MetalLB reads it at start);
- conflicts.ConflictReporter: another host claiming an address this node announces, as the responder saw
  it, told as a warning, a Warning Event on the Services and a metric;
- reporter.StatusReporter, twice: ServiceL2Status and ServiceBGPStatus objects and nodeAssigned Events, after
  the fact; a pump turns BGP session events into log lines and Events on the BGPPeer.

Liveness comes from gossip (SWIM, failure detection in a few hundred milliseconds, authenticated); without
it (`gossip=False`) from the Nodes' Ready condition. A graceful stop ends the rounds, leaves the gossip (peers
take over at once), stops answering, ends the BGP sessions with a Cease (routers drop this node's routes at
once; sessions that negotiated graceful restart close without one, so their routers keep the routes while
the speaker restarts), then removes its Lease and its status objects.
"""

from __future__ import annotations

import base64
import binascii
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from metallb_py._core import BgpEvent, BgpSpeaker, LinkWatch, Membership, Responder
from metallb_py.backoff import Backoff
from metallb_py.config.model import Config
from metallb_py.errors import MetalLBError
from metallb_py.k8s.client import KubeClient
from metallb_py.k8s.config_watch import CONFIGMAP_NAME, ConfigWatch
from metallb_py.k8s.errors import ApiError, NotFoundError
from metallb_py.k8s.events import EventRecorder
from metallb_py.k8s.resources import (
    CONFIGMAPS,
    ENDPOINT_SLICES,
    IP_ADDRESS_POOLS,
    LEASES,
    NODES,
    SECRETS,
    SERVICE_BGP_STATUSES,
    SERVICE_L2_STATUSES,
    SERVICES,
    Resource,
)
from metallb_py.k8s.watch import Change, Reflector, drop_bookkeeping
from metallb_py.speaker.bgp import PROTOCOL as BGP_PROTOCOL
from metallb_py.speaker.bgp import Bgp
from metallb_py.speaker.bgpplan import SecretData, Secrets, secret_from_api
from metallb_py.speaker.conflicts import ConflictReporter
from metallb_py.speaker.election import (
    DEFAULT_EXCLUDE_RULE,
    EXCLUDE_L2_CONFIGMAP,
    ExcludeRule,
    InterfaceChoice,
    InterfaceExclusion,
    Link,
    eligible_interfaces,
    exclude_rule_from_configmap,
    interfaces_to_serve,
    mark_excluded,
    read_links,
)
from metallb_py.speaker.gate import cut_off, hears_a_minority
from metallb_py.speaker.gossipaddr import (
    GossipAddressError,
    choose_gossip_address,
    claimed_from_api,
    read_addresses,
)
from metallb_py.speaker.layer2 import PROTOCOL, Layer2
from metallb_py.speaker.leases import (
    GOSSIP_LABEL,
    GOSSIP_PORT,
    LEASE_DURATION,
    RENEW_PERIOD,
    LeaseKeeper,
    gossip_address,
)
from metallb_py.speaker.metrics import SpeakerMetrics
from metallb_py.speaker.objects import internal_ip, trim_node
from metallb_py.speaker.ports import JSON, ClusterView, L2Interfaces, L2Responder, LinkEvents, Members
from metallb_py.speaker.reporter import StatusReporter
from metallb_py.speaker.rounds import Protocols, Rounds
from metallb_py.speaker.status import BGP_STATUS, L2_STATUS_NODE_LABEL

__all__ = [
    "LINK_DEBOUNCE",
    "LINK_RETRY",
    "SECRET_ENV",
    "SECRET_KEY",
    "SECRET_NAME",
    "ClusterWatches",
    "ConfigWarnings",
    "LinkFollower",
    "NamedInterfaces",
    "Speaker",
    "SpeakerError",
    "SpeakerOptions",
    "stop_announcing",
]

log = logging.getLogger("metallb_py.speaker")

SECRET_ENV = "METALLB_ML_SECRET_KEY"
SECRET_NAME = "memberlist"
SECRET_KEY = "secretkey"
# After a rescan of the links failed (`ip link` did not answer), the next one is this many seconds later even
# without a notification.
LINK_RETRY = 1.0
# Link notifications come in bursts (a VLAN created and set up, a bond's members): the first is read at once,
# and rescans follow each other at least this many seconds apart (a rescan runs `ip -j -d link show`).
LINK_DEBOUNCE = 0.03


class SpeakerError(MetalLBError):
    """The speaker cannot start; the message says what is missing and what to do."""


@dataclass(frozen=True)
class SpeakerOptions:
    """How a speaker runs; the CLI's flags map one to one."""

    node_name: str
    namespace: str = "metallb-system"
    netns: str | None = None
    gossip: bool = True
    # "ip", "ip:port" or "[ipv6]:port"; default: the Node's InternalIP, else the node's own (gossipaddr)
    gossip_address: str | None = None
    secret: bytes | None = None  # default: $METALLB_ML_SECRET_KEY, else the Secret memberlist
    settle_timeout: float = 3.0
    metrics_port: int | None = None
    metrics_address: str = "0.0.0.0"
    watch_timeout: int = 300
    ignore_exclude_label: bool = False
    lb_class: str | None = None  # announce Services of this loadBalancerClass (None: those without one)
    busy_poll: float = 0.0
    # Fast takeover beside the gossip (watchplan.py): heartbeats every `heartbeat_interval` seconds; a silent
    # announcer's addresses are taken over after `heartbeat_timeout` when another speaker misses it too.
    fast_takeover: bool = True
    heartbeat_interval: float = 0.01
    heartbeat_timeout: float = 0.03
    # The gossip's probe period; its probe timeout, suspicion and isolation timeouts scale with it
    # (GossipTiming).
    gossip_probe_interval: float = 0.1
    # The gossip Lease is renewed every `lease_renew` seconds (one API write); a peer whose Lease has not
    # changed for `lease_duration` seconds, or that did not answer an ask, is no longer expected (leases.py).
    lease_renew: float = RENEW_PERIOD
    lease_duration: float = LEASE_DURATION
    strict: bool = False  # refuse a configuration with warnings; the last good one stays
    pod_name: str | None = None  # this speaker's Pod (in `namespace`): the owner of its status objects


class ClusterWatches:
    """The speaker's Reflectors, read by the rounds as a ports.ClusterView."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        node: str,
        *,
        on_change: Callable[[Change], None],
        on_config: Callable[[Change], None],
        on_lease: Callable[[Change], None],
        on_status: Callable[[Change], None],
        on_bgp_status: Callable[[Change], None] = lambda _change: None,
        on_exclude: Callable[[Change], None] = lambda _change: None,
        watch_timeout: int = 300,
    ) -> None:
        ns, timeout, trim = namespace, watch_timeout, drop_bookkeeping
        self.service_watch = Reflector(client, SERVICES, on_change, watch_timeout=timeout, trim=trim)
        self.slice_watch = Reflector(client, ENDPOINT_SLICES, on_change, watch_timeout=timeout, trim=trim)
        self.node_watch = Reflector(client, NODES, on_change, watch_timeout=timeout, trim=trim_node)
        self.config = ConfigWatch(client, ns, on_config, watch_timeout=timeout)
        self.lease_watch = Reflector(
            client, LEASES, on_lease, namespace=ns, label_selector=f"{GOSSIP_LABEL}=true", trim=trim
        )
        self.status_watch = Reflector(client, SERVICE_L2_STATUSES, on_status, namespace=ns, trim=trim)
        self.bgp_status_watch = Reflector(
            client,
            SERVICE_BGP_STATUSES,
            on_bgp_status,
            namespace=ns,
            label_selector=f"{L2_STATUS_NODE_LABEL}={node}",
            trim=trim,
        )
        self.secret_watch = Reflector(client, SECRETS, on_config, namespace=ns, watch_timeout=timeout)
        # MetalLB's list of interface names never to announce on (LinkFollower).
        self.exclude_watch = Reflector(
            client,
            CONFIGMAPS,
            on_exclude,
            namespace=ns,
            field_selector=f"metadata.name={EXCLUDE_L2_CONFIGMAP}",
            watch_timeout=timeout,
        )
        self.all = [
            self.service_watch,
            self.slice_watch,
            self.node_watch,
            *self.config.reflectors,
            self.lease_watch,
            self.secret_watch,
            self.status_watch,
            self.bgp_status_watch,
            self.exclude_watch,
        ]

    def synced(self) -> bool:
        # The status watches are the reporters', the exclusion list the LinkFollower's (read at the start):
        # announcing never waits for them.
        others = (self.status_watch, self.bgp_status_watch, self.exclude_watch)
        return all(r.synced.is_set() or r.missing for r in self.all if r not in others)

    def secrets(self) -> dict[tuple[str, str], SecretData]:
        """The Secrets of the speaker's namespace, decoded (BGPPeer passwordSecret)."""
        return dict(s for obj in self.secret_watch.items() if (s := secret_from_api(obj)))

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


def election_view(choice: InterfaceChoice) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """What of the node's links a round reads: the eligible interfaces, and why the others not excluded by
    name are not used (an L2Advertisement naming one says why). A carrier flap, or a CNI veth coming and
    going, leaves it unchanged."""
    reasons = sorted(
        (n, str(r)) for n, r in choice.excluded.items() if r is not InterfaceExclusion.NAME_EXCLUDED
    )
    return choice.interfaces, tuple(reasons)


class LinkFollower:
    """Keeps the responder's interfaces, and the links layer 2 chooses interfaces from, in step with the node.

    MetalLB rescans the node's interfaces every 10 seconds; here a rescan follows each burst of link
    notifications of the namespace (`LinkEvents`: the kernel's RTMGRP_LINK messages, a link added, changed
    or deleted; at most one rescan per LINK_DEBOUNCE, the first at once), so a VLAN created after the start
    is served as soon as it is up, and a link deleted or down is dropped at once (its socket closed) while
    the others keep answering. A rescan reads the links (`read`), marks those `rule` excludes by name, gives
    at most MAX_INTERFACES eligible ones to the responder (`interfaces_to_serve`: those `named` by an
    L2Advertisement first, then those served already), logs each interface added or removed and, once per
    change, those left out, and when what a round reads changed (`election_view`) hands the links to
    `on_links` (the speaker gives them to layer 2 and runs a round, so an L2Advertisement naming an
    interface picks it up).
    """

    def __init__(
        self,
        responder: L2Interfaces,
        read: Callable[[], list[Link]],
        links: list[Link],
        *,
        on_links: Callable[[list[Link]], None],
        rule: ExcludeRule = DEFAULT_EXCLUDE_RULE,
        named: Collection[str] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.responder = responder
        self._read = read
        self.rule = rule
        self.named = frozenset(named)
        self.links = mark_excluded(links, rule)
        self._view = election_view(eligible_interfaces(self.links))
        self._on_links = on_links
        self._clock = clock
        self._last_rescan = -LINK_DEBOUNCE  # before any: a first notification is read at once
        self._failed: dict[str, str] = {}
        self.left_out: tuple[str, ...] = ()
        self._lock = threading.Lock()  # one rescan at a time
        self.rescans = 0
        self.watch: LinkEvents | None = None  # the one `run` reads (it re-opens a failed one)

    def choose(self, links: list[Link]) -> tuple[InterfaceChoice, tuple[str, ...], tuple[str, ...]]:
        """The eligible interfaces of `links` (already marked), those to serve and those left out."""
        choice = eligible_interfaces(links)
        serve, left = interfaces_to_serve(
            choice.interfaces, served=self.responder.interfaces, named=self.named
        )
        return choice, serve, left

    def rescan(self) -> None:
        """Reads the links now and applies them; raises what reading them raises (nothing changes then)."""
        with self._lock:
            self._rescan()

    def set_rule(self, rule: ExcludeRule) -> None:
        """A new exclusion list (the ConfigMap changed): applied by a rescan now."""
        with self._lock:
            if rule == self.rule:
                return
            log.info(
                "interface exclusion list changed",
                extra={"source": rule.source, "patterns": list(rule.patterns)},
            )
            self.rule = rule
            self._rescan()

    def set_named(self, named: Collection[str]) -> None:
        """The interfaces the L2Advertisements name now; a rescan only if one of them was left out."""
        with self._lock:
            self.named = frozenset(named)
            if self.named & set(self.left_out):
                self._rescan()

    def _rescan(self) -> None:
        links = mark_excluded(self._read(), self.rule)
        choice, serve, left = self.choose(links)
        change = self.responder.set_interfaces(list(serve))
        self.rescans += 1
        for name in change["removed"]:
            why: object = choice.excluded.get(name)
            if why is None and name in left:
                why = "more interfaces than the responder serves"
            log.info(
                "interface removed",
                extra={"interface": name, "reason": str(why) if why is not None else "gone or re-created"},
            )
        for name in change["added"]:
            log.info("interface added", extra={"interface": name})
        for name, error in sorted(change["failed"].items()):
            if self._failed.get(name) != error:
                log.warning(
                    "interface cannot be used; retried at the next link change",
                    extra={"interface": name, "error": error},
                )
        self._failed = dict(change["failed"])
        if left != self.left_out:
            if left:
                log_left_out(left, len(serve))
            self.left_out = left
        view = election_view(choice)
        self.links = links
        if view != self._view:
            self._view = view
            self._on_links(links)

    def run(
        self, watch: LinkEvents, stop: threading.Event, *, reopen: Callable[[], LinkEvents] | None = None
    ) -> None:
        """Rescans after each burst of notifications until `stop` is set; a failed rescan is tried again
        LINK_RETRY seconds later. A watch that fails is logged, and re-opened with `reopen` after a backoff
        (then the links are read again: notifications were lost); without `reopen` the same one is retried."""
        self.watch = watch
        backoff = Backoff(LINK_RETRY / 2, 30.0)
        retry = False
        while not stop.is_set():
            try:
                events = self._burst(self.watch, LINK_RETRY if retry else 0.5)
            except Exception as exc:
                if stop.is_set():
                    return
                delay = backoff.next()
                log.error(
                    "link notifications failed; re-opening them",
                    extra={"error": str(exc) or type(exc).__name__, "retry_in": round(delay, 3)},
                )
                if stop.wait(delay):
                    return
                if reopen is not None:
                    try:
                        fresh = reopen()
                    except Exception as reopen_exc:
                        log.error("re-opening link notifications failed", extra={"error": str(reopen_exc)})
                        continue
                    old, self.watch = self.watch, fresh
                    _close(old)
                retry = True  # what happened meanwhile is unknown: read the links again
                continue
            backoff.reset()
            if stop.is_set():
                return
            # A pod's veth (cali*, lxc*, veth*...) starting or going costs nothing: an interface the rule
            # excludes by name is never served, whatever its state. (A served link is renamed only while
            # down, and its going down is told under the old name.)
            events = [e for e in events if not self.rule.excludes(_event_name(e))]
            if not events and not retry:
                continue
            try:
                self.rescan()
                retry = False
            except Exception:
                log.exception("reading the node's interfaces failed; retrying")
                retry = True
            self._last_rescan = self._clock()

    def _burst(self, watch: LinkEvents, timeout: float) -> list[object]:
        """The notifications of one burst. The first after a quiet spell is read at once, with whatever is
        queued behind it: a lone change (a VLAN set up) costs no waiting. One that comes within
        LINK_DEBOUNCE of the last rescan waits out the rest of that interval, gathering what follows, so a
        storm of changes (pods starting by the dozen) costs at most a rescan per LINK_DEBOUNCE."""
        events = list(watch.wait(timeout))
        if not events:
            return events
        until = self._last_rescan + LINK_DEBOUNCE
        while (left := until - self._clock()) > 0:
            more = watch.wait(left)
            if not more:  # the interval is over (a real wait returns nothing only when it timed out)
                break
            events += more
        events += watch.wait(0.0)
        return events


def _event_name(event: object) -> str:
    """The link a notification is about; "" for an overflow (lost notifications: always rescanned)."""
    name = event.get("name") if isinstance(event, dict) else None
    return name if isinstance(name, str) else ""


def log_left_out(left: tuple[str, ...], served: int) -> None:
    log.warning(
        "more eligible interfaces than the responder serves; these are not used (exclude them by name in "
        f"ConfigMap {EXCLUDE_L2_CONFIGMAP}, or name the ones wanted in an L2Advertisement)",
        extra={"left_out": list(left), "served": served},
    )


def _close(watch: LinkEvents) -> None:
    try:
        watch.close()
    except Exception as exc:  # a broken watch may fail to close too; it is dropped either way
        log.debug("closing link notifications failed", extra={"error": str(exc)})


class NamedInterfaces:
    """Tells the LinkFollower which interfaces the L2Advertisements name, at each new configuration (a
    protocol of the rounds, as ConfigWarnings): those are served first when the node has more eligible
    interfaces than the responder holds."""

    def __init__(self, on_named: Callable[[frozenset[str]], None]) -> None:
        self._on_named = on_named
        self._seen: Config | None = None
        self._named: frozenset[str] = frozenset()

    def elect_and_apply(self, config: Config, view: ClusterView, live: set[str] | None) -> None:
        if config is self._seen:
            return
        self._seen = config
        named = frozenset(name for a in config.l2_advertisements for name in a.interfaces)
        if named != self._named:
            self._named = named
            self._on_named(named)

    def withdraw_all(self) -> None:
        pass


class ConfigWarnings:
    """Logs the warnings of each new configuration (input MetalLB accepts that is taken with a caveat, e.g.
    host bits masked), once: rounds.Protocols tells it each round's configuration, and the worker swaps in a
    new Config object only when the configuration changed."""

    def __init__(self) -> None:
        self._seen: Config | None = None

    def elect_and_apply(self, config: Config, view: ClusterView, live: set[str] | None) -> None:
        if config is self._seen:
            return
        self._seen = config
        for warning in config.warnings:
            log.warning("configuration warning", extra={"warning": warning})

    def withdraw_all(self) -> None:
        pass


def stop_announcing(
    rounds: Rounds,
    members: Members | None,
    responder: L2Responder | None,
    *,
    graceful: bool,
    timeout: float,
    bgp: Bgp | None = None,
) -> None:
    """The order of a stop, which matters: no round may run once this member has left (alone in its view,
    it would claim every address); the peers take over as soon as it leaves, so it stops answering at once,
    and ends its BGP sessions (a Cease: the routers drop its routes without waiting for a hold time; a
    session that negotiated graceful restart closes without one, so that its router keeps the routes
    while this speaker restarts)."""
    rounds.stop(timeout)
    if members is not None and graceful:
        members.leave()
    if responder is not None:
        responder.stop()
    if bgp is not None:
        bgp.stop()


class GossipTiming(NamedTuple):
    """The gossip's timing for a probe period, in the defaults' proportions: a probe answered within 0.4
    periods, a suspect counted down 2.5 periods later, a node that hears no peer for 4 periods isolated
    (0.1 s gives the defaults: 40 ms, 250 ms, 400 ms). The gossip lengthens the suspicion in a cluster of
    more than ten speakers, times log10(speakers) (500 ms at 100), as memberlist does."""

    probe_interval: float
    probe_timeout: float
    suspect_timeout: float
    isolation_timeout: float

    @classmethod
    def scaled(cls, probe_interval: float) -> GossipTiming:
        return cls(probe_interval, 0.4 * probe_interval, 2.5 * probe_interval, 4.0 * probe_interval)


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
            self.me,
            on_change=lambda _change: self._wake(),
            on_config=lambda _change: self._config_changed(),
            on_lease=lambda change: self.leases.on_lease(change, stopping=self._stop.is_set()),
            on_status=self._status_changed,
            on_bgp_status=self._bgp_status_changed,
            on_exclude=self._exclude_changed,
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
        self.bgp_speaker: BgpSpeaker | None = None
        self.bgp: Bgp | None = None
        self.rounds: Rounds | None = None
        self.reporter: StatusReporter | None = None
        self.bgp_reporter: StatusReporter | None = None
        self.links: list[Link] = []
        self.exclude_rule = DEFAULT_EXCLUDE_RULE
        self.link_watch: LinkWatch | None = None
        self.link_follower: LinkFollower | None = None
        self.conflicts: ConflictReporter | None = None
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
        # Subscribed before the first read: no change between the two goes unnoticed.
        self.exclude_rule = self._read_exclude_rule()
        self.link_watch = link_watch = LinkWatch(o.netns)
        self.links = mark_excluded(read_links(o.netns), self.exclude_rule)
        choice = eligible_interfaces(self.links)
        if not choice.interfaces:
            where = f"network namespace {o.netns}" if o.netns else "this network namespace"
            raise SpeakerError(
                f"no interface in {where} can announce: {dict(choice.excluded) or 'none found'}; "
                "layer 2 needs an up, non-loopback, ARP-capable interface whose name "
                f"{self.exclude_rule.source} does not exclude"
            )
        serve, left = interfaces_to_serve(choice.interfaces)
        if left:
            log_left_out(left, len(serve))
        self.responder = Responder(list(serve), o.netns, busy_poll=o.busy_poll)
        self.responder.start()
        self.metrics.count_layer2(self.responder.stats)
        responder = self.responder
        self.metrics.count_interfaces(lambda: responder.interfaces if responder.running else [])
        if self.gossip_address is not None:
            timing = GossipTiming.scaled(o.gossip_probe_interval)
            self.membership = Membership(
                self.me,
                self.gossip_address,
                secret,
                netns=o.netns,
                heartbeat_interval=o.heartbeat_interval,
                heartbeat_timeout=o.heartbeat_timeout,
                probe_interval=timing.probe_interval,
                probe_timeout=timing.probe_timeout,
                suspect_timeout=timing.suspect_timeout,
                isolation_timeout=timing.isolation_timeout,
            )
            self.membership.start()
            if o.fast_takeover:
                # A takeover announces on the gossip thread, through the responder, without Python.
                self.membership.attach_responder(self.responder)
            self.metrics.count_gossip(self.membership.stats)
            self.leases.publish()
        self.layer2 = Layer2(
            self.me,
            self.responder,
            self.links,
            on_change=self._announced_changed,
            ignore_exclude_label=o.ignore_exclude_label,
            lb_class=o.lb_class,
            unready=self.membership.unready if self.membership is not None and o.fast_takeover else frozenset,
            held=self.membership.held if self.membership is not None and o.fast_takeover else frozenset,
        )
        layer2 = self.layer2
        self.conflicts = ConflictReporter(
            self.responder,
            self.me,
            announced=layer2.announced,
            service=self.watches.service_watch.get,
            events=self.events,
            metrics=self.metrics,
        )
        self.bgp_speaker = BgpSpeaker(netns=o.netns)
        self.metrics.count_bgp(self.bgp_speaker.peers)
        self.bgp = Bgp(
            self.me,
            self.bgp_speaker,
            secrets=self._secrets_for_bgp,
            on_change=self._advertised_changed,
            on_problem=self._bgp_problem,
            on_note=self._bgp_note,
            ignore_exclude_label=o.ignore_exclude_label,
            lb_class=o.lb_class,
        )
        self.link_follower = follower = LinkFollower(
            self.responder,
            lambda: read_links(o.netns),
            self.links,
            on_links=self._links_changed,
            rule=self.exclude_rule,
        )
        follower.left_out = left
        self.rounds = Rounds(
            self.me,
            self.watches,
            Protocols(ConfigWarnings(), NamedInterfaces(self._named_changed), self.layer2, self.bgp),
            self.membership,
            expected=self._expected,
            metrics=self.metrics,
            watcher=self.membership if o.fast_takeover else None,
            standby=self.layer2.standby,
            settle_timeout=o.settle_timeout,
            ready=self.ready,
            strict=o.strict,
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
            pod=o.pod_name,
        )
        self.bgp_reporter = StatusReporter(
            self.client,
            self.me,
            o.namespace,
            wanted=self.bgp.wanted_statuses,
            statuses=self.watches.bgp_status_watch,
            services=self.watches.service_watch,
            events=self.events,
            protocol=BGP_PROTOCOL,
            kind=BGP_STATUS,
            pod=o.pod_name,
        )
        self.events.start()
        self.watches.start()
        self.rounds.start()
        reporter, statuses, ready = self.reporter, self.watches.status_watch.synced, self.rounds.ready
        self._spawn(
            lambda: reporter.run(self._stop, lambda: statuses.is_set() and ready.is_set()), "speaker-reporter"
        )
        bgp_reporter, bgp_statuses = self.bgp_reporter, self.watches.bgp_status_watch.synced
        self._spawn(
            lambda: bgp_reporter.run(self._stop, lambda: bgp_statuses.is_set() and ready.is_set()),
            "speaker-bgp-reporter",
        )
        self._spawn(self._bgp_pump, "speaker-bgp-events")
        conflicts = self.conflicts
        self._spawn(lambda: conflicts.run(self._stop), "speaker-conflicts")
        # Notifications since the watch was opened (before the links were first read) are queued for it.
        netns = o.netns
        self._spawn(
            lambda: follower.run(link_watch, self._stop, reopen=lambda: LinkWatch(netns)), "speaker-links"
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
                "interfaces": list(serve),
                "excluded_by": self.exclude_rule.source,
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
        self.leases.wake()
        for reporter in (self.reporter, self.bgp_reporter):
            if reporter is not None:
                reporter.stop()
        if self.rounds is not None:
            stop_announcing(
                self.rounds,
                self.membership,
                self.responder,
                graceful=graceful,
                timeout=timeout,
                bgp=self.bgp,
            )
        else:
            if self.responder is not None:
                self.responder.stop()
            if self.bgp_speaker is not None:
                self.bgp_speaker.stop()
        for thread in self._threads:
            thread.join(timeout)
        if self.link_watch is not None:
            self.link_watch.close()
        reopened = self.link_follower.watch if self.link_follower is not None else None
        if reopened is not None and reopened is not self.link_watch:
            _close(reopened)  # the follower re-opened the notifications after a failure
        if self.membership is not None:
            self.membership.stop()
        if graceful:
            self.leases.delete()
            for reporter in (self.reporter, self.bgp_reporter):
                if reporter is not None:
                    reporter.release()
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
        if self.bgp_speaker is not None and not self.bgp_speaker.running:
            return "the BGP speaker (or its BFD thread) stopped"
        dead = [t.name for t in self._threads if not t.is_alive()]
        if self.rounds is not None and not self.rounds.alive():
            dead.insert(0, "speaker-worker")
        return f"threads ended: {', '.join(dead)}" if dead else None

    def announced(self) -> dict[str, tuple[str, ...]]:
        """Address -> the Services this node announces it for in layer 2 mode, now."""
        return self.layer2.announced() if self.layer2 is not None else {}

    def advertised(self) -> dict[str, tuple[str, ...]]:
        """Address -> the Services this node advertises it for over BGP, now."""
        return self.bgp.announced() if self.bgp is not None else {}

    # -- wiring ----------------------------------------------------------------------------------------------

    def _wake(self) -> None:
        if self.rounds is not None:
            self.rounds.wake()

    def _expected(self, now: float) -> dict[str, str]:
        """The peers to expect (the rounds ask every half second, and at each round). Hearing none of them,
        this speaker asks them to renew their Leases: those that do not are no longer expected a few seconds
        later, rather than when their Leases go stale (leases.py), so a lone survivor soon announces."""
        expected = self.leases.expected(now)
        members, rounds = self.membership, self.rounds
        if members is None or rounds is None:
            return expected
        alive = set(members.alive()) - {self.me}
        if rounds.gate.settled:
            asking = cut_off(members.isolated(), set(expected), alive)
        else:
            # Hearing nobody yet is the normal state while settling; past the settle time, a speaker that
            # hears only a minority keeps waiting (gate.advance) and asks, so crashed peers stop counting.
            asking = rounds.settle_over(now) and hears_a_minority(set(expected), alive)
        if asking:
            self.leases.ask(now)
        return expected

    def _config_changed(self) -> None:
        if self.rounds is not None:
            self.rounds.config_changed()

    def _links_changed(self, links: list[Link]) -> None:
        """New links: layer 2 chooses interfaces from them at the next round, which runs now."""
        self.links = links
        if self.layer2 is not None:
            self.layer2.links = list(links)
        self._wake()

    def _named_changed(self, named: frozenset[str]) -> None:
        if self.link_follower is not None:
            try:
                self.link_follower.set_named(named)
            except Exception:
                log.exception("reading the node's interfaces failed; the next link change reads them again")

    def _exclude_changed(self, change: Change) -> None:
        """The ConfigMap metallb-excludel2 changed: its list applies at once (MetalLB reads it only at start);
        one that does not parse is refused, and the list in force stays."""
        obj = None if change.type == "DELETED" else change.obj
        try:
            rule = exclude_rule_from_configmap(obj)
        except ValueError as exc:
            log.error(
                "interface exclusion list refused; the one in force stays",
                extra={"error": str(exc), "in_force": self.exclude_rule.source},
            )
            return
        self.exclude_rule = rule
        if self.link_follower is not None:
            try:
                self.link_follower.set_rule(rule)
            except Exception:
                log.exception("reading the node's interfaces failed; the next link change reads them again")

    def _read_exclude_rule(self) -> ExcludeRule:
        """The ConfigMap metallb-excludel2 at the start: one that does not parse stops the start (as it
        stops MetalLB's speaker); none: MetalLB's default list; unreadable (RBAC): that list, with a warning
        (its watch then retries, and applies the ConfigMap once it can read it)."""
        ns = self.options.namespace
        try:
            obj = self.client.get(CONFIGMAPS, EXCLUDE_L2_CONFIGMAP, ns)
        except NotFoundError:
            return DEFAULT_EXCLUDE_RULE
        except ApiError as exc:
            log.warning(
                "cannot read the interface exclusion list; using MetalLB's default list",
                extra={"configmap": f"{ns}/{EXCLUDE_L2_CONFIGMAP}", "error": str(exc)},
            )
            return DEFAULT_EXCLUDE_RULE
        try:
            return exclude_rule_from_configmap(obj)
        except ValueError as exc:
            raise SpeakerError(f"{exc}; fix or delete the ConfigMap") from None

    def _status_changed(self, change: Change) -> None:
        if self.reporter is not None:
            self.reporter.status_changed(change.obj)

    def _announced_changed(self, announced: Mapping[str, tuple[str, ...]]) -> None:
        self.metrics.set_announced(self.me, announced)
        if self.reporter is not None:
            self.reporter.announce_changed()

    def _advertised_changed(self) -> None:
        if self.bgp is not None:
            self.metrics.set_announced(self.me, self.bgp.announced(), BGP_PROTOCOL)
        if self.bgp_reporter is not None:
            self.bgp_reporter.announce_changed()

    def _bgp_status_changed(self, change: Change) -> None:
        if self.bgp_reporter is not None:
            self.bgp_reporter.status_changed(change.obj)

    def _secrets_for_bgp(self) -> Secrets:
        return self.watches.secrets()

    def _bgp_peer_object(self, peer: str) -> JSON | None:
        """The BGPPeer named `peer` as watched (or the legacy ConfigMap that defines it), for Events."""
        objects = self.watches.config_objects()
        for obj in objects:
            if obj.get("kind") == "BGPPeer" and (obj.get("metadata") or {}).get("name") == peer:
                return obj
        return next((obj for obj in objects if obj.get("kind") == "ConfigMap"), None)

    def _bgp_problem(self, peer: str, message: str | None) -> None:
        obj = self._bgp_peer_object(peer)
        if message is not None and obj is not None:
            self.events.record(obj, "Warning", "BGPPeerNotUsed", f"node {self.me}: {message}")

    def _bgp_note(self, peer: str, notes: tuple[str, ...]) -> None:
        obj = self._bgp_peer_object(peer)
        if obj is not None:
            text = "; ".join(notes)
            self.events.record(obj, "Warning", "BGPPeerUsedDifferently", f"node {self.me}: {text}")

    def _bgp_pump(self) -> None:
        """BGP session events as log lines, and as Events on the BGPPeer when a session changes or a peer
        refuses us."""
        speaker = self.bgp_speaker
        assert speaker is not None
        while not self._stop.is_set():
            event = speaker.next_event(timeout=0.5)
            if event is not None:
                self._bgp_event(event)

    def _bgp_event(self, event: BgpEvent) -> None:
        extra: dict[str, object] = {"peer": event.peer, "node": self.me, "reason": event.reason}
        if event.code is not None:
            extra.update(code=event.code, subcode=event.subcode)
        kind = event.kind
        if kind == "up":
            log.info("BGP session established", extra=extra)
            reason, type_, text = "BGPSessionEstablished", "Normal", "session established"
        elif kind == "down":
            log.warning("BGP session down", extra=extra)
            reason, type_, text = "BGPSessionDown", "Warning", f"session down: {event.reason}"
        elif kind == "notification_received":
            log.error("BGP peer sent a NOTIFICATION", extra=extra)
            reason, type_, text = "BGPPeerRefused", "Warning", f"the peer sent {event.reason}"
        elif kind == "connect_failed":
            log.warning("BGP peer unreachable; retrying with backoff", extra=extra)
            reason, type_, text = "BGPConnectFailed", "Warning", f"cannot connect: {event.reason}"
        elif kind == "bfd_up":
            log.info("BFD session up", extra=extra)
            reason, type_, text = "BFDSessionUp", "Normal", event.reason
        elif kind == "bfd_down":
            log.warning("BFD session down", extra=extra)
            reason, type_, text = "BFDSessionDown", "Warning", event.reason
        else:
            log.info("BGP NOTIFICATION sent", extra=extra)
            return
        obj = self._bgp_peer_object(event.peer)
        if obj is not None:
            self.events.record(obj, type_, reason, f"node {self.me}: {text}")

    def _pump(self) -> None:
        assert self.membership is not None
        while not self._stop.is_set():
            event = self.membership.next_event(timeout=0.5)
            if event is None:
                continue
            if event.kind == "unheard":
                # The gossip thread muted the responder already; the gossip's isolation withdraws later.
                log.warning("no peer's heartbeat heard: answering nothing until one is")
            elif event.kind == "heard":
                log.info("a peer's heartbeat heard again: answering again")
            else:
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
        """--gossip-address, else the Node's InternalIP, else this node's own global address on a real
        interface; never an address every node holds (see gossipaddr): one on lo, a dummy interface or
        kube-ipvs0, inside a pool, or a Service's ingress."""
        o = self.options
        try:
            node: JSON | None = self.client.get(NODES, self.me)
        except NotFoundError:
            node = None
        internal = [ip for ip in (internal_ip(node), internal_ip(node, 6)) if ip] if node else []
        try:
            addresses = read_addresses(o.netns)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SpeakerError(f"cannot read this node's addresses (`ip addr`): {exc}") from None
        claimed = claimed_from_api(
            self._list_at_start(CONFIGMAPS, o.namespace, field_selector=f"metadata.name={CONFIGMAP_NAME}")
            + self._list_at_start(IP_ADDRESS_POOLS, o.namespace),
            self._list_at_start(SERVICES),
        )
        try:
            choice = choose_gossip_address(o.gossip_address, internal, addresses, claimed, node=self.me)
        except GossipAddressError as exc:
            raise SpeakerError(str(exc)) from None
        for ip, why in choice.passed_over:
            log.warning("not gossiping from this address", extra={"address": ip, "reason": why})
        address = gossip_address(choice.ip, choice.port or GOSSIP_PORT)
        log.info("gossip address chosen", extra={"address": address, "from": choice.source})
        return address

    def _list_at_start(
        self, resource: Resource, namespace: str | None = None, *, field_selector: str | None = None
    ) -> list[JSON]:
        """The objects a start-up check reads; none when the kind is not installed (no metallb.io CRDs)."""
        try:
            return self.client.list(resource, namespace, field_selector=field_selector).items
        except NotFoundError:
            return []
        except ApiError as exc:
            if exc.temporary:
                raise  # no answer in time, 5xx, 429: the start is retried (runtime.process)
            raise SpeakerError(
                f"cannot list {resource.kind} to check the gossip address stays out of the Services' "
                f"addresses: {exc}; the speaker needs to list them (see deploy/ RBAC)"
            ) from None
