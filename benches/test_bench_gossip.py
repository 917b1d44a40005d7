"""Failure detection figures of the gossip members, in network namespaces: recorded, printed, never asserted.

Four members, each its own process (benches/gossip_agent.py) in its own namespace on one bridge, with the
default timings (or METALLB_PY_GOSSIP_OPTIONS, a JSON object of Membership keyword arguments). Measured:

- detection: over KILLS rounds, SIGKILL one member at a random phase and time from the kill to the `down`
  event at the first and at the last survivor (the last is when every possible new announcer knows), idle
  and with every core loaded by busy-looping processes;
- isolation: cut one node's cable (bridge port down) and time until it declares itself isolated, and until
  the others declare it down; the split-brain window is how long the cut node still announces after the first
  survivor could take over;
- false positives: LOAD_SECONDS (default 300) with every core loaded, counting members declared down (every
  one is spurious: nobody dies), isolations, suspicions and refutations;
- clock steps: over CLOCK_RESTARTS rounds, SIGKILL a member, wait until every survivor declared it down,
  restart it with its wall clock two hours back (libfaketime), so that it starts at an older generation than
  its previous life, and time from its start to the `up` event at the last survivor.

Needs root; skipped otherwise. Timestamps are the events' own (`time.monotonic()` across processes).
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _measure import cpu_load, percentile  # noqa: E402
from netns._gossip_lab import (  # type: ignore[import-not-found]  # noqa: E402
    FAKETIME_LIB,
    SECRET,
    GossipLab,
    gossip_lab,
)
from netns._lab import lab  # type: ignore[import-not-found]  # noqa: E402

pytestmark = [
    pytest.mark.netns,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root for network namespaces"),
]

MEMBERS = 4
KILLS = int(os.environ.get("METALLB_PY_GOSSIP_KILLS", "24"))
CUTS = int(os.environ.get("METALLB_PY_GOSSIP_CUTS", "10"))
LOAD_SECONDS = float(os.environ.get("METALLB_PY_GOSSIP_LOAD_SECONDS", "300"))
CLOCK_RESTARTS = int(os.environ.get("METALLB_PY_GOSSIP_CLOCK_RESTARTS", "8"))
# Every knob of the run is an environment variable, so a longer or harsher run needs no edit.
OPTIONS: dict[str, Any] = json.loads(os.environ.get("METALLB_PY_GOSSIP_OPTIONS", "{}"))
AGENT = ROOT / "benches" / "gossip_agent.py"


@dataclass
class Agent:
    index: int
    process: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    reader: threading.Thread | None = None

    def start_reading(self) -> None:
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()

    def finish(self, sig: int | None = signal.SIGKILL, timeout: float = 10.0) -> None:
        """Signals the process (unless it already ended), reaps it and closes its pipe."""
        if sig is not None and self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.reader is not None:
            self.reader.join()
        assert self.process.stdout is not None
        self.process.stdout.close()

    def read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self.changed:
                self.lines.append(json.loads(line))
                self.changed.notify_all()

    def wait(self, found: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines:
                    if found(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"agent {self.index}: nothing matched; saw {self.lines[-10:]}")
                self.changed.wait(left)

    def wait_event(self, kind: str, since: float, subject: str | None = None, timeout: float = 10.0) -> float:
        """When the first `kind` event (about `subject`, if given) at or after `since` happened."""

        def found(e: dict[str, Any]) -> bool:
            return e.get("kind") == kind and e["at"] >= since and subject in (None, e["name"])

        return float(self.wait(found, timeout)["at"])

    def wait_state(self, subject: str, kind: str, timeout: float) -> None:
        """Until the latest up/down event about `subject` is `kind`."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                latest = [
                    e["kind"]
                    for e in self.lines
                    if e.get("name") == subject and e.get("kind") in ("up", "down")
                ]
                if latest and latest[-1] == kind:
                    return
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"agent {self.index}: {subject} never {kind}; saw {self.lines[-10:]}")
                self.changed.wait(left)

    def events(self, kind: str, since: float) -> list[dict[str, Any]]:
        with self.changed:
            return [e for e in self.lines if e.get("kind") == kind and e["at"] >= since]


def name(i: int) -> str:
    return f"node-{i}"


