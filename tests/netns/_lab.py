"""A throwaway network lab for the layer 2 responder: namespaces, veth pairs, a bridge and real clients.

Everything is created inside namespaces named `mlb<random>-<role>` and removed by `Lab.close()` (deleting a
namespace deletes its interfaces), so nothing touches the host's own interfaces. Only documentation
addresses are used (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32). Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN,
CAP_NET_RAW) and iproute2; the client helpers need iputils-arping and ndisc6. Also used by benches/l2.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CLIENT_V4 = "198.51.100.1"
CLIENT_V6 = "2001:db8::1"
VIP_V4 = "198.51.100.10"
OTHER_V4 = "198.51.100.11"
VIP_V6 = "2001:db8::10"
OTHER_V6 = "2001:db8::11"


def run(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), check=check, capture_output=True, text=True, timeout=timeout)


@dataclass
class Lab:
    """Namespaces created so far, removed in reverse by `close`."""

    tag: str
    namespaces: list[str]

    def namespace(self, role: str) -> str:
        """A fresh namespace, loopback up, duplicate address detection off (so addresses work at once)."""
        name = f"mlb{self.tag}-{role}"
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        run("ip", "-n", name, "link", "set", "lo", "up")
        self.sysctl(name, "net.ipv6.conf.all.accept_dad", "0")
        self.sysctl(name, "net.ipv6.conf.default.accept_dad", "0")
        return name

    def sysctl(self, ns: str, key: str, value: str) -> None:
        self.sh(ns, "sysctl", "-qw", f"{key}={value}")

    def sh(
        self, ns: str, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        return run("ip", "netns", "exec", ns, *args, check=check, timeout=timeout)

    def veth(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        """A veth pair with one end in each namespace, both up. Created directly inside them."""
        run("ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
        run("ip", "-n", ns_a, "link", "set", if_a, "up")
        run("ip", "-n", ns_b, "link", "set", if_b, "up")

    def bridge(self, ns: str, name: str, ports: list[str]) -> None:
        """A bridge in `ns` over `ports` (already in `ns`), without STP so ports forward at once."""
        run("ip", "-n", ns, "link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0")
        for port in ports:
            run("ip", "-n", ns, "link", "set", port, "master", name)
        run("ip", "-n", ns, "link", "set", name, "up")

    def address(self, ns: str, ifname: str, cidr: str) -> None:
        run("ip", "-n", ns, "addr", "add", cidr, "dev", ifname)

    def mac(self, ns: str, ifname: str) -> str:
        info = json.loads(run("ip", "-n", ns, "-j", "link", "show", "dev", ifname).stdout)
        return str(info[0]["address"]).lower()

    def neighbour(self, ns: str, ip: str, ifname: str) -> tuple[str | None, list[str]] | None:
        """(lladdr, states) of the client's neighbour entry for `ip`, or None without one."""
        rows = json.loads(run("ip", "-n", ns, "-j", "neigh", "show", ip, "dev", ifname).stdout or "[]")
        if not rows:
            return None
        lladdr = rows[0].get("lladdr")
        return (str(lladdr).lower() if lladdr else None, [str(s) for s in rows[0].get("state", [])])

    def multicast_groups(self, ns: str, ifname: str) -> set[str]:
        out = run("ip", "-n", ns, "-6", "maddr", "show", "dev", ifname).stdout
        return set(re.findall(r"inet6 (\S+)", out))

    def close(self) -> None:
        for name in reversed(self.namespaces):
            run("ip", "netns", "del", name, check=False)
        self.namespaces.clear()


@contextmanager
def lab() -> Iterator[Lab]:
    """A lab that is torn down however the body ends."""
    the_lab = Lab(tag=secrets.token_hex(3), namespaces=[])
    try:
        yield the_lab
    finally:
        the_lab.close()


@dataclass
class Pair:
    """A responder namespace and a client namespace joined by one veth pair (r0 <-> c0)."""

    lab: Lab
    responder_ns: str
    client_ns: str
    responder_if: str = "r0"
    client_if: str = "c0"


