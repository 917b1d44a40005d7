"""metallb_py.testing.process: helpers for the lab's child processes."""

from __future__ import annotations

import socket

from metallb_py.testing.process import EPHEMERAL_PORTS, LOWEST_PORT, free_loopback_port


def test_a_free_port_is_bindable_and_outside_the_range_outgoing_connections_take_from() -> None:
    ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0])
    ports = {free_loopback_port() for _ in range(20)}
    assert all(LOWEST_PORT <= port < ephemeral for port in ports), sorted(ports)
    assert len(ports) > 1, "picked at random"
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))
