"""Interfaces that appear after the speaker started, end to end: a LabCluster with one worker (node1) and the
excluded control-plane node; a link is added to node1's namespace while its speaker runs, with the client
on the same segment.

The late link is a VLAN (eth0.100 on node1 and on the client, through the lab's switch) where the kernel has
802.1Q, else a veth pair straight from node1 to the client (late0 at both ends): a kernel without the 8021q
module (some containers) cannot create VLANs, and the speaker's path is the same for both (a link
notification, a rescan, the responder's set_interfaces, a round). The client asks with iputils-arping over
the late link. Two Services: one from a pool whose L2Advertisement names no interface (announced on every
interface, the late one included once it is up), one whose L2Advertisement names only the late interface
(announced only while it exists). No time limit is asserted: each step waits on a condition (the deadline
only stops a hang), and the time from `ip link set up` to the first answered arping is printed.

Interfaces excluded by name (MetalLB's ConfigMap metallb-excludel2, default list without it): a veth pair
with a Calico-like name at one end is served only while a ConfigMap lets it in.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from metallb_py.k8s.resources import CONFIGMAPS, SERVICE_L2_STATUSES, SERVICES
from metallb_py.speaker.election import EXCLUDE_L2_CONFIGMAP, EXCLUDE_L2_KEY
from metallb_py.testing import LabCluster

NS = "metallb-system"
NODE = "node1"
WAIT = 60.0
EVERYWHERE_VIP = "192.168.1.70"
NAMED_VIP = "192.168.1.100"
CLIENT_LATE_V4 = "203.0.113.200/24"
INTERFACE_METRIC = "metallb_py_speaker_layer2_interface"
ARPING_REPLY = re.compile(r"reply from (\S+) \[([0-9A-Fa-f:]{17})\]")


def config(late: str) -> str:
    return f"""
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: everywhere, namespace: {NS}}}
spec:
  addresses: [192.168.1.64/28]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: everywhere, namespace: {NS}}}
spec:
  ipAddressPools: [everywhere]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: late-only, namespace: {NS}}}
spec:
  addresses: [192.168.1.96/28]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {{name: late-only, namespace: {NS}}}
spec:
  ipAddressPools: [late-only]
  interfaces: [{late}]
"""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def kernel_has_vlans(ns: str) -> bool:
    """Whether a VLAN can be created here (a throwaway one on a veth pair inside `ns`)."""
    ip("-n", ns, "link", "add", "vprobe0", "type", "veth", "peer", "name", "vprobe1")
    try:
        made = ip(
            "-n",
            ns,
            "link",
            "add",
            "link",
            "vprobe0",
            "name",
            "vprobe0.5",
            "type",
            "vlan",
            "id",
            "5",
            check=False,
        )
        return made.returncode == 0
    finally:
        ip("-n", ns, "link", "del", "vprobe0", check=False)


@dataclass
class LateLink:
    """The late link: `name` in the node's namespace, `client_if` in the client's, on one segment."""

    node_ns: str
    client_ns: str
    vlan: bool

    @property
    def name(self) -> str:
        return "eth0.100" if self.vlan else "late0"

    @property
    def client_if(self) -> str:
        return self.name

    def prepare_client(self) -> None:
        """The client's end, up with an address of its own (a VLAN's exists before the node's)."""
        if self.vlan:
            ip(
                "-n",
                self.client_ns,
                "link",
                "add",
                "link",
                "eth0",
                "name",
                self.client_if,
                "type",
                "vlan",
                "id",
                "100",
            )
            self._client_up()

    def create_down(self) -> None:
        """The node's end, still down (a veth pair brings the client's end with it)."""
        if self.vlan:
            ip(
                "-n",
                self.node_ns,
                "link",
                "add",
                "link",
                "eth0",
                "name",
                self.name,
                "type",
                "vlan",
                "id",
                "100",
            )
        else:
            ip(
                "link",
                "add",
                self.name,
                "netns",
                self.node_ns,
                "type",
                "veth",
                "peer",
                "name",
                self.client_if,
                "netns",
                self.client_ns,
            )
            self._client_up()

    def set_up(self) -> None:
        ip("-n", self.node_ns, "link", "set", self.name, "up")

    def delete(self) -> None:
        ip("-n", self.node_ns, "link", "del", self.name)

    def mac(self) -> str:
        return str(
            json.loads(ip("-n", self.node_ns, "-j", "link", "show", "dev", self.name).stdout)[0]["address"]
        )

    def _client_up(self) -> None:
        ip("-n", self.client_ns, "addr", "add", CLIENT_LATE_V4, "dev", self.client_if)
        ip("-n", self.client_ns, "link", "set", self.client_if, "up")


