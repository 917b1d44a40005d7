"""speaker.bgp driven with a fake BgpSessions: what reaches the Rust speaker, and when (nothing twice, never a
session reset for a route change). The real BgpSpeaker against real routers is tests/netns and tests/e2e."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from metallb_py import BfdSettings, BgpRoute
from metallb_py.config import Config, load_objects
from metallb_py.speaker.bgp import Bgp
from metallb_py.speaker.objects import SERVICE_NAME_LABEL

JSON = dict[str, Any]
ME = "node1"

CONFIG = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: web, namespace: metallb-system}
spec: {addresses: [198.51.100.10-198.51.100.20]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: tor, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64512, peerAddress: 192.0.2.1}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: web, namespace: metallb-system}
spec: {ipAddressPools: [web], localPref: 200}
"""


def config(text: str = CONFIG, edit: Any = None) -> Config:
    objects = [o for o in yaml.safe_load_all(text) if o]
    if edit is not None:
        edit(objects)
    return load_objects(objects, source="test")


class FakeSessions:
    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.routes: dict[str, dict[str, BgpRoute]] = {}
        self.kwargs: dict[str, JSON] = {}
        self.running = True

    def add_peer(self, name: str, address: str, **kwargs: Any) -> bool:
        self.calls.append(("add_peer", name, address))
        restarted = name not in self.kwargs or self.kwargs[name] != kwargs
        self.kwargs[name] = kwargs
        return restarted

    def remove_peer(self, name: str) -> bool:
        self.calls.append(("remove_peer", name))
        self.routes.pop(name, None)
        return self.kwargs.pop(name, None) is not None

    def set_routes(self, peer: str, routes: Mapping[str, BgpRoute]) -> None:
        self.calls.append(("set_routes", peer, *sorted(routes)))
        self.routes[peer] = dict(routes)

    def peers(self) -> list[Any]:
        return []

    def next_event(self, timeout: float | None = None) -> None:
        return None

    def stop(self) -> None:
        self.calls.append(("stop",))
        self.running = False


class View:
    def __init__(self) -> None:
        self.node_objects: dict[str, JSON] = {
            ME: {
                "metadata": {"name": ME, "labels": {"rack": "a"}},
                "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.11"}]},
            }
        }
        self.services: list[JSON] = [self.service("web", "198.51.100.10")]
        self.slices: list[JSON] = [self.slice("web", "node2")]

    @staticmethod
    def service(name: str, ip: str, policy: str = "Cluster") -> JSON:
        return {
            "metadata": {"namespace": "default", "name": name},
            "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
        }

    @staticmethod
    def slice(name: str, on: str) -> JSON:
        return {
            "metadata": {"namespace": "default", "name": f"{name}-x", "labels": {SERVICE_NAME_LABEL: name}},
            "endpoints": [{"nodeName": on, "conditions": {"ready": True}}],
        }

    def synced(self) -> bool:
        return True

    def service_objects(self) -> list[JSON]:
        return self.services

    def endpoint_slices(self) -> list[JSON]:
        return self.slices

    def nodes(self) -> Mapping[str, JSON]:
        return self.node_objects

    def config_objects(self) -> list[JSON]:
        return []


class World:
    def __init__(self, secrets: Mapping[tuple[str, str], Mapping[str, str]] | None = None) -> None:
        self.sessions = FakeSessions()
        self.view = View()
        self.changes = 0
        self.problems: list[tuple[str, str | None]] = []
        self.notes: list[tuple[str, tuple[str, ...]]] = []
        self.bgp = Bgp(
            ME,
            self.sessions,
            secrets=lambda: dict(secrets or {}),
            on_change=self._changed,
            on_problem=lambda peer, message: self.problems.append((peer, message)),
            on_note=lambda peer, notes: self.notes.append((peer, notes)),
        )

    def _changed(self) -> None:
        self.changes += 1

    def round(self, cfg: Config | None = None) -> list[tuple[str, ...]]:
        """One round; the calls it made."""
        before = len(self.sessions.calls)
        self.bgp.elect_and_apply(cfg or config(), self.view, None)
        return self.sessions.calls[before:]


def spec_of(kind: str, name: str) -> Any:
    def edit(objects: list[JSON]) -> JSON:
        spec: JSON = next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)["spec"]
        return spec

    return edit


