"""A real speaker's idle memory with 100 Services announced (issue 14: under 40 MiB), and where it goes.

Two lab speakers (processes, each with its responder and gossip in its own network namespace) announce 100
LoadBalancer Services with endpoints; once every Service has its ServiceL2Status the speakers are idle, and
each one's /proc/<pid>/smaps is summed by what the mappings are. Figures, not assertions: run with `-s`.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from metallb_py.k8s.resources import SERVICE_L2_STATUSES
from metallb_py.testing import LabCluster

SERVICES_N = 100
WAIT = 300.0
POOL = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: rss, namespace: metallb-system}
spec: {addresses: [203.0.113.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: rss, namespace: metallb-system}
spec: {ipAddressPools: [rss]}
"""
_MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def rss_by_component(pid: int) -> Counter[str]:
    """MiB resident per kind of mapping: the malloc heap, other anonymous memory (pymalloc arenas, thread
    stacks, Rust allocations), the responder's packet rings, libpython, other shared objects, other files."""
    parts: Counter[str] = Counter()
    kind = ""
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        if _MAPPING.match(line):
            fields = line.split()
            name = fields[5] if len(fields) > 5 else ""
            if name == "[heap]":
                kind = "malloc heap"
            elif name.startswith("socket:"):
                kind = "packet rings"
            elif not name or name.startswith("["):
                kind = "anonymous (arenas, stacks)"
            elif "libpython" in name:
                kind = "libpython"
            elif ".so" in name:
                kind = "shared objects"
            else:
                kind = "other files"
        elif line.startswith("Rss:"):
            parts[kind] += int(line.split()[1]) / 1024
    return parts


def test_speaker_idle_rss_with_100_services(figures: dict[str, float], tmp_path: Path) -> None:
    with LabCluster(("node1", "node2"), "control-plane", prefix="mlbrss", log_dir=tmp_path) as cluster:
        cluster.kubectl("apply", "-f", "-", stdin=POOL)
        for i in range(SERVICES_N):
            name = f"rss-{i}"
            cluster.create_service(name)

        def statuses() -> int | None:
            n = len(cluster.client.list(SERVICE_L2_STATUSES, cluster.namespace).items)
            return n if n >= SERVICES_N else None

        cluster.wait_for(statuses, WAIT, f"a ServiceL2Status for each of {SERVICES_N} Services", interval=1.0)
        for node in cluster.workers:
            pid = cluster.speaker_pid(node)
            assert pid is not None
            parts = rss_by_component(pid)
            total = sum(parts.values())
            print(f"\nspeaker {node} (pid {pid}), {SERVICES_N} Services: {total:.1f} MiB resident")
            for kind, mib in parts.most_common():
                print(f"  {kind:<28} {mib:6.1f} MiB")
            figures[f"speaker {node} idle RSS, {SERVICES_N} Services (MiB)"] = round(total, 1)
