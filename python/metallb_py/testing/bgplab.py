"""A BGP lab: a NetnsLab with a router namespace (`NetnsLab(router=True)`), a real routing daemon in it
peering with every node, and the client behind the router, so a VIP reaches the client only through BGP.

`Peering` says how the router and the nodes meet: the ASes (one for every node, or one per node), which
of each node's addresses the router peers with (IPv4 by default, carrying IPv6 prefixes too: MP-BGP), MD5,
timers, multihop (the nodes then peer with the router's far address, 203.0.113.1, one hop past the LAN),
a listen range instead of one neighbor per node, ECMP. `router_config` renders the router's side and
`node_config` the node's side of the same sessions, so a speaker under test and a stand-in agree.

`BgpLab.originator(node, prefixes)` runs a routing daemon in a node's namespace that announces prefixes
over that node's session, as a speaker would: the lab without our speaker, and the benchmarks' floor.

```
with BgpLab(nodes=["node1", "node2"], router="frr") as bgp:
    bgp.lab.serve("192.168.1.11")                     # HTTP on the VIP at every node (on lo)
    for node in ("node1", "node2"):
        bgp.originator(node, ["192.168.1.11"])        # BIRD in the node's namespace, as a speaker
    bgp.router.wait_fib(lambda fib: len(fib.get("192.168.1.11/32", [])) == 2)
    bgp.lab.fetch("192.168.1.11")                     # (200, "node1\\n") or node2: ECMP
```
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from metallb_py.testing.netlab import DEFAULT_VIP_ROUTES, NetnsLab
from metallb_py.testing.routers import (
    BfdConfig,
    ListenRange,
    Origination,
    Peer,
    RouterConfig,
    RouterDaemon,
    RouterError,
    RouterKind,
    make_router,
)

__all__ = ["DEFAULT_NODE_ASN", "DEFAULT_ROUTER_ASN", "BgpLab", "Peering", "node_config", "router_config"]

DEFAULT_ROUTER_ASN = 64512
DEFAULT_NODE_ASN = 64513


@dataclass(frozen=True)
class Peering:
    """The sessions between the router and the nodes, as both sides configure them.

    `node_asn` is every node's AS, or a per-node mapping (eBGP from different ASes: the router combines
    them with multipath-relax); equal to `router_asn` makes the sessions iBGP. `session_families` are the
    node addresses the router peers with: (4,) one session per node over IPv4 carrying both families,
    (4, 6) a second session over IPv6. `dynamic` makes the router accept any node of the network (listen
    range) instead of configuring one neighbor per node. `multihop_ttl` moves the router's end to its
    client-side address (not on the nodes' network), with eBGP multihop on both sides. `passive` makes the
    router wait for the nodes to connect. `max_paths` is the router's ECMP width. `families` are the
    address families every session carries. `bfd` asks for BFD on every session with those settings (True:
    MetalLB's defaults; FRR's bfdd, BIRD's bfd protocol; GoBGP has none). `graceful_restart` makes the
    router keep a restarting node's routes (helper mode) and the nodes' stand-in daemons offer it.
    """

    router_asn: int = DEFAULT_ROUTER_ASN
    node_asn: int | Mapping[str, int] = DEFAULT_NODE_ASN
    session_families: tuple[int, ...] = (4,)
    password: str | None = None
    hold_time: int | None = None
    keepalive_time: int | None = None
    multihop_ttl: int | None = None
    passive: bool = False
    dynamic: bool = False
    max_paths: int = 8
    graceful_restart: bool = False
    families: tuple[int, ...] = (4, 6)
    bfd: BfdConfig | bool | None = None

    def asn_of(self, node: str) -> int:
        if isinstance(self.node_asn, int):
            return self.node_asn
        try:
            return self.node_asn[node]
        except KeyError:
            raise RouterError(f"Peering.node_asn has no AS for node {node!r}") from None

    def router_end(self, lab: NetnsLab, family: int) -> str:
        """The router's address in the sessions of `family`: on the LAN, or its far side for multihop."""
        if self.multihop_ttl is not None:
            return lab.router_client_side_address(family)
        return lab.router_address(family)


def router_config(lab: NetnsLab, peering: Peering, *, nodes: Iterable[str] | None = None) -> RouterConfig:
    """The lab router's configuration: one neighbor per node address in `peering.session_families` (every
    node of the lab by default), or a listen range over the nodes' network with `peering.dynamic`."""
    peers: list[Peer] = []
    ranges: list[ListenRange] = []
    for family in peering.session_families:
        if peering.dynamic:
            asns = {peering.asn_of(n) for n in (lab.all_nodes if nodes is None else nodes)}
            ranges.append(
                ListenRange(
                    prefix=lab.node_network(family),
                    asn=asns.pop() if len(asns) == 1 else None,
                    families=peering.families,
                    password=peering.password,
                    multihop_ttl=peering.multihop_ttl,
                    hold_time=peering.hold_time,
                    keepalive_time=peering.keepalive_time,
                    bfd=peering.bfd,
                )
            )
            continue
        for node in lab.all_nodes if nodes is None else nodes:
            peers.append(
                Peer(
                    address=lab.node_address(node, family),
                    asn=peering.asn_of(node),
                    families=peering.families,
                    source_address=peering.router_end(lab, family) if peering.multihop_ttl else None,
                    multihop_ttl=peering.multihop_ttl,
                    password=peering.password,
                    passive=peering.passive,
                    hold_time=peering.hold_time,
                    keepalive_time=peering.keepalive_time,
                    bfd=peering.bfd,
                )
            )
    return RouterConfig(
        asn=peering.router_asn,
        router_id=lab.router_address(4),
        peers=peers,
        listen_ranges=ranges,
        max_paths=peering.max_paths,
        graceful_restart=peering.graceful_restart,
    )


def node_config(
    lab: NetnsLab,
    node: str,
    peering: Peering,
    originate: Iterable[str | Origination] = (),
) -> RouterConfig:
    """A node's side of the lab's sessions, for a routing daemon standing in for its speaker: announces
    `originate` with the node's own addresses as next hops, installs nothing in the node's kernel."""
    peers = [
        Peer(
            address=peering.router_end(lab, family),
            asn=peering.router_asn,
            families=peering.families,
            source_address=lab.node_address(node, family),
            multihop_ttl=peering.multihop_ttl,
            password=peering.password,
            hold_time=peering.hold_time,
            keepalive_time=peering.keepalive_time,
            bfd=peering.bfd,
        )
        for family in peering.session_families
    ]
    return RouterConfig(
        asn=peering.asn_of(node),
        router_id=lab.node_address(node, 4),
        peers=peers,
        install_routes=False,
        graceful_restart=peering.graceful_restart,
        originate=originate,
        next_hop_v4=lab.node_address(node, 4),
        next_hop_v6=lab.node_address(node, 6),
    )


class BgpLab:
    """A NetnsLab with a router (see the module docstring). `lab` is the NetnsLab (serve, fetch, prober,
    kill_link ...), `router` the routing daemon in its router namespace, started with the lab and stopped
    before it; originators are stopped first."""

    def __init__(
        self,
        nodes: Sequence[str] = ("node1", "node2", "node3"),
        extra_nodes: Sequence[str] = (),
        *,
        router: RouterKind = "frr",
        peering: Peering | None = None,
        prefix: str = "mlbbgp",
        vip_routes: Sequence[str] = DEFAULT_VIP_ROUTES,
    ) -> None:
        self.lab = NetnsLab(nodes, extra_nodes, prefix=prefix, vip_routes=vip_routes, router=True)
        self.peering = peering or Peering()
        self.router_kind: RouterKind = router
        self._router: RouterDaemon | None = None
        self._originators: dict[str, RouterDaemon] = {}

    @property
    def router(self) -> RouterDaemon:
        if self._router is None:
            raise RouterError("the BGP lab is not started (use `with BgpLab(...)` or start())")
        return self._router

    def start(self, timeout: float = 15.0) -> None:
        """Builds the namespaces and starts the router's daemon (sessions come up as the nodes connect)."""
        self.lab.start()
        try:
            config = router_config(self.lab, self.peering)
            self._router = make_router(self.router_kind, self.lab.router_ns, config, name="router")
            self._router.start(timeout)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stops the originators and the router, then removes the namespaces. Safe to call twice."""
        for daemon in self._originators.values():
            daemon.stop()
        self._originators.clear()
        if self._router is not None:
            self._router.stop()
            self._router = None
        self.lab.close()

    def router_peer_addresses(self, node: str) -> list[str]:
        """The node addresses the router peers with (its neighbors for that node)."""
        return [self.lab.node_address(node, family) for family in self.peering.session_families]

    def originator(
        self,
        node: str,
        prefixes: Iterable[str | Origination],
        *,
        kind: RouterKind = "bird",
        communities: Sequence[str] = (),
        large_communities: Sequence[str] = (),
        local_pref: int | None = None,
        peering: Peering | None = None,
        start: bool = True,
    ) -> RouterDaemon:
        """A routing daemon in `node`'s namespace announcing `prefixes` (bare addresses are host routes)
        to the router over the node's sessions, with the given attributes on every plain prefix; started
        unless `start=False`, stopped by close(). One per node: a second replaces the first. `peering`
        overrides the node's side only (a wrong password or AS, as a misconfigured speaker would have)."""
        plain = (communities, large_communities, local_pref) != ((), (), None)
        originate = [
            Origination(_host(p), tuple(communities), tuple(large_communities), local_pref)
            if plain and isinstance(p, str)
            else p
            for p in prefixes
        ]
        if (old := self._originators.pop(node, None)) is not None:
            old.stop()
        daemon = make_router(
            kind,
            self.lab.node_ns(node),
            node_config(self.lab, node, peering or self.peering, originate),
            name=node,
        )
        self._originators[node] = daemon
        if start:
            daemon.start()
        return daemon

    def wait_sessions(self, nodes: Iterable[str] | None = None, timeout: float = 15.0) -> None:
        """Waits until the router has an established session with every address of `nodes` it peers with."""
        wanted = [
            a for n in (self.lab.nodes if nodes is None else nodes) for a in self.router_peer_addresses(n)
        ]
        self.router.wait_neighbors(
            lambda view: all(a in view and view[a].established for a in wanted), timeout=timeout
        )


def _host(prefix: str) -> str:
    if "/" in prefix:
        return prefix
    return f"{prefix}/{32 if ipaddress.ip_address(prefix).version == 4 else 128}"
