"""speaker.LinkFollower and speaker.ConfigWarnings with fakes: the node's links, the responder's interface set
and the link notifications are plain objects here (the real ones: tests/netns/test_responder_interfaces.py,
tests/e2e/test_speaker_interfaces.py)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import pytest

from metallb_py.config.model import Config, L2Advertisement
from metallb_py.speaker.election import MAX_INTERFACES, ExcludeRule, Link
from metallb_py.speaker.metrics import SpeakerMetrics
from metallb_py.speaker.ports import InterfaceChange
from metallb_py.speaker.speaker import (
    LINK_DEBOUNCE,
    LINK_RETRY,
    ConfigWarnings,
    LinkFollower,
    NamedInterfaces,
)

UP = frozenset({"UP", "BROADCAST", "MULTICAST", "LOWER_UP"})
DOWN = frozenset({"BROADCAST", "MULTICAST"})


class FakeResponder:
    """Serves what it is told, except the names in `broken`."""

    def __init__(self, interfaces: Sequence[str], broken: Sequence[str] = ()) -> None:
        self.interfaces = list(interfaces)
        self.broken = set(broken)
        self.calls: list[list[str]] = []

    def set_interfaces(self, interfaces: Sequence[str]) -> InterfaceChange:
        self.calls.append(list(interfaces))
        wanted = [name for name in interfaces if name not in self.broken]
        change = InterfaceChange(
            added=[n for n in wanted if n not in self.interfaces],
            removed=[n for n in self.interfaces if n not in wanted],
            failed={n: f"cannot open {n}" for n in interfaces if n in self.broken},
        )
        self.interfaces = wanted
        return change


class Node:
    """The node's links as `read` returns them, and the lists handed to on_links."""

    def __init__(self, *links: Link) -> None:
        self.links = list(links)
        self.handed: list[list[str]] = []
        self.fail_reads = 0

    def read(self) -> list[Link]:
        if self.fail_reads:
            self.fail_reads -= 1
            raise OSError("ip link: no answer")
        return list(self.links)

    def on_links(self, links: list[Link]) -> None:
        self.handed.append([link.name for link in links])


def follower(node: Node, responder: FakeResponder, **options: object) -> LinkFollower:
    # A clock that stands still: a burst ends when a wait returns nothing, never by the clock.
    return LinkFollower(
        responder,
        node.read,
        node.read(),
        on_links=node.on_links,
        clock=lambda: 0.0,
        **options,  # type: ignore[arg-type]
    )


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[str]:
    return [str(getattr(r, "interface", "")) for r in caplog.records if r.getMessage() == message]


def test_a_link_that_appears_is_served_and_handed_to_layer2(caplog: pytest.LogCaptureFixture) -> None:
    node = Node(Link("eth0"), Link("lo", frozenset({"LOOPBACK", "UP"}), "loopback"))
    responder = FakeResponder(["eth0"])
    links = follower(node, responder)
    caplog.set_level(logging.INFO, "metallb_py.speaker")

    node.links.append(Link("eth0.100", kind="vlan"))
    links.rescan()
    assert responder.calls == [["eth0", "eth0.100"]]
    assert node.handed == [["eth0", "lo", "eth0.100"]]
    assert logged(caplog, "interface added") == ["eth0.100"]

    # Nothing changed: the responder is asked (it re-checks its links), layer 2 is not told again.
    links.rescan()
    assert len(responder.calls) == 2 and len(node.handed) == 1


def test_a_link_down_or_deleted_is_dropped_with_its_reason(caplog: pytest.LogCaptureFixture) -> None:
    node = Node(Link("eth0"), Link("eth1"), Link("eth2"))
    responder = FakeResponder(["eth0", "eth1", "eth2"])
    links = follower(node, responder)
    caplog.set_level(logging.INFO, "metallb_py.speaker")
    node.links = [Link("eth0"), Link("eth1", DOWN)]
    links.rescan()
    assert responder.interfaces == ["eth0"]
    assert node.handed == [["eth0", "eth1"]]
    reasons = {r.interface: r.reason for r in caplog.records if r.getMessage() == "interface removed"}  # type: ignore[attr-defined]
    assert reasons == {"eth1": "down", "eth2": "gone or re-created"}


def test_a_link_that_cannot_be_opened_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    node = Node(Link("eth0"), Link("ib0"))
    responder = FakeResponder(["eth0"], broken=["ib0"])
    links = follower(node, responder)
    caplog.set_level(logging.INFO, "metallb_py.speaker")
    links.rescan()
    links.rescan()
    assert responder.calls == [["eth0", "ib0"]] * 2, "tried again at each rescan"
    assert logged(caplog, "interface cannot be used; retried at the next link change") == ["ib0"]


