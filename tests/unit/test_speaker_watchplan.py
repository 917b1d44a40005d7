"""watchplan: what the gossip's watch is told (standby duties, heartbeat targets, who the elections
count), and Rounds telling it: with fakes for the member and the watch, no sockets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hypothesis import given
from hypothesis import strategies as st
from test_speaker_rounds import VIP, FakeMembers, FakeResponder, FakeView, Log

from metallb_py.config import Config, load_objects
from metallb_py.speaker.election import Election, Link
from metallb_py.speaker.gate import Step
from metallb_py.speaker.layer2 import Layer2
from metallb_py.speaker.metrics import SpeakerMetrics
from metallb_py.speaker.ports import ClusterView
from metallb_py.speaker.rounds import Rounds
from metallb_py.speaker.watchplan import (
    FULL_MESH_MAX,
    Standby,
    electable,
    keep,
    ring_neighbours,
    standby,
    targets,
)


def election(ip: str, *order: str) -> Election:
    return Election(ip=ip, node=order[0] if order else None, reason="test", order=tuple(order))


def test_standby_takes_over_what_it_is_next_for_and_knows_who_watches_it() -> None:
    elections = {
        "192.0.2.1": election("192.0.2.1", "a", "b", "c"),  # b stands by for a
        "192.0.2.2": election("192.0.2.2", "b", "c", "a"),  # c watches b
        "192.0.2.3": election("192.0.2.3", "c", "b"),  # b stands by for c
        "192.0.2.4": election("192.0.2.4", "a", "b"),  # but b has no interface for it
        "192.0.2.5": election("192.0.2.5", "b"),  # nobody next
    }
    ifaces = {"192.0.2.1": ("eth0",), "192.0.2.3": ("eth1", "eth0"), "192.0.2.2": ("eth0",)}
    plan = standby(elections, "b", ifaces)
    assert plan.takeovers == {"a": (("192.0.2.1", ("eth0",)),), "c": (("192.0.2.3", ("eth1", "eth0")),)}
    assert plan.watchers == frozenset({"c"})


def test_small_clusters_heartbeat_everyone_large_ones_only_whom_it_concerns() -> None:
    peers = {f"n{i:02d}": f"198.51.100.{i}:7946" for i in range(FULL_MESH_MAX + 1)}
    assert targets("n00", peers, Standby()) == {n: a for n, a in peers.items() if n != "n00"}
    many = {**peers, "n99": "198.51.100.99:7946"}
    plan = Standby({"n07": (("192.0.2.1", ("eth0",)),)}, frozenset({"n09"}))
    got = targets("n00", many, plan, held=["n11"], unready=["n12", "gone"])
    assert set(got) == {"n07", "n09", "n11", "n12", "n01", "n02", "n99", "n16"}
    assert all(got[n] == many[n] for n in got)


@given(st.sets(st.sampled_from([f"n{i}" for i in range(12)]), min_size=1), st.integers(0, 11))
def test_ring_neighbours_are_symmetric(names: set[str], pick: int) -> None:
    me = sorted(names)[pick % len(names)]
    for other in ring_neighbours(me, names):
        assert me in ring_neighbours(other, names)
    assert me not in ring_neighbours(me, names)
    assert len(ring_neighbours(me, names)) == min(4, len(names) - 1)


def test_elections_count_out_held_members_never_itself() -> None:
    assert electable({"a", "b", "c"}, "a", held=["b", "a"]) == {"a", "c"}


def test_what_it_announces_is_kept_from_a_winner_that_is_not_ready_nothing_else_is_taken() -> None:
    elections = {
        "192.0.2.1": election("192.0.2.1", "b", "a"),  # b settling: a keeps it
        "192.0.2.2": election("192.0.2.2", "b", "a"),  # b settling, but a does not announce it: b's
        "192.0.2.3": election("192.0.2.3", "c", "a"),  # c ready: goes to c
        "192.0.2.4": election("192.0.2.4", "a", "b"),  # a's own
    }
    announced = ["192.0.2.1", "192.0.2.3", "192.0.2.4", "192.0.2.9"]
    assert keep(elections, "a", announced, unready={"b"}) == {"192.0.2.1"}
    assert keep(elections, "a", announced, unready=set()) == set()


class FakeWatcher:
    def __init__(self) -> None:
        self.told: list[tuple[dict[str, str], dict[str, list[tuple[str, list[str]]]], bool]] = []
        self.held_down: list[str] = []
        self.not_ready: list[str] = []

    def set_watch(
        self,
        targets: Mapping[str, str],
        takeovers: Mapping[str, Sequence[tuple[str, Sequence[str]]]],
        ready: bool,
    ) -> None:
        plan = {o: [(ip, list(i)) for ip, i in items] for o, items in takeovers.items()}
        self.told.append((dict(targets), plan, ready))

    def held(self) -> list[str]:
        return list(self.held_down)

    def unready(self) -> list[str]:
        return list(self.not_ready)


class Recorder:
    """A protocol that records the live set each round elects with."""

    def __init__(self) -> None:
        self.lives: list[set[str] | None] = []
        self.withdrawals = 0

    def elect_and_apply(self, config: Config, view: ClusterView, live: set[str] | None) -> None:
        self.lives.append(None if live is None else set(live))

    def withdraw_all(self) -> None:
        self.withdrawals += 1


def rounds_with_watch() -> tuple[Rounds, FakeMembers, FakeWatcher, Recorder, list[float]]:
    clock = [0.0]
    log = Log()
    view = FakeView(["a", "b", "c"])
    members = FakeMembers(log, "a")
    watcher, recorder = FakeWatcher(), Recorder()
    peers = {"b": "198.51.100.2:7946", "c": "198.51.100.3:7946"}
    plan = Standby({"b": (("192.0.2.11", ("eth0",)),)}, frozenset({"c"}))
    rounds = Rounds(
        "a",
        view,
        recorder,
        members,
        expected=lambda _now: dict(peers),
        metrics=SpeakerMetrics(),
        watcher=watcher,
        standby=lambda: plan,
        clock=lambda: clock[0],
    )
    return rounds, members, watcher, recorder, clock


def test_a_settling_speaker_heartbeats_everyone_as_not_ready_and_takes_nothing_over() -> None:
    rounds, members, watcher, _recorder, _ = rounds_with_watch()
    assert rounds.run_round() is Step.WAIT
    assert watcher.told == [({"b": "198.51.100.2:7946", "c": "198.51.100.3:7946"}, {}, False)]
    members.up |= {"b", "c"}
    assert rounds.run_round() is Step.ELECT
    assert watcher.told[-1] == (
        {"b": "198.51.100.2:7946", "c": "198.51.100.3:7946"},
        {"b": [("192.0.2.11", ["eth0"])]},
        True,
    )
    assert rounds.run_round() is Step.ELECT
    assert len(watcher.told) == 2, "told again only when something changed"


def test_held_members_are_out_of_the_elections() -> None:
    rounds, members, watcher, recorder, _ = rounds_with_watch()
    members.up |= {"b", "c"}
    assert rounds.run_round() is Step.ELECT
    assert recorder.lives[-1] == {"a", "b", "c"}
    watcher.held_down, watcher.not_ready = ["b"], ["c"]
    assert rounds.run_round() is Step.ELECT
    assert recorder.lives[-1] == {"a", "c"}, "not ready is layer 2's business (keep), not the election's"


def test_a_cut_off_speaker_is_not_ready_and_stands_by_for_nothing() -> None:
    rounds, members, watcher, recorder, _ = rounds_with_watch()
    members.up |= {"b", "c"}
    rounds.run_round()
    members.cut = True
    assert rounds.run_round() is Step.WITHDRAW
    assert watcher.told[-1][1:] == ({}, False)
    assert recorder.withdrawals == 1


def standby_layer2(held: set[str], unready: set[str]) -> tuple[Layer2, FakeResponder, FakeView]:
    """Speaker b's layer 2, whose responder answers for VIP already (a takeover from a, on the gossip thread,
    that the round did not know of when it read the live members)."""
    view = FakeView(["a", "b", "c"])
    responder = FakeResponder(Log())
    responder.table[VIP] = ["eth0"]
    layer2 = Layer2(
        "b", responder, [Link("eth0")], on_change=lambda _: None, held=lambda: held, unready=lambda: unready
    )
    return layer2, responder, view


def test_a_takeover_the_round_did_not_know_of_is_kept_not_undone() -> None:
    config = load_objects(FakeView(["a"]).config_objects(), source="test")
    layer2, responder, view = standby_layer2(held={"a"}, unready=set())
    layer2.elect_and_apply(config, view, {"a", "b", "c"})  # the round read the members before "held a"
    assert VIP in responder.announced()
    # Without the watch holding a down, a wins the address and b's responder stops answering for it.
    layer2, responder, view = standby_layer2(held=set(), unready=set())
    layer2.elect_and_apply(config, view, {"a", "b", "c"})
    assert VIP not in responder.announced()
    # A winner that says it is not ready does not get it yet: b keeps answering.
    layer2, responder, view = standby_layer2(held=set(), unready={"a"})
    layer2.elect_and_apply(config, view, {"a", "b", "c"})
    assert VIP in responder.announced()