def arping(cluster: LabCluster, ifname: str, vip: str) -> list[str]:
    """The MACs answering one ARP request for `vip` from the client (iputils-arping) over `ifname`."""
    done = subprocess.run(
        ["ip", "netns", "exec", cluster.lab.client_ns, "arping", "-c", "1", "-w", "1", "-I", ifname, vip],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    return [mac.lower() for addr, mac in ARPING_REPLY.findall(done.stdout) if addr == vip]


# The timing probe: iputils-arping sends at most one request a second, too coarse to time a link coming up.
# This one asks every 10 ms from the client's namespace and prints the monotonic time of the first answer
# (CLOCK_MONOTONIC is the same in every process), so the time from `ip link set up` is measured, not bounded.
PROBE = r"""
import socket, struct, sys, time
ifname, source, target, deadline = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
s.bind((ifname, 0))
s.setblocking(False)
mac = s.getsockname()[4]
header = bytes.fromhex("ffffffffffff") + mac + bytes.fromhex("0806")
arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + mac + socket.inet_aton(source) + bytes(6)
request = header + arp + socket.inet_aton(target)
print("ready", flush=True)
end = time.monotonic() + deadline
while time.monotonic() < end:
    try:
        s.send(request)
    except OSError:
        pass
    until = time.monotonic() + 0.01
    while time.monotonic() < until:
        try:
            frame = s.recv(1514)
        except BlockingIOError:
            time.sleep(0.001)
            continue
        if frame[20:22] == bytes.fromhex("0002") and frame[28:32] == socket.inet_aton(target):
            print(time.monotonic(), frame[22:28].hex(":"), flush=True)
            sys.exit(0)
sys.exit(1)
"""


def time_to_answer(cluster: LabCluster, late: LateLink, vip: str) -> tuple[float, str]:
    """Sets the late link up while the probe asks for `vip` over it; (seconds from `ip link set up` to the
    first answer, the MAC that answered)."""
    source = CLIENT_LATE_V4.split("/", maxsplit=1)[0]
    argv = ["ip", "netns", "exec", cluster.lab.client_ns, sys.executable, "-c", PROBE]
    with subprocess.Popen(
        [*argv, late.client_if, source, vip, str(WAIT)], stdout=subprocess.PIPE, text=True
    ) as probe:
        assert probe.stdout is not None
        try:
            assert probe.stdout.readline().strip() == "ready"
            started = time.monotonic()
            late.set_up()
            answer = probe.stdout.readline().split()
        finally:
            probe.kill()
    assert answer, f"no answer for {vip} over {late.client_if} within {WAIT} s"
    return float(answer[0]) - started, answer[1]


def served(cluster: LabCluster) -> set[str] | None:
    scrape = cluster.speaker_metrics(NODE)
    if scrape is None:
        return None
    return {labels["interface"] for labels, value in scrape.series(INTERFACE_METRIC) if value == 1}


def status_interfaces(cluster: LabCluster, service: str) -> list[str] | None:
    """The interfaces node1's ServiceL2Status of `service` names; None without one."""
    selector = f"metallb.io/service-name={service}"
    for obj in cluster.client.list(SERVICE_L2_STATUSES, NS, label_selector=selector).items:
        status = obj.get("status") or {}
        if status.get("node") == NODE:
            return sorted(str(i.get("name")) for i in status.get("interfaces") or [])
    return None


def logged(cluster: LabCluster, message: str, interface: str) -> int:
    """How many records with `message` about `interface` node1's speaker has logged (JSON lines)."""
    count = 0
    for line in cluster.speaker_log(NODE).read_text().splitlines():
        try:
            record: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        count += record.get("msg") == message and record.get("interface") == interface
    return count


def lb_service(cluster: LabCluster, name: str, vip: str) -> None:
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": "default",
            "annotations": {"metallb.io/loadBalancerIPs": vip},
        },
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]},
    }
    cluster.client.create(SERVICES, manifest, "default")
    cluster.publish_endpoints("default", name)
    cluster.wait_for(
        lambda: cluster.external_ips("default", name) == [vip] or None, WAIT, f"{vip} for {name}"
    )


