"""The Toxiproxy driver (testing.faults) against the real server, in front of an echo server on 127.0.0.1:
toxics are added, updated and removed as asked, and the faults the suites rely on happen."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from metallb_py.testing import FaultLabError, Proxy, Toxic, Toxiproxy


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def echo(conn: socket.socket) -> None:
        # A reset or a dropped proxy connection ends the echo: that is what the tests ask for.
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(4096):
                conn.sendall(data)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    server.close()


@pytest.fixture
def proxy(fault_binaries: None, echo_port: int) -> Iterator[Proxy]:
    with Toxiproxy() as toxiproxy:
        yield toxiproxy.create_proxy("echo", echo_port)


def round_trip(proxy: Proxy, payload: bytes = b"hello") -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.listen_port), timeout=10) as conn:
        conn.sendall(payload)
        received = b""
        while len(received) < len(payload):
            chunk = conn.recv(4096)
            if not chunk:
                break
            received += chunk
        return received


def test_toxics_are_added_updated_listed_and_removed(proxy: Proxy) -> None:
    assert round_trip(proxy) == b"hello"
    proxy.add(Toxic.latency(50, 10))
    proxy.add(Toxic.slicer(2, 1, 100, stream="upstream"))
    proxy.update("latency_downstream", latency=20)
    toxics = {t["name"]: t for t in proxy.toxics()}
    assert set(toxics) == {"latency_downstream", "slicer_upstream"}
    assert toxics["latency_downstream"]["attributes"] == {"latency": 20, "jitter": 10}
    assert round_trip(proxy, b"sliced but whole") == b"sliced but whole"
    proxy.clear()
    assert proxy.toxics() == []
    with proxy.toxic(Toxic.bandwidth(100)):
        assert [t["type"] for t in proxy.toxics()] == ["bandwidth"]
    assert proxy.toxics() == []


def test_a_duplicate_toxic_is_refused_with_toxiproxys_reason(proxy: Proxy) -> None:
    proxy.add(Toxic.timeout(100))
    with pytest.raises(FaultLabError, match="409"):
        proxy.add(Toxic.timeout(100))


def test_reset_peer_resets_and_a_disabled_proxy_refuses(proxy: Proxy) -> None:
    with proxy.toxic(Toxic.reset_peer(0)), pytest.raises(ConnectionResetError):
        round_trip(proxy)
    proxy.disable()
    with pytest.raises(ConnectionRefusedError):
        round_trip(proxy)
    proxy.enable()
    assert round_trip(proxy) == b"hello"
