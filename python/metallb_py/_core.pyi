"""Type stub of the Rust extension `metallb_py._core` (checked against the binary by mypy.stubtest)."""

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address
from types import TracebackType
from typing import Any, Literal, TypedDict, final

_IP = IPv4Address | IPv6Address

__all__ = [
    "Allocator",
    "BfdSettings",
    "BfdStatus",
    "BgpEvent",
    "BgpPeerStatus",
    "BgpRoute",
    "BgpSpeaker",
    "LabelSelector",
    "LinkWatch",
    "Membership",
    "MembershipEvent",
    "Pool",
    "Port",
    "Responder",
    "ServiceAllocation",
    "__version__",
    "validate_pools",
]
__version__: str

@final
class Port:
    """A service port as the sharing rules see it: number and protocol (TCP, UDP or SCTP)."""

    def __new__(cls, port: int, protocol: str = "TCP") -> Port: ...
    @property
    def port(self) -> int: ...
    @property
    def protocol(self) -> str: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class LabelSelector:
    """A Kubernetes label selector. Raises ConfigError (naming `path`) when invalid."""

    def __new__(
        cls,
        match_labels: Mapping[str, str] | None = None,
        match_expressions: Sequence[tuple[str, str, Sequence[str]]] = ...,
        *,
        path: str = "selector",
    ) -> LabelSelector: ...
    @property
    def match_labels(self) -> dict[str, str]: ...
    @property
    def match_expressions(self) -> list[tuple[str, str, list[str]]]: ...
    def matches(self, labels: Mapping[str, str]) -> bool: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class ServiceAllocation:
    """Which services a pool serves and its priority (lower first; unset after all set ones)."""

    def __new__(
        cls,
        priority: int | None = None,
        namespaces: Sequence[str] = ...,
        namespace_selectors: Sequence[LabelSelector] = ...,
        service_selectors: Sequence[LabelSelector] = ...,
    ) -> ServiceAllocation: ...
    @property
    def priority(self) -> int | None: ...
    @property
    def namespaces(self) -> list[str]: ...
    @property
    def namespace_selectors(self) -> list[LabelSelector]: ...
    @property
    def service_selectors(self) -> list[LabelSelector]: ...
    def matches(
        self, namespace: str, namespace_labels: Mapping[str, str], service_labels: Mapping[str, str]
    ) -> bool: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Pool:
    """A validated address pool. Raises ConfigError for bad names, addresses or overlaps inside the pool."""

    def __new__(
        cls,
        name: str,
        addresses: Sequence[str],
        *,
        auto_assign: bool = True,
        avoid_buggy_ips: bool = False,
        service_allocation: ServiceAllocation | None = None,
    ) -> Pool: ...
    @property
    def name(self) -> str: ...
    @property
    def addresses(self) -> list[str]: ...
    @property
    def auto_assign(self) -> bool: ...
    @property
    def avoid_buggy_ips(self) -> bool: ...
    @property
    def service_allocation(self) -> ServiceAllocation | None: ...
    @property
    def families(self) -> list[str]: ...
    def ranges(self) -> list[tuple[_IP, _IP]]: ...
    def contains(self, ip: str | _IP) -> bool: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

def validate_pools(pools: Sequence[Pool]) -> None:
    """Raise ConfigError for duplicate names or any address in two ranges (the message names both)."""

