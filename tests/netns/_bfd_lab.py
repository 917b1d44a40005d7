"""What reaches an interface, in order: BFD control packets (RFC 5880 4.1, UDP 3784/4784) and BGP
NOTIFICATIONs (RFC 4271 4.5, TCP 179), over IPv4 and IPv6.

`Wire(netns, ifname)` runs this file as a script inside the namespace (`ip netns exec NS python
_bfd_lab.py IFNAME`): an AF_PACKET socket that prints one JSON line per such packet received (not sent) on
IFNAME, after a first {"ready": true}. The packets are decoded here with struct, independently of our BFD
and BGP code, so a test sees the order the other end saw them in. Stdlib only: the script runs without the
package on its path.
"""

from __future__ import annotations

import ipaddress
import json
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ETHERTYPE_IPV4, ETHERTYPE_IPV6 = 0x0800, 0x86DD
TCP, UDP = 6, 17
BFD_PORTS = (3784, 4784)
BGP_PORT = 179
BGP_NOTIFICATION = 3
BFD_STATES = ("AdminDown", "Down", "Init", "Up")


def _bfd(payload: bytes) -> dict[str, Any] | None:
    if len(payload) < 24:
        return None
    flags = payload[1]
    return {
        "kind": "bfd",
        "state": BFD_STATES[flags >> 6],
        "diag": payload[0] & 0x1F,
        "poll": bool(flags & 0x20),
        "final": bool(flags & 0x10),
    }


def _notifications(payload: bytes) -> list[dict[str, Any]]:
    """The NOTIFICATIONs among the BGP messages that start in this segment (a lab's are never split)."""
    found = []
    while len(payload) >= 19 and payload[:16] == b"\xff" * 16:
        (length,) = struct.unpack("!H", payload[16:18])
        if payload[18] == BGP_NOTIFICATION and length >= 21 and len(payload) >= 21:
            found.append({"kind": "notification", "code": payload[19], "subcode": payload[20]})
        if length < 19:
            break
        payload = payload[length:]
    return found


def decode(frame: bytes) -> list[dict[str, Any]]:
    """The BFD packet or BGP NOTIFICATIONs an Ethernet frame carries, each with its source address."""
    (ethertype,) = struct.unpack("!H", frame[12:14])
    packet = frame[14:]
    if ethertype == ETHERTYPE_IPV4 and len(packet) >= 20:
        header = (packet[0] & 0x0F) * 4
        protocol, ttl = packet[9], packet[8]
        source = str(ipaddress.IPv4Address(packet[12:16]))
    elif ethertype == ETHERTYPE_IPV6 and len(packet) >= 40:
        header, protocol, ttl = 40, packet[6], packet[7]
        source = str(ipaddress.IPv6Address(packet[8:24]))
    else:
        return []
    transport = packet[header:]
    records: list[dict[str, Any]] = []
    if protocol == UDP and len(transport) >= 8:
        (dport,) = struct.unpack("!H", transport[2:4])
        if dport in BFD_PORTS and (record := _bfd(transport[8:])) is not None:
            records.append(record)
    elif protocol == TCP and len(transport) >= 20:
        sport, dport = struct.unpack("!HH", transport[0:4])
        if BGP_PORT in (sport, dport):
            records += _notifications(transport[(transport[12] >> 4) * 4 :])
    for record in records:
        record.update(source=source, ttl=ttl)
    return records


def main() -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((sys.argv[1], 0))
    print(json.dumps({"ready": True}), flush=True)
    while True:
        frame, address = sock.recvfrom(65535)
        if address[2] == PACKET_OUTGOING or len(frame) < 14:
            continue
        for record in decode(frame):
            print(json.dumps(record), flush=True)


class Wire:
    """The BFD packets and BGP NOTIFICATIONs arriving on `ifname` in `netns`, in arrival order. Listening
    before the constructor returns; `stop()` ends the capture."""

    def __init__(self, netns: str, ifname: str) -> None:
        self._records: list[dict[str, Any]] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._process = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-I", str(Path(__file__)), ifname],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self._lines.get(timeout=10)
        assert ready is not None and json.loads(ready) == {"ready": True}, ready

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def records(self) -> list[dict[str, Any]]:
        """Every packet seen so far."""
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return list(self._records)
            if line is not None:
                self._records.append(json.loads(line))

    def wait(self, done: Callable[[list[dict[str, Any]]], bool], timeout: float) -> list[dict[str, Any]]:
        """The records once `done(records)` holds; AssertionError with them after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not done(records := self.records()):
            assert time.monotonic() < deadline, f"not seen within {timeout} s: {records[-20:]}"
            time.sleep(0.01)
        return records

    def stop(self) -> None:
        self._process.kill()
        self._process.wait(timeout=5)
        self._reader.join(timeout=5)
        if self._process.stdout is not None:
            self._process.stdout.close()


if __name__ == "__main__":
    main()
