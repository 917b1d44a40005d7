"""Run inside a network namespace (`ip netns exec NS python _capture.py IFNAME`): a packet client that prints
one JSON line per ARP packet and per Neighbor Advertisement received on IFNAME, after a first {"ready": true}.

The frames are decoded here with struct, independently of the responder's own packet code, so what the tests
assert is what a client on the wire saw. Runs until killed.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import sys
from typing import Any

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
ICMPV6 = 58
NEIGHBOR_ADVERTISEMENT = 136
TARGET_LINK_LAYER_ADDRESS = 2


def mac(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)


def arp(frame: bytes) -> dict[str, Any]:
    _htype, _ptype, _hlen, _plen, op = struct.unpack("!HHBBH", frame[14:22])
    return {
        "kind": "arp",
        "op": op,
        "sha": mac(frame[22:28]),
        "spa": str(ipaddress.IPv4Address(frame[28:32])),
        "tha": mac(frame[32:38]),
        "tpa": str(ipaddress.IPv4Address(frame[38:42])),
    }


def neighbor_advertisement(frame: bytes) -> dict[str, Any] | None:
    ip = frame[14:54]
    if len(ip) < 40 or ip[6] != ICMPV6:
        return None
    icmp = frame[54:]
    if len(icmp) < 24 or icmp[0] != NEIGHBOR_ADVERTISEMENT:
        return None
    lladdr = None
    options = icmp[24:]
    while len(options) >= 8 and options[1] > 0:
        if options[0] == TARGET_LINK_LAYER_ADDRESS:
            lladdr = mac(options[2:8])
        options = options[8 * options[1] :]
    return {
        "kind": "na",
        "hop_limit": ip[7],
        "ip_dst": str(ipaddress.IPv6Address(ip[24:40])),
        "router": bool(icmp[4] & 0x80),
        "solicited": bool(icmp[4] & 0x40),
        "override": bool(icmp[4] & 0x20),
        "target": str(ipaddress.IPv6Address(icmp[8:24])),
        "lladdr": lladdr,
    }


def main() -> None:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((sys.argv[1], 0))
    print(json.dumps({"ready": True}), flush=True)
    while True:
        frame, address = sock.recvfrom(65535)
        if address[2] == PACKET_OUTGOING or len(frame) < 14:
            continue
        (ethertype,) = struct.unpack("!H", frame[12:14])
        record = None
        if ethertype == ETHERTYPE_ARP and len(frame) >= 42:
            record = arp(frame)
        elif ethertype == ETHERTYPE_IPV6:
            record = neighbor_advertisement(frame)
        if record is not None:
            record.update(dst=mac(frame[0:6]), src=mac(frame[6:12]))
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
