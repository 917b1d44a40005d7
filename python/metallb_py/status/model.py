"""What `metallb-py status` shows, from a snapshot of API objects: pure, no I/O.

`Snapshot` holds the objects as listed (plain dicts, as the API sends them) and the time they were read;
`build_status` turns it into a `ClusterStatus`: the configuration's state and warnings, each pool's usage,
each LoadBalancer Service's addresses and who announces them, the speakers and their gossip membership.
Everything comes from what the controller and the speakers publish:

- configuration: the ConfigurationState `controller` (configreport.py); when there is none, this module
  loads the configuration objects itself (as the controller would) and says so;
- pools: the pools of the configuration (IPAddressPools and a legacy ConfigMap's); used is the distinct
  addresses of LoadBalancer Services inside the pool, total what the pool may hand out (without .0 and .255
  when it avoids buggy addresses, as the allocator counts); the controller's IPAddressPool status, when
  written, is kept beside them (`reported`);
- layer 2: the node each ServiceL2Status names (speaker/status.py); without that resource, the newest
  nodeAssigned Event's speaker;
- BGP: the nodes and BGPPeers each ServiceBGPStatus names; when no speaker has published any for a Service,
  the BGPAdvertisements and BGPPeers that select it and its nodes, marked as taken from the configuration;
- speakers: the gossip Leases (speaker/leases.py), stale once not renewed for their leaseDurationSeconds
  (measured on this machine's clock against the speaker's: a skewed clock shifts it), and the Nodes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from metallb_py._core import Pool
from metallb_py.config import Config, load_objects
from metallb_py.config.model import BGPAdvertisement
from metallb_py.controller.configreport import CONFIGURATION_WARNINGS
from metallb_py.controller.poolstatus import PoolStatus
from metallb_py.controller.reconcile import ALLOCATION_FAILED
from metallb_py.errors import ConfigError
from metallb_py.ipam.fields import allocated_pool, ingress_ips, load_balancer_class
from metallb_py.k8s.resources import meta
from metallb_py.speaker import EXCLUDE_FROM_LB_LABEL
from metallb_py.speaker.conflicts import REASON as ADDRESS_CONFLICT
from metallb_py.speaker.leases import GOSSIP_ADDRESS_ANNOTATION
from metallb_py.speaker.reporter import NODE_ASSIGNED
from metallb_py.speaker.status import status_node, status_service

__all__ = [
    "ADDRESS_CONFLICT",
    "ALLOCATION_FAILED",
    "NODE_ASSIGNED",
    "Announcer",
    "ClusterStatus",
    "ConfigStatus",
    "ControllerStatus",
    "PoolUsage",
    "ServiceStatus",
    "Snapshot",
    "SpeakerStatus",
    "build_status",
    "pool_size",
]

JSON = dict[str, Any]
LAYER2, BGP = "layer2", "bgp"


@dataclass(frozen=True)
class Snapshot:
    """The objects `build_status` reads, as listed from the API at `now`.

    `config_objects`: the ConfigMap `config` first, then the metallb.io configuration resources (the order
    the controller loads them in). A field that is None could not be read (the resource is not installed,
    or not allowed): `unavailable` says why, one line each. `lb_class`: the loadBalancerClass MetalLB serves
    (its --lb-class; None: Services without one), as other Services are another implementation's.
    """

    namespace: str
    now: _dt.datetime
    config_objects: Sequence[JSON] = ()
    services: Sequence[JSON] = ()
    l2_statuses: Sequence[JSON] | None = ()
    bgp_statuses: Sequence[JSON] | None = ()
    gossip_leases: Sequence[JSON] | None = ()
    controller_lease: JSON | None = None
    configuration_state: JSON | None = None
    nodes: Sequence[JSON] | None = ()
    events: Sequence[JSON] = ()
    unavailable: tuple[str, ...] = ()
    lb_class: str | None = None


@dataclass(frozen=True)
class ConfigStatus:
    """`source`: "ConfigurationState" (what the controller published) or "local" (loaded here, as the
    controller would: it has published nothing). `result`: Valid, Invalid, or Unknown (nothing to go by)."""

    source: str
    result: str
    error: str = ""
    warnings: tuple[str, ...] = ()
    summary: str = ""


@dataclass(frozen=True)
class ControllerStatus:
    """The controller's leader Lease: who holds it and how long ago it was renewed (None: never)."""

    holder: str
    renewed_seconds_ago: float | None
    stale: bool


