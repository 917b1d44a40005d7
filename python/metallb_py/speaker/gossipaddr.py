"""Which address a speaker gossips from, and why another one is refused. Pure but for `read_addresses`.

The gossip address is where the peers send this speaker's datagrams (it is published in its gossip Lease), so
it must belong to this node alone. An address every node holds breaks the gossip without a sound: kube-proxy
in IPVS mode binds every LoadBalancer address on `kube-ipvs0` of every node, and a VIP may sit on `lo` or a
dummy interface. A speaker gossiping from such an address sends its datagrams to itself; none hears the
others, each counts itself the only speaker, and each announces every address (a split brain the isolation
rule cannot see). So a gossip address is never: a loopback, unspecified, multicast or link-local address;
an address on a loopback interface, a dummy interface or kube-ipvs0; an address inside a configured pool;
an address a Service's status shows as its ingress.

The choice, in order: --gossip-address (refused, with the reason, when it is one of those); the Node's
InternalIP (passed over, with the reason, when it is); else the first global address of an up interface that
is none of those, IPv4 first, primary before secondary (MetalLB gossips from its pod's address, which in its
hostNetwork DaemonSet is the node's own); else an error saying what to pass.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from metallb_py.config.loader import read_object
from metallb_py.errors import ConfigError, MetalLBError
from metallb_py.ipam.fields import ingress_ips

__all__ = [
    "IPVS_INTERFACE",
    "Claimed",
    "GossipAddressError",
    "GossipChoice",
    "NodeAddress",
    "choose_gossip_address",
    "claimed_from_api",
    "parse_ip_addr",
    "read_addresses",
    "refusal",
    "split_host_port",
]

# Where kube-proxy in IPVS mode binds every ClusterIP and LoadBalancer address, on every node.
IPVS_INTERFACE = "kube-ipvs0"

_IP = ipaddress.IPv4Address | ipaddress.IPv6Address


class GossipAddressError(MetalLBError):
    """No usable gossip address, or the one configured is refused; the message says why and what to pass."""


@dataclass(frozen=True)
class NodeAddress:
    """An address of this node's network namespace, as `ip -j -d addr show` describes it."""

    ip: str
    interface: str
    link_type: str = "ether"  # "loopback" for lo
    kind: str | None = None  # the link's kind: "dummy", "veth", "vlan"... (None: a plain device)
    up: bool = True
    scope: str = "global"
    secondary: bool = False
    usable: bool = True  # False while tentative or after duplicate address detection failed


@dataclass(frozen=True)
class Claimed:
    """Addresses that belong to Services, not to a node: the pools' ranges and the Services' ingress."""

    pools: Mapping[str, Sequence[str]] = field(default_factory=dict)  # pool -> addresses as written
    services: Mapping[str, str] = field(default_factory=dict)  # ip -> "namespace/name"


@dataclass(frozen=True)
class GossipChoice:
    ip: str
    port: int | None  # None: the default port
    source: str  # "--gossip-address", "the Node's InternalIP", "interface eth0"
    passed_over: tuple[tuple[str, str], ...] = ()  # (address, why it was not taken)


def split_host_port(text: str) -> tuple[str, int | None]:
    """`ip`, `ip:port` or `[ipv6]:port` -> (canonical ip, port or None). GossipAddressError when malformed."""
    host, port_text = text, None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise GossipAddressError(f"--gossip-address {text!r}: expected ip, ip:port or [ipv6]:port")
        port_text = rest[1:] if rest else None
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise GossipAddressError(
            f"--gossip-address {text!r}: {host!r} is not an IP address (expected ip, ip:port or [ipv6]:port)"
        ) from None
    port = None
    if port_text is not None:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise GossipAddressError(f"--gossip-address {text!r}: port {port_text!r} is not 1-65535")
        port = int(port_text)
    return str(ip), port


def _in_pool(ip: _IP, written: str) -> bool:
    """Whether `ip` is inside one pool entry: a CIDR (host bits allowed) or a range `first-last`."""
    try:
        if "-" in written:
            first, last = (ipaddress.ip_address(part.strip()) for part in written.split("-", 1))
            if first.version != ip.version or last.version != ip.version:
                return False
            return int(first) <= int(ip) <= int(last)
        network = ipaddress.ip_network(written.strip(), strict=False)
    except ValueError:
        return False  # the configuration's loader reports it; it claims nothing here
    return network.version == ip.version and ip in network


def claimed_from_api(
    config_objects: Iterable[Mapping[str, Any]], services: Iterable[Mapping[str, Any]]
) -> Claimed:
    """The pools of the configuration objects (ConfigMap `config`, IPAddressPools) as written, and the
    Services' ingress addresses. An object the loader refuses still claims the addresses it lists."""
    pools: dict[str, tuple[str, ...]] = {}
    for obj in config_objects:
        try:
            for entry in read_object(dict(obj), "gossip address check").pools:
                pools[entry.record.name] = entry.record.addresses
        except ConfigError:
            spec, metadata = obj.get("spec"), obj.get("metadata")
            written = spec.get("addresses") if isinstance(spec, Mapping) else None
            if obj.get("kind") == "IPAddressPool" and isinstance(written, list):
                name = str(metadata.get("name", "")) if isinstance(metadata, Mapping) else ""
                pools[name] = tuple(str(a) for a in written)
    claimed_by: dict[str, str] = {}
    for svc in services:
        metadata = svc.get("metadata")
        if not isinstance(metadata, Mapping):
            continue
        key = f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"
        for ip in ingress_ips(svc):
            claimed_by.setdefault(ip, key)
    return Claimed(pools, claimed_by)


