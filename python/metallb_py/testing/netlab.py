"""A network of Kubernetes-like nodes and a client on one machine, made of network namespaces.

`NetnsLab` owns the lab's whole life: one namespace per node and one for the client, each joined by a veth
pair to a bridge that lives in a namespace of its own (a switch with no address, so the host is never on
the lab's network); the addresses, sysctls and routes; the HTTP servers that stand for the seed's pods; a
client to fetch from and a prober to watch a VIP fail over; and the clean-up, also after a failed test
(`cleanup_stale` removes what a killed run left behind).

With `router=True` (BGP mode) a router namespace joins the switch at 198.51.100.254 and 2001:db8:100::254,
forwarding, and the client moves behind it, on a link of its own: 203.0.113.2 and 2001:db8:203::2, the router
203.0.113.1 and 2001:db8:203::1 there. The client routes the VIP ranges and the nodes' network via the router,
the nodes route the client's network via the router, and the router knows no VIP until a routing daemon in
its namespace learns one (see `routers` and `bgplab`): the client reaches a VIP only through BGP.

Addresses are documentation ranges: nodes 198.51.100.1.. and 2001:db8:100::1.., the client
198.51.100.200 and 2001:db8:100::200. VIPs live on each node's loopback with `arp_ignore=1` and
`arp_announce=2` (IPv6: /128 on lo, which the kernel never answers Neighbor Solicitations for when they
arrive on another interface), so only our responder answers ARP and NDP for them, as on a MetalLB node,
while the node's kernel still accepts the traffic. The client reaches the seed's 192.168.1.0/24 (and
2001:db8:1::/64 for IPv6 VIPs) on-link through its lab interface: routes inside the client namespace only.

Needs root (namespaces, veth, sysctls) and iproute2. Nothing here touches the host's own interfaces,
routes or sysctls, and no packet leaves the namespaces this module creates.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import json
import os
import queue
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

from metallb_py.errors import MetalLBError
from metallb_py.testing.process import run_checked, start_line_helper, stop_line_helper
from metallb_py.testing.routers import cleanup_stale_routers

__all__ = [
    "CLIENT_V4",
    "CLIENT_V6",
    "DEFAULT_VIP_ROUTES",
    "ROUTED_CLIENT_V4",
    "ROUTED_CLIENT_V6",
    "ROUTER_V4",
    "ROUTER_V6",
    "FetchError",
    "LinkCounters",
    "Neighbour",
    "NetnsLab",
    "NetnsLabError",
    "Probe",
    "Prober",
    "cleanup_stale",
    "neighbour_table_fulls",
]

NODE_V4_NETWORK = ipaddress.IPv4Network("198.51.100.0/24")
NODE_V6_NETWORK = ipaddress.IPv6Network("2001:db8:100::/64")
CLIENT_V4 = "198.51.100.200"
CLIENT_V6 = "2001:db8:100::200"
# With a router: its address on the nodes' network, and the client's own network behind it.
ROUTER_V4 = "198.51.100.254"
ROUTER_V6 = "2001:db8:100::254"
CLIENT_NET_V4 = ipaddress.IPv4Network("203.0.113.0/24")
CLIENT_NET_V6 = ipaddress.IPv6Network("2001:db8:203::/64")
ROUTER_CLIENT_SIDE_V4 = str(CLIENT_NET_V4[1])
ROUTER_CLIENT_SIDE_V6 = str(CLIENT_NET_V6[1])
ROUTED_CLIENT_V4 = str(CLIENT_NET_V4[2])
ROUTED_CLIENT_V6 = str(CLIENT_NET_V6[2])
ROUTER_CLIENT_INTERFACE = "eth1"
# The seed's pool (192.168.1.11-13) and an IPv6 documentation range for IPv6 VIPs.
DEFAULT_VIP_ROUTES = ("192.168.1.0/24", "2001:db8:1::/64")
DEFAULT_PREFIX = "mlblab"
INTERFACE = "eth0"
_BRIDGE = "br0"
_RESERVED = ("client", "switch", "router")
_NODE_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,15}$")
_HELPER = Path(__file__).with_name("_netlab_helper.py")
_STATE_ROOT = Path(tempfile.gettempdir()) / "metallb-py-netlab"
EchoKind = Literal["hname", "ip"]


class NetnsLabError(MetalLBError):
    """The lab could not be built, used or removed; the message says which step and why."""


class FetchError(NetnsLabError):
    """A request from the client got no HTTP answer. `reason` is short: `timeout`, `No route to host`..."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Neighbour:
    """One entry of the client's neighbour table (`ip neigh`)."""

    ip: str
    lladdr: str | None
    states: tuple[str, ...]


