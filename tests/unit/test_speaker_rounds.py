"""The speaker's rounds and its status reporter driven with fakes: no sockets, no namespaces, no API server.

The fakes stand for the Rust Responder and Membership (ports.L2Responder, ports.Members) and for the watched
objects (ports.ClusterView); time is a clock the test moves. The real ones are exercised by tests/e2e.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest

from metallb_py.speaker.election import Link
from metallb_py.speaker.gate import Step
from metallb_py.speaker.layer2 import Layer2
from metallb_py.speaker.metrics import SpeakerMetrics
from metallb_py.speaker.objects import SERVICE_NAME_LABEL
from metallb_py.speaker.rounds import CONFIG_SETTLE, REST_AT_MOST, Rounds
from metallb_py.speaker.speaker import stop_announcing

JSON = dict[str, Any]
VIP = "192.0.2.11"
CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"namespace": "metallb-system", "name": "config"},
    "data": {
        "config": "address-pools:\n- name: web\n  protocol: layer2\n  addresses: [192.0.2.11-192.0.2.13]\n"
    },
}


def node(name: str) -> JSON:
    return {"metadata": {"name": name}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}


def service(name: str, ip: str) -> JSON:
    return {
        "metadata": {"namespace": "default", "name": name},
        "spec": {"type": "LoadBalancer"},
        "status": {"loadBalancer": {"ingress": [{"ip": ip}]}},
    }


def endpoints(name: str, on: str) -> JSON:
    return {
        "metadata": {"namespace": "default", "name": f"{name}-x", "labels": {SERVICE_NAME_LABEL: name}},
        "endpoints": [{"nodeName": on, "conditions": {"ready": True}}],
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeView:
    def __init__(self, nodes: Sequence[str]) -> None:
        self.node_objects = {n: node(n) for n in nodes}
        self.services = [service("web", VIP)]
        self.slices = [endpoints("web", nodes[0])]
        self.config = [CONFIGMAP]
        self.listed = True

    def synced(self) -> bool:
        return self.listed

    def service_objects(self) -> list[JSON]:
        return self.services

    def endpoint_slices(self) -> list[JSON]:
        return self.slices

    def nodes(self) -> Mapping[str, JSON]:
        return self.node_objects

    def config_objects(self) -> list[JSON]:
        return self.config


class Log:
    """One ordered record of what every fake was asked to do."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.lock = threading.Lock()

    def add(self, *call: str) -> None:
        with self.lock:
            self.calls.append(call)


class FakeResponder:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.table: dict[str, list[str]] = {}
        self.running = True

    @property
    def interfaces(self) -> list[str]:
        return ["eth0"]

    def announce(self, ip: str, interfaces: Sequence[str] | None = None) -> bool:
        self.log.add("announce", ip)
        self.table[ip] = list(interfaces or ())
        return True

    def withdraw(self, ip: str) -> bool:
        self.log.add("withdraw", ip)
        return self.table.pop(ip, None) is not None

    def announced(self) -> dict[str, list[str]]:
        return dict(self.table)

    def stop(self) -> None:
        self.log.add("responder stop")
        self.running = False


class FakeMembers:
    def __init__(self, log: Log, me: str) -> None:
        self.log, self.me = log, me
        self.up: set[str] = {me}
        self.cut = False
        self.peers: list[str] = []
        self.running = True
        self.worker_alive: Callable[[], bool] = lambda: False

    def alive(self) -> list[str]:
        return sorted(self.up)

    def isolated(self) -> bool:
        return self.cut

    def set_peers(self, addresses: Sequence[str]) -> None:
        self.peers = list(addresses)

    def next_event(self, timeout: float | None = None) -> None:
        return None

    def leave(self) -> None:
        # Whether a round could still run while this member leaves (it must not: see stop_announcing).
        self.log.add("leave", "worker running" if self.worker_alive() else "worker stopped")

    def stop(self) -> None:
        self.running = False


class World:
    """Speaker "a" among a, b, c; the Service's only endpoint is on a, and the hash puts a first for VIP."""

    def __init__(self, *, gossip: bool = True) -> None:
        self.log = Log()
        self.clock = Clock()
        self.view = FakeView(["a", "b", "c"])
        self.responder = FakeResponder(self.log)
        self.members = FakeMembers(self.log, "a") if gossip else None
        self.leases = {"b": "198.51.100.2:7946", "c": "198.51.100.3:7946"}
        self.changes: list[dict[str, tuple[str, ...]]] = []
        self.layer2 = Layer2(
            "a",
            self.responder,
            [Link("eth0")],
            on_change=lambda announced: self.changes.append(dict(announced)),
        )
        self.metrics = SpeakerMetrics()
        self.rounds = Rounds(
            "a",
            self.view,
            self.layer2,
            self.members,
            expected=lambda _now: dict(self.leases),
            metrics=self.metrics,
            settle_timeout=3.0,
            clock=self.clock,
        )

    def gauge(self, name: str) -> float | None:
        return self.metrics.registry.get_sample_value(name)


