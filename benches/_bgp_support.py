"""What benches/test_bench_bgp.py measures with: the router's kernel FIB as it changes, FRR's own counters
read fast, and our speakers as child processes. Nothing here starts a lab or asserts a figure.

- `FibWatch`: `ip -tshort -o monitor route` in the router's namespace. Each change of a route is stamped by
  `ip` itself when it reads the kernel's notification (microseconds, wall clock), so a figure never waits for
  a poll: the time a killed node leaves a VIP's next hops is the stamp of the first route message without it.
- `TcpEndWatch`: tcpdump in the router's namespace, for when a session's FIN or RST reached the router: a
  convergence time splits into the killed process's end and the router's own work.
- `FrrVty`: FRR's bgpd read on its own vty socket (the protocol vtysh speaks: a command and a NUL byte; the
  answer ends with three NUL bytes and a status byte), on one connection: a `show` costs ~0.1 ms instead of a
  vtysh process (~30 ms), so the RIB can be polled every few milliseconds.
- `SpeakerChild`: benches/_bgp_speaker_child.py, one BgpSpeaker in a process of its own in the parent's
  namespace (its sessions in the node's, `netns=`), so its memory and CPU time are its own.
- `AssignedWatch`: one watch on a namespace's Services, counting those whose status holds an address: when
  the controller has assigned all of them, without listing thousands of Services over and over.
- `cpu_seconds`, `proc_memory`: a process's CPU time (every thread, to the nanosecond) and its resident
  memory now and at its peak (VmRSS, VmHWM).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import ipaddress
import json
import queue
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from metallb_py.ipam.fields import ingress_ips
from metallb_py.k8s import KubeClient, WatchStream
from metallb_py.k8s.resources import SERVICES
from metallb_py.testing import FrrRouter

# RFC 2544's range for benchmarking network devices (198.18.0.0/15): room for tens of thousands of /32s, and
# only ever routes inside the lab's namespaces, never traffic.
BENCH_NETWORK = ipaddress.IPv4Network("198.18.0.0/15")
# Held by every bench originator before a round starts: sessions and exports are up on both sides, and a round
# only adds prefixes (the last address of the range, never one of bench_prefixes()).
MARKER = f"{BENCH_NETWORK[-1]}/32"
CHILD = Path(__file__).with_name("_bgp_speaker_child.py")


def bench_prefixes(count: int) -> list[str]:
    """`count` /32s from the start of BENCH_NETWORK."""
    if not 0 <= count < BENCH_NETWORK.num_addresses - 1:
        raise ValueError(f"{count} prefixes: BENCH_NETWORK holds {BENCH_NETWORK.num_addresses - 1}")
    first = int(BENCH_NETWORK.network_address)
    return [f"{ipaddress.IPv4Address(first + i)}/32" for i in range(count)]


# -- the kernel FIB, event by event --------------------------------------------------------------------------


@dataclass(frozen=True)
class FibEvent:
    """One route message: when `ip` read it (time.time()), the route, whether it was a deletion, and the
    gateways of its next hops (every leg of an ECMP route)."""

    at: float
    prefix: str
    deleted: bool
    gateways: frozenset[str]


_STAMP = re.compile(r"^\[(?P<ts>[^\]]+)\]\s*(?P<rest>.*)$")


def monitor_stamp(line: str) -> tuple[float, str] | None:
    """The stamp of one `ip -tshort -o monitor` line (time.time()) and the rest of the line."""
    match = _STAMP.match(line.strip())
    if match is None:
        return None
    try:
        # ip prints local time without a zone; a naive datetime's timestamp() reads it as local time too.
        return _dt.datetime.fromisoformat(match["ts"]).timestamp(), match["rest"]
    except ValueError:
        return None


def parse_monitor_line(line: str) -> FibEvent | None:
    """One line of `ip -tshort -o monitor route` (ECMP legs joined on the line by `-o`)."""
    stamped = monitor_stamp(line)
    if stamped is None:
        return None
    at, rest = stamped
    words = rest.replace("\\", " ").split()
    deleted = bool(words) and words[0] == "Deleted"
    if deleted:
        words = words[1:]
    if not words or words[0] in ("local", "broadcast", "multicast", "unreachable"):
        return None
    dst = words[0]
    if dst == "default":
        return None
    if "/" not in dst:
        dst += "/128" if ":" in dst else "/32"
    gateways = frozenset(words[i + 1] for i, w in enumerate(words[:-1]) if w == "via")
    return FibEvent(at=at, prefix=dst, deleted=deleted, gateways=gateways)


R = TypeVar("R")
T = TypeVar("T")


class LineWatch(Generic[T]):
    """A long-running command whose stdout lines, parsed by `parse` (None: not kept), are kept in order for
    callers to wait on. With `ready`, the constructor returns once the command's stderr said it (tcpdump's
    "listening on"), or raises with what it said instead."""

    def __init__(
        self, argv: list[str], parse: Callable[[str], T | None], name: str, *, ready: str | None = None
    ) -> None:
        self._popen = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if ready else subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        if ready is not None:
            assert self._popen.stderr is not None
            said: list[str] = []
            while not said or ready not in said[-1]:
                line = self._popen.stderr.readline()
                if not line:
                    self._popen.wait()
                    raise RuntimeError(f"{name}: {argv[0]} did not start: {''.join(said).strip()}")
                said.append(line)
        self._parse = parse
        self.items: list[T] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, name=name, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._popen.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self._popen.stdout:
                item = self._parse(line)
                if item is not None:
                    with self._changed:
                        self.items.append(item)
                        self._changed.notify_all()

    def wait_for(self, found: Callable[[list[T]], R | None], timeout: float) -> R | None:
        """What `found` makes of the items kept so far, once it is not None, waiting up to `timeout` s."""
        with self._changed:
            return self._changed.wait_for(lambda: found(self.items), timeout)

    def close(self) -> None:
        self._popen.kill()
        self._popen.wait()
        self._reader.join(timeout=2)
        for stream in (self._popen.stdout, self._popen.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def tcpdump(netns: str, capture: str, interface: str = "eth0") -> list[str]:
    """tcpdump in `netns` printing each packet as captured, with the kernel's capture stamp."""
    return [
        "ip", "netns", "exec", netns,
        "tcpdump", "-i", interface, "-n", "-tt", "-l", "--immediate-mode", capture,
    ]  # fmt: skip