@pytest.fixture(scope="module")
def cluster(kubernetes_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    logs = tmp_path_factory.mktemp("e2e-interfaces-logs")
    with LabCluster((NODE,), "control-plane", prefix="mlbif", log_dir=logs) as the_cluster:
        yield the_cluster


def test_a_link_added_after_the_start_is_used_dropped_and_used_again(
    cluster: LabCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = cluster.lab
    late = LateLink(lab.node_ns(NODE), lab.client_ns, vlan=kernel_has_vlans(lab.client_ns))
    cluster.kubectl("apply", "-f", "-", stdin=config(late.name))
    late.prepare_client()
    lb_service(cluster, "everywhere", EVERYWHERE_VIP)
    lb_service(cluster, "late-only", NAMED_VIP)
    node_mac = lab.node_mac(NODE)
    cluster.wait_for(
        lambda: arping(cluster, "eth0", EVERYWHERE_VIP) == [node_mac], WAIT, "eth0 to be answered"
    )
    assert served(cluster) == {"eth0"}
    # The advertisement naming the late interface has nowhere to announce yet.
    assert status_interfaces(cluster, "late-only") is None
    if late.vlan:
        assert arping(cluster, late.client_if, EVERYWHERE_VIP) == [], "answered over a VLAN the node lacks"

    late.create_down()
    elapsed, answered_by = time_to_answer(cluster, late, EVERYWHERE_VIP)
    late_mac = late.mac()
    assert answered_by == late_mac
    assert arping(cluster, late.client_if, EVERYWHERE_VIP) == [late_mac]
    kind = "VLAN" if late.vlan else "veth pair (no 8021q in this kernel)"
    with capsys.disabled():
        print(f"\nlate link, {kind}: `ip link set up` to the first ARP answer: {elapsed * 1000:.0f} ms")
    cluster.wait_for(
        lambda: served(cluster) == {"eth0", late.name} or None, WAIT, "the late link in the metric"
    )
    assert logged(cluster, "interface added", late.name) == 1
    # The Service whose advertisement names the late interface is announced there, and only there.
    cluster.wait_for(
        lambda: arping(cluster, late.client_if, NAMED_VIP) == [late_mac] or None, WAIT, NAMED_VIP
    )
    assert arping(cluster, "eth0", NAMED_VIP) == []
    cluster.wait_for(
        lambda: status_interfaces(cluster, "late-only") == [late.name] or None, WAIT, "late-only's status"
    )

    late.delete()
    cluster.wait_for(lambda: served(cluster) == {"eth0"} or None, WAIT, "the late link to be dropped")
    # The responder drops a vanished link itself, before the speaker's rescan (after LINK_DEBOUNCE) says so.
    cluster.wait_for(
        lambda: logged(cluster, "interface removed", late.name) == 1 or None, WAIT, "the removal logged"
    )
    assert cluster.speaker_running(NODE)
    assert arping(cluster, "eth0", EVERYWHERE_VIP) == [node_mac], "the other interface stopped answering"
    cluster.wait_for(
        lambda: status_interfaces(cluster, "late-only") is None or None, WAIT, "late-only withdrawn"
    )

    late.create_down()
    elapsed, answered_by = time_to_answer(cluster, late, EVERYWHERE_VIP)
    late_mac = late.mac()
    assert answered_by == late_mac
    assert arping(cluster, late.client_if, EVERYWHERE_VIP) == [late_mac]
    with capsys.disabled():
        print(f"late link re-created: `ip link set up` to the first ARP answer: {elapsed * 1000:.0f} ms")
    cluster.wait_for(
        lambda: arping(cluster, late.client_if, NAMED_VIP) == [late_mac] or None, WAIT, NAMED_VIP
    )
    assert served(cluster) == {"eth0", late.name}
    assert logged(cluster, "interface added", late.name) == 2
    assert arping(cluster, "eth0", EVERYWHERE_VIP) == [node_mac]


EXCLUDE_NOTHING = f"""
apiVersion: v1
kind: ConfigMap
metadata: {{name: {EXCLUDE_L2_CONFIGMAP}, namespace: {NS}}}
data:
  {EXCLUDE_L2_KEY}: |
    announcedInterfacesToExclude: ["^lo$"]
"""


def test_cni_interfaces_are_excluded_by_name_as_the_configmap_says(cluster: LabCluster) -> None:
    """A veth pair with a Calico-like end (cali0e2e) and an ordinary one (ens9): without the ConfigMap
    metallb-excludel2, MetalLB's default list leaves out the first; a ConfigMap excluding only lo lets it
    in at once, and deleting the ConfigMap puts the default back."""
    node_ns = cluster.lab.node_ns(NODE)
    cluster.wait_for_speakers([NODE])
    before = served(cluster)
    assert before is not None and "eth0" in before
    ip("-n", node_ns, "link", "add", "cali0e2e", "type", "veth", "peer", "name", "ens9")
    try:
        # cali0e2e is up before ens9: the rescan that serves ens9 has seen it.
        ip("-n", node_ns, "link", "set", "cali0e2e", "up")
        ip("-n", node_ns, "link", "set", "ens9", "up")
        cluster.wait_for(
            lambda: served(cluster) == {*before, "ens9"} or None, WAIT, "ens9 served, not cali0e2e"
        )

        cluster.kubectl("apply", "-f", "-", stdin=EXCLUDE_NOTHING)
        cluster.wait_for(
            lambda: served(cluster) == {*before, "ens9", "cali0e2e"} or None, WAIT, "cali0e2e served"
        )
        cluster.client.delete(CONFIGMAPS, EXCLUDE_L2_CONFIGMAP, NS)
        cluster.wait_for(lambda: served(cluster) == {*before, "ens9"} or None, WAIT, "the default list back")
        assert cluster.speaker_running(NODE)
    finally:
        ip("-n", node_ns, "link", "del", "cali0e2e", check=False)
    cluster.wait_for(lambda: served(cluster) == before or None, WAIT, "the pair gone")
