"""Nodes for the gossip tests and benchmarks: a namespace per node on one bridge, documentation addresses.

Built on `_lab.Lab` (which removes every namespace it made): a namespace holds the bridge, each node namespace
has `eth0` (192.0.2.10+i/24, 2001:db8::10+i/64) plugged into bridge port `p<i>`. `cut(i)` takes the port down,
which also takes the node's carrier down, like a pulled cable; `heal(i)` puts it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._lab import Lab

GOSSIP_PORT = 7946
SECRET = b"netns-gossip-secret-0123456789ab"


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