def test_a_peer_is_added_and_gets_the_service_route_with_its_attributes() -> None:
    world = World()
    assert world.round() == [
        ("add_peer", "tor", "192.0.2.1"),
        ("set_routes", "tor", "198.51.100.10/32"),
    ]
    route = world.sessions.routes["tor"]["198.51.100.10/32"]
    assert route == BgpRoute(local_pref=200)  # iBGP: the localPref goes
    assert world.sessions.kwargs["tor"]["my_asn"] == 64512
    assert world.bgp.wanted_statuses() == {"default/web": ("tor",)}
    assert world.bgp.announced() == {"198.51.100.10": ("default/web",)}
    assert world.changes == 1


def test_an_unchanged_round_tells_the_speaker_nothing() -> None:
    world = World()
    world.round()
    assert world.round() == []
    assert world.changes == 1


class UnreadView(View):
    """A view that fails any read: a round that skips BGP must not look at the cluster."""

    def service_objects(self) -> list[JSON]:
        raise AssertionError("Services read")

    def endpoint_slices(self) -> list[JSON]:
        raise AssertionError("EndpointSlices read")

    def nodes(self) -> Mapping[str, JSON]:
        raise AssertionError("Nodes read")


def test_without_bgp_configuration_a_round_closes_what_was_open_once_then_reads_nothing() -> None:
    world = World()
    world.round()

    def pool_alone(objects: list[JSON]) -> None:
        del objects[1:]

    pool_only = config(edit=pool_alone)
    assert pool_only.pools and not pool_only.bgp_peers and not pool_only.bgp_advertisements
    assert world.round(pool_only) == [("remove_peer", "tor")]
    assert world.bgp.announced() == {} and world.bgp.wanted_statuses() == {}
    world.view = UnreadView()
    for _ in range(3):
        assert world.round(pool_only) == []
    world.view = View()
    assert world.round() == [("add_peer", "tor", "192.0.2.1"), ("set_routes", "tor", "198.51.100.10/32")]


def test_a_community_edit_sends_routes_and_never_touches_the_session() -> None:
    world = World()
    world.round()

    def add_community(objects: list[JSON]) -> None:
        spec_of("BGPAdvertisement", "web")(objects)["communities"] = ["65000:100", "large:64512:1:2"]

    assert world.round(config(edit=add_community)) == [("set_routes", "tor", "198.51.100.10/32")]
    route = world.sessions.routes["tor"]["198.51.100.10/32"]
    assert (route.communities, route.large_communities) == (["65000:100"], ["large:64512:1:2"])


def test_a_session_parameter_edit_reconfigures_only_that_peer() -> None:
    world = World()
    text = CONFIG + (
        "---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\n"
        "metadata: {name: tor2, namespace: metallb-system}\n"
        "spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.2}\n"
    )
    world.round(config(text))

    def hold(objects: list[JSON]) -> None:
        spec_of("BGPPeer", "tor2")(objects)["holdTime"] = "9s"

    calls = world.round(config(text, hold))
    assert calls == [("add_peer", "tor2", "192.0.2.2")]
    assert world.sessions.kwargs["tor2"]["hold_time"] == 9.0


def test_a_removed_peer_is_removed_and_the_status_follows() -> None:
    world = World()
    world.round()
    empty = config(edit=lambda objects: objects.pop(1))
    assert world.round(empty) == [("remove_peer", "tor")]
    assert world.bgp.wanted_statuses() == {}
    assert world.bgp.announced() == {}


def test_a_peer_we_cannot_honour_is_left_out_once_with_a_problem_naming_the_field() -> None:
    world = World()

    def vrf(objects: list[JSON]) -> None:
        spec_of("BGPPeer", "tor")(objects)["vrf"] = "red"

    assert world.round(config(edit=vrf)) == []
    assert len(world.problems) == 1 and world.problems[0][0] == "tor"
    assert "vrf" in str(world.problems[0][1])
    world.round(config(edit=vrf))
    assert len(world.problems) == 1  # said once
    world.round()
    assert world.problems[-1] == ("tor", None)
    assert ("add_peer", "tor", "192.0.2.1") in world.sessions.calls


def test_local_traffic_policy_advertises_only_with_a_local_endpoint() -> None:
    world = World()
    world.view.services = [View.service("web", "198.51.100.10", policy="Local")]
    assert world.round() == [("add_peer", "tor", "192.0.2.1"), ("set_routes", "tor")]
    world.view.slices.append(View.slice("web", ME))
    assert world.round() == [("set_routes", "tor", "198.51.100.10/32")]