def make_pair(the_lab: Lab) -> Pair:
    rsp, cli = the_lab.namespace("rsp"), the_lab.namespace("cli")
    the_lab.veth(rsp, "r0", cli, "c0")
    the_lab.address(cli, "c0", f"{CLIENT_V4}/24")
    the_lab.address(cli, "c0", f"{CLIENT_V6}/64")
    return Pair(the_lab, rsp, cli)


ARPING_REPLY = re.compile(r"reply from (\S+) \[([0-9A-Fa-f:]{17})\]")


def arping(the_lab: Lab, ns: str, ifname: str, ip: str, count: int = 3) -> list[str]:
    """MACs of the replies iputils-arping gets for `ip` (the first request is broadcast, the rest unicast)."""
    # arping takes whole seconds: one request a second, and one more second for the last reply.
    out = the_lab.sh(ns, "arping", "-c", str(count), "-w", str(count + 1), "-I", ifname, ip, check=False)
    return [mac.lower() for addr, mac in ARPING_REPLY.findall(out.stdout) if addr == ip]


def ndisc6(the_lab: Lab, ns: str, ifname: str, ip: str) -> str | None:
    """The link-layer address ndisc6 learns for `ip` from a neighbor advertisement, or None."""
    out = the_lab.sh(ns, "ndisc6", "-1", "-q", "-r", "2", "-w", "500", ip, ifname, check=False)
    text = out.stdout.strip().lower()
    return text or None


def send_udp(the_lab: Lab, ns: str, ip: str) -> None:
    """Makes the client's kernel resolve `ip` (neighbour discovery, then NUD) by sending it a datagram."""
    family = "AF_INET6" if ":" in ip else "AF_INET"
    code = f"import socket; socket.socket(socket.{family}, socket.SOCK_DGRAM).sendto(b'x', ({ip!r}, 9))"
    the_lab.sh(ns, sys.executable, "-c", code)


class Capture:
    """What a packet client in `ns` receives on `ifname`: ARP packets and Neighbor Advertisements, decoded by
    _capture.py, in arrival order. Started (and listening) before the constructor returns."""

    def __init__(self, ns: str, ifname: str) -> None:
        script = Path(__file__).with_name("_capture.py")
        # Its errors go to a file: a pipe nobody reads after the start could fill and block the client.
        self._errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed in close())
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, str(script), ifname],
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
        )
        self._frames: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        assert self._proc.stdout is not None
        ready = self._proc.stdout.readline()
        if not ready.startswith('{"ready"'):
            self._proc.kill()
            self._proc.wait()
            self._errors.seek(0)
            errors = self._errors.read()
            self._errors.close()
            raise RuntimeError(f"the packet client in {ns} did not start: {errors.strip() or ready!r}")
        self._reader.start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            with self._changed:
                self._frames.append(json.loads(line))
                self._changed.notify_all()

    def frames(self, match: Callable[[dict[str, Any]], bool] = lambda _: True) -> list[dict[str, Any]]:
        with self._changed:
            return [f for f in self._frames if match(f)]

    def wait_for(
        self, match: Callable[[dict[str, Any]], bool], count: int, timeout: float = 5.0
    ) -> list[dict[str, Any]]:
        """Waits until `count` frames `match` (or `timeout` passes); returns those seen either way."""
        with self._changed:
            self._changed.wait_for(lambda: len([f for f in self._frames if match(f)]) >= count, timeout)
            return [f for f in self._frames if match(f)]

    def close(self) -> None:
        self._proc.kill()
        self._proc.wait()
        if self._reader.ident is not None:  # started
            self._reader.join()  # it stops at the end of the dead client's output
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._errors.close()


@contextmanager
def capture(ns: str, ifname: str) -> Iterator[Capture]:
    """A Capture for the block, stopped however the block ends."""
    client = Capture(ns, ifname)
    try:
        yield client
    finally:
        client.close()


def wait_for(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 5.0) -> T:
    """Polls `probe` until `done(value)` or `timeout`; returns the last value either way."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.05)
        value = probe()
    return value
