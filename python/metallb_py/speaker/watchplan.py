"""Fast takeover: what a speaker tells its gossip member's watch after each round. Pure, no I/O.

The watch (Rust, on the gossip thread: metallb_core::membership::watch) sends heartbeats and, when an owner
goes silent and a witness misses it too, announces that owner's addresses at once through the responder.
What it needs from the election is decided here:

- `standby`: for every address whose election order puts this node second, the owner (first) and where this
  node would announce it (the same interface choice as when it wins); and the nodes second on the addresses
  this node announces (they watch it).
- `targets`: who gets this node's heartbeats. Up to FULL_MESH_MAX peers: all of them (witnesses need to hear
  everyone, and a settling peer's "not ready" must reach every node that could otherwise hand it an address).
  Beyond that: the owners it stands by for, the nodes that stand by for it, the peers held down or not
  ready (so that their return is heard), and its two neighbours each side in name order (witnesses).
- `electable`: the live members minus those the watch holds down (taken over, silent since).
- `keep`: the addresses this node announces whose election now names a peer that says it is not ready (a
  returning node still settling): this node keeps announcing them until that peer is ready, so an address
  moves back only once its new owner announces it (make before break). Nothing else is taken from a peer
  that is not ready: at a cluster's start every speaker settles, and none should grab another's addresses
  meanwhile.
"""

from __future__ import annotations

import bisect
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from metallb_py.speaker.election import Election

__all__ = [
    "FULL_MESH_MAX",
    "RING_NEIGHBOURS",
    "Standby",
    "electable",
    "keep",
    "ring_neighbours",
    "standby",
    "targets",
]

FULL_MESH_MAX = 16
RING_NEIGHBOURS = 2

Takeovers = Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]]


@dataclass(frozen=True)
class Standby:
    """`takeovers`: owner -> the (address, interfaces) this node announces if it goes silent; `watchers`: the
    nodes next in order on the addresses this node announces."""

    takeovers: Takeovers = field(default_factory=dict)
    watchers: frozenset[str] = frozenset()


def standby(elections: Mapping[str, Election], me: str, interfaces: Mapping[str, tuple[str, ...]]) -> Standby:
    """From the elections of a round and the interfaces this node would announce each address on (an address
    without interfaces here is not stood by for)."""
    takeovers: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    watchers: set[str] = set()
    for ip, election in sorted(elections.items()):
        order = election.order
        if len(order) < 2:
            continue
        if order[0] == me:
            watchers.add(order[1])
        elif order[1] == me and interfaces.get(ip):
            takeovers.setdefault(order[0], []).append((ip, interfaces[ip]))
    return Standby({owner: tuple(items) for owner, items in takeovers.items()}, frozenset(watchers))


def ring_neighbours(me: str, names: Iterable[str], k: int = RING_NEIGHBOURS) -> set[str]:
    """The `k` names before and after `me` in sorted order, wrapping around (without `me`)."""
    ring = sorted(set(names) | {me})
    if len(ring) <= 1:
        return set()
    at = bisect.bisect_left(ring, me)
    return {ring[(at + step) % len(ring)] for step in [*range(1, k + 1), *range(-k, 0)]} - {me}


def targets(
    me: str,
    peers: Mapping[str, str],
    plan: Standby,
    *,
    held: Collection[str] = (),
    unready: Collection[str] = (),
    full_mesh_max: int = FULL_MESH_MAX,
) -> dict[str, str]:
    """Node -> gossip address of the peers that get this node's heartbeats (`peers`: the other speakers)."""
    others = {name: addr for name, addr in peers.items() if name != me}
    if len(others) <= full_mesh_max:
        return others
    wanted = set(plan.takeovers) | plan.watchers | set(held) | set(unready) | ring_neighbours(me, others)
    return {name: others[name] for name in sorted(wanted) if name in others}


def electable(live: Collection[str], me: str, *, held: Collection[str]) -> set[str]:
    """The members the elections count: live, minus held down (never this node itself)."""
    return {name for name in live if name == me or name not in held}


def keep(
    elections: Mapping[str, Election], me: str, announced: Collection[str], unready: Collection[str]
) -> set[str]:
    """The addresses this node announces and keeps announcing: their winner is another node, not ready."""
    winners = {ip: e.node for ip, e in elections.items()}
    return {ip for ip in announced if winners.get(ip) not in (None, me) and winners.get(ip) in unready}
