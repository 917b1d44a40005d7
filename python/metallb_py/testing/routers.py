"""Real routing daemons from Debian (FRR, BIRD 2, GoBGP) run inside a network namespace, for the BGP tests,
the demo and the benchmarks: the other end of the speaker's sessions, and the floor it is measured against.

Each daemon class (`FrrRouter`, `BirdRouter`, `GobgpRouter`) owns one instance: its configuration, rendered
from a `RouterConfig` by a pure function (`frr_config`, `bird_config`, `gobgp_config`); its processes,
started with `ip netns exec` and awaited on their control sockets, not on sleeps; and its state directory
(configuration, sockets, pid files, logs) under $TMPDIR/metallb-py-routers, removed on stop. The host's own
/etc/frr, /etc/bird, running services and ports are never used: every path is given on the command line.
`cleanup_stale_routers` (also run before each start) kills the daemons of a Python process that died
without stopping them.

Every class reads the daemon's own view and turns it into the same shapes: `neighbors()` ->
{address: Neighbor}, `routes(family)` -> {prefix: [BgpPath]}, `rib_size(family)` -> prefixes in the BGP table,
and `fib(family)` -> {prefix: [NextHop]} from the namespace's kernel table (`read_fib`). Communities use
MetalLB's spelling: '65000:100' (well-known ones as numbers too: no-export is '65535:65281') and
'large:1:2:3'. `wait_established`, `wait_routes` and `wait_fib` poll those views until a predicate holds.
FRR and BIRD also run BFD beside the sessions that ask for it (`Peer.bfd`, a `BfdConfig`): `bfd_peers()` ->
{address: BfdPeerView} and `wait_bfd`; and with `RouterConfig.graceful_restart` they keep a restarting
neighbor's routes as stale: `graceful_restart_state(peer)`.

A daemon with `RouterConfig.originate` announces those prefixes (with their communities) to its peers: a
stand-in for a speaker, and the floor of the benchmarks (`kill()` is a SIGKILL, as for a speaker).

Needs root (namespaces, and FRR drops to its own `frr` user, so its directory is handed to it).
"""

from __future__ import annotations

import abc
import contextlib
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, Self, TypeVar

from metallb_py.errors import MetalLBError
from metallb_py.testing.process import NO_PROXY_ENV, ChildProcess, run_checked, tail_log

__all__ = [
    "APT_PACKAGES",
    "BFD_STATES",
    "ESTABLISHED",
    "ROUTER_KINDS",
    "BfdConfig",
    "BfdCounters",
    "BfdPeerView",
    "BgpPath",
    "BirdRouter",
    "FrrRouter",
    "GobgpRouter",
    "GracefulRestartView",
    "ListenRange",
    "Neighbor",
    "NextHop",
    "Origination",
    "Peer",
    "RouterConfig",
    "RouterDaemon",
    "RouterError",
    "RouterKind",
    "RouterNotInstalledError",
    "RouterTimeoutError",
    "bird_config",
    "cleanup_stale_routers",
    "frr_config",
    "gobgp_config",
    "make_router",
    "missing_binaries",
    "read_fib",
]

RouterKind = Literal["frr", "bird", "gobgp"]
ROUTER_KINDS: tuple[RouterKind, ...] = ("frr", "bird", "gobgp")
ESTABLISHED = "established"
# RFC 4271's states, in the spelling every view is normalized to.
STATES = ("idle", "connect", "active", "opensent", "openconfirm", "established")
# RFC 5880's session states, in the spelling every BFD view is normalized to.
BFD_STATES = ("admin-down", "down", "init", "up")
_STATE_ROOT = Path(tempfile.gettempdir()) / "metallb-py-routers"
# FRR keeps a crash-log directory per process, /var/tmp/frr/bgpd.<pid>: removed after a SIGKILL.
_FRR_CRASH_DIR = Path("/var/tmp/frr")
_FRR_DIRS = ("/usr/lib/frr", "/usr/libexec/frr")
# How long FRR keeps a restarting neighbor's stale routes at most, waiting for its End-of-RIB (FRR's
# default, written out: a graceful-restart test depends on it).
_FRR_STALEPATH_TIME = 360
# The Debian packages that carry each kind (named in RouterNotInstalledError and in test skips).
APT_PACKAGES: dict[str, str] = {"frr": "frr", "bird": "bird2", "gobgp": "gobgpd"}
# sockaddr_un.sun_path is 108 bytes: leave room for the longest socket name under the state directory.
_MAX_SOCKET_PATH = 100
_POLL = 0.005  # start-up: a file or socket appearing
_VIEW_POLL = 0.05  # waits on a view: each read is a vtysh, birdc or gobgp call
_MAX_SHOWN = 2000  # of a last view in a timeout's message
_PASSWORD = re.compile(r"^[!#-&(-\[\]-~]{1,80}$")  # printable ASCII without space, quotes or backslash
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
T = TypeVar("T")

# Well-known communities (RFC 1997, 7999, 8326, 8642, ...): FRR prints them by name; we print numbers.
WELL_KNOWN_COMMUNITIES = {
    "internet": "0:0",
    "graceful-shutdown": "65535:0",
    "accept-own": "65535:1",
    "route-filter-translated-v4": "65535:2",
    "route-filter-v4": "65535:3",
    "route-filter-translated-v6": "65535:4",
    "route-filter-v6": "65535:5",
    "llgr-stale": "65535:6",
    "no-llgr": "65535:7",
    "accept-own-nexthop": "65535:8",
    "blackhole": "65535:666",
    "no-export": "65535:65281",
    "no-advertise": "65535:65282",
    "local-AS": "65535:65283",
    "no-peer": "65535:65284",
}


class RouterError(MetalLBError):
    """A routing daemon could not be configured, started, read or stopped; the message says which and why."""


class RouterNotInstalledError(RouterError):
    """The daemon's binaries are missing; the message names them and the Debian package to install."""


class RouterTimeoutError(RouterError):
    """A wait_* gave up; `last` is the last view read (neighbors, routes or FIB), for the test's message."""

    def __init__(self, message: str, last: object) -> None:
        super().__init__(message)
        self.last = last


# -- configuration -------------------------------------------------------------------------------------------