@dataclass(frozen=True)
class PoolUsage:
    """One pool. `kind`: "IPAddressPool" or "ConfigMap" (legacy). `modes`: how its addresses are announced
    (layer2, bgp; none when no advertisement selects it). `reported`: the controller's status of the
    IPAddressPool (MetalLB's field names), when written."""

    name: str
    kind: str
    addresses: tuple[str, ...]
    modes: tuple[str, ...]
    auto_assign: bool
    used: int
    total: int
    reported: dict[str, int] | None = None

    @property
    def full(self) -> bool:
        return self.total > 0 and self.used >= self.total


@dataclass(frozen=True)
class Announcer:
    """A node announcing a Service: layer 2 on `interfaces` (empty: every eligible one), or BGP to `peers`."""

    node: str
    interfaces: tuple[str, ...] = ()
    peers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ServiceStatus:
    """One LoadBalancer Service. `source` says where `announcers` come from: ServiceL2Status,
    ServiceBGPStatus, Event (a nodeAssigned Event: no status objects can be read), "configuration" (BGP:
    the nodes and peers the configuration selects, nothing published), or "" (none)."""

    namespace: str
    name: str
    addresses: tuple[str, ...]
    pool: str
    modes: tuple[str, ...]
    announcers: tuple[Announcer, ...]
    source: str
    load_balancer_class: str | None = None
    problem: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class SpeakerStatus:
    """One node. `membership`: "member" (its gossip Lease is renewed), "stale" (not renewed for the Lease's
    duration), or "no lease" (a Node without a speaker Lease: no speaker, or one without gossip).
    `ready`: the Node's Ready condition (None: unknown)."""

    node: str
    membership: str
    gossip_address: str = ""
    renewed_seconds_ago: float | None = None
    lease_duration: int | None = None
    ready: bool | None = None
    excluded: bool = False


@dataclass(frozen=True)
class ClusterStatus:
    namespace: str
    taken_at: str
    config: ConfigStatus
    controller: ControllerStatus | None
    pools: tuple[PoolUsage, ...]
    services: tuple[ServiceStatus, ...]
    speakers: tuple[SpeakerStatus, ...]
    warnings: tuple[str, ...] = ()
    unavailable: tuple[str, ...] = field(default=())

    def to_json(self) -> JSON:
        """Plain data (`-o json`): every field by name."""
        data = asdict(self)
        for pool, usage in zip(data["pools"], self.pools, strict=True):
            pool["full"] = usage.full
        return data


def build_status(snapshot: Snapshot) -> ClusterStatus:
    config, load_error = _load(snapshot.config_objects)
    services = [s for s in snapshot.services if _served(s, snapshot.lb_class)]
    pools = _pools(config, snapshot.config_objects, services)
    nodes = list(snapshot.nodes or ())
    statuses = tuple(_service(svc, config, snapshot, nodes) for svc in services)
    statuses = tuple(sorted(statuses, key=lambda s: (s.namespace, s.name)))
    speakers = _speakers(snapshot)
    config_status = _config_status(snapshot, config, load_error)
    controller = _controller(snapshot)
    warnings = _warnings(
        config=config_status,
        controller=controller,
        pools=pools,
        services=statuses,
        speakers=speakers,
        snapshot=snapshot,
    )
    return ClusterStatus(
        namespace=snapshot.namespace,
        taken_at=snapshot.now.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        config=config_status,
        controller=controller,
        pools=pools,
        services=statuses,
        speakers=speakers,
        warnings=warnings,
        unavailable=snapshot.unavailable,
    )


# -- configuration -----------------------------------------------------------------------------------------


def _load(objects: Sequence[JSON]) -> tuple[Config | None, str | None]:
    if not objects:
        return None, "no MetalLB configuration: neither a ConfigMap named config nor any metallb.io resource"
    try:
        return load_objects([dict(o) for o in objects], source="cluster"), None
    except ConfigError as exc:
        return None, str(exc)