@dataclass(frozen=True)
class LinkCounters:
    """A node's traffic on its lab link since the lab was built (every protocol: gossip, heartbeats, ARP,
    HTTP), as its switch port counts it."""

    sent_bytes: int
    sent_packets: int
    received_bytes: int
    received_packets: int


@dataclass(frozen=True)
class Probe:
    """One prober request: when it was sent and done (time.monotonic()), and the answer or the error."""

    sent: float
    received: float
    answer: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.answer is not None


def _run(argv: Sequence[str], *, stdin: str | None = None, timeout: float = 30.0) -> str:
    return run_checked(argv, NetnsLabError, stdin=stdin, timeout=timeout)


def _ip_batch(commands: Iterable[str], netns: str | None = None) -> None:
    """Many iproute2 commands in one process (`ip -batch`): a lab is built in tens of milliseconds."""
    lines = "\n".join(commands) + "\n"
    _run(["ip", *(["-n", netns] if netns else []), "-batch", "-"], stdin=lines)


def neighbour_table_fulls() -> int:
    """How many times since boot the kernel found its IPv4 or IPv6 neighbour table full (`ip -s ntable`,
    `table_fulls`): counted for all namespaces together, so a lab compares it before and after."""
    total = 0
    for table in ("arp_cache", "ndisc_cache"):
        # Only the table's own row has the counter, not its per-device rows.
        for row in json.loads(_run(["ip", "-s", "-j", "ntable", "show", "name", table]) or "[]"):
            total += int(row.get("table_fulls", 0))
    return total


def _namespaces() -> list[str]:
    out = _run(["ip", "-j", "netns", "list"]) if shutil.which("ip") else ""
    return [str(entry["name"]) for entry in json.loads(out or "[]")]