class FibWatch(LineWatch[FibEvent]):
    """Every route change in `netns`'s kernel tables from now on (see the module docstring)."""

    def __init__(self, netns: str) -> None:
        argv = ["ip", "-n", netns, "-tshort", "-o", "monitor", "route"]
        super().__init__(argv, parse_monitor_line, f"fib watch {netns}")

    def first(
        self, prefix: str, done: Callable[[FibEvent], bool], after: float, timeout: float
    ) -> FibEvent | None:
        """The first message about `prefix` stamped at or after `after` (time.time()) for which `done`
        holds, waiting up to `timeout` seconds for it; None if none came."""
        return self.wait_for(
            lambda events: next(
                (e for e in events if e.prefix == prefix and e.at >= after and done(e)), None
            ),
            timeout,
        )


@dataclass(frozen=True)
class TcpEnd:
    """A BGP segment with FIN or RST: when the kernel captured it (time.time()), its source address and
    tcpdump's flags ('F.', 'R', ...)."""

    at: float
    source: str
    flags: str


_SEGMENT = re.compile(r"^(?P<at>\d+\.\d+) IP6? (?P<src>\S+)\.\d+ > \S+: Flags \[(?P<flags>[^\]]*)\]")


def _tcp_end(line: str) -> TcpEnd | None:
    match = _SEGMENT.match(line)
    return TcpEnd(float(match["at"]), match["src"], match["flags"]) if match else None