def _config_status(snapshot: Snapshot, config: Config | None, load_error: str | None) -> ConfigStatus:
    summary = config.summary() if config is not None else ""
    state = snapshot.configuration_state
    status = (state or {}).get("status")
    if isinstance(status, Mapping) and status.get("result"):
        warnings: tuple[str, ...] = ()
        for condition in status.get("conditions") or ():
            if condition.get("type") == CONFIGURATION_WARNINGS and condition.get("status") == "True":
                warnings = tuple(w for w in str(condition.get("message") or "").splitlines() if w)
        return ConfigStatus(
            source="ConfigurationState",
            result=str(status["result"]),
            error=str(status.get("errorSummary") or ""),
            warnings=warnings,
            summary=summary,
        )
    if config is None:
        return ConfigStatus(source="local", result="Invalid", error=load_error or "", summary=summary)
    return ConfigStatus(source="local", result="Valid", warnings=tuple(config.warnings), summary=summary)


def _controller(snapshot: Snapshot) -> ControllerStatus | None:
    lease = snapshot.controller_lease
    if lease is None:
        return None
    spec = lease.get("spec") or {}
    ago = _seconds_since(spec.get("renewTime"), snapshot.now)
    duration = spec.get("leaseDurationSeconds")
    stale = ago is None or (isinstance(duration, int) and ago > duration)
    return ControllerStatus(
        holder=str(spec.get("holderIdentity") or ""), renewed_seconds_ago=ago, stale=stale
    )


# -- pools -------------------------------------------------------------------------------------------------


def pool_size(pool: Pool) -> int:
    """The addresses `pool` may hand out: every address of its ranges, without those ending in .0 or .255
    when it avoids buggy addresses (IPv4 only, as the allocator)."""
    total = 0
    for first, last in pool.ranges():
        low, high = int(first), int(last)
        total += high - low + 1
        if pool.avoid_buggy_ips and first.version == 4:
            total -= _count_octets(low, high, 0) + _count_octets(low, high, 255)
    return total


def _count_octets(low: int, high: int, octet: int) -> int:
    """How many x in [low, high] have x % 256 == octet."""

    def upto(n: int) -> int:  # how many in [0, n]
        return 0 if n < octet else (n - octet) // 256 + 1

    return upto(high) - upto(low - 1)


def _pools(config: Config | None, objects: Sequence[JSON], services: Sequence[JSON]) -> tuple[PoolUsage, ...]:
    if config is None:
        return ()
    crd_pools = {meta(o, "name"): o for o in objects if o.get("kind") == "IPAddressPool"}
    addresses = {ip for svc in services for ip in ingress_ips(svc)}
    usages = []
    for pool in config.pools:
        used = sum(1 for ip in addresses if pool.contains(ip))
        reported = PoolStatus.from_api(crd_pools.get(pool.name))
        usages.append(
            PoolUsage(
                name=pool.name,
                kind="IPAddressPool" if pool.name in crd_pools else "ConfigMap",
                addresses=tuple(pool.addresses),
                modes=_pool_modes(config, pool.name),
                auto_assign=pool.auto_assign,
                used=used,
                total=pool_size(pool),
                reported=None if reported is None else reported.to_api(),
            )
        )
    return tuple(usages)


def _pool_modes(config: Config, pool: str) -> tuple[str, ...]:
    legacy = config.legacy_protocols.get(pool)
    if legacy is not None:
        return (BGP if legacy == BGP else LAYER2,)
    modes = []
    if config.l2_advertisements_for(pool):
        modes.append(LAYER2)
    if config.bgp_advertisements_for(pool):
        modes.append(BGP)
    return tuple(modes)


# -- services ----------------------------------------------------------------------------------------------


def _served(svc: Mapping[str, Any], lb_class: str | None) -> bool:
    """A LoadBalancer Service of the class MetalLB serves."""
    return (svc.get("spec") or {}).get("type") == "LoadBalancer" and load_balancer_class(svc) == lb_class