def refusal(ip: str, addresses: Iterable[NodeAddress], claimed: Claimed) -> str | None:
    """Why `ip` can never be a gossip address; None when it can."""
    parsed = ipaddress.ip_address(ip)
    if parsed.is_loopback:
        return "a loopback address"
    if parsed.is_unspecified or parsed.is_multicast or parsed.is_link_local:
        return "not an address of one node (unspecified, multicast or link-local)"
    for address in addresses:
        if ipaddress.ip_address(address.ip) != parsed:
            continue
        name = address.interface
        if address.link_type == "loopback":
            return f"bound on the loopback interface {name} (where Service addresses are bound on every node)"
        if address.kind == "dummy":
            return f"bound on the dummy interface {name} (where Service addresses are bound on every node)"
        if name == IPVS_INTERFACE:
            return f"bound on {name}, where kube-proxy in IPVS mode binds every Service address on every node"
    for pool, entries in sorted(claimed.pools.items()):
        for entry in entries:
            if _in_pool(parsed, entry):
                return f"inside address pool {pool} ({entry}): a Service address, not this node's"
    service = claimed.services.get(str(parsed))
    if service is not None:
        return f"the ingress address of Service {service}"
    return None


def choose_gossip_address(
    configured: str | None,
    internal_ips: Sequence[str],
    addresses: Sequence[NodeAddress],
    claimed: Claimed,
    *,
    node: str,
) -> GossipChoice:
    """The gossip address; see the module docstring. Raises GossipAddressError naming what to pass."""
    if configured:
        ip, port = split_host_port(configured)
        why = refusal(ip, addresses, claimed)
        if why is not None:
            raise GossipAddressError(
                f"--gossip-address {configured} is refused: {ip} is {why}; pass an address of node {node} "
                "that no other node holds (its own address on the node network)"
            )
        return GossipChoice(ip, port, "--gossip-address")
    passed: list[tuple[str, str]] = []
    for text in internal_ips:
        try:
            ip = str(ipaddress.ip_address(text))
        except ValueError:
            passed.append((text, "the Node's InternalIP is not an IP address"))
            continue
        why = refusal(ip, addresses, claimed)
        if why is None:
            return GossipChoice(ip, None, "the Node's InternalIP", tuple(passed))
        passed.append((ip, f"the Node's InternalIP is {why}"))
    candidates = [
        (ipaddress.ip_address(a.ip).version, a.secondary, n, a)
        for n, a in enumerate(addresses)
        if a.up and a.usable and a.scope == "global"
    ]
    for _, _, _, address in sorted(candidates, key=lambda c: c[:3]):
        why = refusal(address.ip, addresses, claimed)
        if why is None:
            return GossipChoice(address.ip, None, f"interface {address.interface}", tuple(passed))
        passed.append((address.ip, why))
    found = "; ".join(f"{ip}: {why}" for ip, why in passed) or "no global address on an up interface"
    raise GossipAddressError(
        f"no gossip address for node {node}: it has no usable InternalIP and no address of its own on a "
        f"real interface ({found}); pass --gossip-address with this node's own address on the node network"
    )


def parse_ip_addr(text: str) -> list[NodeAddress]:
    """The output of `ip -j -d addr show` as NodeAddresses, in its order."""
    rows: list[dict[str, Any]] = json.loads(text or "[]")
    found = []
    for row in rows:
        flags = {str(f) for f in row.get("flags", ())}
        kind = (row.get("linkinfo") or {}).get("info_kind")
        for info in row.get("addr_info", ()):
            if info.get("family") not in ("inet", "inet6") or not info.get("local"):
                continue
            try:
                ip = str(ipaddress.ip_address(str(info["local"])))
            except ValueError:
                continue
            found.append(
                NodeAddress(
                    ip=ip,
                    interface=str(row.get("ifname", "")),
                    link_type=str(row.get("link_type", "ether")),
                    kind=str(kind) if kind else None,
                    up="UP" in flags,
                    scope=str(info.get("scope", "global")),
                    secondary=bool(info.get("secondary")),
                    usable=not (info.get("tentative") or info.get("dadfailed")),
                )
            )
    return found


def read_addresses(netns: str | None = None) -> list[NodeAddress]:
    """The addresses of this network namespace (or the named one). OSError or CalledProcessError when `ip`
    fails."""
    argv = ["ip", *(["-n", netns] if netns else []), "-j", "-d", "addr", "show"]
    done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=10)
    return parse_ip_addr(done.stdout)
