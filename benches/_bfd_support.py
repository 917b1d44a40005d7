"""What benches/test_bench_bfd.py measures with: when a switch port went down, which packet last reached the
router before, and our speaker as a child process per node. Nothing here starts a lab or asserts a figure.

- `LinkWatch`: `ip -tshort -o monitor link` in the lab's switch namespace. A cut's instant is the stamp `ip`
  put on the kernel's message that the node's port went down, not the time before `kill_link` spawned its
  `ip` (a few milliseconds earlier idle, tens with both cores busy).
- `switch_port`: the switch's port of a node (the bridge namespace's end of the node's veth).
- `PacketWatch`: tcpdump in the router's namespace keeping the capture stamp, source and destination of
  each packet that restarts the router's detection timer (a BFD control packet, or a BGP message for the
  hold timer) and, with BFD, of the router's own word that its timer expired (its packet with state Down):
  the last packet from a node before a cut is where the router's timer started, so a cut's figure splits
  into the phase (that packet to the cut) and the router's part (that packet to the FIB, whose floor is
  exactly the configured time), and with BFD the router's part into its detection and its work after it.
- `SpeakerProcess`: this file run as a script, one BgpSpeaker in a process of its own (its sessions in the
  node's namespace, `netns=`) that adds its one peer and sets its routes as soon as it starts, as a speaker
  restarted by a rolling update does; stopping it is `BgpSpeaker.stop()` then exit, as on SIGTERM.

        python benches/_bfd_support.py --netns NS --config JSON

  JSON: `address` (the peer), `options` (BgpSpeaker.add_peer's keyword arguments; `bfd` a dict of
  BfdSettings' keyword arguments or null), `prefixes`. One JSON object a line each way: the child says
  `{"ready": true, "at": T}` (time.monotonic()) once add_peer and set_routes returned; requests (`op`):
  `status` (the peer's state, held_by_bfd, counters, BFD session, and the speaker's events since the last
  status: kind, reason, `at` on time.monotonic()'s clock, which is the same in every process), `stop`
  (answers `stopped` with the seconds stop() took, then exits). Errors answer `{"error": "..."}`; end of
  input stops it as `stop` does.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _bgp_support import JsonChild, LineWatch, monitor_stamp, tcpdump
from metallb_py import BfdSettings, BgpRoute, BgpSpeaker

PEER = "router"  # the child's one peer

# -- the switch's ports --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkEvent:
    """One link message: when `ip` read it (time.time()), the interface and whether it is administratively
    up (the UP flag)."""

    at: float
    interface: str
    up: bool


_LINK = re.compile(r"^\d+:\s*(?P<name>[^:@\s]+)(?:@[^:\s]+)?:\s*<(?P<flags>[^>]*)>")


def parse_link_line(line: str) -> LinkEvent | None:
    """One line of `ip -tshort -o monitor link` ("[stamp] 3: p-0@if2: <BROADCAST,MULTICAST> ...")."""
    stamped = monitor_stamp(line)
    match = _LINK.match(stamped[1]) if stamped is not None else None
    if stamped is None or match is None:
        return None
    at = stamped[0]
    return LinkEvent(at=at, interface=match["name"], up="UP" in match["flags"].split(","))


class LinkWatch(LineWatch[LinkEvent]):
    """Every link message of `netns` from now on, stamped by `ip` as it reads them."""

    def __init__(self, netns: str) -> None:
        super().__init__(
            ["ip", "-n", netns, "-tshort", "-o", "monitor", "link"], parse_link_line, f"link watch {netns}"
        )

    def first(self, interface: str, *, up: bool, after: float, timeout: float) -> LinkEvent | None:
        """The first message stamped at or after `after` (time.time()) saying `interface` is up (or down),
        waiting up to `timeout` seconds for it; None if none came."""
        return self.wait_for(
            lambda events: next(
                (e for e in events if e.interface == interface and e.up == up and e.at >= after), None
            ),
            timeout,
        )


def switch_port(bridge_ns: str, node_ns: str) -> str:
    """The name of the switch port (in `bridge_ns`) whose veth peer is eth0 in `node_ns`."""

    def links(netns: str, *argv: str) -> list[dict[str, Any]]:
        out = subprocess.run(
            ["ip", "-n", netns, "-j", "link", "show", *argv], check=True, capture_output=True, text=True
        ).stdout
        return list(json.loads(out or "[]"))

    (eth0,) = links(node_ns, "dev", "eth0")
    for port in links(bridge_ns):
        if port["ifindex"] == eth0["link_index"]:
            return str(port["ifname"])
    raise RuntimeError(f"no port in {bridge_ns} is the peer of eth0 in {node_ns}")


# -- packets reaching the router -----------------------------------------------------------------------------


def bfd_capture(router: str) -> str:
    """Single-hop BFD control packets (RFC 5881) from the nodes, and the router's own with state Down (the
    state is the top two bits of the packet's second byte; Down is 1): the router sends one at once when
    its detection time expires."""
    return f"udp dst port 3784 and (not src host {router} or (udp[9] & 0xc0) = 0x40)"


def bgp_capture() -> str:
    """BGP segments with a payload from anyone: the messages that restart a hold timer, not bare ACKs. (A
    router whose hold timer expired queues its NOTIFICATION behind keepalives TCP is still retransmitting
    into the cut, so it never shows on the wire: the hold timer's end has no packet to stamp.)"""
    return "tcp port 179 and (((ip[2:2] - ((ip[0] & 0xf) << 2)) - ((tcp[12] & 0xf0) >> 2)) != 0)"


_PACKET = re.compile(r"^(?P<at>\d+\.\d+) IP6? (?P<src>\S+?)\.\d+ > (?P<dst>\S+?)\.\d+:")


@dataclass(frozen=True)
class Packet:
    """A captured packet: the kernel's capture stamp (time.time() clock), its source and destination."""

    at: float
    source: str
    destination: str


def _packet(line: str) -> Packet | None:
    match = _PACKET.match(line)
    return Packet(float(match["at"]), match["src"], match["dst"]) if match else None


class PacketWatch(LineWatch[Packet]):
    """tcpdump on `interface` in `netns` keeping every packet that matches `capture` (a pcap filter) with
    its kernel capture stamp; tcpdump's own buffering delays no stamp."""

    def __init__(self, netns: str, capture: str, interface: str = "eth0") -> None:
        super().__init__(
            tcpdump(netns, capture, interface), _packet, f"packet watch {netns}", ready="listening on"
        )

    def last_before(self, source: str, at: float) -> Packet | None:
        """The last packet from `source` captured at or before `at` (time.time()), if any. Its line may
        come a moment after the capture: call this once later packets (or the FIB change) were seen."""
        with self._changed:
            return next((p for p in reversed(self.items) if p.source == source and p.at <= at), None)

    def first_after(self, source: str, destination: str, at: float) -> Packet | None:
        """The first packet from `source` to `destination` captured at or after `at` (time.time())."""
        with self._changed:
            return next(
                (p for p in self.items if p.source == source and p.destination == destination and p.at >= at),
                None,
            )


# -- our speaker in a child process --------------------------------------------------------------------------


class SpeakerProcess(JsonChild):
    """This file as a child process for one node (see the module docstring); stderr goes to `log`.
    `wait_ready()` returns once the child has added its peer and set its routes."""

    def __init__(self, netns: str, config: dict[str, Any], log: Path) -> None:
        argv = [sys.executable, str(Path(__file__)), "--netns", netns, "--config", json.dumps(config)]
        super().__init__(argv, log, f"speaker process {netns}")
        self._ready_at: float | None = None

    def wait_ready(self, timeout: float = 30.0) -> float:
        """When (time.monotonic()) the child's add_peer and set_routes had returned, waiting for it."""
        if self._ready_at is None:
            self._ready_at = float(self.receive(timeout)["at"])
        return self._ready_at

    def request(self, op: str, timeout: float = 30.0, **fields: Any) -> dict[str, Any]:
        self.wait_ready(timeout)
        return super().request(op, timeout, **fields)

    def status(self) -> dict[str, Any]:
        """The peer's state, held_by_bfd, counters and `bfd` (BfdStatus's fields, or None)."""
        return self.request("status")

    def stop(self, timeout: float = 30.0) -> float:
        """BgpSpeaker.stop() in the child, which then exits; the seconds stop() took."""
        took = float(self.request("stop", timeout)["took"])
        self._popen.wait(timeout)
        self._close_pipes()
        return took


def _child_status(speaker: BgpSpeaker) -> dict[str, Any]:
    peer = speaker.peer(PEER)
    if peer is None:
        return {"error": f"no peer {PEER!r}"}
    bfd = peer.bfd
    return {
        "events": [{"kind": e.kind, "reason": e.reason, "at": e.at} for e in speaker.events()],
        "state": peer.state,
        "held_by_bfd": peer.held_by_bfd,
        "counters": dict(peer.counters),
        "bfd": None
        if bfd is None
        else {
            "state": bfd.state,
            "remote_state": bfd.remote_state,
            "local_diag": bfd.local_diag,
            "remote_diag": bfd.remote_diag,
            "transmit_interval": bfd.transmit_interval,
            "detection_time": bfd.detection_time,
            "control_sent": bfd.control_sent,
            "control_received": bfd.control_received,
            "up_events": bfd.up_events,
            "down_events": bfd.down_events,
            "dropped": bfd.dropped,
        },
    }


def _child_main() -> None:
    def emit(record: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    parser = argparse.ArgumentParser(prog="_bfd_support")
    parser.add_argument("--netns", required=True)
    parser.add_argument("--config", required=True, help="JSON: address, options, prefixes")
    args = parser.parse_args()
    config = json.loads(args.config)
    options = dict(config["options"])
    if options.get("bfd") is not None:
        options["bfd"] = BfdSettings(**options["bfd"])
    speaker = BgpSpeaker(netns=args.netns)
    try:
        try:
            speaker.add_peer(PEER, config["address"], **options)
            speaker.set_routes(PEER, dict.fromkeys(config["prefixes"], BgpRoute()))
        except (ValueError, KeyError, TypeError, RuntimeError, OSError) as exc:
            emit({"error": f"add_peer/set_routes: {type(exc).__name__}: {exc}"})
            return
        emit({"ready": True, "at": time.monotonic()})
        for line in sys.stdin:
            op = json.loads(line).get("op") if line.strip() else None
            if op == "status":
                emit(_child_status(speaker))
            elif op == "stop":
                break
            elif op is not None:
                emit({"error": f"unknown op {op!r}: status or stop"})
    finally:
        began = time.monotonic()
        speaker.stop()
        emit({"stopped": True, "took": time.monotonic() - began})


if __name__ == "__main__":
    _child_main()
