"""What the speaker needs of its parts, as small protocols: the Rust Responder, BgpSpeaker and Membership
satisfy them in production, fakes in unit tests (which then drive whole rounds without sockets, namespaces or
an API server).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol, TypedDict

from metallb_py._core import BfdSettings, BgpEvent, BgpPeerStatus, BgpRoute

__all__ = [
    "BgpSessions",
    "ClusterView",
    "InterfaceChange",
    "L2Interfaces",
    "L2Responder",
    "LinkEvents",
    "MemberEvent",
    "Members",
    "Watcher",
]

JSON = dict[str, Any]


class L2Responder(Protocol):
    """Answers ARP and NDP for the addresses it is told to announce (metallb_py.Responder)."""

    @property
    def interfaces(self) -> list[str]: ...
    @property
    def running(self) -> bool: ...
    def announce(self, ip: str, interfaces: Sequence[str] | None = None) -> bool: ...
    def withdraw(self, ip: str) -> bool: ...
    def announced(self) -> Mapping[Any, Sequence[str]]:
        """Every address answered for now (keys: ipaddress objects or strings), with its interfaces."""

    def stop(self) -> None: ...


class InterfaceChange(TypedDict):
    """What Responder.set_interfaces did: interfaces opened, closed, and those that could not be opened
    (name -> why)."""

    added: list[str]
    removed: list[str]
    failed: dict[str, str]


class L2Interfaces(Protocol):
    """The responder's interface set, changed while it runs (metallb_py.Responder)."""

    @property
    def interfaces(self) -> list[str]: ...
    def set_interfaces(self, interfaces: Sequence[str]) -> InterfaceChange: ...


class LinkEvents(Protocol):
    """Link notifications of the node's namespace (metallb_py._core.LinkWatch): `wait` returns what arrived
    within `timeout` seconds (nothing: an empty sequence), or raises once the watch broke (then `close` it
    and open another)."""

    def wait(self, timeout: float | None = None) -> Sequence[object]: ...
    def close(self) -> None: ...


class BgpSessions(Protocol):
    """The BGP sessions of this node (metallb_py.BgpSpeaker): peers added and removed, routes set per peer."""

    @property
    def running(self) -> bool: ...
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
    ) -> bool: ...
    def remove_peer(self, name: str) -> bool: ...
    def set_routes(self, peer: str, routes: Mapping[str, BgpRoute]) -> None: ...
    def peers(self) -> list[BgpPeerStatus]: ...
    def next_event(self, timeout: float | None = None) -> BgpEvent | None: ...
    def stop(self) -> None: ...


class MemberEvent(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def address(self) -> str: ...


class Members(Protocol):
    """This speaker's gossip member (metallb_py.Membership): who is alive, whether this one is cut off."""

    @property
    def running(self) -> bool: ...
    def alive(self) -> list[str]: ...
    def isolated(self) -> bool: ...
    def set_peers(self, addresses: Sequence[str]) -> None: ...
    def next_event(self, timeout: float | None = None) -> MemberEvent | None: ...
    def leave(self) -> None: ...
    def stop(self) -> None: ...


class Watcher(Protocol):
    """The gossip member's watch (metallb_py.Membership): fast takeover and readiness (see watchplan.py)."""

    def set_watch(
        self,
        targets: Mapping[str, str],
        takeovers: Mapping[str, Sequence[tuple[str, Sequence[str]]]],
        ready: bool,
    ) -> None: ...
    def held(self) -> list[str]: ...
    def unready(self) -> list[str]: ...


class ClusterView(Protocol):
    """The watched objects a round reads (plain dicts as the API returns them)."""

    def synced(self) -> bool:
        """Every watch has listed once: the copies are complete."""

    def service_objects(self) -> list[JSON]: ...
    def endpoint_slices(self) -> list[JSON]: ...
    def nodes(self) -> Mapping[str, JSON]:
        """name -> Node"""

    def config_objects(self) -> list[JSON]:
        """The ConfigMap `config` and the metallb.io resources, as watched."""