def test_nothing_is_read_before_every_watch_has_listed() -> None:
    world = World()
    world.view.listed = False
    assert world.rounds.run_round() is None
    assert world.responder.announced() == {} and not world.rounds.ready.is_set()


def test_start_announces_only_after_hearing_every_node() -> None:
    world = World()
    assert world.rounds.run_round() is Step.WAIT
    assert world.members is not None and world.members.peers == sorted(world.leases.values())
    world.members.up |= {"b"}
    world.clock.now += 1.0
    assert world.rounds.run_round() is Step.WAIT, "c not heard yet, settle time not over"
    assert world.responder.announced() == {} and not world.rounds.ready.is_set()
    world.members.up |= {"c"}
    assert world.rounds.run_round() is Step.ELECT
    assert world.responder.announced() == {VIP: ["eth0"]}
    assert world.layer2.announced() == {VIP: ("default/web",)}
    assert world.changes == [{VIP: ("default/web",)}]
    assert world.rounds.ready.is_set()
    assert world.gauge("metallb_py_speaker_members_alive") == 3


def test_start_alone_waits_out_the_settle_time() -> None:
    world = World()
    world.leases.clear()  # no other speaker runs: b and c are Nodes without a speaker
    assert not world.rounds.settle_over(world.clock.now), "not settling before its first round"
    assert world.rounds.run_round() is Step.WAIT
    assert not world.rounds.settle_over(world.clock.now + 2.999)
    assert world.rounds.settle_over(world.clock.now + 3.0)
    world.clock.now += 3.0
    assert world.rounds.run_round() is Step.ELECT
    assert world.responder.announced() == {VIP: ["eth0"]}


def test_hearing_none_of_the_speakers_the_leases_name_announces_nothing() -> None:
    # Issue 12: b's and c's speakers run (their Leases are renewed) but this member hears only itself, and
    # does not call itself isolated (its peers published its own address: it filters them out as itself).
    world = World()
    assert world.members is not None and not world.members.isolated()
    assert world.rounds.run_round() is Step.WAIT
    world.clock.now += 3.0
    assert world.rounds.run_round() is Step.WITHDRAW
    assert world.responder.announced() == {}
    assert world.gauge("metallb_py_speaker_isolated_bool") == 1
    assert not world.rounds.due(False), "idle while nothing changes"
    # b and c are heard: settle again, for the renewing speakers, then announce.
    world.members.up |= {"b", "c"}
    assert world.rounds.due(False), "no longer cut off: a round even without an event"
    assert world.rounds.run_round() is Step.ELECT
    assert world.responder.announced() == {VIP: ["eth0"]}
    assert world.gauge("metallb_py_speaker_isolated_bool") == 0
    # Every peer declared down while their Leases are fresh: withdrawn again.
    world.members.up = {"a"}
    assert world.rounds.due(False)
    assert world.rounds.run_round() is Step.WITHDRAW
    assert world.responder.announced() == {}


def test_a_cut_withdraws_everything_and_back_from_it_settles_before_announcing() -> None:
    world = World()
    assert world.members is not None
    world.members.up |= {"b", "c"}
    assert world.rounds.run_round() is Step.ELECT
    world.members.cut, world.members.up = True, {"a"}
    assert world.rounds.run_round() is Step.WITHDRAW
    assert world.responder.announced() == {} and ("withdraw", VIP) in world.log.calls
    assert world.gauge("metallb_py_speaker_isolated_bool") == 1
    assert world.changes[-1] == {}
    # The member hears b's datagrams again, but no speaker counts alive yet: still cut off.
    world.members.cut, world.members.up = False, {"a"}
    world.clock.now += 10.0
    assert world.rounds.run_round() is Step.WITHDRAW
    assert world.gauge("metallb_py_speaker_isolated_bool") == 1
    # b is alive again, c (whose Lease is fresh) not yet: settle before announcing.
    world.members.up |= {"b"}
    assert world.rounds.run_round() is Step.WAIT
    assert world.responder.announced() == {}, "a partial view announces nothing"
    assert world.gauge("metallb_py_speaker_isolated_bool") == 0
    # c crashed meanwhile and its Lease went stale: settle for b alone.
    del world.leases["c"]
    assert world.rounds.run_round() is Step.ELECT
    assert world.responder.announced() == {VIP: ["eth0"]}


