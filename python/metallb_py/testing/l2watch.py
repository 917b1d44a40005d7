"""What a client on the segment sees of layer 2 announcements: who answers ARP for each address, and when.

Two parts:

- `ArpWatcher` (I/O, root): a helper process in a client network namespace the test made sends one ARP
  request per watched address every `interval` seconds from a raw packet socket, and records every ARP
  reply and gratuitous ARP about those addresses that reaches the client (CLOCK_MONOTONIC time, address,
  sender MAC), whoever it answered. Run this module as a script for the helper itself (`python -m
  metallb_py.testing.l2watch --interface eth0 --source IP VIP...`, one JSON object a line on stdout).
- `check_arp` (pure): from the probes and replies, per address, the probe rounds (the time from one request
  to the next), the intervals where two or more MACs answered (a split brain, as a client's neighbour cache
  would flip between them), the silences where nobody answered (lost service), the moves of the single
  answering MAC, and when the answers settled on one MAC. `AddressReport.double_answers_beyond(bound)` and
  `silences_beyond(bound)` say what a test fails on; `check_http` does the same for HTTP probes through the
  VIP (netlab.Probe), when the lab serves HTTP.

Replies are attributed to the round they arrive in, not to the request they answer: a client's neighbour
cache takes an answer when it arrives, so a deposed speaker that answers a backlog of stale requests after a
pause counts as answering now.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import ipaddress
import itertools
import json
import os
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from metallb_py.errors import MetalLBError
from metallb_py.testing.process import start_line_helper, stop_line_helper

if TYPE_CHECKING:
    from metallb_py.testing.netlab import NetnsLab, Probe

__all__ = [
    "AddressReport",
    "ArpProbe",
    "ArpReply",
    "ArpWatcher",
    "HttpReport",
    "Interval",
    "L2WatchError",
    "Move",
    "check_arp",
    "check_http",
]

_ETH_P_ARP = 0x0806
_ETH_P_IP = 0x0800
_BROADCAST = b"\xff" * 6
_ARP_REQUEST, _ARP_REPLY = 1, 2
_ARP_FRAME = struct.Struct("!6s6sH HHBBH 6s4s6s4s")


class L2WatchError(MetalLBError):
    """The ARP watcher could not start, died, or was used wrongly; the message says which and why."""


# -- records and the checker (pure) --------------------------------------------------------------------------


@dataclass(frozen=True)
class ArpProbe:
    """One ARP request the watcher sent for `ip`, at `sent` (time.monotonic())."""

    ip: str
    sent: float


@dataclass(frozen=True)
class ArpReply:
    """One ARP answer about `ip` that reached the client at `received`: `mac` (the ARP sender's hardware
    address) claims the address. `gratuitous` for an unsolicited announcement (sender IP = target IP)."""

    ip: str
    mac: str
    received: float
    gratuitous: bool = False


@dataclass(frozen=True)
class Interval:
    """A stretch of probe rounds for `ip`: from the start of its first round to the end of its last. For a
    double answer, `macs` are the MACs that answered in it; for a silence, `macs` is empty."""

    ip: str
    start: float
    end: float
    rounds: int
    macs: frozenset[str] = frozenset()

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Move:
    """The single MAC answering for `ip` changed from `old` to `new` in the round starting at `at`."""

    ip: str
    at: float
    old: str
    new: str


@dataclass(frozen=True)
class AddressReport:
    """What the client saw of one address over the watched rounds; see check_arp."""

    ip: str
    rounds: int
    answered: int
    double_answers: tuple[Interval, ...]
    silences: tuple[Interval, ...]
    moves: tuple[Move, ...]
    settled_at: float | None
    owner: str | None
    macs: frozenset[str] = frozenset()

    def double_answers_beyond(self, bound: float) -> list[Interval]:
        """The double answers longer than `bound` seconds: each one a split brain a client could notice."""
        return [i for i in self.double_answers if i.duration > bound]

    def silences_beyond(self, bound: float) -> list[Interval]:
        return [i for i in self.silences if i.duration > bound]

    def moves_between(self, start: float, end: float = float("inf")) -> list[Move]:
        return [m for m in self.moves if start <= m.at < end]

    def summary(self) -> str:
        """One line for a test's output or an assertion message."""
        doubles = ", ".join(
            f"{i.duration * 1000:.0f} ms ({i.rounds} rounds, {'/'.join(sorted(i.macs))})"
            for i in self.double_answers
        )
        longest = max((i.duration for i in self.silences), default=0.0)
        return (
            f"{self.ip}: {self.answered}/{self.rounds} rounds answered; double answers: {doubles or 'none'}; "
            f"{len(self.silences)} silences (longest {longest * 1000:.0f} ms); {len(self.moves)} moves; "
            f"owner {self.owner or 'none'}"
        )


