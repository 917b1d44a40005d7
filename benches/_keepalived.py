"""The keepalived baseline for layer 2 failover: real keepalived (VRRPv3, 10 ms adverts) on the lab's nodes.

`measure_keepalived` builds a NetnsLab of node1-3 and a client, serves a VIP's echo servers on every node (the
VIP on each node's lo, as for our speakers) and runs one keepalived per node, inside the node's namespace,
with one vrrp_instance that puts the VIP on the node's lab interface. The node holding it there is the VRRP
master: with the lab's `arp_ignore=1` its kernel alone answers ARP for the VIP, and keepalived sends the
gratuitous ARPs. The client fetches the VIP every 10 ms. Each round the master dies (its cable cut and then
its keepalived SIGKILLed, or the SIGKILL alone), the time to the first answer from another node and the
requests lost meanwhile are recorded; then the node comes back (cable, a fresh keepalived) and, having the
highest priority, takes the address back (VRRP preemption), and the requests lost in that hand-back are
counted too. VRRP adverts (224.0.0.18) stay on the lab's switch: the nodes' only interface is their lab link.

Needs root and keepalived (`apt-get install keepalived`); nothing here asserts a figure.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from metallb_py.testing import NetnsLab, Probe, Prober

__all__ = ["Failover", "KeepalivedError", "KeepalivedRun", "measure_keepalived"]

NODES = ("node1", "node2", "node3")
# Distinct priorities: node1 is the master whenever it runs (preemption is keepalived's default), node2 the
# first backup. 255 would make node1 the address owner, which VRRP treats specially: avoided.
PRIORITIES = {"node1": 150, "node2": 100, "node3": 50}
VIRTUAL_ROUTER_ID = 51
MASTER_TIMEOUT = 10.0  # seconds for a keepalived to hold the VIP; it takes well under one
WAIT = 30.0  # seconds for any other step (an answer, a steady node)
STEADY_PROBES = 50  # one node answered the last 0.5 s of requests, as benches/test_bench_failover.py


class KeepalivedError(RuntimeError):
    """keepalived is missing, would not start, or never became master; the message holds its log."""


class Failover(NamedTuple):
    """Who died, who answered next, and who answered once the dead node was back."""

    killed: str
    taker: str
    back_to: str


@dataclass(frozen=True)
class KeepalivedRun:
    """One series of keepalived failovers: per round, seconds from the death to the first answer from
    another node, the requests unanswered meanwhile, and those lost while the dead node came back and took
    the address back."""

    cut: bool
    interval: float
    answered: list[float]
    lost: list[int]
    back_lost: list[int]
    failovers: list[Failover]

    def describe(self) -> str:
        how = "cable cut + SIGKILL" if self.cut else "SIGKILL alone"
        if not self.answered:
            return f"keepalived ({how}): no rounds"
        ms = sorted(1000 * t for t in self.answered)
        return (
            f"keepalived VRRPv3 advert {1000 * self.interval:g} ms, {how}: {len(ms)} failovers, first answer "
            f"p50 {statistics.median(ms):.1f} ms, max {ms[-1]:.1f} ms; lost per failover mean "
            f"{statistics.fmean(self.lost):.1f}, max {max(self.lost)}; hand-back lost mean "
            f"{statistics.fmean(self.back_lost):.1f}, max {max(self.back_lost)}"
        )


def keepalived_config(node: str, interface: str, vip: str, interval: float) -> str:
    """One node's keepalived.conf: VRRPv3, one instance for `vip` on the lab interface, starting as backup so
    the priorities alone choose the master. Everything else is Debian's default: preemption, 5 gratuitous
    ARPs on becoming master and 5 more after 5 s, normal scheduling (keepalived's start-up notice suggests
    `max_auto_priority`, real-time scheduling, which a loaded node would want; the issue's baseline is the
    plain package)."""
    return f"""\
global_defs {{
    router_id {node}
    vrrp_version 3
}}

