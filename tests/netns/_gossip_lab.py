"""Nodes for the gossip tests and benchmarks: a namespace per node on one bridge, documentation addresses.

Built on `_lab.Lab` (which removes every namespace it made): a namespace holds the bridge, each node namespace
has `eth0` (192.0.2.10+i/24, 2001:db8::10+i/64) plugged into bridge port `p<i>`. `cut(i)` takes the port down,
which also takes the node's carrier down, like a pulled cable; `heal(i)` puts it back. `Agent` runs one member
in a child process (benches/gossip_agent.py), optionally with its wall clock shifted by libfaketime, so that a
test can kill it like a speaker and restart it with its clock stepped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._lab import Lab

GOSSIP_PORT = 7946
SECRET = b"netns-gossip-secret-0123456789ab"
AGENT = Path(__file__).resolve().parents[2] / "benches" / "gossip_agent.py"
# Debian's libfaketime; the multithreaded variant, since the member runs its own thread.
FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


@dataclass
class GossipLab:
    lab: Lab
    bridge_ns: str
    nodes: list[str] = field(default_factory=list)

    def v4(self, i: int) -> str:
        return f"192.0.2.{10 + i}"

    def v6(self, i: int) -> str:
        return f"2001:db8::{10 + i:x}"

    def address(self, i: int, family: int = 4) -> str:
        return f"{self.v4(i)}:{GOSSIP_PORT}" if family == 4 else f"[{self.v6(i)}]:{GOSSIP_PORT}"

    def addresses(self, family: int = 4) -> list[str]:
        return [self.address(i, family) for i in range(len(self.nodes))]

    def cut(self, i: int) -> None:
        self.lab.sh(self.bridge_ns, "ip", "link", "set", f"p{i}", "down")

    def heal(self, i: int) -> None:
        self.lab.sh(self.bridge_ns, "ip", "link", "set", f"p{i}", "up")


def gossip_lab(lab: Lab, count: int) -> GossipLab:
    bridge_ns = lab.namespace("br")
    the_lab = GossipLab(lab, bridge_ns)
    for i in range(count):
        ns = lab.namespace(f"n{i}")
        lab.veth(ns, "eth0", bridge_ns, f"p{i}")
        lab.address(ns, "eth0", f"{the_lab.v4(i)}/24")
        lab.address(ns, "eth0", f"{the_lab.v6(i)}/64")
        the_lab.nodes.append(ns)
    lab.bridge(bridge_ns, "br0", [f"p{i}" for i in range(count)])
    return the_lab


class Agent:
    """One member in a child process. `clock_offset` (libfaketime's syntax, e.g. "-2h") shifts its wall clock
    only: the monotonic clock stays the machine's, as when an administrator or NTP steps the clock."""

    def __init__(
        self, name: str, netns: str, bind: str, peers: list[str], *, clock_offset: str | None = None
    ) -> None:
        env = dict(os.environ)
        if clock_offset is not None:
            env.update(LD_PRELOAD=str(FAKETIME_LIB), FAKETIME=clock_offset, FAKETIME_DONT_FAKE_MONOTONIC="1")
        args = [sys.executable, str(AGENT), name, netns, bind, SECRET.hex(), ",".join(peers)]
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        if not first:
            self.process.wait()
            raise RuntimeError(
                f"the gossip agent {name} exited with {self.process.returncode} before binding"
            )
        self.ready: dict[str, Any] = json.loads(first)
        # Keep the pipe drained: the agent prints every event.
        self._drain = threading.Thread(target=self.process.stdout.read, daemon=True)
        self._drain.start()

    @property
    def generation(self) -> int:
        """The generation the member started with (before the cluster corrected it, if it did)."""
        return int(self.ready["generation"])

    def kill(self) -> None:
        """SIGKILL, like a crashed speaker: nothing is sent to the peers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self._drain.join()
        assert self.process.stdout is not None
        self.process.stdout.close()