def _service(svc: JSON, config: Config | None, snapshot: Snapshot, nodes: Sequence[JSON]) -> ServiceStatus:
    namespace, name = meta(svc, "namespace"), meta(svc, "name")
    key = f"{namespace}/{name}"
    ips = tuple(ingress_ips(svc))
    pool = allocated_pool(svc) or ""
    if not pool and config is not None:
        pool = next((p.name for p in config.pools for ip in ips if p.contains(ip)), "")
    modes = _pool_modes(config, pool) if config is not None and config.pool(pool) is not None else ()
    problem = ""
    if not ips:
        failed = _newest(
            e for e in snapshot.events if _about(e, key) and e.get("reason") == ALLOCATION_FAILED
        )
        problem = f"{ALLOCATION_FAILED}: {failed.get('message')}" if failed is not None else "no address yet"
    announcers: tuple[Announcer, ...] = ()
    source = ""
    if ips and LAYER2 in modes:
        announcers, source = _l2_announcers(key, snapshot)
    if ips and BGP in modes:
        bgp, bgp_source = _bgp_announcers(key, svc, pool, config=config, snapshot=snapshot, nodes=nodes)
        announcers, source = announcers + bgp, "+".join(s for s in (source, bgp_source) if s)
    return ServiceStatus(
        namespace=namespace,
        name=name,
        addresses=ips,
        pool=pool,
        modes=modes,
        announcers=announcers,
        source=source,
        load_balancer_class=load_balancer_class(svc),
        problem=problem,
    )


def _about(event: Mapping[str, Any], key: str) -> bool:
    involved = event.get("involvedObject") or {}
    return involved.get("kind") == "Service" and f"{involved.get('namespace')}/{involved.get('name')}" == key


def _event_time(event: Mapping[str, Any]) -> str:
    # RFC 3339 UTC timestamps in one format sort as text.
    series = event.get("series") or {}
    return str(
        series.get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or meta(event, "creationTimestamp")
    )