vrrp_instance lab {{
    state BACKUP
    interface {interface}
    virtual_router_id {VIRTUAL_ROUTER_ID}
    priority {PRIORITIES[node]}
    advert_int {interval:g}
    virtual_ipaddress {{
        {vip}/32 dev {interface}
    }}
}}
"""


class _Keepalived:
    """One node's keepalived, run in the foreground inside the node's namespace, its log in `workdir`."""

    def __init__(self, lab: NetnsLab, node: str, workdir: Path, vip: str, interval: float) -> None:
        self.lab, self.node, self.vip = lab, node, vip
        self.ns = lab.node_ns(node)
        self.interface = lab.node_interface(node)
        self.config = workdir / f"{node}.conf"
        self.pidfile = workdir / f"{node}.pid"
        self.vrrp_pidfile = workdir / f"{node}-vrrp.pid"
        self.log = workdir / f"{node}.log"
        self.config.write_text(keepalived_config(node, self.interface, vip, interval))
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        for stale in (self.pidfile, self.vrrp_pidfile):
            stale.unlink(missing_ok=True)
        with self.log.open("ab") as log:
            # -P: VRRP only; -n: stay in the foreground (our child); -l -D -G: detailed log to the console, no
            # syslog; -R: a VRRP child that dies is not respawned (a death stays a death).
            self.popen = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns,
                    "keepalived",
                    "-P",
                    "-n",
                    "-l",
                    "-D",
                    "-G",
                    "-R",
                    "-f",
                    str(self.config),
                    "-p",
                    str(self.pidfile),
                    "-r",
                    str(self.vrrp_pidfile),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self.popen is not None

    def vrrp_pid(self, timeout: float) -> int:
        """The VRRP child's pid, from its pid file (written once the child runs)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(FileNotFoundError, ValueError):
                return int(self.vrrp_pidfile.read_text().split()[0])
            if self.popen is not None and self.popen.poll() is not None:
                raise KeepalivedError(
                    f"keepalived on {self.node} exited with {self.popen.returncode}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise KeepalivedError(f"keepalived on {self.node} wrote no VRRP pid file:\n{self.tail()}")
            time.sleep(0.01)

    def holds_vip(self) -> bool:
        """The VIP is on the node's lab interface: keepalived made this node the master (or a killed one
        left it there)."""
        out = subprocess.run(
            ["ip", "-n", self.ns, "-o", "-4", "addr", "show", "dev", self.interface],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return f" {self.vip}/" in out

    def wait_master(self) -> None:
        deadline = time.monotonic() + MASTER_TIMEOUT
        while not self.holds_vip():
            if self.popen is not None and self.popen.poll() is not None:
                raise KeepalivedError(
                    f"keepalived on {self.node} exited with {self.popen.returncode}:\n{self.tail()}"
                )
            if time.monotonic() > deadline:
                raise KeepalivedError(
                    f"keepalived on {self.node} did not become VRRP master for {self.vip} in "
                    f"{MASTER_TIMEOUT:.0f} s:\n{self.tail()}"
                )
            time.sleep(0.01)

    def kill(self) -> None:
        """A death with no farewell: the parent stopped first (so it neither respawns the VRRP child nor,
        by dying, makes the child shut down politely with a priority 0 advert), then the VRRP child and the
        parent SIGKILLed. The VIP stays on the interface, as keepalived leaves it when killed."""
        assert self.popen is not None
        parent = self.popen.pid  # `ip netns exec` execs keepalived: the parent is our child
        child = self.vrrp_pid(timeout=1.0)
        os.kill(parent, signal.SIGSTOP)
        os.kill(child, signal.SIGKILL)
        os.kill(parent, signal.SIGKILL)
        self.popen.wait(timeout=5)
        self.popen = None

    def forget_vip(self) -> None:
        """The address a killed keepalived left behind goes, as on a node that restarts."""
        if self.holds_vip():
            self.lab.exec(self.ns, "ip", "addr", "del", f"{self.vip}/32", "dev", self.interface)

    def stop(self) -> None:
        if self.popen is None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self.popen = None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _require_keepalived() -> None:
    if shutil.which("keepalived") is None:
        raise KeepalivedError("keepalived is not installed: apt-get install keepalived")


def _lost_between(probes: list[Probe], start: float, end: float) -> int:
    """Requests sent in [start, end) that got no answer."""
    return sum(1 for p in probes if start <= p.sent < end and not p.ok)


def _first_answer(prober: Prober, since: float, old: str) -> Probe | None:
    """The first answer from a node but `old` received since `since`, waiting up to WAIT for one."""

    def other(probes: list[Probe]) -> bool:
        return any(p.ok and p.answer != old and p.received >= since for p in probes[-5:])

    prober.wait_until(other, timeout=WAIT)
    return prober.first_answer(since, other_than=old)


def _steady(prober: Prober, daemons: dict[str, _Keepalived]) -> str:
    """Waits until the last STEADY_PROBES requests were all answered by one node, the only node with a
    running keepalived that holds the VIP on its interface; returns it. (A killed keepalived leaves the VIP
    on its interface: its node is left out until it starts again.)"""

    def steady_answer(probes: list[Probe]) -> str | None:
        last = probes[-STEADY_PROBES:]
        if len(last) < STEADY_PROBES or time.monotonic() - last[-1].received > 0.2:
            return None
        answers = {p.answer for p in last}
        return next(iter(answers)) if len(answers) == 1 and None not in answers else None

    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        answer = steady_answer(prober.wait_until(lambda p: steady_answer(p) is not None, timeout=1.0))
        if answer is None:
            continue
        holders = [n for n, d in daemons.items() if d.running and d.holds_vip()]
        if holders == [answer]:
            return answer
        time.sleep(0.05)
    logs = "\n".join(f"--- {n}\n{d.tail(10)}" for n, d in daemons.items())
    raise KeepalivedError(
        f"no single keepalived master answered {prober.vip} steadily in {WAIT:.0f} s:\n{logs}"
    )


@contextlib.contextmanager
def _keepalived_lab(
    vip: str, interval: float, prefix: str
) -> Iterator[tuple[NetnsLab, dict[str, _Keepalived]]]:
    _require_keepalived()
    with (
        tempfile.TemporaryDirectory(prefix="metallb-keepalived-") as tmp,
        NetnsLab(nodes=list(NODES), prefix=prefix) as lab,
    ):
        lab.serve(vip, "hname")
        daemons = {n: _Keepalived(lab, n, Path(tmp), vip, interval) for n in lab.nodes}
        try:
            for daemon in daemons.values():
                daemon.start()
            top = max(daemons, key=lambda n: PRIORITIES[n])
            daemons[top].wait_master()
            yield lab, daemons
        finally:
            for daemon in daemons.values():
                daemon.stop()


def measure_keepalived(
    rounds: int,
    progress: Callable[[str], None],
    label: str,
    *,
    cut: bool,
    vip: str = "192.168.1.11",
    interval: float = 0.01,
) -> KeepalivedRun:
    """`rounds` deaths of the keepalived master (see the module docstring); progress every 5 rounds."""
    rng = random.Random(11)
    answered: list[float] = []
    lost: list[int] = []
    back_lost: list[int] = []
    failovers: list[Failover] = []
    how = "cut+kill" if cut else "kill"
    with (
        _keepalived_lab(vip, interval, "mlbkeep") as (lab, daemons),
        lab.prober(vip, interval=0.01) as prober,
    ):
        for r in range(rounds):
            old = _steady(prober, daemons)
            time.sleep(rng.uniform(0.3, 0.8))  # a random phase of the adverts, as the floor and speakers
            killed = time.monotonic()
            if cut:
                lab.kill_link(old)
            daemons[old].kill()
            first = _first_answer(prober, killed, old)
            if first is None:
                logs = "\n".join(f"--- {n}\n{d.tail(10)}" for n, d in daemons.items() if n != old)
                raise KeepalivedError(f"{label}: no node but {old} answered {vip} in {WAIT:.0f} s:\n{logs}")
            taker = str(first.answer)
            _steady(prober, daemons)  # the failover is over before the node comes back

            # The node comes back without the VIP its killed keepalived left: its cable, then a fresh
            # keepalived, which takes the address back.
            daemons[old].forget_vip()
            if cut:
                lab.restore_link(old)
            restarted = time.monotonic()
            daemons[old].start()
            daemons[old].wait_master()  # the highest priority: it preempts the taker
            back_to = _steady(prober, daemons)
            settled = time.monotonic()
            time.sleep(prober.timeout + 0.2)  # requests still in flight finish or time out
            probes = prober.results()

            answered.append(first.received - killed)
            lost.append(_lost_between(probes, killed, first.sent))
            back_lost.append(_lost_between(probes, restarted, settled))
            failovers.append(Failover(old, taker, back_to))
            if (r + 1) % 5 == 0 or r + 1 == rounds:
                recent = ", ".join(f"{1000 * t:.0f}" for t in answered[-5:])
                progress(
                    f"{label} keepalived ({how}) {r + 1}/{rounds}: {recent} ms; lost {lost[-5:]}, "
                    f"hand-back lost {back_lost[-5:]}"
                )
    return KeepalivedRun(
        cut=cut, interval=interval, answered=answered, lost=lost, back_lost=back_lost, failovers=failovers
    )
