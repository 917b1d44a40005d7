"""The processes NetnsLab runs inside its namespaces: echo servers on the nodes, a client and a prober.

Run as a script (`python -I _netlab_helper.py MODE ...`) under `ip netns exec`, so it imports nothing but the
standard library: no package import, no extension module, a fast start. Every mode reports on stdout, one
JSON object a line, and exits when stdin closes, so a parent that dies takes its helpers with it.

- `echo --node NAME --port N --routes FILE`: an HTTP server on [::]:N (IPv4 too, as mapped addresses) that
  answers by the destination address: `hname` (the node name, like the seed's sysnet4admin/echo-hname) or
  `ip` (the request method and client address, like echo-ip), as FILE maps `address port` to a kind.
- `client`: reads fetch commands from stdin, answers each with a result line.
- `probe --host H --port N --interval S --timeout S`: starts one request every interval, each on its own
  connection and not waiting for the previous one, and prints (sent, received, body or error) per request.
  Times are CLOCK_MONOTONIC, the same clock as the parent's time.monotonic().
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import http.server
import ipaddress
import json
import os
import socket
import sys
import threading
import time
from typing import Any

_MAX_BODY = 4096


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def _exit_when_stdin_closes() -> None:
    """The parent holds our stdin: EOF means it closed us or died."""

    def watch() -> None:
        with contextlib.suppress(OSError):
            while sys.stdin.buffer.read(4096):
                pass
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _plain(address: str) -> str:
    """`::ffff:192.0.2.1` as `192.0.2.1`; anything else in its canonical form; scope ids dropped."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


class _Routes:
    """`address port -> kind`, reloaded when the file changes (NetnsLab.serve rewrites it atomically)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stamp: tuple[int, int] | None = None
        self.table: dict[str, str] = {}
        self.lock = threading.Lock()

    def kind(self, address: str, port: int) -> str | None:
        with self.lock:
            try:
                st = os.stat(self.path)
            except OSError:
                return None
            stamp = (st.st_mtime_ns, st.st_ino)
            if stamp != self.stamp:
                with open(self.path, encoding="utf-8") as f:
                    self.table = json.load(f)
                self.stamp = stamp
            return self.table.get(f"{address} {port}")


def _echo(args: argparse.Namespace) -> None:
    routes = _Routes(args.routes)
    node: str = args.node

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"
        server_version = "metallb-py-netlab"

        def answer(self) -> None:
            local = _plain(self.connection.getsockname()[0])
            client = _plain(self.client_address[0])
            kind = routes.kind(local, args.port)
            if kind == "hname":
                status, body = 200, f"{node}\n"
            elif kind == "ip":
                status, body = 200, f"request_method : {self.command} | ip_dest: {client}\n"
            else:
                status, body = 404, f"{node}: nothing is served on {local} port {args.port}\n"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Node", node)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6
        daemon_threads = True
        request_queue_size = 128

        def server_bind(self) -> None:
            # One socket for both families: IPv4 clients arrive as ::ffff:a.b.c.d.
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            super().server_bind()

    server = Server(("::", args.port), Handler)
    _exit_when_stdin_closes()
    _emit({"ready": True, "node": node, "port": args.port, "pid": os.getpid()})
    server.serve_forever(poll_interval=0.5)


def _fetch(host: str, port: int, path: str, method: str, timeout: float) -> dict[str, Any]:
    started = time.monotonic()
    # With an explicit port, http.client takes the host as is: a bare IPv6 literal is right.
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, headers={"Connection": "close"})
        response = conn.getresponse()
        body = response.read(_MAX_BODY).decode("utf-8", "replace")
        return {"status": response.status, "body": body, "elapsed": time.monotonic() - started}
    except (OSError, http.client.HTTPException) as exc:
        return {"error": _describe(exc), "elapsed": time.monotonic() - started}
    finally:
        conn.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"{os.strerror(exc.errno)} (errno {exc.errno})"
    return f"{type(exc).__name__}: {exc}"


def _client(_args: argparse.Namespace) -> None:
    _emit({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        _emit(_fetch(cmd["host"], int(cmd["port"]), cmd["path"], cmd["method"], float(cmd["timeout"])))


async def _probe_once(host: str, port: int, timeout: float) -> str:
    """The body of one answer, or raises. A fresh connection each time, so each request finds the VIP anew."""
    authority = f"[{host}]" if ":" in host else host
    request = f"GET / HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n".encode()

    async def exchange() -> bytes:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            await writer.drain()
            return await reader.read(-1)
        finally:
            writer.close()

    raw = await asyncio.wait_for(exchange(), timeout)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if status != [b"200"]:
        raise ConnectionError(f"HTTP status {b''.join(status).decode() or '?'}")
    return body.decode("utf-8", "replace").strip()


async def _probe_loop(args: argparse.Namespace) -> None:
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 4096) else None)

    async def one(sent: float) -> None:
        try:
            record: dict[str, Any] = {"body": await _probe_once(args.host, args.port, args.timeout)}
        except (OSError, IndexError) as exc:  # TimeoutError and ConnectionError are OSErrors
            record = {"error": _describe(exc)}
        except asyncio.CancelledError:
            # Still in flight when the parent stopped us: reported, so every request sent has a record.
            _emit({"error": "stopped", "sent": sent, "received": time.monotonic()})
            raise
        record.update(sent=sent, received=time.monotonic())
        _emit(record)

    _emit({"ready": True, "pid": os.getpid()})
    next_at = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if now >= next_at:
            task = asyncio.create_task(one(now))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            # Fixed rate: a slow or lost answer never delays the next request.
            next_at += args.interval
            if next_at < now:
                next_at = now + args.interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), max(0.0, next_at - time.monotonic()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="_netlab_helper")
    modes = parser.add_subparsers(dest="mode", required=True)
    echo = modes.add_parser("echo")
    echo.add_argument("--node", required=True)
    echo.add_argument("--port", type=int, required=True)
    echo.add_argument("--routes", required=True)
    modes.add_parser("client")
    probe = modes.add_parser("probe")
    probe.add_argument("--host", required=True)
    probe.add_argument("--port", type=int, required=True)
    probe.add_argument("--interval", type=float, required=True)
    probe.add_argument("--timeout", type=float, required=True)
    args = parser.parse_args()
    if args.mode == "echo":
        _echo(args)
    elif args.mode == "client":
        _client(args)
    else:
        asyncio.run(_probe_loop(args))


if __name__ == "__main__":
    main()