def _newest(events: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    return max(events, key=_event_time, default=None)


def _l2_announcers(key: str, snapshot: Snapshot) -> tuple[tuple[Announcer, ...], str]:
    if snapshot.l2_statuses is None:
        assigned = _newest(
            e
            for e in snapshot.events
            if _about(e, key) and e.get("reason") == NODE_ASSIGNED and LAYER2 in str(e.get("message"))
        )
        node = str(
            (assigned or {}).get("reportingInstance")
            or ((assigned or {}).get("source") or {}).get("host")
            or ""
        )
        return ((Announcer(node),), "Event") if node else ((), "")
    found = []
    for obj in sorted(snapshot.l2_statuses, key=lambda o: meta(o, "name")):
        claimant = status_node(obj)
        if claimant and status_service(obj) == key:
            interfaces = tuple(str(i.get("name")) for i in (obj.get("status") or {}).get("interfaces") or ())
            found.append(Announcer(claimant, interfaces=interfaces))
    unique = tuple({a.node: a for a in found}.values())
    return (tuple(sorted(unique, key=lambda a: a.node)), "ServiceL2Status") if unique else ((), "")


def _bgp_announcers(
    key: str, svc: JSON, pool: str, *, config: Config | None, snapshot: Snapshot, nodes: Sequence[JSON]
) -> tuple[tuple[Announcer, ...], str]:
    published: dict[str, set[str]] = {}
    for obj in snapshot.bgp_statuses or ():
        node = status_node(obj)
        if node and status_service(obj) == key:
            published.setdefault(node, set()).update(
                str(p) for p in (obj.get("status") or {}).get("peers") or ()
            )
    if published:
        return tuple(
            Announcer(n, peers=tuple(sorted(p))) for n, p in sorted(published.items())
        ), "ServiceBGPStatus"
    if config is None:
        return (), ""
    labels = (svc.get("metadata") or {}).get("labels") or {}
    advertisements = [a for a in config.bgp_advertisements_for(pool) if a.selects_service(labels)]
    selected = []
    for node_object in sorted(nodes, key=lambda n: meta(n, "name")):
        node_labels = (node_object.get("metadata") or {}).get("labels") or {}
        peers = _selected_peers(config, advertisements, node_labels)
        if peers:
            selected.append(Announcer(meta(node_object, "name"), peers=peers))
    return tuple(selected), "configuration" if selected else ""


def _selected_peers(
    config: Config, advertisements: Sequence[BGPAdvertisement], node_labels: Mapping[str, str]
) -> tuple[str, ...]:
    if node_labels.get(EXCLUDE_FROM_LB_LABEL) is not None:
        return ()
    peers = {
        peer.name
        for adv in advertisements
        if adv.selects_node(node_labels)
        for peer in config.bgp_peers
        if adv.selects_peer(peer.name) and peer.selects_node(node_labels)
    }
    return tuple(sorted(peers))


# -- speakers ----------------------------------------------------------------------------------------------


def _speakers(snapshot: Snapshot) -> tuple[SpeakerStatus, ...]:
    nodes = {meta(n, "name"): n for n in snapshot.nodes or ()}
    leases: dict[str, JSON] = {}
    for lease in snapshot.gossip_leases or ():
        holder = (lease.get("spec") or {}).get("holderIdentity")
        if holder:
            leases[str(holder)] = lease
    speakers = []
    for name in sorted(set(nodes) | set(leases)):
        node_object = nodes.get(name)
        labels = ((node_object or {}).get("metadata") or {}).get("labels") or {}
        ready = _ready(node_object) if node_object is not None else None
        excluded = EXCLUDE_FROM_LB_LABEL in labels
        found = leases.get(name)
        if found is None:
            speakers.append(SpeakerStatus(name, "no lease", ready=ready, excluded=excluded))
            continue
        lease = found
        spec = lease.get("spec") or {}
        ago = _seconds_since(spec.get("renewTime"), snapshot.now)
        duration = spec.get("leaseDurationSeconds")
        duration = duration if isinstance(duration, int) and not isinstance(duration, bool) else None
        fresh = ago is not None and duration is not None and ago <= duration
        speakers.append(
            SpeakerStatus(
                node=name,
                membership="member" if fresh else "stale",
                gossip_address=str(
                    ((lease.get("metadata") or {}).get("annotations") or {}).get(GOSSIP_ADDRESS_ANNOTATION)
                    or ""
                ),
                renewed_seconds_ago=ago,
                lease_duration=duration,
                ready=ready,
                excluded=excluded,
            )
        )
    return tuple(speakers)


def _ready(node: Mapping[str, Any]) -> bool | None:
    for condition in (node.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return None


def _seconds_since(stamp: object, now: _dt.datetime) -> float | None:
    """Seconds from an RFC 3339 time (a Lease's MicroTime) to `now`; None when it is not one."""
    if not isinstance(stamp, str) or not stamp:
        return None
    try:
        then = _dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=_dt.UTC)
    return (now - then).total_seconds()


# -- warnings ----------------------------------------------------------------------------------------------


def _warnings(
    *,
    config: ConfigStatus,
    controller: ControllerStatus | None,
    pools: Sequence[PoolUsage],
    services: Sequence[ServiceStatus],
    speakers: Sequence[SpeakerStatus],
    snapshot: Snapshot,
) -> tuple[str, ...]:
    """What needs a look, most serious first."""
    out = []
    if config.result == "Invalid":
        out.append(f"configuration refused: {config.error}")
    if config.source == "local":
        out.append(
            f"the controller has published no ConfigurationState in {snapshot.namespace}: is it running? "
            "(the configuration above was checked here)"
        )
    out += [f"configuration: {w}" for w in config.warnings]
    if controller is not None and controller.stale:
        out.append(
            f"the controller's leader Lease ({controller.holder}) is not renewed: is the controller running?"
        )
    for pool in pools:
        if pool.full:
            out.append(f"pool {pool.name} is full ({pool.used} of {pool.total} addresses in use)")
        if not pool.modes:
            out.append(
                f"pool {pool.name}: no L2Advertisement or BGPAdvertisement selects it: its addresses are "
                "not announced"
            )
    for svc in services:
        if not svc.addresses:
            out.append(f"service {svc.key} has no address: {svc.problem}")
        elif LAYER2 in svc.modes and svc.source == "ServiceL2Status" and len(svc.announcers) > 1:
            names = ", ".join(a.node for a in svc.announcers)
            out.append(
                f"service {svc.key} is claimed by several nodes ({names}): a takeover in progress, or a split"
            )
        elif svc.modes and not svc.announcers:
            out.append(f"service {svc.key}: no node announces {', '.join(svc.addresses)}")
    for speaker in speakers:
        if speaker.membership == "stale":
            out.append(f"speaker {speaker.node}: its gossip Lease is not renewed: is the speaker running?")
    for event in snapshot.events:
        if event.get("reason") == ADDRESS_CONFLICT:
            involved = event.get("involvedObject") or {}
            subject = f"{involved.get('kind', 'object')} {involved.get('namespace')}/{involved.get('name')}"
            out.append(f"{subject}: {event.get('message')}")
    return tuple(out)
