"""A stop request that a signal handler may make.

`threading.Event.set()` takes the Event's lock. A Python signal handler runs in the main thread between two
bytecodes, possibly while that same thread is inside `Event.wait()` holding that lock: the handler's `set()`
then waits for ever on a lock its own thread holds. That is how `status --watch` once ignored SIGTERM in CI.
`StopFlag.set()` takes no lock: it sets a boolean and writes one byte to a non-blocking pipe, and `wait()`
sleeps in `poll()` on the pipe's other end.
"""

from __future__ import annotations

import contextlib
import math
import os
import select

__all__ = ["StopFlag"]


class StopFlag:
    """Event-like (`set`, `is_set`, `wait`), safe to set from a signal handler or any thread; once set it
    stays set. Close it when done with it (or use it as a context manager): it holds two file descriptors."""

    def __init__(self) -> None:
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._set = False
        self.reason: str | None = None

    def set(self, reason: str | None = None) -> None:
        """Ask to stop; the first reason given is kept (e.g. the signal's name, logged by whoever wakes)."""
        if self.reason is None:
            self.reason = reason
        self._set = True
        # A full pipe (BlockingIOError) already wakes every waiter; a closed one has none left to wake.
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or `timeout` seconds passed; True if set. An exception a signal handler raises
        while waiting comes out of here, as it would out of time.sleep."""
        if not self._set:
            # Never drained: once set, the pipe stays readable and every later wait returns at once.
            # poll, not select: select cannot watch a descriptor numbered 1024 or more.
            poller = select.poll()
            poller.register(self._wake_read, select.POLLIN)
            poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000)))
        return self._set

    def close(self) -> None:
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._wake_read = self._wake_write = -1

    def __enter__(self) -> StopFlag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
