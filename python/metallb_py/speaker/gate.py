"""When a gossiping speaker may announce: settling after a start or a cut, and isolation. Pure, no I/O.

A speaker that has just started, alone in its own view, would win every election for a moment and claim
addresses other nodes hold. So it settles first: it announces nothing until it has heard a speaker on every
other Node, or `settle_timeout` passed since it first knew its peers. A speaker cut off from every peer
(`isolated`) withdraws everything rather than fight the rest of the cluster for its addresses; back from the
cut its view may still be partial, so it settles again, this time waiting only for the speakers that still
renew their Leases (waiting for a crashed one would only cost the settle time). Leases go stale late (30 s,
see leases.py), but a speaker cut off asks its peers to renew at once, so one that crashed before or during
the cut has stopped counting by the time the cut ends; the first settle after a start waits for the Nodes,
whatever their Leases say, and never longer than `settle_timeout`.

Cut off (`cut_off`) means hearing none of the speakers the cluster says exist: the gossip member says so, or
none of the other speakers whose gossip Leases are renewed counts alive. The second matters when the member's
own rule cannot see it: peers that published this speaker's own address (an address every node holds, as in
issue 12) are filtered out as itself, and a member with no peers is never isolated by its own reckoning.

Nor does the settle time end the wait of a speaker that hears some of the expected speakers but fewer than
half of them (`hears_a_minority`): its gossip has found a few others (other speakers that just started, say)
but not the cluster, and electing among those few would claim the cluster's addresses beside the speakers
that hold them. It asks, as a cut-off speaker does, so that crashed peers stop counting; it waits until it
hears at least half of those left. (Hearing none of them is being cut off, above.)

`advance(gate, view, now, settle_timeout)` is the whole decision: the speaker's worker keeps the returned
gate for the next round and does what the step says. Time is an argument, so every path is table-tested.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = [
    "Gate",
    "GossipView",
    "Note",
    "Step",
    "Turn",
    "advance",
    "cut_off",
    "hears_a_minority",
    "round_due",
]


class Step(StrEnum):
    """What this round does."""

    WAIT = "wait"  # settling: change nothing (at a start nothing is announced yet; after a cut, nothing is)
    ELECT = "elect"  # run the elections and announce what this node wins
    WITHDRAW = "withdraw"  # isolated: announce nothing


class Note(StrEnum):
    """What changed in this round, for the log and the metrics."""

    JOINED = "joined"  # settled: from now on elections run
    CUT_OFF = "cut off"  # every peer went silent: withdraw everything
    BACK = "back"  # a peer is heard again after a cut: settle again before announcing


@dataclass(frozen=True)
class Gate:
    """The settle and isolation state a speaker carries from one round to the next."""

    settled: bool = False
    # When settling began: the first round that knew the peers, or the end of a cut.
    since: float | None = None
    resettling: bool = False  # settling after a cut (wait for the speakers that renew their Leases)
    isolated: bool = False

    def settling_for(self, now: float) -> float:
        """How long it has been settling at `now` (0 before the first round that knew the peers)."""
        return now - self.since if self.since is not None else 0.0


@dataclass(frozen=True)
class GossipView:
    """What the speaker knows in a round. Node names; this speaker's own node is in none of the sets."""

    others: frozenset[str]  # every other Node of the cluster
    expected: frozenset[str]  # the other speakers whose gossip Leases are fresh
    alive: frozenset[str]  # the members the gossip counts alive
    isolated: bool  # hears none of the expected peers (cut_off)


@dataclass(frozen=True)
class Turn:
    gate: Gate
    step: Step
    notes: tuple[Note, ...] = ()
    missing: frozenset[str] = frozenset()  # with JOINED: the nodes not heard when the settling ended
    waited: float = 0.0  # with JOINED: how long the settling took


def advance(gate: Gate, view: GossipView, now: float, settle_timeout: float) -> Turn:
    """The next gate and what to do in this round."""
    notes: list[Note] = []
    if gate.since is None:
        gate = replace(gate, since=now)
    if gate.isolated and not view.isolated:
        gate = Gate(settled=False, since=now, resettling=True, isolated=False)
        notes.append(Note.BACK)
    missing: frozenset[str] = frozenset()
    waited = 0.0
    if not gate.settled:
        expect = view.others & view.expected if gate.resettling else view.others
        waited = gate.settling_for(now)
        if not expect <= view.alive and (
            waited < settle_timeout or hears_a_minority(view.expected, view.alive)
        ):
            return Turn(gate, Step.WAIT, tuple(notes))
        gate = replace(gate, settled=True, resettling=False)
        missing = expect - view.alive
        notes.append(Note.JOINED)
    if view.isolated != gate.isolated:
        gate = replace(gate, isolated=view.isolated)
        if view.isolated:
            notes.append(Note.CUT_OFF)
    step = Step.WITHDRAW if gate.isolated else Step.ELECT
    return Turn(gate, step, tuple(notes), missing, waited)


def cut_off(member_isolated: bool, expected: Set[str], alive: Set[str]) -> bool:
    """Whether this speaker hears none of the peers the cluster says exist. `expected`: the other speakers
    whose Leases are fresh; `alive`: the other members the gossip counts alive (both without this node)."""
    return member_isolated or (bool(expected) and not alive)


def hears_a_minority(expected: Set[str], alive: Set[str]) -> bool:
    """Whether this speaker hears some of the other speakers whose Leases are fresh, but fewer than half."""
    heard = len(expected & alive)
    return heard > 0 and 2 * heard < len(expected)


def round_due(gate: Gate, *, woken: bool, isolated_now: bool, peers_changed: bool) -> bool:
    """Whether the worker runs a round: on every change it was told of; unasked only while settling (to end
    the wait), or when the gossip's isolation or the expected peers changed without an event saying so."""
    return woken or not gate.settled or isolated_now != gate.isolated or peers_changed