@final
class Allocator:
    """MetalLB's IP allocator: lowest free address first, sharing rules, restore on restart."""

    def __new__(cls, pools: Sequence[Pool] = ...) -> Allocator: ...
    def allocate(
        self,
        key: str,
        *,
        ports: Sequence[Port] = ...,
        pool: str | None = None,
        requested: Sequence[str | _IP] = ...,
        sharing_key: str | None = None,
        backend_key: str = ...,
        ip_families: Sequence[str] = ...,
        ip_family_policy: str = "SingleStack",
        labels: Mapping[str, str] | None = None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> list[_IP]:
        """Addresses for `key`, lowest free first. Empty ip_families: the requested addresses' families, else
        both for RequireDualStack/PreferDualStack, else IPv4. Requested addresses must be one of each family
        in ip_families, as MetalLB's controller requires (FamilyError otherwise)."""
    def assign(
        self,
        key: str,
        ips: Sequence[str | _IP],
        *,
        ports: Sequence[Port] = ...,
        sharing_key: str | None = None,
        backend_key: str = "",
        labels: Mapping[str, str] | None = None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> str:
        """Restores `key`'s addresses; with `labels` (or `namespace_labels`), only from a pool whose
        serviceAllocation serves the Service."""
    def release(self, key: str) -> bool: ...
    def ips(self, key: str) -> list[_IP]: ...
    def pool_of(self, key: str) -> str | None: ...
    def pool_for_ip(self, ip: str | _IP) -> str | None: ...
    def holders(self, ip: str | _IP) -> list[str]: ...
    def set_pools(self, pools: Sequence[Pool]) -> list[str]: ...
    def pools(self) -> list[Pool]: ...
    def keys(self) -> list[str]: ...
    def counters(self, pool: str) -> dict[str, int]: ...
    def pool_status(self, pool: str) -> dict[str, int]:
        """assignedIPv4, assignedIPv6, availableIPv4, availableIPv6, as MetalLB counts them (0: no pool)."""
    def __len__(self) -> int: ...
    def __contains__(self, key: object, /) -> bool: ...

@final
class Responder:
    """The layer 2 responder: answers ARP and NDP for announced addresses from a Rust thread.

    Needs CAP_NET_RAW (raw sockets), and CAP_SYS_ADMIN with `netns` (the thread enters /var/run/netns/NAME;
    the calling process stays where it is). `start()` raises InterfaceNotFoundError, PermissionDeniedError,
    NoMacAddressError or NetnsError.
    """

    def __new__(
        cls,
        interfaces: Sequence[str],
        netns: str | None = None,
        *,
        gratuitous_interval: float = 1.1,
        gratuitous_duration: float = 5.0,
        refresh_interval: float | None = None,
        socket_buffer: int = ...,
        busy_poll: float = 0.0,
        cpu: int | None = None,
    ) -> Responder: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def __enter__(self) -> Responder: ...
    def __exit__(
        self,
        _exc_type: type[BaseException] | None = None,
        _exc: BaseException | None = None,
        _traceback: TracebackType | None = None,
    ) -> bool: ...
    def announce(self, ip: str | _IP, interfaces: Sequence[str] | None = None) -> bool:
        """Answer for `ip` (on `interfaces`, default all) and announce it; False if already announced so."""
    def withdraw(self, ip: str | _IP) -> bool:
        """Stop answering for `ip` before returning; whether it was announced."""
    def set_muted(self, muted: bool) -> bool:
        """Muted: answer nothing, send nothing, keep the addresses; unmuted: answer and announce them all."""
    def reannounce(self, ip: str | _IP) -> bool:
        """Announce `ip` again as if new (gratuitous frames now and on a fresh schedule); False when it is not
        announced or the responder is muted."""
    def set_interfaces(self, interfaces: Sequence[str]) -> _InterfaceChange:
        """Serve exactly `interfaces` from now on, while running: opens new ones (addresses announced on all
        interfaces are answered there at once, with gratuitous announcements), closes the others, re-opens one
        re-created under its name. One that cannot be opened is in "failed" and the others are served all the
        same; "removed" also lists interfaces whose link vanished under the responder since the last call.
        ValueError for duplicates or too many (nothing changes)."""
    def announced(self) -> dict[_IP, list[str]]: ...
    def stats(self) -> dict[str, Any]:
        """{"ips": {ip: {requests_received, responses_sent, gratuitous_sent}}, "drops": {label: n}, ...,
        "conflicts": claims by other hosts seen (every frame), "conflicts_dropped": left out of a full
        list}."""
    def conflicts(self) -> list[tuple[str, str, str]]:
        """(ip, mac, interface) of each other host seen claiming an address announced on that interface
        since the last call, which drains them: each triple once, in the order first seen, at most 1024 per
        drain.

        A claim: an ARP packet (request or reply, gratuitous or not) whose sender IP is the address, a
        neighbor advertisement for it or a solicitation from it, from a MAC none of the served interfaces
        have. A DAD probe is not one (the answer to it defends the address). Raises ResponderError when not
        running."""
    def macs(self) -> dict[str, str]: ...
    @property
    def running(self) -> bool: ...
    @property
    def interfaces(self) -> list[str]:
        """The interfaces served now while running; else those given to the constructor."""
    @property
    def netns(self) -> str | None: ...

class _InterfaceChange(TypedDict):
    added: list[str]
    removed: list[str]
    failed: dict[str, str]

class _LinkEvent(TypedDict):
    kind: Literal["changed", "removed", "overflow"]
    index: int
    name: str
    up: bool

@final
class LinkWatch:
    """Link notifications (RTMGRP_LINK) of a network namespace (default: the caller's): a link added,
    changed (up, down, ...) or deleted. Subscribes at once; NetnsError or PermissionDeniedError."""

    def __new__(cls, netns: str | None = None) -> LinkWatch: ...
    def wait(self, timeout: float | None = None) -> list[_LinkEvent]:
        """Every notification queued once one arrives or `timeout` passes (then []); "overflow": some were
        lost, rescan. ResponderError once closed."""
    def close(self) -> None: ...
    @property
    def netns(self) -> str | None: ...

class _MemberInfo(TypedDict):
    address: str
    state: Literal["alive", "suspect", "down"]
    incarnation: int
    generation: int

@final
class MembershipEvent:
    """A change seen by a member. `at` is on the clock of `time.monotonic()`."""

    @property
    def kind(
        self,
    ) -> Literal[
        "up",
        "suspect",
        "alive",
        "down",
        "isolated",
        "reconnected",
        "held",
        "released",
        "ready",
        "unready",
        "unheard",
        "heard",
    ]: ...
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def at(self) -> float: ...

@final
class Membership:
    """Failure detection among speakers: SWIM gossip over UDP, every datagram authenticated with `secret`.

    Runs on its own Rust thread (inside `netns` if given: needs CAP_SYS_ADMIN). Addresses are "ip:port".
    `stop()` is a crash to the peers; `leave()` (and leaving the `with` block) hands over at once. Bad
    arguments raise ValueError; `start()` raises GossipBindError, GossipNetnsError or GossipPermissionError.
    """

    def __new__(
        cls,
        name: str,
        bind: str,
        secret: bytes,
        *,
        advertise: str | None = None,
        netns: str | None = None,
        seeds: Sequence[str] = ...,
        probe_interval: float = 0.1,
        probe_timeout: float = 0.04,
        suspect_timeout: float = 0.25,
        indirect_probes: int = 3,
        isolation_timeout: float = 0.4,
        quorum: Literal["any", "majority"] = "any",
        announce_interval: float = 1.0,
        retransmits: int = 6,
        heartbeat_interval: float = 0.01,
        heartbeat_timeout: float = 0.03,
    ) -> Membership: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def __enter__(self) -> Membership: ...
    def __exit__(
        self,
        _exc_type: type[BaseException] | None = None,
        _exc: BaseException | None = None,
        _traceback: TracebackType | None = None,
    ) -> bool: ...
    def join(self, addresses: Sequence[str]) -> None:
        """Add peers and announce to them at once."""
    def set_peers(self, addresses: Sequence[str]) -> None:
        """Replace the expected peers (the full list; this member's own address may be in it)."""
    def leave(self) -> None:
        """Tell every member this one leaves, so its addresses move without waiting for detection."""
    def set_watch(
        self,
        targets: Mapping[str, str],
        takeovers: Mapping[str, Sequence[tuple[str, Sequence[str]]]],
        ready: bool,
    ) -> None:
        """Fast takeover: heartbeats to `targets` {node: "ip:port"}; announce `takeovers[owner]` [(ip,
        [interface])] at once when that owner is silent for heartbeat_timeout and a witness misses it too."""
    def attach_responder(self, responder: Responder | None) -> None:
        """Takeovers announce through this running Responder, on the gossip thread."""
    def held(self) -> list[str]:
        """Owners the watch took over from (silent since), sorted."""
    def unready(self) -> list[str]:
        """Peers whose heartbeats say they are settling (not ready), sorted."""
    def members(self) -> dict[str, _MemberInfo]: ...
    def alive(self) -> list[str]:
        """Names counted alive (alive or suspect), this member included, sorted."""
    def isolated(self) -> bool:
        """Cut off from its peers: the speaker should stop announcing."""
    def peers(self) -> list[str]: ...
    def next_event(self, timeout: float | None = None) -> MembershipEvent | None: ...
    def events(self, timeout: float | None = 0.0) -> list[MembershipEvent]: ...
    def stats(self) -> dict[str, int]: ...
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def netns(self) -> str | None: ...
    @property
    def running(self) -> bool: ...
    @property
    def generation(self) -> int | None: ...

# --- BGP (metallb-bgp): the sessions of a node on one Rust thread.

_BgpState = Literal["idle", "connect", "opensent", "openconfirm", "established"]
_BgpEventKind = Literal[
    "up", "down", "connect_failed", "notification_received", "notification_sent", "bfd_up", "bfd_down"
]
_BfdState = Literal["AdminDown", "Down", "Init", "Up"]

@final
class BfdSettings:
    """A BGP peer's BFD session settings (MetalLB's BFDProfile): intervals in seconds (0.01 to 60),
    `detect_multiplier` 2 to 255, `passive` (wait for the peer's first packet), `minimum_ttl` (multihop only).
    Defaults are MetalLB's. Out-of-range values raise ValueError."""

    def __new__(
        cls,
        *,
        receive_interval: float = 0.3,
        transmit_interval: float = 0.3,
        detect_multiplier: int = 3,
        passive: bool = False,
        minimum_ttl: int = 254,
    ) -> BfdSettings: ...
    @property
    def receive_interval(self) -> float: ...
    @property
    def transmit_interval(self) -> float: ...
    @property
    def detect_multiplier(self) -> int: ...
    @property
    def passive(self) -> bool: ...
    @property
    def minimum_ttl(self) -> int: ...

@final
class BfdStatus:
    """A peer's BFD session as the BFD thread last saw it: states, diagnostics in words, the transmit
    interval in use and the detection time (None until the peer was heard) in seconds, counters since the
    session started (`dropped`: packets refused for their TTL or contents; echo counters stay 0)."""

    @property
    def peer(self) -> str: ...
    @property
    def multihop(self) -> bool: ...
    @property
    def state(self) -> _BfdState: ...
    @property
    def remote_state(self) -> _BfdState: ...
    @property
    def local_diag(self) -> str: ...
    @property
    def remote_diag(self) -> str: ...
    @property
    def local_discriminator(self) -> int: ...
    @property
    def remote_discriminator(self) -> int: ...
    @property
    def transmit_interval(self) -> float: ...
    @property
    def detection_time(self) -> float | None: ...
    @property
    def control_sent(self) -> int: ...
    @property
    def control_received(self) -> int: ...
    @property
    def echo_sent(self) -> int: ...
    @property
    def echo_received(self) -> int: ...
    @property
    def up_events(self) -> int: ...
    @property
    def down_events(self) -> int: ...
    @property
    def dropped(self) -> int: ...

class _BgpCounters(TypedDict):
    opens_sent: int
    opens_received: int
    updates_sent: int
    updates_received: int
    keepalives_sent: int
    keepalives_received: int
    notifications_sent: int
    notifications_received: int
    route_refresh_sent: int
    route_refresh_received: int
    prefixes_announced: int
    prefixes_withdrawn: int
    connect_attempts: int
    connect_failures: int
    established: int
    bytes_sent: int
    bytes_received: int

@final
class BgpRoute:
    """The attributes a prefix is advertised with, communities in MetalLB's spelling.

    `local_pref` reaches iBGP peers only (100 when None). `communities` takes standard ("65000:100") and
    large ("large:65000:1:2") ones, `large_communities` large ones with or without "large:". Kept sorted and
    without duplicates; the properties give standard ones as "A:B" and large ones as "large:A:B:C". A bad
    value raises ValueError naming it.
    """

    def __new__(
        cls,
        local_pref: int | None = None,
        communities: Sequence[str] = ...,
        large_communities: Sequence[str] = ...,
    ) -> BgpRoute: ...
    @property
    def local_pref(self) -> int | None: ...
    @property
    def communities(self) -> list[str]: ...
    @property
    def large_communities(self) -> list[str]: ...
    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class BgpPeerStatus:
    """One session as the speaker's thread last saw it.

    `established_at` is on the clock of `time.monotonic()`, `uptime` in seconds; both None unless
    established. `peer_asn` ... `ibgp` are what the OPENs agreed (None before). `next_hop_v4`/`next_hop_v6`
    are what routes carry (the session's local address, the same interface's address of the other family, or
    the configured ones). `last_error` says why the last attempt or session ended; `unsendable` why pending
    prefixes cannot be sent (family not agreed, no next hop). `prefixes_advertised` are held by the peer now.
    `counters` count since the peer was added, across session resets. `bfd`: the peer's BFD session (None
    without one); `held_by_bfd` while BFD keeps the session down after a path failure.
    """

    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...
    @property
    def port(self) -> int: ...
    @property
    def state(self) -> _BgpState: ...
    @property
    def established_at(self) -> float | None: ...
    @property
    def uptime(self) -> float | None: ...
    @property
    def peer_asn(self) -> int | None: ...
    @property
    def peer_router_id(self) -> str | None: ...
    @property
    def hold_time(self) -> float | None: ...
    @property
    def keepalive_time(self) -> float | None: ...
    @property
    def families(self) -> list[Literal["ipv4", "ipv6"]]: ...
    @property
    def ibgp(self) -> bool | None: ...
    @property
    def local_address(self) -> str | None: ...
    @property
    def next_hop_v4(self) -> str | None: ...
    @property
    def next_hop_v6(self) -> str | None: ...
    @property
    def last_error(self) -> str | None: ...
    @property
    def unsendable(self) -> str | None: ...
    @property
    def prefixes_configured(self) -> int: ...
    @property
    def prefixes_advertised(self) -> int: ...
    @property
    def prefixes_pending(self) -> int: ...
    @property
    def counters(self) -> _BgpCounters: ...
    @property
    def bfd(self) -> BfdStatus | None: ...
    @property
    def held_by_bfd(self) -> bool: ...

@final
class BgpEvent:
    """One event of one session. "bfd_up"/"bfd_down": the peer's BFD session changed (`reason` has the
    diagnostic). "notification_received" is the peer refusing us (or ending the session),
    "notification_sent" us refusing it (or a Cease); `code`/`subcode` are the NOTIFICATION's, `reason` says it
    in words. "connect_failed": no TCP connection (an MD5 password mismatch looks like a time-out). `at` is on
    the clock of `time.monotonic()`.
    """

    @property
    def peer(self) -> str: ...
    @property
    def kind(self) -> _BgpEventKind: ...
    @property
    def reason(self) -> str: ...
    @property
    def code(self) -> int | None: ...
    @property
    def subcode(self) -> int | None: ...
    @property
    def at(self) -> float: ...

@final
class BgpSpeaker:
    """The BGP sessions of a node on one Rust thread, started at construction; active side only (it connects
    to each peer's port and never listens).

    With `netns` the thread enters /var/run/netns/NAME (CAP_SYS_ADMIN; BgpNetnsError, an OSError, if it
    cannot). Bad arguments raise ValueError, an unknown peer KeyError; either way nothing changes. Calls
    after stop() raise BgpError (a RuntimeError). stop() (and leaving the `with` block) sends a Cease to
    every peer first, except to a peer that negotiated graceful restart (closed without one: it keeps our
    routes), then a BFD AdminDown to every BFD peer.
    """

    def __new__(cls, *, netns: str | None = None) -> BgpSpeaker: ...
    def add_peer(
        self,
        name: str,
        address: str,
        *,
        my_asn: int,
        peer_asn: int | None = None,
        dynamic_asn: Literal["internal", "external"] | None = None,
        router_id: str,
        port: int = 179,
        source_address: str | None = None,
        hold_time: float = 90.0,
        keepalive_time: float | None = None,
        connect_time: float = 10.0,
        password: str | None = None,
        ebgp_multihop: bool = False,
        families: Sequence[Literal["ipv4", "ipv6"]] = ...,
        next_hop_v4: str | None = None,
        next_hop_v6: str | None = None,
        graceful_restart: bool = False,
        bfd: BfdSettings | None = None,
    ) -> bool:
        """Add a peer or reconfigure it; True if a session was (re)started. Same parameters: no-op; changed
        session parameters: Cease 6/6, then a new session; only next hops or BFD changed: no reset.
        `graceful_restart`: RFC 4724 (stop() closes without a Cease; the peer keeps our routes). `bfd`: a BFD
        session whose failure ends the BGP session at once and holds it until BFD is up again."""
    def remove_peer(self, name: str) -> bool:
        """Cease 6/3 ("peer de-configured"), close, forget the peer; whether it existed."""
    def set_routes(self, peer: str, routes: Mapping[str, BgpRoute]) -> None:
        """Make `routes` (prefix -> attributes) all the peer should hold; never resets the session."""
    def advertise(
        self,
        peer: str,
        prefix: str,
        *,
        local_pref: int | None = None,
        communities: Sequence[str] = ...,
        large_communities: Sequence[str] = ...,
    ) -> None: ...
    def withdraw(self, peer: str, prefix: str) -> bool: ...
    def peers(self) -> list[BgpPeerStatus]: ...
    def peer(self, name: str) -> BgpPeerStatus | None: ...
    def next_event(self, timeout: float | None = None) -> BgpEvent | None: ...
    def events(self) -> list[BgpEvent]: ...
    @property
    def events_dropped(self) -> int: ...
    def stop(self) -> None: ...
    def __enter__(self) -> BgpSpeaker: ...
    def __exit__(
        self,
        _exc_type: type[BaseException] | None = None,
        _exc: BaseException | None = None,
        _traceback: TracebackType | None = None,
    ) -> bool: ...
    @property
    def running(self) -> bool: ...
    @property
    def netns(self) -> str | None: ...