def _rounds(probes: Sequence[ArpProbe], default_length: float) -> list[tuple[float, float]]:
    """[start, end) of each round: from one request to the next; the last lasts as long as the one before
    it (or `default_length` when it is the only one)."""
    starts = sorted(p.sent for p in probes)
    rounds = []
    for i, start in enumerate(starts):
        if i + 1 < len(starts):
            end = starts[i + 1]
        elif i > 0:
            end = start + (start - starts[i - 1])
        else:
            end = start + default_length
        rounds.append((start, end))
    return rounds


def _answers_per_round(
    rounds: Sequence[tuple[float, float]], replies: Sequence[ArpReply]
) -> list[frozenset[str]]:
    answers: list[set[str]] = [set() for _ in rounds]
    starts = [start for start, _ in rounds]
    for reply in sorted(replies, key=lambda r: r.received):
        index = bisect.bisect_right(starts, reply.received) - 1
        if index >= 0 and reply.received < rounds[index][1]:
            answers[index].add(reply.mac)
    return [frozenset(a) for a in answers]


def _runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """[first, last] index of each maximal run of True."""
    runs, start = [], None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(flags) - 1))
    return runs


def _covered(answers: Sequence[frozenset[str]], mac: str, tolerance: int) -> list[bool]:
    """Rounds where `mac` counts as answering: the rounds it answered, and gaps of at most `tolerance`
    rounds between two of them (a lost reply does not end a claim)."""
    own = [mac in a for a in answers]
    covered, runs = list(own), _runs(own)
    for (_, last), (first, _) in itertools.pairwise(runs):
        if first - last - 1 <= tolerance:
            for i in range(last + 1, first):
                covered[i] = True
    return covered


def check_arp(
    probes: Iterable[ArpProbe],
    replies: Iterable[ArpReply],
    *,
    tolerance: int = 1,
    default_round: float = 0.02,
) -> dict[str, AddressReport]:
    """Per address probed: its rounds (request to next request), and from the answers in each round:

    - double answers: maximal stretches of rounds in which two or more MACs count as answering, a MAC
      counting through gaps of up to `tolerance` rounds between two of its answers (so a split brain with a
      lost reply is one interval, while a clean handover, the old MAC's last answer before the new one's
      first, is none);
    - silences: maximal stretches of rounds nobody answered;
    - moves: each change of the MAC answering alone (rounds with several answers or none do not count);
    - settled_at / owner: the start of the final stretch of rounds answered by one MAC alone, and that MAC
      (None when the last round has no single answer);
    - macs: every MAC that answered in a round.

    Replies for addresses never probed, and replies before the first request, are ignored.
    """
    if tolerance < 0:
        raise L2WatchError(f"tolerance {tolerance}: a number of rounds, 0 or more")
    by_ip: dict[str, list[ArpProbe]] = {}
    for probe in probes:
        by_ip.setdefault(probe.ip, []).append(probe)
    replies_by_ip: dict[str, list[ArpReply]] = {}
    for reply in replies:
        replies_by_ip.setdefault(reply.ip, []).append(reply)
    reports = {}
    for ip, its_probes in sorted(by_ip.items()):
        rounds = _rounds(its_probes, default_round)
        answers = _answers_per_round(rounds, replies_by_ip.get(ip, []))
        reports[ip] = _report(ip, rounds, answers, tolerance)
    return reports