def _ip(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise RouterError(f"{what} {value!r} is not an IP address") from None


def _asn(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4294967295:
        raise RouterError(f"{what} {value!r}: an AS number is an integer from 1 to 4294967295")
    return value


def _families(value: Iterable[int], what: str) -> tuple[int, ...]:
    families = tuple(sorted(set(value)))
    if not families or any(f not in (4, 6) for f in families):
        raise RouterError(f"{what} {value!r}: families are 4 and/or 6")
    return families


def _timers(hold: int | None, keepalive: int | None, what: str) -> None:
    if hold is not None and hold != 0 and not 3 <= hold <= 65535:
        raise RouterError(f"{what}: hold_time {hold} must be 0 or 3..65535 seconds (RFC 4271)")
    if keepalive is not None:
        if hold is None:
            raise RouterError(f"{what}: keepalive_time needs hold_time too")
        if not 0 <= keepalive <= 65535 or (hold and keepalive >= hold):
            raise RouterError(f"{what}: keepalive_time {keepalive} must be below hold_time {hold}")


def _password(value: str | None, what: str) -> None:
    if value is not None and not _PASSWORD.match(value):
        raise RouterError(
            f"{what}: a TCP MD5 password here is 1 to 80 printable ASCII characters without spaces, quotes "
            "or backslashes (each daemon's configuration language must carry it as is)"
        )


def _community(value: str, what: str) -> str:
    """'65000:100' as is; a well-known name (FRR's spelling) as its number."""
    value = WELL_KNOWN_COMMUNITIES.get(value, value)
    parts = value.split(":")
    if len(parts) != 2 or not all(p.isdigit() and int(p) <= 65535 for p in parts):
        raise RouterError(f"{what}: community {value!r} is not 'ASN:VALUE' with two 16-bit numbers")
    return f"{int(parts[0])}:{int(parts[1])}"


def _large_community(value: str, what: str) -> str:
    parts = value.split(":")
    if (
        len(parts) != 4
        or parts[0] != "large"
        or not all(p.isdigit() and int(p) <= 4294967295 for p in parts[1:])
    ):
        raise RouterError(f"{what}: large community {value!r} is not 'large:A:B:C' with three 32-bit numbers")
    return "large:" + ":".join(str(int(p)) for p in parts[1:])


@dataclass(frozen=True)
class BfdConfig:
    """The BFD settings of one session (RFC 5880), as a MetalLB BFDProfile carries them.

    Intervals are in milliseconds: `receive_interval_ms` is the slowest rate this end accepts packets at,
    `transmit_interval_ms` the fastest it wishes to send at, `detect_multiplier` how many intervals without a
    packet mean the path is down. `passive` sends nothing until the neighbor's first packet. `minimum_ttl`
    drops multihop packets that arrive with a lower TTL (multihop sessions only: single hop wants 255).
    `echo` turns on echo mode at `echo_interval_ms` (FRR only, single hop only). The defaults are MetalLB's.
    """

    receive_interval_ms: int = 300
    transmit_interval_ms: int = 300
    detect_multiplier: int = 3
    passive: bool = False
    minimum_ttl: int | None = None
    echo: bool = False
    echo_interval_ms: int = 50

    def __post_init__(self) -> None:
        # The ranges of MetalLB's BFDProfile, which FRR's bfdd also takes.
        for name in ("receive_interval_ms", "transmit_interval_ms", "echo_interval_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 10 <= value <= 60000:
                raise RouterError(f"BFD {name} {value!r} must be 10..60000 milliseconds")
        multiplier = self.detect_multiplier
        if isinstance(multiplier, bool) or not isinstance(multiplier, int) or not 2 <= multiplier <= 255:
            raise RouterError(f"BFD detect_multiplier {multiplier!r} must be 2..255")
        ttl = self.minimum_ttl
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 254):
            raise RouterError(f"BFD minimum_ttl {ttl!r} must be 1..254")
        for name in ("passive", "echo"):
            if not isinstance(getattr(self, name), bool):
                raise RouterError(f"BFD {name} {getattr(self, name)!r} must be True or False")


def _bfd(value: BfdConfig | bool | None, what: str, multihop: bool) -> BfdConfig | None:
    """A session's BFD settings: True means MetalLB's defaults, False or None no BFD."""
    if value is True:
        value = BfdConfig()
    if value is False or value is None:
        return None
    if not isinstance(value, BfdConfig):
        raise RouterError(f"{what}: bfd {value!r} is not a BfdConfig (or True for the defaults)")
    if value.minimum_ttl is not None and not multihop:
        raise RouterError(
            f"{what}: BFD minimum_ttl applies to multihop sessions only: set multihop_ttl or drop minimum_ttl"
        )
    if value.echo and multihop:
        raise RouterError(f"{what}: BFD echo mode is single hop only (RFC 5883): drop echo or multihop_ttl")
    return value


@dataclass(frozen=True)
class Peer:
    """One configured BGP neighbor of a daemon.

    `asn` is the neighbor's AS: equal to the daemon's own AS makes the session iBGP. `families` are the
    address families carried on the session (MP-BGP: IPv6 prefixes over an IPv4 session, and the other way).
    `multihop_ttl` allows an eBGP neighbor that many hops away. `password` turns on TCP MD5 (RFC 2385).
    `passive` waits for the neighbor to connect. Timers are in seconds; None leaves the daemon's default
    (FRR 60/180, BIRD 80/240, GoBGP 30/90), except `connect_retry`, short so a lab reconnects quickly.
    `bfd` runs a BFD session beside the BGP session (FRR's bfdd, BIRD's bfd protocol; GoBGP has none) with
    those settings (True: MetalLB's defaults); it is multihop (RFC 5883) exactly when `multihop_ttl` is set.
    A BFD down ends the BGP session at once.
    """

    address: str
    asn: int
    families: tuple[int, ...] = (4, 6)
    port: int = 179
    source_address: str | None = None
    multihop_ttl: int | None = None
    password: str | None = None
    passive: bool = False
    hold_time: int | None = None
    keepalive_time: int | None = None
    connect_retry: int = 2
    bfd: BfdConfig | None = None

    def __init__(
        self,
        address: str,
        asn: int,
        *,
        families: Iterable[int] = (4, 6),
        port: int = 179,
        source_address: str | None = None,
        multihop_ttl: int | None = None,
        password: str | None = None,
        passive: bool = False,
        hold_time: int | None = None,
        keepalive_time: int | None = None,
        connect_retry: int = 2,
        bfd: BfdConfig | bool | None = None,
    ) -> None:
        address = _ip(address, "peer address")
        what = f"peer {address}"
        _asn(asn, f"{what}: asn")
        if source_address is not None:
            source_address = _ip(source_address, f"{what}: source_address")
        if not 1 <= port <= 65535:
            raise RouterError(f"{what}: port {port} is not a TCP port")
        if multihop_ttl is not None and not 1 <= multihop_ttl <= 255:
            raise RouterError(f"{what}: multihop_ttl {multihop_ttl} must be 1..255")
        if not 1 <= connect_retry <= 65535:
            raise RouterError(f"{what}: connect_retry {connect_retry} must be 1..65535 seconds")
        _timers(hold_time, keepalive_time, what)
        _password(password, what)
        values: dict[str, object] = {
            "address": address,
            "asn": asn,
            "families": _families(families, f"{what}: families"),
            "port": port,
            "source_address": source_address,
            "multihop_ttl": multihop_ttl,
            "password": password,
            "passive": passive,
            "hold_time": hold_time,
            "keepalive_time": keepalive_time,
            "connect_retry": connect_retry,
            "bfd": _bfd(bfd, what, multihop_ttl is not None),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def version(self) -> int:
        return ipaddress.ip_address(self.address).version

    @property
    def bfd_multihop(self) -> bool:
        """Whether this neighbor's BFD session is multihop (UDP 4784) rather than single hop (3784)."""
        return self.multihop_ttl is not None


@dataclass(frozen=True)
class ListenRange:
    """Dynamic neighbors: any address in `prefix` may open a session (FRR `bgp listen range` with a peer
    group, BIRD `neighbor range`, GoBGP `dynamic-neighbors`). They appear in `neighbors()` once connected.
    `asn` None accepts any other AS (eBGP; not on GoBGP). `bfd` as for a Peer, for every such neighbor."""

    prefix: str
    asn: int | None = None
    families: tuple[int, ...] = (4, 6)
    password: str | None = None
    multihop_ttl: int | None = None
    hold_time: int | None = None
    keepalive_time: int | None = None
    bfd: BfdConfig | None = None

    def __init__(
        self,
        prefix: str,
        asn: int | None = None,
        *,
        families: Iterable[int] = (4, 6),
        password: str | None = None,
        multihop_ttl: int | None = None,
        hold_time: int | None = None,
        keepalive_time: int | None = None,
        bfd: BfdConfig | bool | None = None,
    ) -> None:
        try:
            prefix = str(ipaddress.ip_network(prefix, strict=True))
        except ValueError as exc:
            raise RouterError(f"listen range {prefix!r}: {exc}") from None
        what = f"listen range {prefix}"
        if asn is not None:
            _asn(asn, f"{what}: asn")
        if multihop_ttl is not None and not 1 <= multihop_ttl <= 255:
            raise RouterError(f"{what}: multihop_ttl {multihop_ttl} must be 1..255")
        _timers(hold_time, keepalive_time, what)
        _password(password, what)
        values: dict[str, object] = {
            "prefix": prefix,
            "asn": asn,
            "families": _families(families, f"{what}: families"),
            "password": password,
            "multihop_ttl": multihop_ttl,
            "hold_time": hold_time,
            "keepalive_time": keepalive_time,
            "bfd": _bfd(bfd, what, multihop_ttl is not None),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @property
    def bfd_multihop(self) -> bool:
        return self.multihop_ttl is not None


@dataclass(frozen=True)
class Origination:
    """A prefix the daemon announces itself, with its attributes (`local_pref` reaches iBGP peers only)."""

    prefix: str
    communities: tuple[str, ...] = ()
    large_communities: tuple[str, ...] = ()
    local_pref: int | None = None

    def __post_init__(self) -> None:
        try:
            net = ipaddress.ip_network(self.prefix, strict=True)
        except ValueError as exc:
            raise RouterError(f"originated prefix {self.prefix!r}: {exc}") from None
        what = f"originated prefix {net}"
        object.__setattr__(self, "prefix", str(net))
        object.__setattr__(self, "communities", tuple(_community(c, what) for c in self.communities))
        object.__setattr__(
            self, "large_communities", tuple(_large_community(c, what) for c in self.large_communities)
        )
        if self.local_pref is not None and not 0 <= self.local_pref <= 4294967295:
            raise RouterError(f"{what}: local_pref {self.local_pref} is not a 32-bit number")

    @property
    def version(self) -> int:
        return ipaddress.ip_network(self.prefix).version

    @property
    def attributes(self) -> tuple[tuple[str, ...], tuple[str, ...], int | None]:
        return (self.communities, self.large_communities, self.local_pref)


def _origination(item: str | Origination) -> Origination:
    if isinstance(item, Origination):
        return item
    text = str(item)
    if "/" not in text:  # a bare address: its host route, as a speaker announces a VIP
        text += "/32" if ipaddress.ip_address(text).version == 4 else "/128"
    return Origination(text)


@dataclass(frozen=True)
class RouterConfig:
    """What one daemon instance is told; rendered by frr_config, bird_config or gobgp_config.

    `asn`, `router_id` (an IPv4 address, also on IPv6-only routers), static `peers` and dynamic
    `listen_ranges`. `listen_port` 0 makes the daemon never accept (active sessions only);
    `listen_addresses` limits where it accepts (every address of the namespace by default; BIRD binds each
    session to the listen address of its family, `strict bind`).
    `max_paths` > 1 turns on ECMP: in the BGP table and in the kernel FIB (FRR `maximum-paths`, also for
    iBGP, with `bgp bestpath as-path multipath-relax` so paths from different neighbor ASes combine; BIRD
    `merge paths`). `install_routes` puts the best paths into the namespace's kernel FIB (GoBGP never does).
    `graceful_restart` False (the default) turns graceful restart off, capability and helper role alike, so
    a dead neighbor's routes go when its TCP session closes, as convergence tests expect; True turns it on
    (RFC 4724) in both roles: the daemon advertises the capability, and keeps the routes of a neighbor that
    advertised it too as stale while that neighbor restarts, for the restart time the neighbor advertised,
    until its End-of-RIB (FRR `bgp graceful-restart` with a 360 s stale-path time, BIRD `graceful restart
    on`). GoBGP keeps its default (off).
    `originate`: prefixes announced to every peer (a bare address means its /32 or /128);
    `next_hop_v4`/`next_hop_v6` set their next hop (needed for IPv6 prefixes over an IPv4 session).
    """

    asn: int
    router_id: str
    peers: tuple[Peer, ...] = ()
    listen_ranges: tuple[ListenRange, ...] = ()
    listen_port: int = 179
    listen_addresses: tuple[str, ...] = ()
    max_paths: int = 1
    install_routes: bool = True
    graceful_restart: bool = False
    originate: tuple[Origination, ...] = ()
    next_hop_v4: str | None = None
    next_hop_v6: str | None = None

    def __init__(
        self,
        asn: int,
        router_id: str,
        peers: Iterable[Peer] = (),
        listen_ranges: Iterable[ListenRange] = (),
        *,
        listen_port: int = 179,
        listen_addresses: Iterable[str] = (),
        max_paths: int = 1,
        install_routes: bool = True,
        graceful_restart: bool = False,
        originate: Iterable[str | Origination] = (),
        next_hop_v4: str | None = None,
        next_hop_v6: str | None = None,
    ) -> None:
        _asn(asn, "asn")
        rid = _ip(router_id, "router_id")
        if ipaddress.ip_address(rid).version != 4:
            raise RouterError(f"router_id {router_id!r} must be an IPv4 address (a 32-bit BGP identifier)")
        peers = tuple(peers)
        addresses = [p.address for p in peers]
        if len(set(addresses)) != len(addresses):
            raise RouterError(f"peer addresses repeat: {addresses}")
        if not 0 <= listen_port <= 65535:
            raise RouterError(f"listen_port {listen_port} is not a TCP port (0: do not listen)")
        if not 1 <= max_paths <= 64:
            raise RouterError(f"max_paths {max_paths} must be 1 (no ECMP) to 64")
        originated = tuple(_origination(o) for o in originate)
        prefixes = [o.prefix for o in originated]
        if len(set(prefixes)) != len(prefixes):
            raise RouterError("originated prefixes repeat")
        for hop, version in ((next_hop_v4, 4), (next_hop_v6, 6)):
            if hop is not None and ipaddress.ip_address(_ip(hop, "next hop")).version != version:
                raise RouterError(f"next_hop_v{version} {hop!r} is not an IPv{version} address")
        object.__setattr__(self, "asn", asn)
        object.__setattr__(self, "router_id", rid)
        object.__setattr__(self, "peers", peers)
        object.__setattr__(self, "listen_ranges", tuple(listen_ranges))
        object.__setattr__(self, "listen_port", listen_port)
        object.__setattr__(
            self, "listen_addresses", tuple(_ip(a, "listen address") for a in listen_addresses)
        )
        object.__setattr__(self, "max_paths", max_paths)
        object.__setattr__(self, "install_routes", install_routes)
        object.__setattr__(self, "graceful_restart", graceful_restart)
        object.__setattr__(self, "originate", originated)
        object.__setattr__(self, "next_hop_v4", next_hop_v4 and _ip(next_hop_v4, "next_hop_v4"))
        object.__setattr__(self, "next_hop_v6", next_hop_v6 and _ip(next_hop_v6, "next_hop_v6"))

    def originated(self, version: int) -> list[Origination]:
        return [o for o in self.originate if o.version == version]

    @property
    def bfd(self) -> bool:
        """Whether any session has BFD (FRR then runs bfdd, BIRD a bfd protocol)."""
        return bool(self.bfd_settings)

    @property
    def bfd_settings(self) -> tuple[BfdConfig, ...]:
        """The distinct BFD settings of the sessions, in order of appearance (FRR: one profile each)."""
        sessions: list[Peer | ListenRange] = [*self.peers, *self.listen_ranges]
        found = [s.bfd for s in sessions if s.bfd is not None]
        return tuple(dict.fromkeys(found))


# -- views ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Neighbor:
    """One neighbor as the daemon sees it. `state` is one of STATES ('established', 'active', ...);
    `uptime_s` is how long the session has been established (None when it is not); `prefixes_received`
    counts the prefixes accepted from it over every family. `last_error` is the last NOTIFICATION or
    error the daemon reports for it ('OPEN Message Error/Bad Peer AS' in FRR's words, 'Received: Bad peer
    AS' in BIRD's; GoBGP reports none), None when there was none."""

    address: str
    state: str
    uptime_s: float | None
    prefixes_received: int
    remote_asn: int | None = None
    last_error: str | None = None
    graceful_restart: bool | None = None

    @property
    def established(self) -> bool:
        return self.state == ESTABLISHED


@dataclass(frozen=True)
class GracefulRestartView:
    """Graceful restart (RFC 4724) with one neighbor, as the daemon sees it. `negotiated`: both ends
    advertised the capability on the current session, or the daemon is helping the neighbor restart
    (False while a session without it is down). `neighbor_restarting`: the session is down and the daemon
    holds the neighbor's routes as stale, its restart timer running. `stale_routes`: how many of that
    neighbor's paths are stale now, over both families. `neighbor_restart_time_s`: the restart time the
    neighbor advertised (None when not shown)."""

    address: str
    negotiated: bool
    neighbor_restarting: bool
    stale_routes: int
    neighbor_restart_time_s: int | None = None


@dataclass(frozen=True)
class BfdPeerView:
    """One BFD session as the daemon sees it. `state` is one of BFD_STATES ('up', 'down', 'init',
    'admin-down'); `multihop` None when the daemon does not say. Intervals are in milliseconds: the local
    ones as configured, the remote ones as the neighbor's last packet announced (FRR shows both, BIRD
    neither); `minimum_ttl` is what a multihop session accepts (FRR); `interval_ms` and
    `detection_time_ms` are the transmit interval and detection time in use (BIRD shows them).
    `uptime_s`/`downtime_s`: how long the session has been up, or not up. Diagnostics are in the daemon's
    words ('control detection time expired', 'neighbor signaled session down', ...), None
    when not shown. A field the daemon does not show is None."""

    address: str
    state: str
    multihop: bool | None
    local_address: str | None = None
    interface: str | None = None
    passive: bool | None = None
    uptime_s: float | None = None
    downtime_s: float | None = None
    local_diagnostic: str | None = None
    remote_diagnostic: str | None = None
    receive_interval_ms: int | None = None
    transmit_interval_ms: int | None = None
    detect_multiplier: int | None = None
    remote_receive_interval_ms: int | None = None
    remote_transmit_interval_ms: int | None = None
    remote_detect_multiplier: int | None = None
    minimum_ttl: int | None = None
    interval_ms: float | None = None
    detection_time_ms: float | None = None

    @property
    def up(self) -> bool:
        return self.state == "up"


@dataclass(frozen=True)
class BfdCounters:
    """FRR's counters of one BFD session (`show bfd peers counters`): control and echo packets in and
    out, and how many times the session went up and down since bfdd created it."""

    address: str
    multihop: bool
    control_received: int
    control_sent: int
    echo_received: int
    echo_sent: int
    up_events: int
    down_events: int


@dataclass(frozen=True)
class BgpPath:
    """One path of a prefix in the daemon's BGP table. `peer` is the neighbor it came from (None when the
    daemon originated it); `local_pref` as the daemon holds it (BIRD gives eBGP paths its default 100).
    `stale`: kept from a neighbor that is restarting (graceful restart), until it sends the path again."""

    next_hop: str | None
    as_path: tuple[int, ...]
    local_pref: int | None
    communities: tuple[str, ...]
    large_communities: tuple[str, ...]
    best: bool
    peer: str | None = None
    med: int | None = None
    stale: bool = False


@dataclass(frozen=True)
class NextHop:
    """One next hop of a kernel route (ECMP routes have several)."""

    gateway: str | None
    dev: str | None
    weight: int = 1


def _state(value: object) -> str:
    """Each daemon's spelling of the FSM state, as one of STATES."""
    if isinstance(value, int):  # GoBGP's enum: 1 idle .. 6 established
        return STATES[value - 1] if 1 <= value <= 6 else "idle"
    text = str(value).lower().removeprefix("bgp_fsm_").replace("_", "")
    return text if text in STATES else "idle"


def _bfd_state(value: object) -> str:
    """Each daemon's spelling of a BFD state ('Up', 'AdminDown', FRR's 'shutdown'), as one of BFD_STATES."""
    text = str(value).lower().replace("_", "").replace("-", "")
    if text in ("admindown", "shutdown"):
        return "admin-down"
    return text if text in BFD_STATES else "down"


def read_fib(netns: str, family: int = 4, *, protocol: str | None = None) -> dict[str, list[NextHop]]:
    """The main routing table of `netns` (`ip -j route show`): prefix -> next hops, one per ECMP leg.
    `protocol` keeps only routes installed by it ('bgp' for FRR, 'bird', ...)."""
    argv = ["ip", "-n", netns, "-j", f"-{_afi(family)[-1]}", "route", "show", "table", "main"]
    if protocol is not None:
        argv += ["proto", protocol]
    return parse_ip_routes(json.loads(_run(argv) or "[]"), family)


def parse_ip_routes(rows: Iterable[Mapping[str, Any]], family: int = 4) -> dict[str, list[NextHop]]:
    """`ip -j route show` rows -> {prefix: [NextHop]}. Host routes become /32 and /128 prefixes, `default`
    0.0.0.0/0 or ::/0; link-local and multicast routes are left out."""
    out: dict[str, list[NextHop]] = {}
    for row in rows:
        dst = str(row.get("dst", ""))
        if dst == "default":
            dst = "0.0.0.0/0" if family == 4 else "::/0"
        elif "/" not in dst:
            dst += "/32" if family == 4 else "/128"
        if dst.startswith(("fe80:", "ff00:")) or row.get("type") in ("multicast", "local"):
            continue
        legs = row.get("nexthops") or [row]
        out[dst] = [
            NextHop(
                gateway=str(leg["gateway"]) if leg.get("gateway") else None,
                dev=str(leg["dev"]) if leg.get("dev") else None,
                weight=int(leg.get("weight", 1)),
            )
            for leg in legs
        ]
    return out


# -- processes -----------------------------------------------------------------------------------------------


def _run(argv: Sequence[str], *, stdin: str | None = None, timeout: float = 30.0) -> str:
    return run_checked(argv, RouterError, stdin=stdin, timeout=timeout)


def _frr_dir() -> Path | None:
    for candidate in (os.environ.get("METALLB_PY_FRR_DIR"), *_FRR_DIRS):
        if candidate and (Path(candidate) / "bgpd").exists():
            return Path(candidate)
    return None


def missing_binaries(kind: RouterKind) -> list[str]:
    """The programs `kind` needs that are not installed (empty when it can run)."""
    if kind == "frr":
        frr = _frr_dir()
        missing = [] if frr else ["bgpd"]
        missing += [d for d in ("zebra", "bfdd") if frr and not (frr / d).exists()]
        return missing + (["vtysh"] if shutil.which("vtysh") is None else [])
    if kind == "bird":
        return [] if shutil.which("bird") else ["bird"]
    if kind == "gobgp":
        return [b for b in ("gobgpd", "gobgp") if shutil.which(b) is None]
    raise RouterError(f"router kind {kind!r}: expected one of {', '.join(ROUTER_KINDS)}")


def _proc_start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/PID/stat): with the pid, it names one
    process for good, so a stale clean-up never kills a process that merely reused the pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _owner_alive(state: Path) -> bool:
    try:
        owner = int((state / "owner.pid").read_text())
        os.kill(owner, 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        return True  # unreadable or half-written: treat as a live instance of someone else
    return True


def _kill_recorded(state: Path) -> list[int]:
    """SIGKILLs the daemons recorded in `state`/daemons (`pid starttime name` lines) that still run."""
    killed = []
    with contextlib.suppress(OSError):
        for line in (state / "daemons").read_text().splitlines():
            with contextlib.suppress(ValueError):
                pid_text, started, name = line.split()
                pid = int(pid_text)
                if _proc_start_time(pid) == started:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                shutil.rmtree(_FRR_CRASH_DIR / f"{name}.{pid}", ignore_errors=True)
    return killed


def cleanup_stale_routers(*, force: bool = False) -> list[int]:
    """Kills the daemons of instances whose Python process died before stopping them (every instance with
    `force=True`), and removes their state directories. Returns the pids killed. Run before each start."""
    killed: list[int] = []
    with contextlib.suppress(OSError):
        for state in _STATE_ROOT.iterdir():
            if force or not _owner_alive(state):
                killed += _kill_recorded(state)
                shutil.rmtree(state, ignore_errors=True)
    return killed


class RouterDaemon(abc.ABC):
    """One routing daemon instance in a network namespace; see the module docstring.

    ```
    config = RouterConfig(64512, "198.51.100.254", [Peer("198.51.100.1", 64513)], max_paths=8)
    with FrrRouter(lab.router_ns, config) as router:
        router.wait_established("198.51.100.1")
        router.wait_routes(lambda rib: "192.168.1.11/32" in rib)
        router.fib()                                  # {"192.168.1.11/32": [NextHop("198.51.100.1", "eth0")]}
    ```
    """

    kind: ClassVar[RouterKind]

    def __init__(self, netns: str, config: RouterConfig, *, name: str | None = None) -> None:
        if name is not None and not _NAME.match(name):
            raise RouterError(f"name {name!r}: lowercase letters, digits and '-', starting with a letter")
        self.netns = netns
        self.config = config
        self.name = name or f"{self.kind}-{secrets.token_hex(4)}"
        self.state_dir = _STATE_ROOT / f"{self.name}-{secrets.token_hex(3)}"
        self._processes: list[ChildProcess] = []
        self._started = False
        self._check_config()

    def _check_config(self) -> None:  # noqa: B027 (most daemons can do everything)
        """Refuses what this daemon cannot do, before anything starts."""

    # -- life cycle --

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, timeout: float = 15.0) -> None:
        """Writes the configuration, starts the daemon(s) in the namespace and returns once their control
        sockets answer with the configuration loaded (not once sessions are up: see wait_established)."""
        if self._started:
            raise RouterError(f"{self} is already started")
        if os.geteuid() != 0:
            raise RouterError(f"{type(self).__name__} needs root (network namespaces)")
        if missing := missing_binaries(self.kind):
            raise RouterNotInstalledError(
                f"{self.kind} needs {', '.join(missing)}: apt-get install {APT_PACKAGES[self.kind]}"
            )
        if not Path("/run/netns", self.netns).exists():
            raise RouterError(
                f"network namespace {self.netns!r} does not exist (ip netns add, or a NetnsLab)"
            )
        if len(str(self.state_dir / "bgpd.vty.xxxx")) > _MAX_SOCKET_PATH:
            raise RouterError(f"state directory {self.state_dir} is too long for a socket path: set TMPDIR")
        cleanup_stale_routers()
        self._started = True
        try:
            _STATE_ROOT.mkdir(mode=0o755, exist_ok=True)
            _STATE_ROOT.chmod(0o755)  # FRR's user must traverse it
            self.state_dir.mkdir(mode=0o755)
            (self.state_dir / "owner.pid").write_text(f"{os.getpid()}\n")
            self._start(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise

    @abc.abstractmethod
    def _start(self, deadline: float) -> None: ...

    def _spawn(self, name: str, argv: Sequence[str]) -> ChildProcess:
        """Starts one daemon in the foreground inside the namespace (`ip netns exec` execs it: same pid)."""
        child = ChildProcess(
            f"{self.name}/{name}",
            ["ip", "netns", "exec", self.netns, *argv],
            self.state_dir / f"{name}.out",
            {**os.environ, **NO_PROXY_ENV},
        )
        self._processes.append(child)
        # Recorded at once: a Python process killed right now still has its daemons cleaned up later.
        started = _proc_start_time(child.pid) or "?"
        with (self.state_dir / "daemons").open("a") as f:
            f.write(f"{child.pid} {started} {name}\n")
        return child

    def _await(self, check: Callable[[], bool], deadline: float, what: str) -> None:
        """Polls `check` (a file, a socket: no sleep stands for readiness) until it holds; fails at once,
        with the logs, if a daemon exits meanwhile."""
        while not check():
            self._check_alive()
            if time.monotonic() >= deadline:
                raise RouterError(f"{self}: {what}: not within the start timeout\n{self.logs()}")
            time.sleep(_POLL)

    def _check_alive(self) -> None:
        for child in self._processes:
            if child.exited() is not None:
                raise RouterError(f"{self}: {child.name} exited with {child.returncode}\n{self.logs()}")

    def stop(self, grace: float = 5.0) -> None:
        """Stops the daemons (SIGTERM, then SIGKILL after `grace`) and removes the state directory. A
        stopped FRR withdraws its kernel routes. Safe to call twice."""
        for child in reversed(self._processes):
            child.terminate()
        for child in reversed(self._processes):
            child.wait(grace)
        self._forget()

    def kill(self) -> None:
        """SIGKILLs every process of the daemon at once, as a crash: its TCP sessions close, nothing is
        withdrawn, kernel routes stay. Then removes the state directory."""
        for child in self._processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGKILL)
        for child in self._processes:
            child.kill()
        self._forget()

    def _forget(self) -> None:
        for child in self._processes:
            shutil.rmtree(_FRR_CRASH_DIR / f"{child.name.rsplit('/', 1)[1]}.{child.pid}", ignore_errors=True)
        self._processes.clear()
        self._started = False
        shutil.rmtree(self.state_dir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return bool(self._processes) and all(c.running() for c in self._processes)

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self._processes]

    def logs(self, lines: int = 30) -> str:
        """The last lines of each log file of this instance, for error messages."""
        with contextlib.suppress(OSError):
            files = sorted(p for p in self.state_dir.rglob("*") if p.suffix in (".log", ".out"))
            return "\n".join(tail_log(p, lines) for p in files if p.stat().st_size)
        return "(no logs)"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name} in {self.netns})"

    def _require_running(self) -> None:
        if not self._started:
            raise RouterError(f"{self} is not running (use `with` or start())")

    # -- views --

    @abc.abstractmethod
    def neighbors(self) -> dict[str, Neighbor]:
        """Every configured neighbor, and every connected dynamic one, by address."""

    @abc.abstractmethod
    def routes(self, family: int = 4) -> dict[str, list[BgpPath]]:
        """The daemon's BGP table for one family: prefix -> paths (received and originated)."""

    @abc.abstractmethod
    def rib_size(self, family: int = 4) -> int:
        """How many prefixes the BGP table holds for `family`: a cheap view for thousands of prefixes."""

    def fib(self, family: int = 4) -> dict[str, list[NextHop]]:
        """The namespace's kernel routing table (see read_fib)."""
        return read_fib(self.netns, family)

    def bfd_peers(self) -> dict[str, BfdPeerView]:
        """The daemon's BFD sessions by peer address (empty when no session has BFD)."""
        raise RouterError(f"{self}: {type(self).__name__} has no BFD (use FrrRouter or BirdRouter)")

    def graceful_restart_state(self, peer: str) -> GracefulRestartView:
        """Graceful restart with one neighbor: negotiated, restarting, how many stale routes it holds."""
        raise RouterError(f"{self}: {type(self).__name__} has no graceful restart view (FRR and BIRD do)")

    # -- waits (polling the views; a RouterTimeoutError carries the last view read) --

    def _poll(self, read: Callable[[], T], done: Callable[[T], bool], timeout: float, what: str) -> T:
        self._require_running()
        deadline = time.monotonic() + timeout
        while True:
            value = read()
            if done(value):
                return value
            if time.monotonic() >= deadline:
                shown = repr(value)
                if len(shown) > _MAX_SHOWN:
                    shown = shown[:_MAX_SHOWN] + f"... ({len(shown)} characters)"
                raise RouterTimeoutError(
                    f"{self}: {what} not within {timeout:.1f} s; last view: {shown}", value
                )
            self._check_alive()
            time.sleep(_VIEW_POLL)

    def wait_established(self, peer: str, timeout: float = 15.0) -> Neighbor:
        """Waits until the session with `peer` is established; returns that neighbor."""
        address = _ip(peer, "peer")
        view = self._poll(
            self.neighbors,
            lambda n: address in n and n[address].established,
            timeout,
            f"session with {address} established",
        )
        return view[address]

    def wait_neighbors(
        self, predicate: Callable[[dict[str, Neighbor]], bool], timeout: float = 15.0
    ) -> dict[str, Neighbor]:
        return self._poll(self.neighbors, predicate, timeout, "neighbors")

    def wait_bfd(self, peer: str, state: str = "up", timeout: float = 15.0) -> BfdPeerView:
        """Waits until the BFD session with `peer` is in `state` (one of BFD_STATES); returns that view. A
        session the daemon does not list is in no state: waiting for 'down' needs the session to exist."""
        address = _ip(peer, "peer")
        if state not in BFD_STATES:
            raise RouterError(f"BFD state {state!r}: expected one of {', '.join(BFD_STATES)}")
        view = self._poll(
            self.bfd_peers,
            lambda v: address in v and v[address].state == state,
            timeout,
            f"BFD session with {address} {state}",
        )
        return view[address]

    def wait_routes(
        self, predicate: Callable[[dict[str, list[BgpPath]]], bool], family: int = 4, timeout: float = 15.0
    ) -> dict[str, list[BgpPath]]:
        """Waits until `predicate(routes(family))` holds; returns that view."""
        return self._poll(lambda: self.routes(family), predicate, timeout, f"IPv{family} routes")

    def wait_rib_size(self, count: int, family: int = 4, timeout: float = 60.0) -> int:
        return self._poll(lambda: self.rib_size(family), lambda n: n == count, timeout, f"{count} prefixes")

    def wait_fib(
        self, predicate: Callable[[dict[str, list[NextHop]]], bool], family: int = 4, timeout: float = 15.0
    ) -> dict[str, list[NextHop]]:
        """Waits until `predicate(fib(family))` holds; returns that view."""
        return self._poll(lambda: self.fib(family), predicate, timeout, f"IPv{family} FIB")


# -- FRR -----------------------------------------------------------------------------------------------------


def frr_config(config: RouterConfig, hostname: str) -> dict[str, str]:
    """The per-daemon configuration files of an FRR instance: {'zebra.conf': ..., 'bgpd.conf': ...}."""
    lines = [
        f"hostname {hostname}",
        "log timestamp precision 3",
        "!",
    ]
    # One route map per distinct set of attributes: thousands of prefixes share a handful.
    maps: dict[tuple[int, tuple[tuple[str, ...], tuple[str, ...], int | None]], str] = {}
    for o in config.originate:
        key = (o.version, o.attributes)
        if key in maps:
            continue
        name = maps[key] = f"ORIGINATE-{len(maps) + 1}"
        communities, large, local_pref = o.attributes
        lines.append(f"route-map {name} permit 10")
        if communities:
            lines.append(f" set community {' '.join(communities)}")
        if large:
            lines.append(f" set large-community {' '.join(c.removeprefix('large:') for c in large)}")
        if local_pref is not None:
            lines.append(f" set local-preference {local_pref}")
        if o.version == 4 and config.next_hop_v4:
            lines.append(f" set ip next-hop {config.next_hop_v4}")
        if o.version == 6 and config.next_hop_v6:
            lines.append(f" set ipv6 next-hop global {config.next_hop_v6}")
        lines.append("exit")
        lines.append("!")
    lines += [
        f"router bgp {config.asn}",
        f" bgp router-id {config.router_id}",
        " no bgp ebgp-requires-policy",
        " no bgp default ipv4-unicast",
        " no bgp network import-check",
        " bgp bestpath as-path multipath-relax",
        # Send to a new session at once: the default waits 1 s to group peers into update-groups.
        " coalesce-time 0",
    ]
    if config.graceful_restart:
        # Restarting and helper roles. A helper keeps a restarting neighbor's routes (stale) for the restart
        # time that neighbor advertised, then until its End-of-RIB, at most the stale-path time.
        lines.append(" bgp graceful-restart")
        lines.append(f" bgp graceful-restart stalepath-time {_FRR_STALEPATH_TIME}")
    else:
        lines.append(" bgp graceful-restart-disable")
    profiles = {settings: f"BFD-{index}" for index, settings in enumerate(config.bfd_settings, 1)}
    members: list[tuple[str, tuple[int, ...]]] = []
    for peer in config.peers:
        n = f" neighbor {peer.address}"
        lines.append(f"{n} remote-as {peer.asn}")
        if peer.port != 179:
            lines.append(f"{n} port {peer.port}")
        lines += _frr_session(n, peer, profiles, ibgp=peer.asn == config.asn)
        if peer.source_address:
            lines.append(f"{n} update-source {peer.source_address}")
        if peer.passive:
            lines.append(f"{n} passive")
        lines.append(f"{n} timers connect {peer.connect_retry}")
        lines.append(f"{n} advertisement-interval 0")
        members.append((peer.address, peer.families))
    for index, lr in enumerate(config.listen_ranges, 1):
        group = f"RANGE-{index}"
        n = f" neighbor {group}"
        lines.append(f"{n} peer-group")
        lines.append(f"{n} remote-as {lr.asn if lr.asn is not None else 'external'}")
        lines += _frr_session(n, lr, profiles, ibgp=lr.asn == config.asn)
        lines.append(f"{n} advertisement-interval 0")
        lines.append(f" bgp listen range {lr.prefix} peer-group {group}")
        members.append((group, lr.families))
    for version, afi in ((4, "ipv4"), (6, "ipv6")):
        lines.append(f" address-family {afi} unicast")
        # Always written: FRR's own default is multipath (as wide as it was built for), not one path.
        lines.append(f"  maximum-paths {config.max_paths}")
        lines.append(f"  maximum-paths ibgp {config.max_paths}")
        lines += [f"  neighbor {member} activate" for member, families in members if version in families]
        lines += [
            f"  network {o.prefix} route-map {maps[version, o.attributes]}"
            for o in config.originated(version)
        ]
        lines.append(" exit-address-family")
    lines += ["exit", "!"]
    zebra = [f"hostname {hostname}", "log timestamp precision 3", "!"]
    files = {"zebra.conf": "\n".join(zebra) + "\n", "bgpd.conf": "\n".join(lines) + "\n"}
    if config.bfd:
        files["bfdd.conf"] = "\n".join(
            [f"hostname {hostname}", "log timestamp precision 3", "!", *_frr_bfd(profiles)]
        )
    return files


def _frr_bfd(profiles: Mapping[BfdConfig, str]) -> list[str]:
    """bfdd's configuration: one profile per distinct setting; bgpd creates the sessions and names them."""
    lines = ["bfd"]
    for settings, name in profiles.items():
        lines += [
            f" profile {name}",
            f"  receive-interval {settings.receive_interval_ms}",
            f"  transmit-interval {settings.transmit_interval_ms}",
            f"  detect-multiplier {settings.detect_multiplier}",
        ]
        if settings.passive:
            lines.append("  passive-mode")
        if settings.minimum_ttl is not None:  # bfdd applies it to multihop sessions only
            lines.append(f"  minimum-ttl {settings.minimum_ttl}")
        if settings.echo:
            lines += [
                "  echo-mode",
                f"  echo transmit-interval {settings.echo_interval_ms}",
                f"  echo receive-interval {settings.echo_interval_ms}",
            ]
        lines += [" exit", " !"]
    return [*lines, "exit", "!", ""]


def _frr_session(
    n: str, session: Peer | ListenRange, profiles: Mapping[BfdConfig, str], *, ibgp: bool
) -> list[str]:
    lines = []
    if session.password:
        lines.append(f"{n} password {session.password}")
    if session.multihop_ttl is not None and not ibgp:  # iBGP is multihop already; FRR refuses the line
        lines.append(f"{n} ebgp-multihop {session.multihop_ttl}")
    if session.hold_time is not None:
        keepalive = session.keepalive_time if session.keepalive_time is not None else session.hold_time // 3
        lines.append(f"{n} timers {keepalive} {session.hold_time}")
    if session.bfd is not None:
        # bgpd asks bfdd for a multihop session when `ebgp-multihop` is set (eBGP), or for an iBGP neighbor
        # not on a connected network; else single hop, bound to the interface towards the neighbor.
        lines.append(f"{n} bfd")
        lines.append(f"{n} bfd profile {profiles[session.bfd]}")
    return lines


def _frr_communities(path: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    standard = str((path.get("community") or {}).get("string", "")).split()
    large = str((path.get("largeCommunity") or {}).get("string", "")).split()
    return (
        tuple(WELL_KNOWN_COMMUNITIES.get(c, c) for c in standard),
        tuple(f"large:{c}" for c in large),
    )


def _frr_next_hop(path: Mapping[str, Any]) -> str | None:
    hops = path.get("nexthops") or []
    # The global address first: an IPv6 path carries a link-local next hop beside it.
    ranked = sorted(hops, key=lambda h: h.get("scope") == "link-local")
    for hop in ranked:
        ip = hop.get("ip")
        if ip and ip not in ("0.0.0.0", "::"):
            return str(ip)
    return None


def parse_frr_routes(data: Mapping[str, Any]) -> dict[str, list[BgpPath]]:
    """`show bgp <afi> unicast json detail` -> {prefix: [BgpPath]}. FRR 8 lists the prefix's header first
    and then its paths; FRR 9 and later nest the paths under "paths": both are read."""
    out: dict[str, list[BgpPath]] = {}
    for prefix, entry in (data.get("routes") or {}).items():
        items = entry if isinstance(entry, list) else [entry]
        raw: list[Mapping[str, Any]] = []
        for item in items:
            if "paths" in item:
                raw += item["paths"]
            elif "nexthops" in item or "aspath" in item or "valid" in item:
                raw.append(item)
        paths = []
        for p in raw:
            communities, large = _frr_communities(p)
            peer = (p.get("peer") or {}).get("peerId")
            best = p.get("bestpath")
            paths.append(
                BgpPath(
                    next_hop=_frr_next_hop(p),
                    as_path=tuple(
                        int(a) for a in re.findall(r"\d+", str((p.get("aspath") or {}).get("string", "")))
                    ),
                    local_pref=int(p["locPrf"]) if "locPrf" in p else p.get("localpref"),
                    communities=communities,
                    large_communities=large,
                    best=bool(best.get("overall")) if isinstance(best, dict) else bool(best),
                    peer=str(peer) if peer and peer not in ("0.0.0.0", "::") else None,
                    med=int(p["metric"]) if "metric" in p else p.get("med"),
                    stale=bool(p.get("stale")),
                )
            )
        out[str(ipaddress.ip_network(prefix))] = paths
    return out


def parse_frr_neighbors(data: Mapping[str, Any]) -> dict[str, Neighbor]:
    """`show bgp neighbors json` -> {address: Neighbor}."""
    out = {}
    for address, info in data.items():
        if not isinstance(info, dict) or "bgpState" not in info:
            continue
        state = _state(info["bgpState"])
        received = sum(
            int(af.get("acceptedPrefixCounter", 0))
            for af in (info.get("addressFamilyInfo") or {}).values()
            if isinstance(af, dict)
        )
        uptime = info.get("bgpTimerUpMsec") if state == ESTABLISHED else None
        capabilities = info.get("neighborCapabilities") or {}
        out[str(ipaddress.ip_address(address))] = Neighbor(
            address=str(ipaddress.ip_address(address)),
            state=state,
            uptime_s=float(uptime) / 1000 if uptime is not None else None,
            prefixes_received=received,
            remote_asn=info.get("remoteAs"),
            last_error=info.get("lastNotificationReason"),
            graceful_restart=(
                capabilities.get("gracefulRestart") == "advertisedAndReceived"
                if state == ESTABLISHED
                else None
            ),
        )
    return out


def parse_frr_graceful_restart(
    data: Mapping[str, Any], routes: Iterable[Mapping[str, list[BgpPath]]]
) -> dict[str, GracefulRestartView]:
    """`show bgp neighbors json` and the BGP tables (parse_frr_routes) -> {address: GracefulRestartView}.
    While FRR helps a neighbor restart its session is down and `gracefulRestartInfo` carries the running
    restart timer (`gracefulRestartTimerMsecs`); the paths it keeps are marked `stale`."""
    stale: dict[str, int] = {}
    for table in routes:
        for paths in table.values():
            for path in paths:
                if path.stale and path.peer is not None:
                    stale[path.peer] = stale.get(path.peer, 0) + 1
    out = {}
    for raw, info in data.items():
        if not isinstance(info, dict) or "bgpState" not in info:
            continue
        address = str(ipaddress.ip_address(raw))
        gr = info.get("gracefulRestartInfo") or {}
        restarting = _state(info["bgpState"]) != ESTABLISHED and "gracefulRestartTimerMsecs" in gr
        capabilities = info.get("neighborCapabilities") or {}
        received = (gr.get("timers") or {}).get("receivedRestartTimer")
        # FRR shows a received timer of 0 when the neighbor offered no graceful restart at all.
        # (while it restarts, the session's capabilities are gone but the timer runs).
        offered = (
            restarting or "gracefulRestart" in capabilities or "gracefulRestartCapability" in capabilities
        )
        out[address] = GracefulRestartView(
            address=address,
            negotiated=restarting or capabilities.get("gracefulRestart") == "advertisedAndReceived",
            neighbor_restarting=restarting,
            stale_routes=stale.get(address, 0),
            neighbor_restart_time_s=int(received) if received is not None and offered else None,
        )
    return out


def parse_frr_bfd_peers(data: Iterable[Mapping[str, Any]]) -> dict[str, BfdPeerView]:
    """`show bfd peers json` -> {peer address: BfdPeerView}."""
    out = {}
    for entry in data:
        address = str(ipaddress.ip_address(entry["peer"]))

        def number(key: str, entry: Mapping[str, Any] = entry) -> int | None:
            value = entry.get(key)
            return int(value) if value is not None else None

        up = number("uptime")
        down = number("downtime")
        out[address] = BfdPeerView(
            address=address,
            state=_bfd_state(entry.get("status")),
            multihop=bool(entry["multihop"]) if "multihop" in entry else None,
            local_address=entry.get("local"),
            interface=entry.get("interface"),
            passive=entry.get("passive-mode"),
            uptime_s=float(up) if up is not None else None,
            downtime_s=float(down) if down is not None else None,
            local_diagnostic=entry.get("diagnostic"),
            remote_diagnostic=entry.get("remote-diagnostic"),
            receive_interval_ms=number("receive-interval"),
            transmit_interval_ms=number("transmit-interval"),
            detect_multiplier=number("detect-multiplier"),
            remote_receive_interval_ms=number("remote-receive-interval"),
            remote_transmit_interval_ms=number("remote-transmit-interval"),
            remote_detect_multiplier=number("remote-detect-multiplier"),
            minimum_ttl=number("minimum-ttl"),
        )
    return out


def parse_frr_bfd_counters(data: Iterable[Mapping[str, Any]]) -> dict[str, BfdCounters]:
    """`show bfd peers counters json` -> {peer address: BfdCounters}."""
    out = {}
    for entry in data:
        address = str(ipaddress.ip_address(entry["peer"]))
        out[address] = BfdCounters(
            address=address,
            multihop=bool(entry.get("multihop")),
            control_received=int(entry.get("control-packet-input", 0)),
            control_sent=int(entry.get("control-packet-output", 0)),
            echo_received=int(entry.get("echo-packet-input", 0)),
            echo_sent=int(entry.get("echo-packet-output", 0)),
            up_events=int(entry.get("session-up", 0)),
            down_events=int(entry.get("session-down", 0)),
        )
    return out


class FrrRouter(RouterDaemon):
    """FRR: zebra (the kernel FIB) and bgpd (+ bfdd when a peer asks for BFD), run as the `frr` user.

    Every path is explicit (`-f`, `-i`, `-z`, `--vty_socket`, and vtysh's `--vty_socket`/`--config_dir`), so
    the instance uses neither /etc/frr nor /var/run/frr and needs no `-N` pathspace; its directory is owned
    by `frr` because the daemons drop to that user right after reading their configuration. Views come
    from `vtysh -c 'show bgp ... json'`. `vtysh(...)` runs any other command, `configure(...)` changes the
    running configuration (a test that edits the router, as an operator would).
    """

    kind = "frr"
    _DAEMON_ARGS: ClassVar[dict[str, tuple[str, ...]]] = {
        # zebra: a netlink buffer big enough for thousands of routes at once, as Debian's default.
        "zebra": ("-s", "90000000"),
        "bgpd": (),
        "bfdd": (),
    }

    @property
    def daemons(self) -> tuple[str, ...]:
        """The FRR daemons this instance runs, in start order (bfdd only when a peer has `bfd`)."""
        return ("zebra", "bgpd", *(("bfdd",) if self.config.bfd else ()))

    @property
    def _run_dir(self) -> Path:
        return self.state_dir / "frr"

    def _start(self, deadline: float) -> None:
        frr = _frr_dir()
        assert frr is not None  # start() checked the binaries
        run = self._run_dir
        run.mkdir(mode=0o750)
        (run / "vtysh.conf").write_text("")
        for filename, text in frr_config(self.config, self.name).items():
            (run / filename).write_text(text)
        for path in (run, *run.iterdir()):
            shutil.chown(path, "frr", "frr")
        for daemon in self.daemons:
            argv = [
                str(frr / daemon),
                "-f", str(run / f"{daemon}.conf"),
                "-i", str(run / f"{daemon}.pid"),
                "-z", str(run / "zserv.api"),
                "--vty_socket", str(run),
                "-P", "0",  # no TCP vty
                "--log", f"file:{run / daemon}.log",
                *self._DAEMON_ARGS[daemon],
            ]  # fmt: skip
            if daemon == "bgpd":
                argv += ["-p", str(self.config.listen_port)]
                for address in self.config.listen_addresses:  # FRR 8's -l keeps the kernel routes
                    argv += ["-l", address]
                if not self.config.install_routes:
                    argv.append("-n")
            if daemon == "bfdd":
                argv += ["--bfdctl", str(run / "bfdd.sock")]
            self._spawn(daemon, argv)
            # The vty socket opens once the configuration is read; bgpd must find zebra's socket at once.
            vty = run / f"{daemon}.vty"
            self._await(vty.exists, deadline, f"{daemon} vty socket")
        self._await(self._loaded, deadline, "bgpd configuration loaded")

    def _loaded(self) -> bool:
        try:
            vrfs = json.loads(self.vtysh("show bgp vrfs json") or "{}").get("vrfs", {})
        except (RouterError, ValueError):
            return False
        default = vrfs.get("default") or {}
        return default.get("routerId") == self.config.router_id and int(
            default.get("numConfiguredPeers", 0)
        ) >= len(self.config.peers)

    def vtysh(self, *commands: str, timeout: float = 30.0) -> str:
        """Runs vtysh commands against this instance (`-c` each) and returns the output."""
        self._require_running()
        run = self._run_dir
        argv = ["vtysh", "--vty_socket", str(run), "--config_dir", str(run)]
        for command in commands:
            argv += ["-c", command]
        return _run(argv, timeout=timeout)

    def configure(self, *lines: str) -> None:
        """Applies configuration lines to the running daemons, as `configure terminal` would; for instance
        `configure("router bgp 64512", "neighbor 198.51.100.9 remote-as 64513")`."""
        self._require_running()
        out = self.vtysh("configure terminal", *lines)
        if "%" in out:  # vtysh reports a refused line with '% ...' and still exits 0
            raise RouterError(f"{self}: configuration refused: {out.strip()}")

    def _json(self, command: str) -> Any:
        self._require_running()
        text = self.vtysh(command)
        try:
            return json.loads(text or "{}")
        except ValueError:
            raise RouterError(f"{self}: {command!r} did not print JSON: {text[:500]}") from None

    def neighbors(self) -> dict[str, Neighbor]:
        return parse_frr_neighbors(self._json("show bgp neighbors json"))

    def routes(self, family: int = 4) -> dict[str, list[BgpPath]]:
        return parse_frr_routes(self._json(f"show bgp {_afi(family)} unicast json detail"))

    def bfd_peers(self) -> dict[str, BfdPeerView]:
        if not self.config.bfd:
            return {}  # no bfdd to ask
        return parse_frr_bfd_peers(self._json("show bfd peers json") or [])

    def bfd_counters(self) -> dict[str, BfdCounters]:
        """bfdd's packet and state-change counters per session, by peer address (up_events/down_events
        count every Up and every Down since the session was created: spurious downs in a soak)."""
        if not self.config.bfd:
            return {}
        return parse_frr_bfd_counters(self._json("show bfd peers counters json") or [])

    def graceful_restart_state(self, peer: str) -> GracefulRestartView:
        address = _ip(peer, "peer")
        neighbors = self._json("show bgp neighbors json")
        tables = [self.routes(4), self.routes(6)]
        views = parse_frr_graceful_restart(neighbors, tables)
        if address not in views:
            raise RouterError(f"{self}: no neighbor {address} (neighbors: {', '.join(views) or 'none'})")
        return views[address]

    def rib_size(self, family: int = 4) -> int:
        # The summary's ribCount counts the table's inner nodes too; the statistics count prefixes.
        stats = self._json(f"show bgp {_afi(family)} unicast statistics json")
        tables: list[dict[str, Any]] = next(iter(stats.values()), []) if isinstance(stats, dict) else []
        return int(tables[0].get("totalPrefixes", 0)) if tables else 0


def _afi(family: int) -> str:
    if family not in (4, 6):
        raise RouterError(f"family {family!r}: 4 or 6")
    return "ipv4" if family == 4 else "ipv6"


# -- BIRD ----------------------------------------------------------------------------------------------------


def _bird_quote(value: str) -> str:
    return '"' + value + '"'  # passwords are checked to hold no quote or backslash


def bird_config(config: RouterConfig, log: Path) -> str:
    """The bird.conf of a BIRD 2 instance. Protocols are named after their peers (`peer_198_51_100_1`)."""
    lines = [
        f"router id {config.router_id};",
        # Protocol times as Unix time: the neighbors view computes uptimes from them.
        'timeformat protocol "%s.%3f";',
        f"log {_bird_quote(str(log))} all;",
        "protocol device { }",
    ]
    if config.install_routes:
        merge = f" merge paths on limit {config.max_paths};" if config.max_paths > 1 else ""
        for afi in ("ipv4", "ipv6"):
            channel = f"{afi} {{ import none; export where source = RTS_BGP; }};"
            lines.append(f"protocol kernel kernel_{afi} {{ {channel}{merge} }}")
    for version, afi in ((4, "ipv4"), (6, "ipv6")):
        originated = config.originated(version)
        if not originated:
            continue
        lines.append(f"protocol static originate_{afi} {{")
        lines.append(f"  {afi};")
        for o in originated:
            actions = [f"bgp_community.add(({c.replace(':', ',')}));" for c in o.communities]
            actions += [
                f"bgp_large_community.add(({c.removeprefix('large:').replace(':', ',')}));"
                for c in o.large_communities
            ]
            if o.local_pref is not None:
                actions.append(f"bgp_local_pref = {o.local_pref};")
            body = f" {{ {' '.join(actions)} }}" if actions else ""
            lines.append(f"  route {o.prefix} blackhole{body};")
        lines.append("}")
    # BIRD's default is `aware`: the capability without address families, so a neighbor keeps none of
    # BIRD's routes when it restarts. `on` lists them (restarting and helper roles).
    gr = (
        "  graceful restart on;"
        if config.graceful_restart
        else "  graceful restart off;\n  long lived graceful restart off;"
    )
    for peer in config.peers:
        name = "peer_" + re.sub(r"[^0-9a-f]", "_", peer.address)
        lines.append(f"protocol bgp {name} {{")
        lines.append(_bird_local(config, peer.source_address, peer.version))
        if config.listen_addresses:
            lines.append("  strict bind on;")
        lines.append(f"  neighbor {peer.address} port {peer.port} as {peer.asn};")
        lines += _bird_direct(config, peer)
        lines += _bird_session(peer)
        if peer.passive:
            lines.append("  passive on;")
        lines.append(f"  connect retry time {peer.connect_retry};")
        lines += gr.splitlines()
        lines += _bird_channels(config, peer.families)
        lines.append("}")
    for index, lr in enumerate(config.listen_ranges, 1):
        asn = f"as {lr.asn}" if lr.asn is not None else "external"
        lines.append(f"protocol bgp range_{index} {{")
        lines.append(_bird_local(config, None, ipaddress.ip_network(lr.prefix).version))
        if config.listen_addresses:
            lines.append("  strict bind on;")
        lines.append(f"  neighbor range {lr.prefix} {asn};")
        lines.append(f'  dynamic name "range_{index}_";')
        lines += _bird_direct(config, lr)
        lines += _bird_session(lr)
        lines += gr.splitlines()
        lines += _bird_channels(config, lr.families)
        lines.append("}")
    if config.bfd:
        lines.append("protocol bfd { }")
    return "\n".join(lines) + "\n"


def _bird_local(config: RouterConfig, source: str | None, version: int) -> str:
    if source is None:
        source = next(
            (a for a in config.listen_addresses if ipaddress.ip_address(a).version == version), None
        )
    parts = ["local", *([source] if source else [])]
    if config.listen_port != 179:
        parts += ["port", str(config.listen_port)]
    return f"  {' '.join(parts)} as {config.asn};"


def _bird_direct(config: RouterConfig, session: Peer | ListenRange) -> list[str]:
    """BIRD's iBGP is multihop by default, and so is its BFD session; an iBGP neighbor without multihop_ttl
    is on the link, where the other end (FRR, our speaker) runs single-hop BFD."""
    if session.bfd is not None and session.asn == config.asn and session.multihop_ttl is None:
        return ["  direct;"]
    return []


def _bird_session(session: Peer | ListenRange) -> list[str]:
    lines = [
        # BIRD's defaults wait 5 s before the first connect and refuse a neighbor for 60 s after an error:
        # a lab restarts speakers and cuts links, and must not wait for either.
        "  connect delay time 1;",
        "  error wait time 1, 5;",
    ]
    if session.password:
        lines.append(f"  password {_bird_quote(session.password)};")
    if session.multihop_ttl is not None:
        lines.append(f"  multihop {session.multihop_ttl};")
    if session.hold_time is not None:
        lines.append(f"  hold time {session.hold_time};")
    if session.keepalive_time is not None:
        lines.append(f"  keepalive time {session.keepalive_time};")
    if session.bfd is not None:
        # Per-session BFD options; BIRD asks for a multihop session when the BGP session is multihop.
        b = session.bfd
        options = [
            f"min rx interval {b.receive_interval_ms} ms;",
            f"min tx interval {b.transmit_interval_ms} ms;",
            f"multiplier {b.detect_multiplier};",
            f"passive {'on' if b.passive else 'off'};",
        ]
        lines.append(f"  bfd {{ {' '.join(options)} }};")
    return lines


def _bird_channels(config: RouterConfig, families: tuple[int, ...]) -> list[str]:
    lines = []
    for version, afi in ((4, "ipv4"), (6, "ipv6")):
        if version not in families:
            continue
        hop = config.next_hop_v4 if version == 4 else config.next_hop_v6
        if config.originated(version):
            export = (
                f'export where proto = "originate_{afi}"; next hop {f"address {hop}" if hop else "self"};'
            )
        else:
            export = "export none;"
        lines.append(f"  {afi} {{ import all; {export} }};")
    return lines


_BIRD_ROUTE = re.compile(
    r"^(?P<prefix>\S+)?\s+(?P<kind>\w+)\s+\[(?P<proto>\S+)[^\]]*?(?: from (?P<from>\S+))?\]\s*(?P<best>\*)?"
)


def parse_bird_routes(
    lines: Iterable[str], peers: Mapping[str, str] | None = None
) -> dict[str, list[BgpPath]]:
    """`show route all` (the text birdc prints, without reply codes) -> {prefix: [BgpPath]}. A path's line
    names its protocol; `peers` maps protocol names to neighbor addresses (from parse_bird_protocols)."""
    out: dict[str, list[BgpPath]] = {}
    current: dict[str, Any] | None = None
    prefix: str | None = None

    def finish() -> None:
        if current is not None and prefix is not None:
            out.setdefault(prefix, []).append(
                BgpPath(
                    next_hop=current.get("next_hop"),
                    as_path=current.get("as_path", ()),
                    local_pref=current.get("local_pref"),
                    communities=current.get("communities", ()),
                    large_communities=current.get("large_communities", ()),
                    best=current["best"],
                    peer=current.get("peer"),
                    med=current.get("med"),
                )
            )

    for line in lines:
        if not line.strip() or line.startswith("Table "):
            continue
        if not line.startswith("\t"):
            match = _BIRD_ROUTE.match(line)
            if match is None:
                continue
            finish()
            if match["prefix"]:
                prefix = str(ipaddress.ip_network(match["prefix"]))
            proto = match["proto"]
            current = {"best": bool(match["best"]), "peer": (peers or {}).get(proto)}
            continue
        if current is None:
            continue
        key, _, value = line.strip().partition(": ")
        if key == "BGP.next_hop":
            current["next_hop"] = value.split()[0]
        elif key == "BGP.as_path":
            current["as_path"] = tuple(int(a) for a in re.findall(r"\d+", value))
        elif key == "BGP.local_pref":
            current["local_pref"] = int(value)
        elif key == "BGP.med":
            current["med"] = int(value)
        elif key == "BGP.community":
            current["communities"] = tuple(f"{a}:{b}" for a, b in re.findall(r"\((\d+),\s*(\d+)\)", value))
        elif key == "BGP.large_community":
            current["large_communities"] = tuple(
                f"large:{a}:{b}:{c}" for a, b, c in re.findall(r"\((\d+),\s*(\d+),\s*(\d+)\)", value)
            )
    finish()
    return out


def _bird_protocol_info(lines: Iterable[str]) -> dict[str, dict[str, Any]]:
    """`show protocols all` -> {BGP protocol name: what its block says}, for the views built from it."""
    found: dict[str, dict[str, Any]] = {}
    info: dict[str, Any] | None = None
    section: str | None = None  # the capability list being read: 'local' or 'neighbor'
    for line in lines:
        if not line.strip() or line.startswith("Name "):
            continue
        if not line.startswith(" "):
            cols = line.split()
            info, section = None, None
            if len(cols) >= 4 and cols[1] == "BGP":
                info = found[cols[0]] = {}
                with contextlib.suppress(IndexError, ValueError):
                    info["since"] = float(cols[4])
            continue
        if info is None:
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        value = value.strip()
        if key in ("Local capabilities", "Neighbor capabilities"):
            section = key.split()[0].lower()
            continue
        if section is not None and indent > 4:  # inside a capability list
            if key == "Graceful restart":
                info[f"{section}_gr"] = True
            elif key == "Restart time" and section == "neighbor":
                info["neighbor_restart_time"] = int(value)
            continue
        section = None
        if key == "BGP state":
            info["bgp_state"] = value.split()[0] if value else "idle"
        elif key == "Neighbor address":
            info["address"] = str(ipaddress.ip_address(value.split("%")[0]))
        elif key == "Neighbor AS":
            info["asn"] = int(value)
        elif key == "Last error":
            info["last_error"] = value
        elif key == "Neighbor graceful restart active":
            info["gr_active"] = True
        elif key == "Routes":
            imported = re.match(r"(\d+) imported", value)
            info["imported"] = info.get("imported", 0) + (int(imported.group(1)) if imported else 0)
    return {name: info for name, info in found.items() if "address" in info}


def parse_bird_protocols(lines: Iterable[str], now: float | None = None) -> dict[str, tuple[str, Neighbor]]:
    """`show protocols all` -> {protocol name: (neighbor address, Neighbor)} for the BGP protocols that
    have a neighbor address (a dynamic-range template has none until a neighbor connects)."""
    now = time.time() if now is None else now
    found: dict[str, tuple[str, Neighbor]] = {}
    for name, info in _bird_protocol_info(lines).items():
        state = _state(info.get("bgp_state", "idle"))
        since = info.get("since")
        established = state == ESTABLISHED
        found[name] = (
            info["address"],
            Neighbor(
                address=info["address"],
                state=state,
                uptime_s=max(0.0, now - since) if established and since is not None else None,
                prefixes_received=info.get("imported", 0),
                remote_asn=info.get("asn"),
                last_error=info.get("last_error"),
                # The capability lists are shown for an established session only.
                graceful_restart=bool(info.get("local_gr") and info.get("neighbor_gr"))
                if established
                else None,
            ),
        )
    return found


def parse_bird_graceful_restart(lines: Iterable[str]) -> dict[str, GracefulRestartView]:
    """`show protocols all` -> {neighbor address: GracefulRestartView}. BIRD marks no path as stale in its
    views: while a neighbor restarts ('Neighbor graceful restart active'), every route imported from it
    is stale, and those are counted."""
    out = {}
    for info in _bird_protocol_info(lines).values():
        restarting = bool(info.get("gr_active"))
        out[info["address"]] = GracefulRestartView(
            address=info["address"],
            negotiated=restarting or bool(info.get("local_gr") and info.get("neighbor_gr")),
            neighbor_restarting=restarting,
            stale_routes=info.get("imported", 0) if restarting else 0,
            neighbor_restart_time_s=info.get("neighbor_restart_time"),
        )
    return out


_BIRD_BFD_SESSION = re.compile(
    r"^(?P<address>\S+)\s+(?P<interface>\S+)\s+(?P<state>\w+)\s+(?P<since>\S+)\s+(?P<interval>[\d.]+)\s+"
    r"(?P<timeout>[\d.]+)\s*$"
)


def parse_bird_bfd_sessions(lines: Iterable[str], now: float | None = None) -> dict[str, BfdPeerView]:
    """`show bfd sessions` -> {peer address: BfdPeerView}. BIRD shows the state, since when, the interface
    (`---` for a multihop session) and the transmit interval and detection time in use, in seconds."""
    now = time.time() if now is None else now
    out = {}
    for line in lines:
        match = _BIRD_BFD_SESSION.match(line.strip())
        if match is None or match["address"] == "IP":
            continue
        try:
            address = str(ipaddress.ip_address(match["address"].split("%")[0]))
        except ValueError:
            continue
        state = _bfd_state(match["state"])
        since: float | None = None
        with contextlib.suppress(ValueError):
            since = float(match["since"])  # Unix time: `timeformat protocol` in bird_config
        elapsed = max(0.0, now - since) if since is not None else None
        multihop = match["interface"] == "---"
        out[address] = BfdPeerView(
            address=address,
            state=state,
            multihop=multihop,
            interface=None if multihop else match["interface"],
            uptime_s=elapsed if state == "up" else None,
            downtime_s=elapsed if state != "up" else None,
            interval_ms=float(match["interval"]) * 1000,
            detection_time_ms=float(match["timeout"]) * 1000,
        )
    return out


class _Waker:
    """Connects to a BIRD control socket every `period` seconds, and nothing more.

    BIRD 2.0's event loop decides whether to sleep before it runs its work list (sysdep/unix/io.c, `poll_tout
    = events ? 0 : 3000`), so an event queued by the work list waits for the next file descriptor or timer,
    up to 3 s. The initial feed of a BGP session is such work: a BIRD that originates routes sends its first
    UPDATE up to 3 s after the session comes up. A connection makes poll() return, so the wait is at most
    `period`."""

    def __init__(self, path: Path, period: float = 0.05) -> None:
        self._path = path
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"bird waker {path.parent.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                s.connect(str(self._path))
                s.recv(64)  # the greeting: BIRD has run its loop once more

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class BirdRouter(RouterDaemon):
    """BIRD 2: `bird -f -c <conf> -s <sock> -P <pid>` as root in the namespace; a kernel protocol per family
    exports the BGP routes to the FIB (`merge paths` for ECMP). Views are read on BIRD's control socket,
    the same protocol and text as `birdc -s <sock>` (one process fewer per poll). An instance that
    originates prefixes is woken every 50 ms (see _Waker), else its first UPDATE can lag 3 s."""

    kind = "bird"
    _waker: _Waker | None = None

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "bird.ctl"

    def _check_config(self) -> None:
        if self.config.listen_port == 0:
            raise RouterError(
                "BIRD always accepts connections from its neighbors: listen_port 0 is FRR/GoBGP only"
            )
        for settings in self.config.bfd_settings:
            if settings.echo:
                raise RouterError("BIRD's BFD has no echo mode: use FrrRouter for BfdConfig(echo=True)")
            if settings.minimum_ttl is not None:
                raise RouterError(
                    "BIRD's multihop BFD checks no minimum TTL: use FrrRouter for BfdConfig(minimum_ttl=...)"
                )
        for peer in self.config.peers:
            has_local = peer.source_address is not None or any(
                ipaddress.ip_address(a).version == peer.version for a in self.config.listen_addresses
            )
            if peer.bfd is not None and peer.bfd_multihop and not has_local:
                raise RouterError(
                    f"peer {peer.address}: BIRD runs multihop BFD only from a known local address: set the "
                    "peer's source_address (or a listen address of its family)"
                )

    def _start(self, deadline: float) -> None:
        conf = self.state_dir / "bird.conf"
        conf.write_text(bird_config(self.config, self.state_dir / "bird.log"))
        self._spawn(
            "bird",
            [
                "bird",
                "-f",
                "-c",
                str(conf),
                "-s",
                str(self.socket_path),
                "-P",
                str(self.state_dir / "bird.pid"),
            ],
        )
        self._await(self._answers, deadline, "control socket")
        self._wake(self.config)

    def _wake(self, config: RouterConfig) -> None:
        if config.originate and self._waker is None:
            self._waker = _Waker(self.socket_path)

    def _forget(self) -> None:
        if self._waker is not None:
            self._waker.stop()
            self._waker = None
        super()._forget()

    def _answers(self) -> bool:
        try:
            self.query("show status")
        except (OSError, RouterError):
            return False
        return True

    def query(self, command: str, timeout: float = 30.0) -> list[str]:
        """Sends one command on the control socket; returns the reply's text lines (codes removed). A
        reply code 8xxx/9xxx (runtime or syntax error) raises RouterError."""
        self._require_running()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(self.socket_path))
            with s.makefile("rwb") as f:
                f.readline()  # 0001 BIRD x.y ready.
                f.write(command.encode() + b"\n")
                f.flush()
                lines: list[str] = []
                while True:
                    raw = f.readline()
                    if not raw:
                        raise RouterError(f"{self}: control socket closed during {command!r}")
                    line = raw.decode(errors="replace").rstrip("\n")
                    if line.startswith(" "):
                        lines.append(line[1:])
                        continue
                    code, sep, text = line[:4], line[4:5], line[5:]
                    if not code.isdigit():
                        raise RouterError(f"{self}: unexpected reply line {line!r} to {command!r}")
                    if code[0] in "89":
                        raise RouterError(f"{self}: {command!r}: {text}")
                    if sep == " " and code[0] == "0":
                        return lines
                    lines.append(text)

    def graceful_stop(self, timeout: float = 10.0) -> None:
        """Stops BIRD for a graceful restart (`birdc graceful restart`): its BGP sessions close without a
        NOTIFICATION, so neighbors that negotiated graceful restart keep its routes as stale until it is back
        (start() again) and sends its End-of-RIB: a stand-in for a speaker's graceful stop."""
        self._require_running()
        self.query("graceful restart")
        deadline = time.monotonic() + timeout
        while self.running:
            if time.monotonic() >= deadline:
                raise RouterError(f"{self}: still running {timeout:.0f} s after `graceful restart`")
            time.sleep(_POLL)
        self.stop()

    def configure(self, config: RouterConfig) -> None:
        """Replaces the configuration and reloads it (`birdc configure`): sessions whose settings did not
        change stay up."""
        self._require_running()
        (self.state_dir / "bird.conf").write_text(bird_config(config, self.state_dir / "bird.log"))
        self._wake(config)
        self.query("configure")
        self.config = config

    def _protocols(self) -> dict[str, tuple[str, Neighbor]]:
        self._require_running()
        return parse_bird_protocols(self.query("show protocols all"))

    def neighbors(self) -> dict[str, Neighbor]:
        return {address: neighbor for address, neighbor in self._protocols().values()}

    def bfd_peers(self) -> dict[str, BfdPeerView]:
        self._require_running()
        if not self.config.bfd:
            return {}  # no bfd protocol to ask
        return parse_bird_bfd_sessions(self.query("show bfd sessions"))

    def graceful_restart_state(self, peer: str) -> GracefulRestartView:
        address = _ip(peer, "peer")
        self._require_running()
        views = parse_bird_graceful_restart(self.query("show protocols all"))
        if address not in views:
            raise RouterError(f"{self}: no neighbor {address} (neighbors: {', '.join(views) or 'none'})")
        return views[address]

    def routes(self, family: int = 4) -> dict[str, list[BgpPath]]:
        peers = {name: address for name, (address, _) in self._protocols().items()}
        return parse_bird_routes(self.query(f"show route all table master{_afi(family)[-1]}"), peers)

    def rib_size(self, family: int = 4) -> int:
        # "4 of 4 routes for 2 networks in table master4": networks are prefixes. Originated static
        # routes are in the table too, as in FRR's.
        text = " ".join(self.query(f"show route count table master{_afi(family)[-1]}"))
        match = re.search(r"for (\d+) networks", text)
        if match is None:
            raise RouterError(f"{self}: unexpected route count {text!r}")
        return int(match.group(1))


# -- GoBGP ---------------------------------------------------------------------------------------------------


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def gobgp_config(config: RouterConfig) -> str:
    """The gobgpd TOML of an instance (originated prefixes are added through the API after the start)."""
    lines = [
        "[global.config]",
        f"  as = {config.asn}",
        f"  router-id = {_toml(config.router_id)}",
        f"  port = {config.listen_port if config.listen_port else -1}",
    ]
    if config.listen_addresses:
        lines.append(f"  local-address-list = [{', '.join(_toml(a) for a in config.listen_addresses)}]")
    if config.max_paths > 1:
        lines += ["[global.use-multiple-paths.config]", "  enabled = true"]

    def tables(table: str, session: Peer | ListenRange) -> list[str]:
        out = []
        connect_retry = session.connect_retry if isinstance(session, Peer) else None
        hold, keepalive = session.hold_time, session.keepalive_time
        if hold is not None or connect_retry is not None:
            out.append(f"  [{table}.timers.config]")
            if hold is not None:
                out.append(f"    hold-time = {hold}")
                out.append(f"    keepalive-interval = {keepalive if keepalive is not None else hold // 3}")
            if connect_retry is not None:
                out.append(f"    connect-retry = {connect_retry}")
        if session.multihop_ttl is not None:
            ttl = session.multihop_ttl
            out += [f"  [{table}.ebgp-multihop.config]", "    enabled = true", f"    multihop-ttl = {ttl}"]
        for version in session.families:
            out += [
                f"  [[{table}.afi-safis]]",
                f"    [{table}.afi-safis.config]",
                f'      afi-safi-name = "ipv{version}-unicast"',
            ]
        return out

    for peer in config.peers:
        lines += [
            "[[neighbors]]",
            "  [neighbors.config]",
            f"    neighbor-address = {_toml(peer.address)}",
            f"    peer-as = {peer.asn}",
        ]
        if peer.password:
            lines.append(f"    auth-password = {_toml(peer.password)}")
        lines += [
            "  [neighbors.transport.config]",
            f"    passive-mode = {_toml(peer.passive)}",
            f"    remote-port = {peer.port}",
        ]
        if peer.source_address:
            lines.append(f"    local-address = {_toml(peer.source_address)}")
        lines += tables("neighbors", peer)
    for index, lr in enumerate(config.listen_ranges, 1):
        group = f"range-{index}"
        lines += [
            "[[peer-groups]]",
            "  [peer-groups.config]",
            f"    peer-group-name = {_toml(group)}",
            f"    peer-as = {lr.asn}",
        ]
        if lr.password:
            lines.append(f"    auth-password = {_toml(lr.password)}")
        lines += tables("peer-groups", lr)
        lines += [
            "[[dynamic-neighbors]]",
            "  [dynamic-neighbors.config]",
            f"    prefix = {_toml(lr.prefix)}",
            f"    peer-group = {_toml(group)}",
        ]
    return "\n".join(lines) + "\n"


def _gobgp_community(value: int) -> str:
    return f"{value >> 16}:{value & 0xFFFF}"


def parse_gobgp_routes(data: Mapping[str, Any]) -> dict[str, list[BgpPath]]:
    """`gobgp -j global rib -a ipv4|ipv6` -> {prefix: [BgpPath]}."""
    out: dict[str, list[BgpPath]] = {}
    for prefix, paths in data.items():
        parsed = []
        for p in paths:
            attrs: dict[int, Mapping[str, Any]] = {int(a["type"]): a for a in p.get("attrs", [])}
            as_path = tuple(
                int(asn)
                for segment in (attrs.get(2) or {}).get("as_paths", [])
                for asn in segment.get("asns", [])
            )
            next_hop = (attrs.get(3) or attrs.get(14) or {}).get("nexthop")
            neighbor = p.get("neighbor-ip")
            parsed.append(
                BgpPath(
                    next_hop=str(next_hop) if next_hop and next_hop not in ("0.0.0.0", "::") else None,
                    as_path=as_path,
                    local_pref=(attrs.get(5) or {}).get("value"),
                    communities=tuple(
                        _gobgp_community(int(c)) for c in (attrs.get(8) or {}).get("communities", [])
                    ),
                    large_communities=tuple(
                        f"large:{c['ASN']}:{c['LocalData1']}:{c['LocalData2']}"
                        for c in (attrs.get(32) or {}).get("value", [])
                    ),
                    best=bool(p.get("best")),
                    peer=str(neighbor) if neighbor and neighbor not in ("<nil>", "0.0.0.0", "::") else None,
                    med=(attrs.get(4) or {}).get("metric"),
                )
            )
        out[str(ipaddress.ip_network(prefix))] = parsed
    return out


def parse_gobgp_neighbors(data: Sequence[Mapping[str, Any]], now: float | None = None) -> dict[str, Neighbor]:
    """`gobgp -j neighbor` -> {address: Neighbor}."""
    now = time.time() if now is None else now
    out = {}
    for entry in data:
        state_info = entry.get("state") or {}
        address = str(
            ipaddress.ip_address(state_info.get("neighbor_address") or entry["conf"]["neighbor_address"])
        )
        state = _state(state_info.get("session_state", 1))
        since = ((entry.get("timers") or {}).get("state") or {}).get("uptime", {}).get("seconds")
        received = sum(int((af.get("state") or {}).get("accepted", 0)) for af in entry.get("afi_safis") or [])
        out[address] = Neighbor(
            address=address,
            state=state,
            uptime_s=max(0.0, now - float(since)) if state == ESTABLISHED and since else None,
            prefixes_received=received,
            remote_asn=state_info.get("peer_asn") or (entry.get("conf") or {}).get("peer_asn"),
        )
    return out


class GobgpRouter(RouterDaemon):
    """GoBGP: `gobgpd -f <toml>` in the namespace, its gRPC API on a Unix socket in the state directory
    (`--api-hosts unix://...`: no port to pick, and the `gobgp` client runs outside the namespace). Views are
    `gobgp -j ...`. GoBGP does not install routes in the kernel (it has no FIB of its own without zebra):
    `fib()` shows only what something else put there, and `install_routes` is ignored. Originated prefixes
    are added through the API after the start, one `gobgp global rib add` each: fine for tens, slow for
    thousands (use BIRD or FRR for the benchmark floors). No BFD."""

    kind = "gobgp"

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "gobgp.sock"

    def _check_config(self) -> None:
        if self.config.bfd:
            raise RouterError("GoBGP has no BFD: use FrrRouter or BirdRouter for a session with bfd")
        for lr in self.config.listen_ranges:
            if lr.asn is None:
                raise RouterError(f"listen range {lr.prefix}: GoBGP needs the neighbors' asn")

    def _start(self, deadline: float) -> None:
        conf = self.state_dir / "gobgpd.toml"
        conf.write_text(gobgp_config(self.config))
        self._spawn(
            "gobgpd",
            [
                "gobgpd", "-f", str(conf), "-p", "--pprof-disable",
                "--api-hosts", f"unix://{self.socket_path}",
            ],
        )  # fmt: skip
        # The API opens before the configuration file is applied: ready once every peer is known.
        self._await(self._loaded, deadline, "API with the configuration loaded")
        self._originate()

    def _loaded(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            glob = json.loads(self.gobgp("global") or "{}")
            peers = json.loads(self.gobgp("neighbor") or "[]")
        except (RouterError, ValueError):
            return False
        return int(glob.get("asn", 0)) == self.config.asn and len(peers) >= len(self.config.peers)

    def gobgp(self, *args: str, json_output: bool = True, timeout: float = 30.0) -> str:
        """Runs the gobgp client against this instance and returns its output."""
        self._require_running()
        flags = ["-j"] if json_output else []
        return _run(["gobgp", "--target", f"unix://{self.socket_path}", *flags, *args], timeout=timeout)

    def _originate(self) -> None:
        def add(o: Origination) -> None:
            hop = self.config.next_hop_v4 if o.version == 4 else self.config.next_hop_v6
            argv = ["global", "rib", "-a", _afi(o.version), "add", o.prefix]
            if o.communities:
                argv += ["community", ",".join(o.communities)]
            if o.large_communities:
                argv += ["large-community", ",".join(c.removeprefix("large:") for c in o.large_communities)]
            if o.local_pref is not None:
                argv += ["local-pref", str(o.local_pref)]
            if hop:
                argv += ["nexthop", hop]
            self.gobgp(*argv, json_output=False)

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(add, self.config.originate))

    def neighbors(self) -> dict[str, Neighbor]:
        self._require_running()
        return parse_gobgp_neighbors(json.loads(self.gobgp("neighbor") or "[]"))

    def routes(self, family: int = 4) -> dict[str, list[BgpPath]]:
        self._require_running()
        return parse_gobgp_routes(json.loads(self.gobgp("global", "rib", "-a", _afi(family)) or "{}"))

    def rib_size(self, family: int = 4) -> int:
        self._require_running()
        summary = json.loads(self.gobgp("global", "rib", "summary", "-a", _afi(family)) or "{}")
        return int(summary.get("num_destination", 0))


_KINDS: dict[str, type[RouterDaemon]] = {"frr": FrrRouter, "bird": BirdRouter, "gobgp": GobgpRouter}


def make_router(
    kind: RouterKind, netns: str, config: RouterConfig, *, name: str | None = None
) -> RouterDaemon:
    """A daemon of `kind` ('frr', 'bird' or 'gobgp'), not started yet."""
    try:
        cls = _KINDS[kind]
    except KeyError:
        raise RouterError(f"router kind {kind!r}: expected one of {', '.join(ROUTER_KINDS)}") from None
    return cls(netns, config, name=name)