class FakeWatch:
    """Gives `batches` one per wait (then nothing), and sets `stop` once `until(self)` holds."""

    def __init__(
        self,
        batches: list[list[object] | Exception],
        stop: threading.Event,
        until: Callable[[FakeWatch], bool],
    ) -> None:
        self.batches = batches
        self.stop = stop
        self.until = until
        self.timeouts: list[float | None] = []

        self.closed = False

    def wait(self, timeout: float | None = None) -> list[object]:
        self.timeouts.append(timeout)
        if self.until(self):
            self.stop.set()
        batch = self.batches.pop(0) if self.batches else []
        if isinstance(batch, Exception):
            raise batch
        return batch

    def close(self) -> None:
        self.closed = True


def test_run_rescans_on_notifications_only() -> None:
    node = Node(Link("eth0"))
    responder = FakeResponder(["eth0"])
    links = follower(node, responder)
    stop = threading.Event()
    event = {"kind": "changed", "index": 7, "name": "eth1", "up": True}
    watch = FakeWatch([[], [event], [], []], stop, until=lambda w: len(w.timeouts) > 4)
    node.links.append(Link("eth1"))
    links.run(watch, stop)
    assert links.rescans == 1
    assert responder.interfaces == ["eth0", "eth1"]


def test_run_retries_a_failed_read_without_waiting_for_a_notification() -> None:
    node = Node(Link("eth0"))
    responder = FakeResponder(["eth0"])
    links = follower(node, responder)
    stop = threading.Event()
    watch = FakeWatch([[{"kind": "overflow"}]], stop, until=lambda _: links.rescans == 1)
    node.links.append(Link("eth1"))
    node.fail_reads = 1
    links.run(watch, stop)
    assert responder.interfaces == ["eth0", "eth1"]
    # The first notification is read at once with what is queued behind it, then the failure's retry period.
    assert watch.timeouts[:3] == [0.5, 0.0, LINK_RETRY], "after the failure the wait is the retry"


def test_config_warnings_are_logged_once_per_new_configuration(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "metallb_py.speaker")
    warnings = ConfigWarnings()
    first = Config(warnings=("IPAddressPool a: 192.0.2.1/24 has host bits; using 192.0.2.0/24",))
    for _ in range(3):
        warnings.elect_and_apply(first, None, None)  # type: ignore[arg-type]
    quiet = Config()
    warnings.elect_and_apply(quiet, None, None)  # type: ignore[arg-type]
    second = Config(warnings=("L2Advertisement b: pool c does not exist (yet)",))
    warnings.elect_and_apply(second, None, None)  # type: ignore[arg-type]
    warnings.withdraw_all()
    found = [getattr(r, "warning", None) for r in caplog.records if r.getMessage() == "configuration warning"]
    assert found == [*first.warnings, *second.warnings]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_the_interface_metric_follows_the_served_set() -> None:
    responder = FakeResponder(["eth0"])
    metrics = SpeakerMetrics()
    metrics.count_interfaces(lambda: responder.interfaces)

    def sample(name: str) -> float | None:
        return metrics.registry.get_sample_value("metallb_py_speaker_layer2_interface", {"interface": name})

    assert (sample("eth0"), sample("eth0.100")) == (1.0, None)
    responder.set_interfaces(["eth0", "eth0.100"])
    assert (sample("eth0"), sample("eth0.100")) == (1.0, 1.0)
    responder.set_interfaces(["eth0.100"])
    assert (sample("eth0"), sample("eth0.100")) == (None, 1.0)


# -- MetalLB's interface exclusion list ----------------------------------------------------------------------


def test_cni_veths_are_not_served_and_their_churn_runs_no_round() -> None:
    node = Node(Link("eth0"), Link("cali5f3e"), Link("veth1a2b"), Link("lxc12ab"))
    responder = FakeResponder(["eth0"])
    links = follower(node, responder)
    node.links.append(Link("eth0.100", kind="vlan"))
    links.rescan()
    assert responder.interfaces == ["eth0", "eth0.100"]
    assert len(node.handed) == 1
    # Pods come and go, a veth's carrier flaps, eth0's too: the responder is asked, no round runs.
    node.links = [
        Link("eth0", frozenset({"UP", "BROADCAST", "MULTICAST"})),
        Link("cali5f3e", DOWN),
        Link("cali77aa"),
        Link("eth0.100", kind="vlan"),
    ]
    links.rescan()
    assert responder.calls[-1] == ["eth0", "eth0.100"]
    assert len(node.handed) == 1
    # A link that is not excluded going down changes what the election reads.
    node.links[-1] = Link("eth0.100", DOWN, kind="vlan")
    links.rescan()
    assert responder.interfaces == ["eth0"] and len(node.handed) == 2


def test_a_new_exclusion_list_applies_at_once() -> None:
    node = Node(Link("eth0"), Link("cali5f3e"), Link("dummy0"))
    responder = FakeResponder(["eth0"])
    links = follower(node, responder)
    links.set_rule(ExcludeRule.of(["^dummy"], "test"))
    assert responder.interfaces == ["eth0", "cali5f3e"]
    assert node.handed == [["eth0", "cali5f3e", "dummy0"]]
    links.set_rule(ExcludeRule.of(["^dummy"], "test"))  # the same list: nothing to do
    assert len(responder.calls) == 1