class TcpEndWatch(LineWatch[TcpEnd]):
    """tcpdump on `interface` in `netns`, keeping every BGP segment that ends a connection (FIN or RST): when
    a killed process's kernel closed its session, as the router received it. Packet stamps come from the
    kernel at capture, so tcpdump's own buffering delays nothing measured."""

    def __init__(self, netns: str, interface: str = "eth0") -> None:
        capture = "tcp port 179 and (tcp[tcpflags] & (tcp-fin|tcp-rst) != 0)"
        super().__init__(
            tcpdump(netns, capture, interface), _tcp_end, f"tcp end watch {netns}", ready="listening on"
        )

    def first(self, source: str, after: float, timeout: float) -> TcpEnd | None:
        """The first FIN or RST from `source` captured at or after `after` (time.time())."""
        return self.wait_for(
            lambda ends: next((e for e in ends if e.source == source and e.at >= after), None), timeout
        )


# -- FRR's view, fast ----------------------------------------------------------------------------------------


class FrrVty:
    """One connection to a running FrrRouter's bgpd vty socket (see the module docstring)."""

    def __init__(self, router: FrrRouter) -> None:
        self._path = router.state_dir / "frr" / "bgpd.vty"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(30)
        self._sock.connect(str(self._path))
        self._lock = threading.Lock()

    def command(self, command: str) -> str:
        with self._lock:
            self._sock.sendall(command.encode() + b"\0")
            chunks = bytearray()
            while len(chunks) < 4 or chunks[-4:-1] != b"\0\0\0":
                data = self._sock.recv(1 << 20)
                if not data:
                    raise ConnectionError(f"bgpd closed its vty socket {self._path} during {command!r}")
                chunks += data
        status = chunks[-1]
        text = chunks[:-4].decode(errors="replace")
        if status != 0:
            raise RuntimeError(f"bgpd refused {command!r} (status {status}): {text.strip()}")
        return text

    def json(self, command: str) -> Any:
        return json.loads(self.command(command) or "{}")

    def received(self) -> dict[str, int]:
        """Prefixes accepted from each IPv4 neighbor (`pfxRcd`, the summary's cheap count)."""
        peers = self.json("show bgp ipv4 unicast summary json").get("peers") or {}
        return {address: int(p.get("pfxRcd", 0)) for address, p in peers.items()}

    def sessions(self) -> dict[str, Session]:
        """Every neighbor's session counters (`show bgp neighbors json`)."""
        out = {}
        for address, n in self.json("show bgp neighbors json").items():
            if not isinstance(n, dict) or "bgpState" not in n:
                continue
            stats = n.get("messageStats") or {}
            out[address] = Session(
                established=n["bgpState"] == "Established",
                connections_established=int(n.get("connectionsEstablished", 0)),
                connections_dropped=int(n.get("connectionsDropped", 0)),
                uptime_ms=int(n.get("bgpTimerUpMsec", 0)) if n["bgpState"] == "Established" else None,
                updates_received=int(stats.get("updatesRecv", 0)),
            )
        return out

    def close(self) -> None:
        self._sock.close()


@dataclass(frozen=True)
class Session:
    """One neighbor as FRR counts it: sessions it established and lost so far, how long the current one
    has been up (None when down) and the UPDATEs it received."""

    established: bool
    connections_established: int
    connections_dropped: int
    uptime_ms: int | None
    updates_received: int


# -- the controller's assignments ----------------------------------------------------------------------------