class Cluster:
    def __init__(self, nodes: GossipLab) -> None:
        self.nodes = nodes
        self.agents: dict[int, Agent] = {}

    def spawn(self, i: int, clock_offset: str | None = None) -> Agent:
        """Starts member `i`; `clock_offset` (libfaketime's syntax, e.g. "-2h") shifts its wall clock only."""
        env = dict(os.environ)
        if clock_offset is not None:
            env.update(LD_PRELOAD=str(FAKETIME_LIB), FAKETIME=clock_offset, FAKETIME_DONT_FAKE_MONOTONIC="1")
        args = [
            name(i),
            self.nodes.nodes[i],
            self.nodes.address(i),
            SECRET.hex(),
            ",".join(self.nodes.addresses()),
        ]
        process = subprocess.Popen(
            [sys.executable, str(AGENT), *args, json.dumps(OPTIONS)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        agent = Agent(i, process)
        agent.start_reading()
        agent.wait(lambda line: "ready" in line)
        self.agents[i] = agent
        return agent

    def converged(self, timeout: float = 10.0) -> None:
        """Every agent's latest word about every other agent is `up`."""
        for i, agent in self.agents.items():
            for j in self.agents:
                if j != i:
                    agent.wait_state(name(j), "up", timeout)

    def kill(self, i: int) -> float:
        agent = self.agents.pop(i)
        killed_at = time.monotonic()
        agent.finish(signal.SIGKILL)
        return killed_at

    def stop_all(self) -> dict[int, dict[str, int]]:
        stats: dict[int, dict[str, int]] = {}
        for agent in self.agents.values():
            agent.process.send_signal(signal.SIGTERM)
        for i, agent in self.agents.items():
            agent.finish(None)
            found = [line["stats"] for line in agent.lines if "stats" in line]
            if found:
                stats[i] = found[-1]
        self.agents.clear()
        return stats


@contextmanager
def cluster() -> Iterator[Cluster]:
    with lab() as the_lab:
        the_cluster = Cluster(gossip_lab(the_lab, MEMBERS))
        try:
            for i in range(MEMBERS):
                the_cluster.spawn(i)
            the_cluster.converged()
            yield the_cluster
        finally:
            for agent in the_cluster.agents.values():
                agent.finish(signal.SIGKILL)


def measure_kills(the_cluster: Cluster, rounds: int) -> dict[str, Any]:
    first: list[float] = []
    last: list[float] = []
    spurious = 0
    rng = random.Random(5)
    for r in range(rounds):
        victim = r % MEMBERS
        time.sleep(rng.uniform(0.3, 0.8))  # a random phase of the probe cycle
        killed_at = the_cluster.kill(victim)
        seen = []
        for agent in the_cluster.agents.values():
            seen.append(agent.wait_event("down", killed_at, name(victim)) - killed_at)
        first.append(min(seen))
        last.append(max(seen))
        spurious += sum(
            1
            for agent in the_cluster.agents.values()
            for e in agent.events("down", killed_at)
            if e["name"] != name(victim)
        )
        the_cluster.spawn(victim)
        the_cluster.converged()
    return {"first": first, "last": last, "spurious": spurious}


def detection_figures(prefix: str, measured: dict[str, Any], figures: dict[str, float]) -> str:
    first, last = measured["first"], measured["last"]
    ms = {
        f"{prefix} first survivor p50 ms": statistics.median(first) * 1000,
        f"{prefix} all survivors p50 ms": statistics.median(last) * 1000,
        f"{prefix} all survivors p99 ms": percentile(last, 99) * 1000,
        f"{prefix} all survivors max ms": max(last) * 1000,
        f"{prefix} spurious downs": float(measured["spurious"]),
        f"{prefix} kills": float(len(last)),
    }
    figures.update(ms)
    return "\n".join(f"{k:<48} {v:>10.1f}" for k, v in ms.items())


def test_detection_time_idle(figures: dict[str, float]) -> None:
    with cluster() as the_cluster:
        measured = measure_kills(the_cluster, KILLS)
    print("\n" + detection_figures("gossip detection idle", measured, figures))


def test_detection_time_loaded(figures: dict[str, float]) -> None:
    with cluster() as the_cluster, cpu_load("METALLB_PY_GOSSIP_HOGS"):
        measured = measure_kills(the_cluster, KILLS)
    print("\n" + detection_figures("gossip detection loaded", measured, figures))


def test_isolation_window(figures: dict[str, float]) -> None:
    isolated: list[float] = []
    detected: list[float] = []
    overlap: list[float] = []
    with cluster() as the_cluster:
        for r in range(CUTS):
            cut = r % MEMBERS
            time.sleep(0.5)
            cut_at = time.monotonic()
            the_cluster.nodes.cut(cut)
            agent = the_cluster.agents[cut]
            at = agent.wait_event("isolated", cut_at)
            downs = [
                other.wait_event("down", cut_at, name(cut))
                for i, other in the_cluster.agents.items()
                if i != cut
            ]
            isolated.append(at - cut_at)
            detected.append(min(downs) - cut_at)
            # The cut node answers until it is isolated; the first survivor may take over from its `down`.
            overlap.append(max(0.0, at - min(downs)))
            healed_at = time.monotonic()
            the_cluster.nodes.heal(cut)
            agent.wait_event("reconnected", healed_at, timeout=15)
            the_cluster.converged()
    ms = {
        "gossip isolation after cut p50 ms": statistics.median(isolated) * 1000,
        "gossip isolation after cut max ms": max(isolated) * 1000,
        "gossip cut detected by first survivor p50 ms": statistics.median(detected) * 1000,
        "gossip split-brain window p50 ms": statistics.median(overlap) * 1000,
        "gossip split-brain window max ms": max(overlap) * 1000,
        "gossip cuts": float(CUTS),
    }
    figures.update(ms)
    print("\n" + "\n".join(f"{k:<48} {v:>10.1f}" for k, v in ms.items()))


def test_restart_with_the_clock_stepped_back(figures: dict[str, float]) -> None:
    back_up: list[float] = []
    with cluster() as the_cluster:
        for r in range(CLOCK_RESTARTS):
            victim = r % MEMBERS
            killed_at = the_cluster.kill(victim)
            for agent in the_cluster.agents.values():
                agent.wait_event("down", killed_at, name(victim))
            started_at = time.monotonic()
            the_cluster.spawn(victim, clock_offset="-2h")
            ups = [
                agent.wait_event("up", started_at, name(victim), timeout=30)
                for i, agent in the_cluster.agents.items()
                if i != victim
            ]
            back_up.append(max(ups) - started_at)
            the_cluster.converged()
    ms = {
        "gossip clock -2h restart up at all p50 ms": statistics.median(back_up) * 1000,
        "gossip clock -2h restart up at all max ms": max(back_up) * 1000,
        "gossip clock -2h restarts": float(CLOCK_RESTARTS),
    }
    figures.update(ms)
    print("\n" + "\n".join(f"{k:<48} {v:>10.1f}" for k, v in ms.items()))


@pytest.mark.timeout(LOAD_SECONDS + 120)
def test_false_positives_under_load(figures: dict[str, float]) -> None:
    with cluster() as the_cluster, cpu_load("METALLB_PY_GOSSIP_HOGS") as hogs:
        started = time.monotonic()
        time.sleep(LOAD_SECONDS)
        ran = time.monotonic() - started
        events = {
            kind: sum(len(a.events(kind, started)) for a in the_cluster.agents.values())
            for kind in ("down", "suspect", "isolated")
        }
        stats = the_cluster.stop_all()
    keys = ("refutations", "rejoins", "datagrams_sent", "bytes_sent")
    totals = {key: sum(s.get(key, 0) for s in stats.values()) for key in keys}
    result = {
        "gossip loaded run seconds": ran,
        "gossip loaded run busy-loop processes": float(hogs),
        "gossip loaded run spurious downs": float(events["down"]),
        "gossip loaded run isolations": float(events["isolated"]),
        "gossip loaded run suspicions": float(events["suspect"]),
        "gossip loaded run refutations": float(totals["refutations"]),
        "gossip loaded run rejoins": float(totals["rejoins"]),
        "gossip datagrams sent per member per s": totals["datagrams_sent"] / MEMBERS / ran,
        "gossip bytes sent per member per s": totals["bytes_sent"] / MEMBERS / ran,
    }
    figures.update(result)
    print("\n" + "\n".join(f"{k:<48} {v:>10.1f}" for k, v in result.items()))
