"""metallb_py.runtime.StopFlag: an Event-like stop request that signal handlers may set.

The storm test is the reason it exists: with threading.Event in place of StopFlag the same loop hangs here
within seconds (a handler's Event.set() waits on the lock that the interrupted Event.wait() holds), which is
how `metallb-py status --watch` once ignored SIGTERM in CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

import pytest

from metallb_py.runtime import StopFlag


def test_wait_times_out_until_set_and_then_returns_at_once() -> None:
    with StopFlag() as flag:
        assert not flag.is_set()
        assert flag.wait(0.01) is False
        flag.set("SIGTERM")
        flag.set("SIGINT")
        assert flag.is_set() and flag.reason == "SIGTERM"
        for _ in range(3):
            assert flag.wait(None) is True
            assert flag.wait(0) is True


def test_another_thread_wakes_a_waiter() -> None:
    with StopFlag() as flag:
        setter = threading.Timer(0.05, flag.set)
        setter.start()
        assert flag.wait(30) is True
        setter.join()
        assert flag.reason is None


def test_many_sets_never_block_on_a_full_pipe() -> None:
    with StopFlag() as flag:
        for _ in range(200_000):  # more bytes than any pipe holds
            flag.set()
        assert flag.wait(0)


def test_setting_it_after_close_is_harmless() -> None:
    flag = StopFlag()
    flag.close()
    flag.set("late signal")
    assert flag.is_set()


# Another process sends us SIGUSR1 every 0.3 ms until its standard input closes. A thread of ours would not
# do: it needs the GIL to send, so its signals land while the main thread waits without it, never inside.
_STORM = """
import os, select, signal, sys, time
while not select.select([sys.stdin], [], [], 0.0003)[0]:
    os.kill(int(sys.argv[1]), signal.SIGUSR1)
"""


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals need the main thread"
)
def test_a_storm_of_signals_setting_flags_never_hangs_the_waiting_thread() -> None:
    """Each SIGUSR1's handler sets the flag the main thread is waiting on, landing at every point of wait()
    in turn. Each round must end; none may hang (pytest-timeout's SIGALRM, left alone here, ends a hang)."""
    flags: list[StopFlag] = []

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        if flags:
            flags[-1].set("SIGUSR1")

    previous = signal.signal(signal.SIGUSR1, on_signal)
    sender = subprocess.Popen([sys.executable, "-c", _STORM, str(os.getpid())], stdin=subprocess.PIPE)
    rounds = 0
    try:
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            with StopFlag() as flag:
                flags.append(flag)
                while not flag.wait(0.01):
                    pass
            rounds += 1
    finally:
        assert sender.stdin is not None
        sender.stdin.close()
        sender.wait()
        signal.signal(signal.SIGUSR1, previous)
    assert rounds > 100