class AssignedWatch:
    """Services of `namespace` with an address in their status, as a watch opened now reports them (see the
    module docstring). The watch reopens from its last version when the server ends it."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self._client = client
        self._namespace = namespace
        listed = client.list(SERVICES, namespace)
        self._assigned = {str(s["metadata"]["name"]) for s in listed.items if ingress_ips(s)}
        self._version = listed.resource_version
        self._changed = threading.Condition()
        self._stream: WatchStream | None = None
        self._stopped = False
        self._error: BaseException | None = None
        self._reader = threading.Thread(target=self._run, name=f"assigned watch {namespace}", daemon=True)
        self._reader.start()

    def _run(self) -> None:
        try:
            while not self._stopped:
                stream = self._client.watch(SERVICES, self._namespace, resource_version=self._version)
                self._stream = stream
                if self._stopped:  # close() ran before the stream was there to close
                    stream.close()
                for kind, obj in stream:
                    self._version = str((obj.get("metadata") or {}).get("resourceVersion") or self._version)
                    if kind == "BOOKMARK":
                        continue
                    name = str(obj["metadata"]["name"])
                    with self._changed:
                        if kind != "DELETED" and ingress_ips(obj):
                            self._assigned.add(name)
                        else:
                            self._assigned.discard(name)
                        self._changed.notify_all()
        except BaseException as exc:  # raised by wait() in the caller's thread
            if not self._stopped:
                with self._changed:
                    self._error = exc
                    self._changed.notify_all()

    def count(self) -> int:
        with self._changed:
            return len(self._assigned)

    def wait(self, count: int, timeout: float) -> bool:
        """Waits until at least `count` Services have an address; False if they did not in `timeout` s."""

        def reached() -> bool:
            if self._error is not None:
                raise RuntimeError(f"the watch on Services in {self._namespace} failed: {self._error}")
            return len(self._assigned) >= count

        with self._changed:
            return self._changed.wait_for(reached, timeout)

    def close(self) -> None:
        self._stopped = True
        if self._stream is not None:
            self._stream.close()
        self._reader.join(timeout=5)

    def __enter__(self) -> AssignedWatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


# -- our speaker in a child process --------------------------------------------------------------------------


class JsonChild:
    """A child process that answers JSON lines on stdout to JSON lines on stdin; stderr goes to `log`. The
    BGP and BFD benches run their speakers this way, one process per node."""

    def __init__(self, argv: list[str], log: Path, name: str) -> None:
        self.log = log
        self.name = name
        with log.open("ab") as stderr:
            self._popen = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                bufsize=1,
            )
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name=name, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._popen.pid

    def _read(self) -> None:
        assert self._popen.stdout is not None
        with contextlib.suppress(ValueError, OSError):
            for line in self._popen.stdout:
                self._lines.put(json.loads(line))
        self._lines.put(None)

    def send(self, op: str, **fields: Any) -> None:
        assert self._popen.stdin is not None
        self._popen.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self._popen.stdin.flush()

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next answer; RuntimeError if it is an error, the child exited, or nothing came in time."""
        try:
            record = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.name} ({self.pid}): no answer in {timeout:g} s") from None
        if record is None:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{self.name} ({self.pid}) exited with {self._popen.poll()}:\n{tail}")
        if "error" in record:
            raise RuntimeError(f"{self.name} ({self.pid}): {record['error']}")
        return record

    def request(self, op: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        self.send(op, **fields)
        return self.receive(timeout)

    def close(self) -> None:
        """Ends the child if it still runs (`_ask_to_end`, then killed if it does not exit in 10 s)."""
        if self._popen.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                self._ask_to_end()
            try:
                self._popen.wait(10)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()
        self._close_pipes()

    def _ask_to_end(self) -> None:
        assert self._popen.stdin is not None
        self._popen.stdin.close()

    def _close_pipes(self) -> None:
        self._reader.join(timeout=2)
        for stream in (self._popen.stdin, self._popen.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


class SpeakerChild(JsonChild):
    """benches/_bgp_speaker_child.py for one node (see its docstring); stderr goes to `log`."""

    def __init__(self, netns: str, log: Path) -> None:
        super().__init__([sys.executable, str(CHILD), "--netns", netns], log, f"speaker child {netns}")
        self.receive(30)

    def _ask_to_end(self) -> None:
        self.send("stop")


@contextlib.contextmanager
def speaker_children(netns: dict[str, str], log_dir: Path) -> Iterator[dict[str, SpeakerChild]]:
    """One SpeakerChild per node ({node: namespace}), all stopped on exit."""
    children: dict[str, SpeakerChild] = {}
    try:
        for node, ns in netns.items():
            children[node] = SpeakerChild(ns, log_dir / f"speaker-{node}.log")
        yield children
    finally:
        for child in children.values():
            child.close()


def cpu_seconds(pid: int) -> float:
    """CPU time a process's threads have used so far, in seconds with nanosecond resolution (the first field
    of each /proc/PID/task/TID/schedstat; /proc/PID/stat counts in clock ticks of 10 ms)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
