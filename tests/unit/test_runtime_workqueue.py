"""metallb_py.runtime.workqueue: one entry per key, no key processed twice at once, delayed retries."""

from __future__ import annotations

import threading

from metallb_py.runtime.workqueue import WorkQueue


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drain(q: WorkQueue) -> list[str]:
    keys = []
    while (key := q.get(timeout=0)) is not None:
        keys.append(key)
        q.done(key)
    return keys


def test_fifo_and_deduplicated() -> None:
    q = WorkQueue()
    for key in ["a", "b", "a", "c", "b"]:
        q.add(key)
    assert len(q) == 3
    assert drain(q) == ["a", "b", "c"]
    assert q.idle()


def test_an_ordered_batch_moves_keys_already_waiting() -> None:
    """Regression: the seed's second Service was queued by its watch event before the controller was ready;
    the ordered batch on becoming ready left it first, so it got 192.168.1.11 instead of the older one."""
    q = WorkQueue()
    q.add("default/lb-ip-svc")
    q.add("default/other")
    q.add_all(["default/lb-hname-svc", "default/lb-ip-svc"], in_order=True)
    assert drain(q) == ["default/other", "default/lb-hname-svc", "default/lb-ip-svc"]
    # Without in_order a waiting key keeps its place (plain deduplication).
    q.add("b")
    q.add_all(["a", "b"])
    assert drain(q) == ["b", "a"]
    # A key being processed is not duplicated: it comes back once, after done().
    q.add("x")
    assert q.get(timeout=0) == "x"
    q.add_all(["y", "x"], in_order=True)
    assert q.get(timeout=0) == "y"
    q.done("y")
    q.done("x")
    assert drain(q) == ["x"]


def test_a_key_added_while_processing_comes_back_once_after_done() -> None:
    q = WorkQueue()
    q.add("a")
    assert q.get(timeout=0) == "a"
    q.add("a")
    q.add("a")
    assert q.get(timeout=0) is None  # not handed out while being processed
    q.done("a")
    assert q.get(timeout=0) == "a"
    q.done("a")
    assert q.get(timeout=0) is None


def test_rate_limited_retries_back_off_per_key_and_forget_resets() -> None:
    clock = Clock()
    q = WorkQueue(base_delay=0.1, max_delay=1.0, clock=clock)
    assert [q.add_rate_limited("a") for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert q.failures("a") == 6
    assert q.get(timeout=0) is None
    clock.now += 0.1
    assert q.get(timeout=0) == "a"  # the first delay is due; the later ones collapse into it
    q.done("a")
    q.forget("a")
    assert q.add_rate_limited("a") == 0.1


def test_delayed_keys_wait_for_their_time() -> None:
    clock = Clock()
    q = WorkQueue(clock=clock)
    q.add_after("late", 5.0)
    q.add_after("early", 1.0)
    q.add("now")
    assert drain(q) == ["now"]
    clock.now += 1.0
    assert drain(q) == ["early"]
    clock.now += 4.0
    assert drain(q) == ["late"]


def test_get_blocks_until_a_key_arrives_and_shutdown_wakes_everyone() -> None:
    q = WorkQueue()
    got: list[str | None] = []
    worker = threading.Thread(target=lambda: got.append(q.get(timeout=5)))
    worker.start()
    q.add("x")
    worker.join(5)
    assert got == ["x"]
    waiters = [threading.Thread(target=lambda: got.append(q.get())) for _ in range(2)]
    for w in waiters:
        w.start()
    q.shutdown()
    for w in waiters:
        w.join(5)
    assert got == ["x", None, None]
    q.add("y")  # ignored after shutdown
    assert q.get(timeout=0) is None