def _report(
    ip: str, rounds: Sequence[tuple[float, float]], answers: Sequence[frozenset[str]], tolerance: int
) -> AddressReport:
    def interval(first: int, last: int, macs: frozenset[str] = frozenset()) -> Interval:
        return Interval(ip, rounds[first][0], rounds[last][1], last - first + 1, macs)

    macs = sorted(set().union(*answers)) if answers else []
    coverage = {mac: _covered(answers, mac, tolerance) for mac in macs}
    claimants = [frozenset(m for m in macs if coverage[m][i]) for i in range(len(rounds))]
    doubles = tuple(
        interval(first, last, frozenset().union(*claimants[first : last + 1]))
        for first, last in _runs([len(c) >= 2 for c in claimants])
    )
    silences = tuple(interval(first, last) for first, last in _runs([not a for a in answers]))
    moves, previous = [], None
    for (start, _), answer in zip(rounds, answers, strict=True):
        if len(answer) == 1:
            (mac,) = answer
            if previous is not None and mac != previous:
                moves.append(Move(ip, start, previous, mac))
            previous = mac
    settled_at, owner = None, None
    if answers and len(answers[-1]) == 1:
        (owner,) = answers[-1]
        first = len(answers) - 1
        while first > 0 and answers[first - 1] == answers[-1]:
            first -= 1
        settled_at = rounds[first][0]
    return AddressReport(
        ip=ip,
        rounds=len(rounds),
        answered=sum(1 for a in answers if a),
        double_answers=doubles,
        silences=silences,
        moves=tuple(moves),
        settled_at=settled_at,
        owner=owner,
        macs=frozenset(macs),
    )


@dataclass(frozen=True)
class HttpReport:
    """What HTTP probes through a VIP saw: stretches where requests failed (by the time they were sent),
    and each change of the answering body (with netlab's `hname` echo, the node that served)."""

    requests: int
    answered: int
    outages: tuple[tuple[float, float], ...]
    changes: tuple[tuple[float, str, str], ...]

    def outages_beyond(self, bound: float) -> list[tuple[float, float]]:
        return [(start, end) for start, end in self.outages if end - start > bound]


def check_http(probes: Iterable[Probe]) -> HttpReport:
    """The outages (from the first failed request's sending to the next answered one's) and the changes of
    answer in HTTP probes; an outage still open at the end ends at the last request's sending."""
    ordered = sorted(probes, key=lambda p: p.sent)
    outages, changes = [], []
    down_since: float | None = None
    last_answer: str | None = None
    for probe in ordered:
        if probe.answer is None:
            if down_since is None:
                down_since = probe.sent
            continue
        if down_since is not None:
            outages.append((down_since, probe.sent))
            down_since = None
        if last_answer is not None and probe.answer != last_answer:
            changes.append((probe.sent, last_answer, probe.answer))
        last_answer = probe.answer
    if down_since is not None:
        outages.append((down_since, ordered[-1].sent))
    return HttpReport(
        requests=len(ordered),
        answered=sum(1 for p in ordered if p.answer is not None),
        outages=tuple(outages),
        changes=tuple(changes),
    )


# -- the watcher (I/O) ---------------------------------------------------------------------------------------


