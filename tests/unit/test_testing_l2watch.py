"""The ARP watcher's checker (pure): histories of probe rounds built from who answered each round, and what
the checker must say about them; and the frames the watcher sends and reads. No root, no sockets."""

from __future__ import annotations

import itertools
import socket
import struct
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metallb_py.testing.l2watch import (
    ArpProbe,
    ArpReply,
    L2WatchError,
    arp_request,
    check_arp,
    check_http,
    parse_answer,
)
from metallb_py.testing.netlab import Probe

VIP = "192.168.1.11"
A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"


def history(
    answers: Sequence[set[str]], interval: float, offset: float = 0.5, start: float = 1000.0
) -> tuple[list[ArpProbe], list[ArpReply]]:
    """One probe per round, `interval` apart; each MAC of a round's set answers `offset` of the way in."""
    probes, replies = [], []
    for i, macs in enumerate(answers):
        sent = start + i * interval
        probes.append(ArpProbe(VIP, sent))
        replies.extend(ArpReply(VIP, mac, sent + offset * interval) for mac in sorted(macs))
    return probes, replies


intervals = st.sampled_from([0.005, 0.01, 0.02, 0.05])
offsets = st.floats(min_value=0.0, max_value=0.99)


@given(
    interval=intervals,
    offset=offsets,
    before=st.integers(0, 20),
    split=st.integers(1, 60),
    after=st.integers(0, 20),
    bound_rounds=st.integers(0, 60),
)
def test_two_macs_answering_together_is_one_double_answer_failing_beyond_the_bound(
    *, interval: float, offset: float, before: int, split: int, after: int, bound_rounds: int
) -> None:
    rounds = [{A}] * before + [{A, B}] * split + [{B}] * after
    report = check_arp(*history(rounds, interval, offset), default_round=interval)[VIP]
    (double,) = report.double_answers
    assert double.rounds == split and double.macs == report.macs == {A, B}
    assert double.duration == pytest.approx(split * interval)
    # Half a round off the boundary: the verdict never hinges on float rounding.
    bound = (bound_rounds + 0.5) * interval
    assert bool(report.double_answers_beyond(bound)) == (split > bound_rounds)
    assert report.owner == (B if after else None)


@given(
    interval=intervals,
    split=st.integers(4, 60),
    lost=st.lists(st.integers(0, 59), max_size=30),
)
def test_a_lost_reply_does_not_cut_a_split_brain_into_short_pieces(
    interval: float, split: int, lost: list[int]
) -> None:
    # B misses some replies, never two rounds running, and never the first or last round of the split.
    missing = {i for i in lost if 0 < i < split - 1}
    missing = {i for i in missing if i - 1 not in missing}
    rounds = [{A}] * 5 + [{A} if i in missing else {A, B} for i in range(split)] + [{B}] * 5
    report = check_arp(*history(rounds, interval), tolerance=1)[VIP]
    (double,) = report.double_answers
    assert double.rounds == split
    # Without tolerance each lost reply ends an interval: a split brain hidden in pieces under the bound.
    strict = check_arp(*history(rounds, interval), tolerance=0)[VIP]
    assert len(strict.double_answers) == len(missing) + 1


segments = st.lists(
    st.tuples(st.sampled_from([A, B, C]), st.integers(1, 15), st.integers(0, 4)), min_size=1, max_size=12
)


@given(interval=intervals, offset=offsets, plan=segments)
def test_one_answer_at_a_time_is_never_a_double_answer(
    interval: float, offset: float, plan: list[tuple[str, int, int]]
) -> None:
    """Segments of rounds answered by one MAC, each followed by `gap` silent rounds: no double answer,
    one silence per gap, one move per change of MAC."""
    rounds: list[set[str]] = []
    for mac, length, gap in plan:
        rounds += [{mac}] * length + [set()] * gap
    report = check_arp(*history(rounds, interval, offset), tolerance=0, default_round=interval)[VIP]
    assert report.double_answers == ()
    assert [s.rounds for s in report.silences] == [gap for _, _, gap in plan if gap]
    macs = [mac for mac, _, _ in plan]
    assert [(m.old, m.new) for m in report.moves] == [(a, b) for a, b in itertools.pairwise(macs) if a != b]
    assert report.rounds == len(rounds)
    assert report.answered == sum(length for _, length, _ in plan)
    last_mac, _, last_gap = plan[-1]
    assert report.owner == (None if last_gap else last_mac)