def test_losing_the_election_withdraws_and_winning_it_back_announces_again() -> None:
    world = World()
    assert world.members is not None
    world.members.up |= {"b", "c"}
    world.rounds.run_round()
    world.view.slices = [endpoints("web", "b")]  # ETP Cluster: any endpoint serves, so a still wins
    world.view.services = [
        {**service("web", VIP), "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local"}}
    ]
    world.rounds.run_round()
    assert world.responder.announced() == {}, "Local: only b, with the endpoint, may announce"
    world.view.slices = [endpoints("web", "a")]
    world.rounds.run_round()
    assert world.responder.announced() == {VIP: ["eth0"]}


def test_a_bad_configuration_leaves_the_last_good_one_in_force() -> None:
    world = World(gossip=False)
    assert world.rounds.run_round() is Step.ELECT
    assert world.responder.announced() == {VIP: ["eth0"]}
    world.view.config = [{**CONFIGMAP, "data": {"config": "address-pools: [{name: web, protocol: nope}]"}}]
    world.rounds.config_changed()
    world.rounds.run_round()
    assert world.rounds.config_error is not None and "nope" in world.rounds.config_error
    assert world.responder.announced() == {VIP: ["eth0"]}
    assert world.gauge("metallb_k8s_client_config_stale_bool") == 1
    assert world.gauge("metallb_k8s_client_config_loaded_bool") == 1
    assert world.gauge("metallb_py_speaker_config_refusals_total") == 1
    world.view.config = [CONFIGMAP]
    world.rounds.config_changed()
    world.rounds.run_round()
    assert world.gauge("metallb_k8s_client_config_stale_bool") == 0


def test_without_gossip_there_is_nothing_to_settle_and_no_idle_round() -> None:
    world = World(gossip=False)
    assert world.rounds.gate.settled
    assert not world.rounds.due(woken=False)
    assert world.rounds.due(woken=True)


def test_graceful_stop_leaves_after_the_last_round_and_stops_answering_at_once() -> None:
    world = World()
    assert world.members is not None
    world.members.up |= {"b", "c"}
    world.members.worker_alive = world.rounds.alive
    world.rounds.start()
    world.rounds.wake()
    assert world.rounds.ready.wait(10), "the worker ran no round"
    stop_announcing(world.rounds, world.members, world.responder, graceful=True, timeout=10)
    assert not world.rounds.alive()
    calls = world.log.calls
    assert calls[-2:] == [("leave", "worker stopped"), ("responder stop",)]
    assert ("announce", VIP) in calls[:-2]
    # Nothing runs after leaving: a round now (alone in its view) would claim every address.
    world.rounds.wake()
    assert world.log.calls == calls


def test_a_crash_like_stop_does_not_leave() -> None:
    world = World()
    stop_announcing(world.rounds, world.members, world.responder, graceful=False, timeout=10)
    assert world.log.calls == [("responder stop",)]


def test_a_round_reads_a_changed_configuration_once_it_has_been_still_for_a_moment() -> None:
    world = World(gossip=False)
    assert world.rounds.config_pause() == 0  # nothing changed: no wait
    world.rounds.config_changed()
    assert world.rounds.config_pause() == CONFIG_SETTLE
    world.clock.now += 0.02
    assert world.rounds.config_pause() == pytest.approx(CONFIG_SETTLE - 0.02)
    world.rounds.config_changed()  # a second object of the same apply: the wait starts again
    assert world.rounds.config_pause() == CONFIG_SETTLE
    world.clock.now += 2 * CONFIG_SETTLE
    assert world.rounds.config_pause() == 0
    world.rounds.run_round()  # reads it
    assert world.rounds.config_pause() == 0


class TimedStop(threading.Event):
    """The worker's stop flag, recording how long the worker asked to wait; set once `rounds` rounds ran."""

    def __init__(self, world: World, rounds: int) -> None:
        super().__init__()
        self.world, self.rounds, self.waits = world, rounds, []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        if self.world.rounds.rounds >= self.rounds:
            self.set()
        self.world.rounds.wake()  # a change arrives at once: a storm
        return self.is_set()


@pytest.mark.parametrize(("took", "rest"), [(0.2, 0.2), (2.0, REST_AT_MOST)])
def test_after_a_round_the_worker_rests_as_long_as_it_took_at_most_half_a_second(
    took: float, rest: float
) -> None:
    world = World(gossip=False)
    elect = world.layer2.elect_and_apply

    def slow(*args: Any) -> None:
        world.clock.now += took  # the round's time, on the worker's clock
        elect(*args)

    world.rounds.protocol = SimpleNamespace(elect_and_apply=slow, withdraw_all=world.layer2.withdraw_all)
    stop = world.rounds._stop = TimedStop(world, rounds=3)
    world.rounds.wake()
    world.rounds.run()
    assert world.rounds.rounds == 3
    assert stop.waits == pytest.approx([rest, rest, rest])