def test_withdraw_all_empties_every_peer_and_keeps_the_sessions() -> None:
    world = World()
    world.round()
    world.bgp.withdraw_all()
    assert world.sessions.calls[-1] == ("set_routes", "tor")
    assert "remove_peer" not in {c[0] for c in world.sessions.calls}
    assert world.bgp.wanted_statuses() == {}
    # The next round puts the routes back.
    assert world.round() == [("set_routes", "tor", "198.51.100.10/32")]


def test_a_password_secret_is_resolved_from_the_watched_secrets() -> None:
    def secret(objects: list[JSON]) -> None:
        reference = {"name": "tor-md5", "namespace": "metallb-system"}
        spec_of("BGPPeer", "tor")(objects)["passwordSecret"] = reference

    missing = World()
    assert missing.round(config(edit=secret)) == []
    assert "tor-md5" in str(missing.problems[0][1])
    world = World({("metallb-system", "tor-md5"): {"password": "s3cret"}})
    world.round(config(edit=secret))
    assert world.sessions.kwargs["tor"]["password"] == "s3cret"


def test_a_node_without_a_node_object_has_no_sessions() -> None:
    world = World()
    world.round()
    world.view.node_objects = {}
    assert world.round() == [("remove_peer", "tor")]


def test_a_peer_the_speaker_refuses_is_a_problem_and_the_others_still_get_their_routes() -> None:
    world = World()
    text = CONFIG + (
        "---\napiVersion: metallb.io/v1beta2\nkind: BGPPeer\n"
        "metadata: {name: tor2, namespace: metallb-system}\n"
        "spec: {myASN: 64512, peerASN: 64513, peerAddress: 192.0.2.2}\n"
    )
    refuse = world.sessions.add_peer

    def add_peer(name: str, address: str, **kwargs: Any) -> bool:
        if name == "tor":
            raise ValueError("hold time 2 s: want 0 or at least 3 s")
        return refuse(name, address, **kwargs)

    world.sessions.add_peer = add_peer  # type: ignore[method-assign]
    calls = world.round(config(text))
    assert ("set_routes", "tor2", "198.51.100.10/32") in calls
    assert not any(c[0] == "set_routes" and c[1] == "tor" for c in calls)
    assert world.problems == [("tor", "BGPPeer 'tor' is not used: hold time 2 s: want 0 or at least 3 s")]
    world.round(config(text))
    assert len(world.problems) == 1  # said once, not again each round


def test_a_bfd_profile_reaches_the_speaker_and_a_timer_edit_changes_only_bfd() -> None:
    world = World()
    text = CONFIG + (
        "---\napiVersion: metallb.io/v1beta1\nkind: BFDProfile\n"
        "metadata: {name: fast, namespace: metallb-system}\n"
        "spec: {receiveInterval: 50, transmitInterval: 50, detectMultiplier: 3}\n"
    )

    def with_bfd(objects: list[JSON]) -> None:
        spec_of("BGPPeer", "tor")(objects).update(bfdProfile="fast", enableGracefulRestart=True)

    world.round(config(text, with_bfd))
    kwargs = world.sessions.kwargs["tor"]
    assert kwargs["graceful_restart"] is True
    assert kwargs["bfd"] == BfdSettings(receive_interval=0.05, transmit_interval=0.05, detect_multiplier=3)

    def slower(objects: list[JSON]) -> None:
        with_bfd(objects)
        spec_of("BFDProfile", "fast")(objects)["receiveInterval"] = 300

    assert world.round(config(text, slower)) == [("add_peer", "tor", "192.0.2.1")]
    assert world.sessions.kwargs["tor"]["bfd"].receive_interval == 0.3
    assert world.problems == []


def test_an_echo_mode_profile_is_noted_once_and_the_peer_still_runs_bfd() -> None:
    world = World()
    text = CONFIG + (
        "---\napiVersion: metallb.io/v1beta1\nkind: BFDProfile\n"
        "metadata: {name: echo, namespace: metallb-system}\n"
        "spec: {echoMode: true}\n"
    )

    def with_bfd(objects: list[JSON]) -> None:
        spec_of("BGPPeer", "tor")(objects)["bfdProfile"] = "echo"

    world.round(config(text, with_bfd))
    world.round(config(text, with_bfd))
    [(peer, notes)] = world.notes
    assert peer == "tor" and "echoMode" in notes[0]
    assert world.sessions.kwargs["tor"]["bfd"] == BfdSettings()