# -- at most MAX_INTERFACES for the responder ----------------------------------------------------------------


def test_more_interfaces_than_the_responder_holds(caplog: pytest.LogCaptureFixture) -> None:
    many = [Link(f"vlan{i}", kind="vlan") for i in range(MAX_INTERFACES + 3)]
    node = Node(*many)
    responder = FakeResponder([link.name for link in many[:MAX_INTERFACES]])
    links = follower(node, responder)
    caplog.set_level(logging.INFO, "metallb_py.speaker")
    links.rescan()
    links.rescan()
    assert all(len(call) == MAX_INTERFACES for call in responder.calls)
    assert links.left_out == ("vlan64", "vlan65", "vlan66")
    warned = [r for r in caplog.records if r.getMessage().startswith("more eligible interfaces")]
    assert [r.left_out for r in warned] == [["vlan64", "vlan65", "vlan66"]], "warned once"  # type: ignore[attr-defined]

    # An L2Advertisement names a left-out one: it is served, the last unnamed one makes room.
    NamedInterfaces(links.set_named).elect_and_apply(
        Config(l2_advertisements=[L2Advertisement("late", pools=("p",), interfaces=("vlan65",))]),
        None,  # type: ignore[arg-type]
        None,
    )
    assert "vlan65" in responder.interfaces and "vlan63" not in responder.interfaces
    assert len(responder.interfaces) == MAX_INTERFACES
    assert links.left_out == ("vlan63", "vlan64", "vlan66")


# -- the notification loop -----------------------------------------------------------------------------------


def test_a_lone_notification_is_read_at_once() -> None:
    node = Node(Link("eth0"))
    responder = FakeResponder(["eth0"])
    links = follower(node, responder)
    stop = threading.Event()
    watch = FakeWatch([[{"kind": "added", "name": "eth1"}]], stop, until=lambda _: links.rescans == 1)
    node.links.append(Link("eth1"))
    links.run(watch, stop)
    # Only what is queued already (a wait of 0) joins it: no debounce interval before the rescan.
    assert watch.timeouts[:2] == [0.5, 0.0]
    assert responder.interfaces == ["eth0", "eth1"]


def test_a_burst_of_notifications_costs_a_rescan_per_interval() -> None:
    node = Node(Link("eth0"))
    responder = FakeResponder(["eth0"])
    links = follower(node, responder)
    stop = threading.Event()
    burst: list[list[object] | Exception] = [[{"kind": "added", "name": f"eth0.{i}"}] for i in range(6)]
    watch = FakeWatch([*burst, []], stop, until=lambda w: len(w.timeouts) > 9)
    node.links += [Link(f"eth0.{i}", kind="vlan") for i in range(6)]
    links.run(watch, stop)
    # The first two (the first and the one queued behind it) at once; the other four within the interval
    # after that rescan (the clock stands still here) make one more.
    assert links.rescans == 2
    assert watch.timeouts[:3] == [0.5, 0.0, 0.5]
    assert watch.timeouts[3:7] == [LINK_DEBOUNCE] * 4
    assert len(responder.interfaces) == 7


def test_a_failed_watch_is_reopened_and_the_links_read_again(caplog: pytest.LogCaptureFixture) -> None:
    node = Node(Link("eth0"))
    responder = FakeResponder(["eth0"])
    links = follower(node, responder)
    stop = threading.Event()
    broken = FakeWatch([OSError("netlink socket closed")], stop, until=lambda _: False)
    fresh = FakeWatch([], stop, until=lambda _: links.rescans == 1)
    node.links.append(Link("eth1"))  # appeared while nothing was listening
    caplog.set_level(logging.INFO, "metallb_py.speaker")
    links.run(broken, stop, reopen=lambda: fresh)
    assert broken.closed and links.watch is fresh
    assert responder.interfaces == ["eth0", "eth1"]
    assert [r.levelno for r in caplog.records if r.getMessage().startswith("link notifications failed")] == [
        logging.ERROR
    ]


def test_notifications_about_excluded_names_cost_no_rescan() -> None:
    node = Node(Link("eth0"))
    responder = FakeResponder(["eth0"])
    links = follower(node, responder)
    stop = threading.Event()
    pods: list[list[object] | Exception] = [
        [{"kind": "changed", "index": 9 + i, "name": f"veth{i}", "up": True}] for i in range(3)
    ]
    lost: list[object] = [{"kind": "overflow"}]
    watch = FakeWatch([*pods, [], lost], stop, until=lambda _: links.rescans == 1)
    links.run(watch, stop)
    # Three pods' veths came up (MetalLB's default list excludes them): nothing read; lost notifications
    # (an overflow names no link) are always read again.
    assert links.rescans == 1
    assert len(watch.timeouts) >= 5
