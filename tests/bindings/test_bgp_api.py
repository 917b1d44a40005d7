"""metallb_py._core.BgpSpeaker without a network or privileges: arguments, routes, status and event shapes,
the context manager, errors, the GIL. Sessions against real routers are tests/netns/test_bgp_session.py's
job; the only connections here go to loopback: a closed port, or a scripted peer that only answers the OPEN.

Deadlines in waits only stop a hang; nothing here bounds how long anything takes.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import metallb_py
from metallb_py import errors
from metallb_py._core import BgpEvent, BgpPeerStatus, BgpRoute, BgpSpeaker

ROUTER_ID = "192.0.2.1"


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def speaker() -> Iterator[BgpSpeaker]:
    with BgpSpeaker() as the_speaker:
        yield the_speaker


def add(speaker: BgpSpeaker, name: str = "router", **options: Any) -> bool:
    args: dict[str, Any] = {
        "address": "127.0.0.1",
        "my_asn": 64512,
        "peer_asn": 64513,
        "router_id": ROUTER_ID,
        "port": closed_port(),
        "connect_time": 1.0,
        **options,
    }
    return speaker.add_peer(name, **args)


def test_exported_from_the_package() -> None:
    for name in ("BgpSpeaker", "BgpRoute", "BgpPeerStatus", "BgpEvent"):
        assert name in metallb_py.__all__
        assert getattr(metallb_py, name) is globals()[name]


def test_routes_parse_metallb_communities_and_normalize() -> None:
    route = BgpRoute(
        local_pref=200,
        communities=["65000:100", "large:65000:1:2", "1:2", "65000:100"],
        large_communities=["3:4:5"],
    )
    assert route.local_pref == 200
    assert route.communities == ["1:2", "65000:100"]
    assert route.large_communities == ["large:3:4:5", "large:65000:1:2"]
    assert route == BgpRoute(200, ["1:2", "large:3:4:5", "65000:100", "large:65000:1:2"])
    assert hash(route) == hash(BgpRoute(200, ["1:2", "large:3:4:5", "65000:100", "large:65000:1:2"]))
    assert route != BgpRoute(100, ["1:2"])
    assert BgpRoute() == BgpRoute(None, [], [])
    assert repr(BgpRoute(7, ["1:2"])) == "BgpRoute(local_pref=7, communities=['1:2'], large_communities=[])"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"communities": ["65536:1"]}, 'community "65536:1": "65536" is not a 16-bit'),
        ({"communities": ["1:2:3"]}, "neither a community"),
        ({"communities": ["no-export"]}, 'community "no-export"'),
        ({"communities": ["x:1:2:3"]}, 'starts with "large:"'),
        ({"large_communities": ["1:2"]}, "large:GLOBAL:LOCAL1:LOCAL2"),
        ({"large_communities": ["large:4294967296:0:0"]}, "not a 32-bit"),
        ({"local_pref": -1}, "local_pref -1 is out of range"),
        ({"local_pref": 2**32}, "out of range"),
    ],
)
def test_bad_route_attributes_name_the_value(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=re.escape(fragment)):
        BgpRoute(**kwargs)


def test_a_string_is_not_a_list_of_communities() -> None:
    with pytest.raises(TypeError):
        BgpRoute(communities="65000:100")


@pytest.mark.parametrize(
    ("kwargs", "error", "fragment"),
    [
        ({"address": "nonsense"}, ValueError, 'address "nonsense" is not an IP address'),
        ({"address": "0.0.0.0"}, ValueError, "not a unicast address"),
        ({"router_id": "2001:db8::1"}, ValueError, 'router_id "2001:db8::1" is not an IPv4 address'),
        ({"router_id": "0.0.0.0"}, ValueError, "router_id 0.0.0.0"),
        ({"my_asn": 0}, ValueError, "my_asn 0 is reserved"),
        ({"my_asn": 2**32}, ValueError, "my_asn 4294967296 is out of range"),
        ({"peer_asn": -5}, ValueError, "peer_asn -5 is out of range"),
        ({"peer_asn": 23456}, ValueError, "AS_TRANS"),
        ({"peer_asn": None}, ValueError, "give peer_asn (the peer's ASN) or dynamic_asn"),
        ({"dynamic_asn": "internal"}, ValueError, "not both"),
        ({"peer_asn": None, "dynamic_asn": "sometimes"}, ValueError, '"internal" or "external"'),
        ({"hold_time": 2.0}, ValueError, "at least 3 s"),
        ({"hold_time": 1.0}, ValueError, "at least 3 s"),
        ({"hold_time": 10.5}, ValueError, "whole seconds"),
        ({"hold_time": -1.0}, ValueError, "non-negative"),
        ({"keepalive_time": 100.0}, ValueError, "longer than hold_time"),
        ({"connect_time": 0.0}, ValueError, "connect_time"),
        ({"port": 0}, ValueError, "port 0"),
        ({"port": 70000}, ValueError, "port 70000 is out of range"),
        ({"password": "k" * 81}, ValueError, "at most 80"),
        ({"password": ""}, ValueError, "password is empty"),
        ({"source_address": "2001:db8::5"}, ValueError, "different families"),
        ({"families": []}, ValueError, "families is empty"),
        ({"families": ["ipv4", "l2vpn"]}, ValueError, '"l2vpn" is not'),
        ({"next_hop_v4": "2001:db8::1"}, ValueError, 'next_hop_v4 "2001:db8::1" is not an IPv4'),
        ({"next_hop_v6": "192.0.2.9"}, ValueError, 'next_hop_v6 "192.0.2.9" is not an IPv6'),
    ],
)
def test_bad_peer_parameters_are_refused_and_change_nothing(
    speaker: BgpSpeaker, kwargs: dict[str, Any], error: type[Exception], fragment: str
) -> None:
    add(speaker, hold_time=90.0)
    before = speaker.peer("router")
    assert before is not None
    with pytest.raises(error, match=re.escape(fragment)):
        add(speaker, **kwargs)
    after = speaker.peer("router")
    assert after is not None and after.port == before.port, "the peer is as it was"
    assert [p.name for p in speaker.peers()] == ["router"]


def test_add_peer_says_whether_it_started_a_session(speaker: BgpSpeaker) -> None:
    port = closed_port()
    assert add(speaker, port=port) is True
    assert add(speaker, port=port) is False, "the same parameters: nothing to do"
    assert add(speaker, port=port, next_hop_v4="192.0.2.50") is False, "next hops are not session parameters"
    assert speaker.peer("router").next_hop_v4 == "192.0.2.50"  # type: ignore[union-attr]
    assert add(speaker, port=port, next_hop_v4="192.0.2.50", hold_time=30.0) is True
    assert add(speaker, "other", dynamic_asn="external", peer_asn=None) is True
    assert [p.name for p in speaker.peers()] == ["other", "router"]


def test_routes_for_unknown_peers_bad_prefixes_and_wrong_families(speaker: BgpSpeaker) -> None:
    add(speaker, families=["ipv4"])
    with pytest.raises(KeyError, match='no peer named "nobody"'):
        speaker.set_routes("nobody", {})
    with pytest.raises(KeyError):
        speaker.advertise("nobody", "198.51.100.10/32")
    with pytest.raises(KeyError):
        speaker.withdraw("nobody", "198.51.100.10/32")
    with pytest.raises(
        ValueError,
        match=re.escape('prefix "198.51.100.10/24": has bits set past /24; did you mean 198.51.100.0/24?'),
    ):
        speaker.set_routes("router", {"198.51.100.10/24": BgpRoute()})
    with pytest.raises(ValueError, match='prefix "banana"'):
        speaker.advertise("router", "banana")
    with pytest.raises(ValueError, match="community"):
        speaker.advertise("router", "198.51.100.10/32", communities=["1:2:3"])
    with pytest.raises(
        ValueError, match=re.escape('2001:db8::10/128 is ipv6, but peer "router" carries ipv4 only')
    ):
        speaker.set_routes("router", {"198.51.100.10/32": BgpRoute(), "2001:db8::10/128": BgpRoute()})
    status = speaker.peer("router")
    assert status is not None and status.prefixes_configured == 0, "a refused set changes nothing"

    speaker.set_routes("router", {"198.51.100.10/32": BgpRoute(), "198.51.100.11": BgpRoute(local_pref=5)})
    speaker.advertise("router", "198.51.100.12/32", communities=["65000:1"])
    assert speaker.withdraw("router", "198.51.100.10") is True
    assert speaker.withdraw("router", "198.51.100.10/32") is False
    status = speaker.peer("router")
    assert status is not None
    # Not connected: everything wanted waits.
    assert (status.prefixes_configured, status.prefixes_advertised, status.prefixes_pending) == (2, 0, 2)
    speaker.set_routes("router", {})
    assert speaker.peer("router").prefixes_configured == 0  # type: ignore[union-attr]


def test_status_and_events_of_a_peer_that_cannot_be_reached(speaker: BgpSpeaker) -> None:
    add(speaker, port=closed_port())
    event = speaker.next_event(timeout=30)
    assert isinstance(event, BgpEvent)
    assert (event.peer, event.kind, event.code, event.subcode) == ("router", "connect_failed", None, None)
    assert "refused" in event.reason.lower()
    assert event.at <= time.monotonic()
    assert repr(event).startswith("BgpEvent(peer='router', kind='connect_failed', reason=")

    status = speaker.peer("router")
    assert isinstance(status, BgpPeerStatus)
    assert (status.name, status.address) == ("router", "127.0.0.1")
    assert status.state in ("idle", "connect")
    assert status.established_at is None and status.uptime is None
    assert status.peer_asn is None and status.hold_time is None and status.families == []
    assert status.ibgp is None and status.local_address is None
    assert status.last_error is not None and "refused" in status.last_error.lower()
    assert status.unsendable is None
    counters = status.counters
    assert counters["connect_attempts"] >= 1 and counters["connect_failures"] >= 1
    assert counters["opens_sent"] == 0 and counters["established"] == 0
    assert set(counters) == {
        "opens_sent", "opens_received", "updates_sent", "updates_received", "keepalives_sent",
        "keepalives_received", "notifications_sent", "notifications_received", "route_refresh_sent",
        "route_refresh_received", "prefixes_announced", "prefixes_withdrawn", "connect_attempts",
        "connect_failures", "established", "bytes_sent", "bytes_received",
    }  # fmt: skip
    assert repr(status).startswith("BgpPeerStatus(name='router', address='127.0.0.1'")
    assert speaker.peer("nobody") is None
    assert speaker.events_dropped == 0


def test_remove_peer(speaker: BgpSpeaker) -> None:
    add(speaker)
    assert speaker.remove_peer("router") is True
    assert speaker.remove_peer("router") is False
    assert speaker.peers() == []


def test_context_manager_stop_and_calls_after_stop() -> None:
    with BgpSpeaker() as speaker:
        assert speaker.running and speaker.netns is None
        add(speaker)
        assert repr(speaker) == "BgpSpeaker(netns=None, running=True, peers=1)"
    assert not speaker.running
    assert speaker.peers() == []
    # What happened before the stop stays readable; then the queue is closed, so waits end at once.
    assert all(e.peer == "router" for e in speaker.events())
    assert speaker.next_event() is None
    for call in (
        lambda: add(speaker),
        lambda: speaker.remove_peer("router"),
        lambda: speaker.set_routes("router", {}),
        lambda: speaker.withdraw("router", "198.51.100.10/32"),
    ):
        with pytest.raises(errors.BgpError, match="not running") as info:
            call()
        assert isinstance(info.value, RuntimeError)  # BgpError is one
    speaker.stop()  # idempotent


def test_a_missing_namespace_is_reported() -> None:
    with pytest.raises(errors.BgpNetnsError, match="mlb-no-such-namespace") as info:
        BgpSpeaker(netns="mlb-no-such-namespace")
    assert isinstance(info.value, OSError)
    assert issubclass(errors.BgpPermissionError, PermissionError)
    for cls in (errors.BgpNetnsError, errors.BgpPermissionError):
        assert issubclass(cls, errors.BgpError) and issubclass(cls, errors.MetalLBError)


def test_waiting_for_events_releases_the_gil(speaker: BgpSpeaker) -> None:
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    counter.start()
    try:
        assert speaker.next_event(timeout=0.3) is None
    finally:
        done.set()
        counter.join()
    assert ticks > 50, "the other thread ran while we waited"
    assert speaker.events() == []


def test_routes_given_twice_in_two_spellings_are_refused(speaker: BgpSpeaker) -> None:
    add(speaker)
    with pytest.raises(
        ValueError,
        match=re.escape('prefix 198.51.100.10/32 is given twice: "198.51.100.10" and "198.51.100.10/32"'),
    ):
        speaker.set_routes(
            "router", {"198.51.100.10/32": BgpRoute(local_pref=1), "198.51.100.10": BgpRoute(local_pref=2)}
        )
    assert speaker.peer("router").prefixes_configured == 0  # type: ignore[union-attr]


def bgp_message(kind: int, body: bytes) -> bytes:
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), kind) + body


def peer_open(asn: int, router_id: str) -> bytes:
    """OPEN: AS `asn` (under 65536), hold time 90, IPv4 unicast and 4-octet AS capabilities."""
    capabilities = bytes([1, 4, 0, 1, 0, 1]) + bytes([65, 4]) + struct.pack("!I", asn)
    params = bytes([2, len(capabilities)]) + capabilities
    return bgp_message(
        1, struct.pack("!BHH4sB", 4, asn, 90, socket.inet_aton(router_id), len(params)) + params
    )


def test_dropping_a_speaker_nobody_stopped_releases_the_gil() -> None:
    """A speaker dropped without stop() stops then: a Cease to every peer, and up to a second for each to
    close its side. This peer never closes, so the drop takes that second; other threads run meanwhile."""
    listener = socket.create_server(("127.0.0.1", 0))
    release = threading.Event()

    def quiet_peer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(4096)  # the speaker's OPEN
            conn.sendall(peer_open(64513, "192.0.2.254") + bgp_message(4, b""))
            release.wait()

    peer = threading.Thread(target=quiet_peer)
    peer.start()
    ticks = 0
    done = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            time.sleep(0.001)

    counter = threading.Thread(target=count)
    try:
        speaker = BgpSpeaker()
        add(speaker, port=listener.getsockname()[1], families=["ipv4"])
        deadline = time.monotonic() + 30
        while (status := speaker.peer("router")) is None or status.state != "established":
            assert time.monotonic() < deadline, "the session never came up"
            time.sleep(0.01)
        counter.start()
        before = ticks
        del speaker, status
        during = ticks - before
    finally:
        done.set()
        release.set()
        if counter.is_alive():
            counter.join()
        peer.join()
        listener.close()
    assert during > 20, "the other thread ran while the dropped speaker waited for its peer"