class _Helper:
    """One helper process inside a namespace, its stdout read line by line into a queue by a thread.

    Its stderr goes to a log file in the lab's state directory: a pipe nobody drains would fill up and block
    a server that prints a traceback per reset connection during a failover.
    """

    def __init__(
        self,
        netns: str,
        log: Path,
        *args: str,
        on_record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.name = f"{netns}: {' '.join(args)}"
        self.log = log
        with log.open("ab") as stderr:
            argv = ["ip", "netns", "exec", netns, sys.executable, "-I", str(_HELPER), *args]
            self.popen = start_line_helper(argv, stderr)
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._on_record = on_record
        self._reader = threading.Thread(target=self._read, name=f"netlab {self.name}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        with contextlib.suppress(ValueError, OSError):  # stdout closed under us by stop()
            for line in self.popen.stdout:
                record = json.loads(line)
                if self._on_record is not None and "ready" not in record:
                    self._on_record(record)
                else:
                    self.lines.put(record)
        self.lines.put(None)

    def next(self, timeout: float) -> dict[str, Any]:
        try:
            record = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise NetnsLabError(f"{self.name}: no answer in {timeout:.1f} s") from None
        if record is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=5)
            try:
                tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
            except OSError:
                tail = "(no log)"
            raise NetnsLabError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")
        return record

    def send(self, record: dict[str, Any]) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(json.dumps(record) + "\n")
        self.popen.stdin.flush()

    def stop(self) -> None:
        """Closing stdin makes the helper exit on its own (the prober cancels what is in flight)."""
        stop_line_helper(self.popen, self._reader, grace=2)


class Prober:
    """Requests a VIP from the client at a fixed rate, each on a new connection, and keeps every result.

    Start one with `NetnsLab.prober`. Requests do not wait for each other, so a request lost to a dead node
    never delays the next one: the time resolution is the interval even while answers time out.
    """

    def __init__(self, lab: NetnsLab, vip: str, port: int, interval: float, timeout: float) -> None:
        self.vip, self.port, self.interval, self.timeout = vip, port, interval, timeout
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._probes: list[Probe] = []
        self._helper = _Helper(
            lab.client_ns,
            lab._log("prober"),
            "probe",
            f"--host={vip}",
            f"--port={port}",
            f"--interval={interval}",
            f"--timeout={timeout}",
            on_record=self._record,
        )
        self._helper.next(timeout=10)

    def _record(self, record: dict[str, Any]) -> None:
        probe = Probe(
            sent=float(record["sent"]),
            received=float(record["received"]),
            answer=record.get("body"),
            error=record.get("error"),
        )
        with self._changed:
            self._probes.append(probe)
            self._changed.notify_all()

    def results(self) -> list[Probe]:
        """Every finished request so far, in the order they finished."""
        with self._lock:
            return list(self._probes)

    def first_answer(self, after: float, *, other_than: str | None = None) -> Probe | None:
        """The earliest answer received at or after `after` (a time.monotonic() value), optionally
        ignoring answers equal to `other_than` (the node that answered before a failover)."""
        answers = [
            p
            for p in self.results()
            if p.ok and p.received >= after and (other_than is None or p.answer != other_than)
        ]
        return min(answers, key=lambda p: p.received, default=None)

    def wait_for_answer(self, answer: str, timeout: float, *, after: float | None = None) -> Probe | None:
        """Blocks until a request sent at or after `after` (default: now) gets `answer`; None on timeout."""
        since = time.monotonic() if after is None else after

        def found() -> Probe | None:
            return next((p for p in self._probes if p.answer == answer and p.sent >= since), None)

        with self._changed:
            return self._changed.wait_for(found, timeout)

    def wait_until(self, done: Callable[[list[Probe]], bool], timeout: float) -> list[Probe]:
        """Blocks until `done(results)` holds for the finished requests (in the order they finished), or
        `timeout` passes; returns the results either way."""
        with self._changed:
            self._changed.wait_for(lambda: done(list(self._probes)), timeout)
            return list(self._probes)

    def stop(self) -> list[Probe]:
        """Stops requesting (requests in flight are dropped) and returns every result."""
        self._helper.stop()
        return self.results()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class NetnsLab:
    """N node namespaces and a client namespace on one Linux bridge; see the module docstring.

    ```
    with NetnsLab(nodes=["node1", "node2", "node3"], extra_nodes=["control-plane"]) as lab:
        lab.serve("192.168.1.11", kind="hname")          # VIP on every node's lo, HTTP on port 80
        with Responder([lab.node_interface("node2")], netns=lab.node_ns("node2")) as r:
            r.announce("192.168.1.11")
            lab.fetch("192.168.1.11")                    # (200, "node2\\n")
    ```

    `nodes` run the echo servers (the seed's pods); `extra_nodes` are nodes without pods, such as a
    control-plane node. Namespace names are `{prefix}{6 hex digits}-{node}`, `...-client`, `...-switch` (and
    `...-router` with `router=True`), so labs never collide; everything is removed by `close()` (also on
    `with` exit and at interpreter exit).

    `pin_neighbours=True` writes every node's and the LAN peer's (client or router) IPv4 address into each
    other's neighbour table as a permanent entry, as `ip neigh ... nud permanent` would. A lab of many nodes
    needs it: all namespaces share one kernel ARP table, whose dynamic entries stop at the host's
    `gc_thresh3` (1,024 by default), so past about 30 nodes that talk to each other (gossip, heartbeats) the
    kernel drops packets for want of an entry ("neighbour table overflow") where real nodes, each with its
    own kernel, would not. Permanent entries do not count against that limit, and the host's sysctls stay
    untouched. The VIPs stay dynamic: resolving them is what a lab tests.
    """

    def __init__(
        self,
        nodes: Sequence[str] = ("node1", "node2", "node3"),
        extra_nodes: Sequence[str] = (),
        *,
        prefix: str = DEFAULT_PREFIX,
        vip_routes: Sequence[str] = DEFAULT_VIP_ROUTES,
        router: bool = False,
        pin_neighbours: bool = False,
    ) -> None:
        all_nodes = [*nodes, *extra_nodes]
        for node in all_nodes:
            if not _NODE_NAME.match(node) or node in _RESERVED:
                raise NetnsLabError(
                    f"{node!r} is not a usable node name (a DNS label, not client, switch or router)"
                )
        if len(set(all_nodes)) != len(all_nodes):
            raise NetnsLabError(f"node names repeat: {all_nodes}")
        if not 1 <= len(all_nodes) <= 199:
            raise NetnsLabError("a lab has 1 to 199 nodes (addresses 198.51.100.1-199)")
        if not _PREFIX.match(prefix):
            raise NetnsLabError(f"prefix {prefix!r}: lowercase letters and digits, starting with a letter")
        self.nodes: tuple[str, ...] = tuple(nodes)
        self.extra_nodes: tuple[str, ...] = tuple(extra_nodes)
        self.prefix = prefix
        self.vip_routes = tuple(str(ipaddress.ip_network(r)) for r in vip_routes)
        self.name = f"{prefix}{secrets.token_hex(3)}"
        self.client_ns = f"{self.name}-client"
        self.bridge_ns = f"{self.name}-switch"
        self.has_router = router
        self.pin_neighbours = pin_neighbours
        self._state = _STATE_ROOT / self.name
        self._created: list[str] = []
        self._servers: dict[tuple[str, int], _Helper] = {}
        self._routes: dict[str, str] = {}
        self._vips: dict[str, set[str]] = {}
        self._client: _Helper | None = None
        self._client_lock = threading.Lock()
        self._probers: list[Prober] = []
        self._started = False

    # -- names and addresses ---------------------------------------------------------------------------------

    @property
    def all_nodes(self) -> tuple[str, ...]:
        return self.nodes + self.extra_nodes

    def node_ns(self, node: str) -> str:
        self._index(node)
        return f"{self.name}-{node}"

    def node_interface(self, node: str) -> str:
        """The node's interface on the lab network, inside its namespace (the one a responder uses)."""
        self._index(node)
        return INTERFACE

    @property
    def client_interface(self) -> str:
        return INTERFACE

    def node_address(self, node: str, family: int = 4) -> str:
        index = self._index(node) + 1
        return str(NODE_V4_NETWORK[index] if family == 4 else NODE_V6_NETWORK[index])

    def client_address(self, family: int = 4) -> str:
        """The client's address: on the nodes' network, or behind the router in a lab with one."""
        if self.has_router:
            return ROUTED_CLIENT_V4 if family == 4 else ROUTED_CLIENT_V6
        return CLIENT_V4 if family == 4 else CLIENT_V6

    def node_network(self, family: int = 4) -> str:
        """The nodes' network (the switch): 198.51.100.0/24 or 2001:db8:100::/64."""
        return str(NODE_V4_NETWORK if family == 4 else NODE_V6_NETWORK)

    # -- the router (router=True) --

    @property
    def router_ns(self) -> str:
        """The router's namespace, where a routing daemon runs (see metallb_py.testing.routers)."""
        self._require_router()
        return f"{self.name}-router"

    def router_address(self, family: int = 4) -> str:
        """The router's address on the nodes' network: the speakers' BGP peer address."""
        self._require_router()
        return ROUTER_V4 if family == 4 else ROUTER_V6

    @property
    def router_interface(self) -> str:
        """The router's interface on the nodes' network (its client link is `eth1`)."""
        self._require_router()
        return INTERFACE

    def router_client_side_address(self, family: int = 4) -> str:
        """The router's address on the client's link (a multihop peer address, one hop past the LAN)."""
        self._require_router()
        return ROUTER_CLIENT_SIDE_V4 if family == 4 else ROUTER_CLIENT_SIDE_V6

    def client_network(self, family: int = 4) -> str:
        self._require_router()
        return str(CLIENT_NET_V4 if family == 4 else CLIENT_NET_V6)

    def node_link_local(self, node: str) -> str:
        """The node's IPv6 link-local address on the lab network: the next hop a router may install for
        the IPv6 routes it learns from that node."""
        rows = json.loads(
            _run(
                [
                    "ip",
                    "-n",
                    self.node_ns(node),
                    "-j",
                    "-6",
                    "addr",
                    "show",
                    "dev",
                    INTERFACE,
                    "scope",
                    "link",
                ]
            )
        )
        for row in rows:
            for info in row.get("addr_info", []):
                if str(info.get("local", "")).startswith("fe80:"):
                    return str(info["local"])
        raise NetnsLabError(f"node {node} has no IPv6 link-local address on {INTERFACE}")

    def _require_router(self) -> None:
        if not self.has_router:
            raise NetnsLabError(f"lab {self.name} has no router: build it with NetnsLab(..., router=True)")

    def node_mac(self, node: str) -> str:
        return self._mac(self.node_ns(node), INTERFACE)

    def client_mac(self) -> str:
        """The MAC address of the client's interface (a lab with a router: on the client's own link)."""
        return self._mac(self.client_ns, self.client_interface)

    def _index(self, node: str) -> int:
        try:
            return self.all_nodes.index(node)
        except ValueError:
            raise NetnsLabError(
                f"no node {node!r} in this lab (nodes: {', '.join(self.all_nodes)})"
            ) from None

    @staticmethod
    def _mac(netns: str, ifname: str) -> str:
        info = json.loads(_run(["ip", "-n", netns, "-j", "link", "show", "dev", ifname]))
        return str(info[0]["address"]).lower()

    # -- life cycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def start(self) -> None:
        """Builds the namespaces, links, addresses and routes. Raises NetnsLabError without root."""
        if self._started:
            raise NetnsLabError(f"lab {self.name} is already started")
        if os.geteuid() != 0:
            raise NetnsLabError("NetnsLab needs root (network namespaces, veth pairs and sysctls)")
        if shutil.which("ip") is None:
            raise NetnsLabError("NetnsLab needs iproute2 (`ip`): apt-get install iproute2")
        self._started = True
        _sweep_stale_state()
        self._state.mkdir(parents=True, exist_ok=True)
        (self._state / "owner.pid").write_text(f"{os.getpid()}\n")
        self._write_routes()
        atexit.register(self.close)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        node_nss = [self.node_ns(n) for n in self.all_nodes]
        router_nss = [self.router_ns] if self.has_router else []
        every = [self.bridge_ns, self.client_ns, *router_nss, *node_nss]
        self._created = every
        _ip_batch(f"netns add {ns}" for ns in every)
        # Sysctls first, so the interfaces created next inherit the `default` values.
        self._sysctl(
            self.bridge_ns,
            # The switch has no address of any family: no IPv6 link-local either.
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        )
        quiet_v6 = ("net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
        self._sysctl(self.client_ns, *quiet_v6)
        for ns in router_nss:
            self._sysctl(
                ns,
                *quiet_v6,
                "net.ipv4.ip_forward=1",
                "net.ipv6.conf.all.forwarding=1",
                # ECMP legs and replies may arrive on either link: no reverse-path drops.
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
                # Hash ECMP on addresses and ports (layer 4), so one client spreads over the nodes.
                "net.ipv4.fib_multipath_hash_policy=1",
                "net.ipv6.fib_multipath_hash_policy=1",
            )
        for ns in node_nss:
            self._sysctl(
                ns,
                *quiet_v6,
                # Only our responder answers ARP for the VIPs on lo: the kernel answers only for addresses
                # on the interface the request came in on, and sources its own requests from eth0's.
                "net.ipv4.conf.all.arp_ignore=1",
                "net.ipv4.conf.all.arp_announce=2",
            )
        lan = ("router", self.router_ns) if self.has_router else ("client", self.client_ns)
        ports = [lan, *((str(i), ns) for i, ns in enumerate(node_nss))]
        batch = [
            f"link add {INTERFACE} netns {ns} type veth peer name p-{port} netns {self.bridge_ns}"
            for port, ns in ports
        ]
        if self.has_router:
            # The client's own link: straight to the router, not through the switch.
            batch.append(
                f"link add {INTERFACE} netns {self.client_ns} type veth peer name {ROUTER_CLIENT_INTERFACE} "
                f"netns {self.router_ns}"
            )
        _ip_batch(batch)
        _ip_batch(
            [
                # No STP and no forwarding delay: ports forward at once, also after restore_link. No multicast
                # snooping: the switch floods Neighbor Solicitations like a plain switch, so NDP never depends
                # on which MLD reports the bridge happened to see.
                f"link add {_BRIDGE} type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
                *(f"link set p-{port} master {_BRIDGE}" for port, _ in ports),
                *(f"link set p-{port} up" for port, _ in ports),
                f"link set {_BRIDGE} up",
            ],
            self.bridge_ns,
        )
        if self.has_router:
            self._build_router()
        else:
            client = [
                "link set lo up",
                f"addr add {CLIENT_V4}/{NODE_V4_NETWORK.prefixlen} dev {INTERFACE}",
                f"addr add {CLIENT_V6}/{NODE_V6_NETWORK.prefixlen} dev {INTERFACE} nodad",
                f"link set {INTERFACE} up",
                *(f"route add {route} dev {INTERFACE}" for route in self.vip_routes),
            ]
            _ip_batch(client, self.client_ns)
        # With a router, the nodes answer the client through it (a node's default gateway, in effect).
        back = (
            [
                f"route add {CLIENT_NET_V4} via {ROUTER_V4}",
                f"route add {CLIENT_NET_V6} via {ROUTER_V6}",
            ]
            if self.has_router
            else []
        )
        for node, ns in zip(self.all_nodes, node_nss, strict=True):
            v4, v6 = self.node_address(node, 4), self.node_address(node, 6)
            _ip_batch(
                [
                    "link set lo up",
                    f"addr add {v4}/{NODE_V4_NETWORK.prefixlen} dev {INTERFACE}",
                    f"addr add {v6}/{NODE_V6_NETWORK.prefixlen} dev {INTERFACE} nodad",
                    f"link set {INTERFACE} up",
                    *back,
                ],
                ns,
            )

        if self.pin_neighbours:
            self._pin_neighbours(node_nss)

    def _pin_neighbours(self, node_nss: Sequence[str]) -> None:
        lan_ns = self.router_ns if self.has_router else self.client_ns
        lan_v4 = ROUTER_V4 if self.has_router else CLIENT_V4
        hosts = [(ns, self.node_address(n, 4)) for n, ns in zip(self.all_nodes, node_nss, strict=True)]
        hosts.append((lan_ns, lan_v4))
        macs = {ns: self._mac(ns, INTERFACE) for ns, _ in hosts}
        for ns, _ in hosts:
            _ip_batch(
                (
                    f"neigh replace {v4} lladdr {macs[other]} dev {INTERFACE} nud permanent"
                    for other, v4 in hosts
                    if other != ns
                ),
                ns,
            )

    def _build_router(self) -> None:
        _ip_batch(
            [
                "link set lo up",
                f"addr add {ROUTER_V4}/{NODE_V4_NETWORK.prefixlen} dev {INTERFACE}",
                f"addr add {ROUTER_V6}/{NODE_V6_NETWORK.prefixlen} dev {INTERFACE} nodad",
                f"addr add {ROUTER_CLIENT_SIDE_V4}/24 dev {ROUTER_CLIENT_INTERFACE}",
                f"addr add {ROUTER_CLIENT_SIDE_V6}/64 dev {ROUTER_CLIENT_INTERFACE} nodad",
                f"link set {INTERFACE} up",
                f"link set {ROUTER_CLIENT_INTERFACE} up",
            ],
            self.router_ns,
        )
        via = {4: ROUTER_CLIENT_SIDE_V4, 6: ROUTER_CLIENT_SIDE_V6}
        routes = [*self.vip_routes, str(NODE_V4_NETWORK), str(NODE_V6_NETWORK)]
        _ip_batch(
            [
                "link set lo up",
                f"addr add {ROUTED_CLIENT_V4}/{CLIENT_NET_V4.prefixlen} dev {INTERFACE}",
                f"addr add {ROUTED_CLIENT_V6}/{CLIENT_NET_V6.prefixlen} dev {INTERFACE} nodad",
                f"link set {INTERFACE} up",
                *(f"route add {r} via {via[ipaddress.ip_network(r).version]}" for r in routes),
            ],
            self.client_ns,
        )

    @staticmethod
    def _sysctl(netns: str, *settings: str) -> None:
        _run(["ip", "netns", "exec", netns, "sysctl", "-qw", *settings])

    def close(self) -> None:
        """Stops every helper process and deletes every namespace this lab made. Safe to call twice."""
        atexit.unregister(self.close)
        for prober in self._probers:
            prober.stop()
        self._probers.clear()
        helpers = [*self._servers.values(), *([self._client] if self._client else [])]
        for helper in helpers:
            helper.popen.kill()
        for helper in helpers:
            helper.stop()
        self._servers.clear()
        self._client = None
        if self._created:
            _delete_namespaces(self._created)
            self._created = []
        shutil.rmtree(self._state, ignore_errors=True)

    # -- VIPs and servers ------------------------------------------------------------------------------------

    def add_vip(self, vip: str, nodes: Iterable[str] | None = None) -> None:
        """Puts `vip` on the loopback of `nodes` (default: every node, extra nodes included), so the node
        accepts its traffic while only a responder answers ARP/NDP for it. Idempotent."""
        self.add_vips([vip], nodes)

    def add_vips(self, vips: Iterable[str], nodes: Iterable[str] | None = None) -> None:
        """add_vip for several addresses at once: one iproute2 process per node, whatever their number (a
        hundred nodes and ten addresses take a hundred processes, not a thousand)."""
        ips = [ipaddress.ip_address(vip) for vip in vips]
        for node in self.all_nodes if nodes is None else nodes:
            have = self._vips.setdefault(node, set())
            missing = list(dict.fromkeys(ip for ip in ips if str(ip) not in have))
            if not missing:
                continue
            _ip_batch(
                [
                    f"addr add {ip}/32 dev lo" if ip.version == 4 else f"addr add {ip}/128 dev lo nodad"
                    for ip in missing
                ],
                self.node_ns(node),
            )
            have.update(str(ip) for ip in missing)

    def remove_vip(self, vip: str, nodes: Iterable[str] | None = None) -> None:
        ip = ipaddress.ip_address(vip)
        plen = 32 if ip.version == 4 else 128
        for node in self.all_nodes if nodes is None else nodes:
            if str(ip) in self._vips.get(node, set()):
                _ip_batch([f"addr del {ip}/{plen} dev lo"], self.node_ns(node))
                self._vips[node].discard(str(ip))

    def serve(self, vip: str | Sequence[str], kind: EchoKind = "hname", port: int = 80) -> None:
        """Every node in `nodes` answers HTTP on `vip`:`port` with `kind`: `hname` returns the node name
        (like the seed's echo-hname), `ip` the request method and the client's address (like echo-ip).
        Puts the VIP on every node's lo first. Other addresses on a served port answer 404. `vip` may be
        several addresses: one server per node serves them all."""
        if kind not in ("hname", "ip"):
            raise NetnsLabError(f"kind {kind!r}: expected 'hname' or 'ip'")
        self._require_started()
        ips = [str(ipaddress.ip_address(v)) for v in ([vip] if isinstance(vip, str) else vip)]
        self.add_vips(ips)
        for ip in ips:
            self._routes[f"{ip} {port}"] = kind
        self._write_routes()
        starting = [node for node in self.nodes if (node, port) not in self._servers]
        for node in starting:
            self._servers[node, port] = _Helper(
                self.node_ns(node),
                self._log(f"echo-{node}-{port}"),
                "echo",
                f"--node={node}",
                f"--port={port}",
                f"--routes={self._routes_path}",
            )
        # Started together, then awaited: the Python start-ups overlap.
        for node in starting:
            self._servers[node, port].next(timeout=10)

    def _log(self, name: str) -> Path:
        return self._state / f"{name}.log"

    @property
    def _routes_path(self) -> Path:
        return self._state / "routes.json"

    def _write_routes(self) -> None:
        # A new file renamed into place: the servers notice by inode, never read half a file.
        tmp = self._routes_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._routes))
        os.replace(tmp, self._routes_path)

    # -- the client ------------------------------------------------------------------------------------------

    def fetch(
        self, vip: str, port: int = 80, path: str = "/", *, method: str = "GET", timeout: float = 1.0
    ) -> tuple[int, str]:
        """One HTTP request from the client: (status, body), or FetchError when nothing answers in time.

        A persistent helper in the client namespace makes the request, so a fetch costs about a millisecond
        more than the request itself.
        """
        self._require_started()
        host = str(ipaddress.ip_address(vip))
        with self._client_lock:
            if self._client is None:
                self._client = _Helper(self.client_ns, self._log("client"), "client")
                self._client.next(timeout=10)
            self._client.send(
                {"host": host, "port": port, "path": path, "method": method, "timeout": timeout}
            )
            try:
                # The helper applies `timeout` to connecting and to each read; allow both and the reply line.
                result = self._client.next(timeout=2 * timeout + 5)
            except NetnsLabError:
                # A late answer would be taken for the next request's: start afresh next time.
                self._client.popen.kill()
                self._client.stop()
                self._client = None
                raise
        if "error" in result:
            where = f"[{host}]" if ":" in host else host
            raise FetchError(f"{method} http://{where}:{port}{path}: {result['error']}", result["error"])
        return int(result["status"]), str(result["body"])

    def prober(self, vip: str, port: int = 80, *, interval: float = 0.01, timeout: float = 1.0) -> Prober:
        """Starts requesting `vip` every `interval` seconds from the client (see Prober); stopped by
        `Prober.stop()` or at the latest by `close()`."""
        self._require_started()
        prober = Prober(self, str(ipaddress.ip_address(vip)), port, interval, timeout)
        self._probers.append(prober)
        return prober

    def neighbours(self) -> list[Neighbour]:
        """The client's neighbour table on its lab interface: who it believes owns each address (behind a
        router: only the router)."""
        rows = json.loads(_run(["ip", "-n", self.client_ns, "-j", "neigh", "show", "dev", INTERFACE]) or "[]")
        return [
            Neighbour(
                ip=str(row["dst"]),
                lladdr=str(row["lladdr"]).lower() if row.get("lladdr") else None,
                states=tuple(str(s) for s in row.get("state", [])),
            )
            for row in rows
        ]

    def flush_neighbours(self) -> None:
        """Forgets every neighbour the client learned, as a client that never talked to the VIP."""
        _run(["ip", "-n", self.client_ns, "neigh", "flush", "dev", INTERFACE])

    # -- faults ----------------------------------------------------------------------------------------------

    def kill_link(self, node: str) -> None:
        """Cuts the node's cable: its switch port goes down, so the node's eth0 loses carrier and no frame
        passes either way. The node's addresses and processes stay, as on a real unplugged machine."""
        self._set_port(node, "down")

    def restore_link(self, node: str) -> None:
        self._set_port(node, "up")

    def _set_port(self, node: str, state: str) -> None:
        self._require_started()
        _ip_batch([f"link set p-{self._index(node)} {state}"], self.bridge_ns)

    def link_counters(self) -> dict[str, LinkCounters]:
        """Every node's traffic so far, as its switch port counts it (one iproute2 call for the whole lab):
        what the port received is what the node sent, and the other way round."""
        self._require_started()
        rows = json.loads(_run(["ip", "-n", self.bridge_ns, "-j", "-s", "link", "show"]) or "[]")
        by_port = {str(row.get("ifname", "")).split("@")[0]: row.get("stats64") or {} for row in rows}
        counters: dict[str, LinkCounters] = {}
        for index, node in enumerate(self.all_nodes):
            stats = by_port.get(f"p-{index}")
            if stats is None:
                raise NetnsLabError(f"lab {self.name}: no switch port p-{index} for node {node}")
            rx, tx = stats.get("rx") or {}, stats.get("tx") or {}
            counters[node] = LinkCounters(
                sent_bytes=int(rx.get("bytes", 0)),
                sent_packets=int(rx.get("packets", 0)),
                received_bytes=int(tx.get("bytes", 0)),
                received_packets=int(tx.get("packets", 0)),
            )
        return counters

    def exec(self, netns: str, *argv: str, timeout: float = 30.0) -> str:
        """Runs a command inside one of this lab's namespaces and returns its stdout (NetnsLabError if it
        fails)."""
        if netns not in self._created:
            raise NetnsLabError(f"{netns!r} is not a namespace of lab {self.name}")
        return _run(["ip", "netns", "exec", netns, *argv], timeout=timeout)

    def _require_started(self) -> None:
        if not self._created:
            raise NetnsLabError(f"lab {self.name} is not running (use `with NetnsLab(...)` or start())")


