"""metallb_py.speaker.gate: settling after a start or a cut, and isolation, as a function of time."""

from __future__ import annotations

from collections.abc import Set

import pytest

from metallb_py.speaker.gate import (
    Gate,
    GossipView,
    Note,
    Step,
    advance,
    cut_off,
    hears_a_minority,
    round_due,
)

SETTLE = 3.0


def view(
    alive: set[str],
    *,
    others: Set[str] = frozenset({"b", "c"}),
    expected: set[str] | None = None,
    isolated: bool = False,
) -> GossipView:
    return GossipView(
        others=frozenset(others),
        expected=frozenset(others if expected is None else expected),
        alive=frozenset(alive),
        isolated=isolated,
    )


def test_a_fresh_speaker_waits_for_every_other_node() -> None:
    turn = advance(Gate(), view({"b"}), now=100.0, settle_timeout=SETTLE)
    assert (turn.step, turn.notes, turn.gate.since) == (Step.WAIT, (), 100.0)
    turn = advance(turn.gate, view({"b"}), now=101.0, settle_timeout=SETTLE)
    assert turn.step is Step.WAIT, "one peer still unheard and the settle time not over"
    turn = advance(turn.gate, view({"b", "c"}), now=101.5, settle_timeout=SETTLE)
    assert (turn.step, turn.notes, turn.missing, turn.waited) == (
        Step.ELECT,
        (Note.JOINED,),
        frozenset(),
        1.5,
    )
    assert turn.gate.settled


def test_the_settle_time_ends_the_wait_with_whoever_is_missing() -> None:
    gate = advance(Gate(), view(set()), now=10.0, settle_timeout=SETTLE).gate
    turn = advance(gate, view({"b"}), now=12.999, settle_timeout=SETTLE)
    assert turn.step is Step.WAIT
    turn = advance(gate, view({"b"}), now=13.0, settle_timeout=SETTLE)
    assert (turn.step, turn.missing) == (Step.ELECT, frozenset({"c"}))


def test_a_lone_node_joins_at_once() -> None:
    turn = advance(Gate(), view(set(), others=set()), now=0.0, settle_timeout=SETTLE)
    assert (turn.step, turn.notes) == (Step.ELECT, (Note.JOINED,))


def test_cut_off_withdraws_everything_then_settles_again_for_the_renewing_peers_only() -> None:
    settled = Gate(settled=True, since=0.0)
    turn = advance(settled, view(set(), isolated=True), now=50.0, settle_timeout=SETTLE)
    assert (turn.step, turn.notes, turn.gate.isolated) == (Step.WITHDRAW, (Note.CUT_OFF,), True)
    turn = advance(turn.gate, view(set(), isolated=True), now=51.0, settle_timeout=SETTLE)
    assert (turn.step, turn.notes) == (Step.WITHDRAW, ()), "said once"
    # Back: c crashed meanwhile (its Lease is stale), b is heard again but its gossip view is still partial.
    back = view(set(), expected={"b"}, isolated=False)
    turn = advance(turn.gate, back, now=60.0, settle_timeout=SETTLE)
    assert (turn.step, turn.notes) == (Step.WAIT, (Note.BACK,))
    assert (turn.gate.resettling, turn.gate.since, turn.gate.isolated) == (True, 60.0, False)
    turn = advance(turn.gate, view({"b"}, expected={"b"}), now=60.2, settle_timeout=SETTLE)
    assert (turn.step, turn.notes) == (Step.ELECT, (Note.JOINED,)), "c is not waited for"
    assert not turn.gate.resettling


def test_hearing_none_of_the_expected_speakers_is_cut_off_whatever_the_member_says() -> None:
    # The member hears only itself and does not call itself isolated; b's and c's Leases are fresh.
    assert cut_off(False, expected=frozenset({"b", "c"}), alive=frozenset())
    assert cut_off(True, expected=frozenset(), alive=frozenset({"b"}))
    assert not cut_off(False, expected=frozenset({"b", "c"}), alive=frozenset({"c"}))
    assert not cut_off(False, expected=frozenset(), alive=frozenset()), "no other speaker runs: alone"
    gate = advance(Gate(), view(set()), now=0.0, settle_timeout=SETTLE).gate
    turn = advance(
        gate,
        view(set(), isolated=cut_off(False, frozenset({"b"}), frozenset())),
        now=SETTLE,
        settle_timeout=SETTLE,
    )
    assert (turn.step, turn.notes) == (Step.WITHDRAW, (Note.JOINED, Note.CUT_OFF))


def test_cut_off_during_the_first_settling_is_noticed_when_it_ends() -> None:
    gate = advance(Gate(), view(set(), isolated=True), now=0.0, settle_timeout=SETTLE).gate
    turn = advance(gate, view(set(), isolated=True), now=SETTLE, settle_timeout=SETTLE)
    assert (turn.step, turn.notes) == (Step.WITHDRAW, (Note.JOINED, Note.CUT_OFF))


@pytest.mark.parametrize(
    ("gate", "woken", "isolated_now", "peers_changed", "due"),
    [
        (Gate(settled=True), False, False, False, False),  # idle: no round
        (Gate(settled=True), True, False, False, True),  # told of a change
        (Gate(settled=False), False, False, False, True),  # settling: to end the wait
        (Gate(settled=True), False, True, False, True),  # isolation changed unannounced
        (Gate(settled=True, isolated=True), False, False, False, True),  # ... and back
        (Gate(settled=True), False, False, True, True),  # the expected peers changed
    ],
)
def test_when_an_idle_worker_runs_a_round(
    gate: Gate, woken: bool, isolated_now: bool, peers_changed: bool, due: bool
) -> None:
    assert round_due(gate, woken=woken, isolated_now=isolated_now, peers_changed=peers_changed) is due


def test_hearing_only_a_minority_of_the_expected_speakers_keeps_a_fresh_speaker_waiting() -> None:
    """Two speakers that just started hear each other but not the cluster: electing between them would
    claim every address beside the speakers that hold them. Past the settle time they keep waiting; once
    crashed peers stopped counting (the ask) or the gossip found the others, they join."""
    others = {"b", "c", "d", "e"}
    assert hears_a_minority(frozenset(others), frozenset({"b"}))
    assert not hears_a_minority(frozenset(others), frozenset({"b", "c"})), "half is enough"
    assert not hears_a_minority(frozenset(others), frozenset()), "hearing none is being cut off"
    gate = advance(Gate(), view(set(), others=others), now=0.0, settle_timeout=SETTLE).gate
    turn = advance(gate, view({"b"}, others=others), now=60.0, settle_timeout=SETTLE)
    assert turn.step is Step.WAIT
    # c, d and e crashed: they let the ask go unanswered and stop counting.
    turn = advance(turn.gate, view({"b"}, others=others, expected={"b"}), now=66.0, settle_timeout=SETTLE)
    assert (turn.step, turn.notes) == (Step.ELECT, (Note.JOINED,))
    # Or the gossip finds half of them.
    turn = advance(gate, view({"b", "c"}, others=others), now=60.0, settle_timeout=SETTLE)
    assert (turn.step, turn.missing) == (Step.ELECT, frozenset({"d", "e"}))