class ArpWatcher:
    """Probes `vips` by ARP from network namespace `netns` (on `interface`, as `source`) every `interval`
    seconds, in a helper process, and keeps every probe and answer; see the module docstring.

    ```
    with ArpWatcher.on_client(cluster.lab, ["192.168.1.11"]) as watcher:
        watcher.wait_for_answers(1.0)                 # some rounds in, for a baseline
        ...                                           # the fault
        report = watcher.report()["192.168.1.11"]
        assert not report.double_answers_beyond(1.0), report.summary()
    ```

    Needs root (a packet socket in the namespace); stopped by stop() or the `with` block's end.
    """

    def __init__(
        self,
        netns: str,
        interface: str,
        source: str,
        vips: Sequence[str],
        *,
        interval: float = 0.02,
        log: Path | None = None,
    ) -> None:
        if not vips:
            raise L2WatchError("an ARP watcher needs at least one address to watch")
        if not 0.001 <= interval <= 10:
            raise L2WatchError(f"interval {interval}: expected 0.001 to 10 seconds")
        addresses = [ipaddress.ip_address(v) for v in vips]
        if any(a.version != 4 for a in [*addresses, ipaddress.ip_address(source)]):
            raise L2WatchError(
                f"ARP watches IPv4 addresses only (got {', '.join(map(str, vips))} from {source})"
            )
        self.vips = tuple(str(a) for a in addresses)
        self.interval = interval
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._probes: list[ArpProbe] = []
        self._replies: list[ArpReply] = []
        argv = [
            "ip",
            "netns",
            "exec",
            netns,
            sys.executable,
            "-m",
            __name__,
            f"--interface={interface}",
            f"--source={source}",
            f"--interval={interval}",
            *self.vips,
        ]
        # The helper's stderr goes to the log (the child keeps its own descriptor), or nowhere.
        with open(log, "ab") if log is not None else open(os.devnull, "wb") as stderr:
            self._popen = start_line_helper(argv, stderr)
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name=f"l2watch {netns}", daemon=True)
        self._reader.start()
        if not self._ready.wait(30) or self._popen.poll() is not None:
            self.stop()
            where = f"; see {log}" if log is not None else ""
            raise L2WatchError(f"the ARP watcher in {netns} did not start{where}")

    @classmethod
    def on_client(
        cls, lab: NetnsLab, vips: Sequence[str], *, interval: float = 0.02, log: Path | None = None
    ) -> ArpWatcher:
        """A watcher in the lab's client namespace, on the nodes' segment (a lab without a router)."""
        if lab.has_router:
            raise L2WatchError(
                "the client of a lab with a router is not on the nodes' segment: no ARP to watch"
            )
        return cls(
            lab.client_ns, lab.client_interface, lab.client_address(4), vips, interval=interval, log=log
        )

    def _read(self) -> None:
        assert self._popen.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self._popen.stdout:
                record = json.loads(line)
                with self._changed:
                    if "ready" in record:
                        self._ready.set()
                    elif "probe" in record:
                        self._probes.append(ArpProbe(record["probe"], float(record["t"])))
                    else:
                        self._replies.append(
                            ArpReply(
                                record["reply"], record["mac"], float(record["t"]), bool(record["gratuitous"])
                            )
                        )
                    self._changed.notify_all()
        self._ready.set()

    def probes(self) -> list[ArpProbe]:
        with self._lock:
            return list(self._probes)

    def replies(self) -> list[ArpReply]:
        with self._lock:
            return list(self._replies)

    def report(
        self, since: float | None = None, until: float | None = None, *, tolerance: int = 1
    ) -> dict[str, AddressReport]:
        """check_arp over the probes sent in [since, until] (time.monotonic()). By default until one round
        ago: the last request's answers may still be on their way."""
        lo = float("-inf") if since is None else since
        hi = time.monotonic() - self.interval if until is None else until
        with self._lock:
            probes = [p for p in self._probes if lo <= p.sent <= hi]
            replies = list(self._replies)
        report = check_arp(probes, replies, tolerance=tolerance, default_round=self.interval)
        return {ip: report.get(ip, _empty(ip)) for ip in self.vips}

    def wait_until(self, done: Callable[[Mapping[str, AddressReport]], bool], timeout: float) -> bool:
        """Blocks until `done(report())` holds, at most `timeout` seconds (checked as answers arrive);
        whether it held."""
        deadline = time.monotonic() + timeout
        while True:
            if done(self.report()):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or self._popen.poll() is not None:
                return False
            with self._changed:
                self._changed.wait(min(left, 0.1))

    def stop(self) -> None:
        """Stops probing (closing the helper's stdin ends it); what was recorded stays readable."""
        stop_line_helper(self._popen, self._reader, grace=5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _empty(ip: str) -> AddressReport:
    return AddressReport(ip, 0, 0, (), (), (), None, None)


# -- the helper process (run inside the namespace) -----------------------------------------------------------


def arp_request(source_mac: bytes, source_ip: str, target_ip: str) -> bytes:
    """A broadcast ARP request asking who has `target_ip`, from `source_mac`/`source_ip`."""
    return _ARP_FRAME.pack(
        _BROADCAST,
        source_mac,
        _ETH_P_ARP,
        1,
        _ETH_P_IP,
        6,
        4,
        _ARP_REQUEST,
        source_mac,
        socket.inet_aton(source_ip),
        b"\x00" * 6,
        socket.inet_aton(target_ip),
    )


def parse_answer(frame: bytes, watched: frozenset[str]) -> tuple[str, str, bool] | None:
    """(address, sender MAC, gratuitous) when `frame` is an ARP reply, or a gratuitous ARP, about a watched
    address; None for anything else (requests, other addresses, runts)."""
    if len(frame) < _ARP_FRAME.size:
        return None
    (_, _, ethertype, htype, ptype, hlen, plen, op, sha, spa, _, tpa) = _ARP_FRAME.unpack_from(frame)
    if ethertype != _ETH_P_ARP or (htype, ptype, hlen, plen) != (1, _ETH_P_IP, 6, 4):
        return None
    sender = socket.inet_ntoa(spa)
    if sender not in watched:
        return None
    gratuitous = spa == tpa
    if op != _ARP_REPLY and not (op == _ARP_REQUEST and gratuitous):
        return None
    return sender, ":".join(f"{b:02x}" for b in sha), gratuitous


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _watch(interface: str, source: str, vips: Sequence[str], interval: float) -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ARP))
    sock.bind((interface, _ETH_P_ARP))
    mac = Path(f"/sys/class/net/{interface}/address").read_text().strip()
    source_mac = bytes.fromhex(mac.replace(":", ""))
    requests = {vip: arp_request(source_mac, source, vip) for vip in vips}
    watched = frozenset(vips)
    stdin = sys.stdin.fileno()
    _emit({"ready": True, "pid": os.getpid(), "mac": mac})
    next_at = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_at:
            for vip, frame in requests.items():
                sock.send(frame)
                _emit({"probe": vip, "t": time.monotonic()})
            next_at += interval
            if next_at < now:
                next_at = now + interval  # behind (a stall): no burst of catch-up requests
        readable, _, _ = select.select([sock, stdin], [], [], max(0.0, next_at - time.monotonic()))
        if stdin in readable and not os.read(stdin, 4096):
            return
        if sock in readable:
            frame = sock.recv(2048)
            received = time.monotonic()
            answer = parse_answer(frame, watched)
            if answer is not None:
                ip, sender, gratuitous = answer
                _emit({"reply": ip, "mac": sender, "gratuitous": gratuitous, "t": received})


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="l2watch", description="Probe addresses by ARP; print answers.")
    parser.add_argument("--interface", required=True)
    parser.add_argument("--source", required=True, help="the IPv4 address the requests come from")
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("vips", nargs="+")
    args = parser.parse_args(argv)
    with contextlib.suppress(BrokenPipeError, KeyboardInterrupt):
        _watch(args.interface, args.source, args.vips, args.interval)


if __name__ == "__main__":
    main()