def _delete_namespaces(names: Iterable[str]) -> None:
    """Kills what still runs in the namespaces, then deletes them (which deletes their interfaces)."""
    names = list(names)
    existing = set(_namespaces())
    for ns in names:
        if ns not in existing:
            continue
        with contextlib.suppress(NetnsLabError):
            for pid in _run(["ip", "netns", "pids", ns]).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
    doomed = [ns for ns in names if ns in existing]
    if doomed:
        # One by one only if the batch fails, so one bad name never keeps the others.
        try:
            _ip_batch(f"netns del {ns}" for ns in doomed)
        except NetnsLabError:
            for ns in doomed:
                with contextlib.suppress(NetnsLabError):
                    _run(["ip", "netns", "del", ns])


def _owner_alive(state: Path) -> bool:
    try:
        owner = int((state / "owner.pid").read_text())
        os.kill(owner, 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError):
        return True  # unreadable or half-written: treat as someone else's live lab
    return True


def _sweep_stale_state() -> None:
    with contextlib.suppress(OSError):
        for state in _STATE_ROOT.iterdir():
            if not _owner_alive(state):
                cleanup_stale(state.name)


def cleanup_stale(prefix: str = DEFAULT_PREFIX, *, force: bool = False) -> list[str]:
    """Removes the namespaces (and their processes) of labs whose Python process died before close().

    A lab counts as stale when the process that built it is gone; with `force=True`, every lab whose name
    starts with `prefix` is removed, live or not. Returns the namespaces deleted.
    """
    if os.geteuid() != 0:
        raise NetnsLabError("cleanup_stale needs root (deleting network namespaces)")
    pattern = re.compile(rf"^({re.escape(prefix)}[0-9a-f]*)-[a-z0-9.-]+$")
    by_lab: dict[str, list[str]] = {}
    for ns in _namespaces():
        match = pattern.match(ns)
        if match:
            by_lab.setdefault(match.group(1), []).append(ns)
    removed: list[str] = []
    # Routing daemons of dead runs go first (also those outside a lab's namespaces). Never forced: the
    # daemons carry no lab prefix, and a live run's belong to it.
    cleanup_stale_routers()
    for lab, namespaces in by_lab.items():
        state = _STATE_ROOT / lab
        # Without a state directory the namespaces are not a NetnsLab's (tests/netns/_lab.py uses similar
        # names): leave them unless forced.
        if not force and (not state.is_dir() or _owner_alive(state)):
            continue
        _delete_namespaces(namespaces)
        shutil.rmtree(state, ignore_errors=True)
        removed.extend(namespaces)
    with contextlib.suppress(OSError):
        for state in _STATE_ROOT.glob(f"{prefix}*"):
            if state.name not in by_lab and (force or not _owner_alive(state)):
                shutil.rmtree(state, ignore_errors=True)
    return removed