def test_a_flapping_owner_counts_as_answering_through_the_other_ones_round() -> None:
    # A answers, B for one round, A again: with tolerance 1 the client saw both claim the address.
    report = check_arp(*history([{A}] * 3 + [{B}] + [{A}] * 3, 0.02), tolerance=1)[VIP]
    (double,) = report.double_answers
    assert double.rounds == 1 and double.macs == {A, B}
    assert len(report.moves) == 2


def test_settled_is_the_start_of_the_last_single_answer_stretch() -> None:
    probes, replies = history([{A}] * 4 + [{A, B}] * 2 + [set()] + [{B}] * 5, 0.02)
    report = check_arp(probes, replies)[VIP]
    assert report.owner == B
    assert report.settled_at == probes[7].sent


def test_replies_before_the_first_probe_or_for_other_addresses_are_ignored() -> None:
    probes, replies = history([{A}] * 3, 0.02)
    stray = [ArpReply(VIP, B, probes[0].sent - 0.001), ArpReply("192.168.1.12", B, probes[1].sent + 0.001)]
    reports = check_arp(probes, [*replies, *stray])
    assert list(reports) == [VIP]
    assert reports[VIP].double_answers == () and reports[VIP].moves == ()


def test_a_reply_after_the_last_round_is_not_counted_in_it() -> None:
    probes, replies = history([{A}] * 3, 0.02)
    late = ArpReply(VIP, B, probes[-1].sent + 0.05)
    assert check_arp(probes, [*replies, late])[VIP].double_answers == ()


def test_a_negative_tolerance_is_refused() -> None:
    with pytest.raises(L2WatchError, match="tolerance"):
        check_arp([], [], tolerance=-1)


def test_a_request_asks_for_the_target_and_answers_are_read_back() -> None:
    mac = bytes.fromhex("020000000001")
    request = arp_request(mac, "198.51.100.200", VIP)
    assert request[:6] == b"\xff" * 6 and request[6:12] == mac
    watched = frozenset({VIP})
    # A request is no answer, even about a watched address.
    assert parse_answer(request, watched) is None
    reply = swap_into_reply(request, bytes.fromhex("02000000000b"))
    assert parse_answer(reply, watched) == (VIP, B, False)
    assert parse_answer(reply, frozenset({"192.168.1.12"})) is None
    assert parse_answer(reply[:30], watched) is None
    gratuitous = arp_request(bytes.fromhex("02000000000c"), VIP, VIP)
    assert parse_answer(gratuitous, watched) == (VIP, C, True)


def swap_into_reply(request: bytes, answerer: bytes) -> bytes:
    """The reply an owner of the requested address sends (as a responder would build it)."""
    layout = struct.Struct("!6s6sH HHBBH 6s4s6s4s")
    (_, src, ethertype, htype, ptype, hlen, plen, _, sha, spa, _, tpa) = layout.unpack(request)
    assert socket.inet_ntoa(tpa) == VIP
    return layout.pack(src, answerer, ethertype, htype, ptype, hlen, plen, 2, answerer, tpa, sha, spa)


def test_http_outages_and_changes_of_answer() -> None:
    def probe(sent: float, answer: str | None) -> Probe:
        return Probe(sent, sent + 0.001, answer, None if answer else "timeout")

    probes = [probe(0.0, "node1"), probe(0.1, None), probe(0.2, None), probe(0.3, "node2"), probe(0.4, None)]
    report = check_http(probes)
    assert report.outages == ((0.1, 0.3), (0.4, 0.4))
    assert report.changes == ((0.3, "node1", "node2"),)
    assert report.outages_beyond(0.15) == [(0.1, 0.3)]
    assert (report.requests, report.answered) == (5, 2)
