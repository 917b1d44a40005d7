"""The child processes of the testing harness (etcd, kube-apiserver, the controller, the speakers): each with
its output in a log file, dying with the Python process that started it, stopped in order.

Shared by `controlplane` and `labcluster`, so neither imports the other's internals.
"""

from __future__ import annotations

import contextlib
import ctypes
import random
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "NO_PROXY_ENV",
    "ChildProcess",
    "die_with_parent",
    "free_loopback_port",
    "run_checked",
    "start_line_helper",
    "stop_line_helper",
    "tail_log",
]

# Nothing the harness starts may go through a proxy: its children talk to 127.0.0.1 only.
NO_PROXY_ENV = {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL the child if the Python process dies first, so a
    crashed test run leaves no process behind. Linux only; elsewhere stop() and atexit do.

    PR_SET_PDEATHSIG follows the thread that forked: start and stop children from one thread that outlives
    them, as the main thread does."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


EPHEMERAL_PORTS = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10000  # the ports handed out start here, below the kernel's ephemeral range


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now, from below the kernel's ephemeral range: an outgoing connection
    takes its source port from that range, and in a lab with a hundred speakers talking to the API server one
    took a port picked this way before the speaker meant to listen on it could. The process that binds it a
    moment later may still lose a race, and then exits saying so: callers retry or report it."""
    try:
        ephemeral = int(EPHEMERAL_PORTS.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        ephemeral = 32768
    for _ in range(64):
        port = random.randrange(LOWEST_PORT, ephemeral) if ephemeral > LOWEST_PORT else 0
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_checked(
    argv: Sequence[str], error: type[Exception], *, stdin: str | None = None, timeout: float = 30.0
) -> str:
    """Runs a command to its end; its stdout, or `error` naming the command and what it said (stderr, else
    stdout) when it cannot start, times out or exits non-zero."""
    try:
        done = subprocess.run(
            list(argv), input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise error(f"{' '.join(argv)}: {exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.strip() or done.stdout.strip() or "(no output)"
        raise error(f"{' '.join(argv)} exited with {done.returncode}: {detail}")
    return done.stdout


def tail_log(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a log file, headed by its name, for an error message."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path.name}: no log)"
    return f"--- last lines of {path.name} ---\n" + "\n".join(text.splitlines()[-lines:])


def start_line_helper(argv: Sequence[str], stderr: IO[bytes]) -> subprocess.Popen[str]:
    """Starts a helper child that takes requests on its stdin and answers a line at a time on its stdout
    (text, line-buffered), its stderr to `stderr`, in a session of its own and killed if Python dies
    first. `stop_line_helper` ends it."""
    return subprocess.Popen(
        list(argv),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        bufsize=1,
        start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 (only ctypes, no locks)
    )


def stop_line_helper(popen: subprocess.Popen[Any], reader: threading.Thread, *, grace: float) -> None:
    """Stops a helper child that takes requests on its stdin and answers a line at a time on its stdout
    (the netns lab's helpers, the ARP watcher): closing stdin makes it exit on its own, SIGKILL after `grace`
    seconds; then `reader`, the thread reading its stdout, gets `grace` seconds to finish before stdout is
    closed under it."""
    with contextlib.suppress(OSError):
        if popen.stdin is not None:
            popen.stdin.close()
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait(timeout=5)
    reader.join(timeout=grace)
    if popen.stdout is not None:
        with contextlib.suppress(OSError):
            popen.stdout.close()


class ChildProcess:
    """One child process, its stdout and stderr appended to `log`, in a session of its own (a Ctrl-C in
    the terminal reaches Python, which stops the children in order) and killed if Python dies first."""

    def __init__(self, name: str, argv: Sequence[str], log: Path, env: Mapping[str, str]) -> None:
        self.name = name
        self.log = log
        with log.open("ab") as out:
            self.popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=dict(env),
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def exited(self) -> int | None:
        """The exit status, None while it runs."""
        return self.popen.poll()

    def running(self) -> bool:
        return self.popen.poll() is None

    def terminate(self) -> None:
        """SIGTERM, without waiting."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL, then reap: a crash, with no clean-up of any kind."""
        if self.popen.poll() is None:
            self.popen.kill()
        self.popen.wait()

    def wait(self, grace: float) -> int | None:
        """The exit status, or None when the process had to be SIGKILLed after `grace` seconds."""
        try:
            return self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return None

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds; always reaps the process."""
        self.terminate()
        self.wait(grace)

    def tail(self, lines: int = 30) -> str:
        return tail_log(self.log, lines)
