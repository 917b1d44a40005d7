"""The speaker's worker: one round at a time, each for every address, driven by changes.

A round reads the watched objects (a `ClusterView`), loads the configuration when it changed (a bad one is
refused and the last good one stays in force), asks the gossip who is alive, lets gate.advance decide whether
to wait (settling), elect or withdraw everything (isolated), and hands the outcome to the protocol (layer 2
today; BGP beside it). It never waits on the API, so a failover costs one gossip detection plus one round,
whatever the API's load. Time comes from an injected clock, the gossip and the announcer through the small
protocols of ports.py: unit tests drive whole rounds with fakes.

With fast takeover on (a `watcher`), each round also tells the gossip's watch what it decided
(watchplan.py): whom to heartbeat, what to take over from whom, and whether this node is ready (it elected;
not while settling or cut off). Elections count out the members the watch holds down; layer 2 keeps what it
announces from peers that say they are not ready (watchplan.keep).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from metallb_py.config import Config, load_objects
from metallb_py.errors import ConfigError
from metallb_py.speaker.gate import Gate, GossipView, Note, Step, Turn, advance, cut_off, round_due
from metallb_py.speaker.metrics import SpeakerMetrics
from metallb_py.speaker.ports import ClusterView, Members, Watcher
from metallb_py.speaker.watchplan import Standby, electable, targets

__all__ = ["CONFIG_SETTLE", "NO_CONFIGURATION", "REST_AT_MOST", "Announcing", "Protocols", "Rounds"]

log = logging.getLogger("metallb_py.speaker")

NO_CONFIGURATION = "no MetalLB configuration (ConfigMap config or metallb.io resources)"
# How long the configuration must have been still before a round reads it (see Rounds.run).
CONFIG_SETTLE = 0.05
# After a round the worker rests as long as that round took, at most this long (see Rounds.run).
REST_AT_MOST = 0.5


class Announcing(Protocol):
    """A protocol's announcing side (layer2.Layer2, bgp.Bgp): each reads the Services it announces from the
    view. `live`: the gossip's live members (None without gossip)."""

    def elect_and_apply(self, config: Config, view: ClusterView, live: set[str] | None) -> None: ...
    def withdraw_all(self) -> None: ...


class Protocols:
    """Several protocols as one, each told in turn (a pool can be in L2 and BGP advertisements at once)."""

    def __init__(self, *protocols: Announcing) -> None:
        self.protocols = protocols

    def elect_and_apply(self, config: Config, view: ClusterView, live: set[str] | None) -> None:
        for protocol in self.protocols:
            protocol.elect_and_apply(config, view, live)

    def withdraw_all(self) -> None:
        for protocol in self.protocols:
            protocol.withdraw_all()


class Rounds:
    """See the module docstring. `expected(now)`: node -> gossip address of the peers to expect (the gossip
    Leases, this node excluded). Without `members` (no gossip) liveness comes from the Nodes' Ready condition
    and there is nothing to settle."""

    def __init__(
        self,
        me: str,
        view: ClusterView,
        protocol: Announcing,
        members: Members | None,
        *,
        expected: Callable[[float], Mapping[str, str]],
        metrics: SpeakerMetrics,
        watcher: Watcher | None = None,
        standby: Callable[[], Standby] | None = None,
        settle_timeout: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
        ready: threading.Event | None = None,
        strict: bool = False,
    ) -> None:
        self.me = me
        self.strict = strict  # a configuration with warnings is refused (load_objects(strict=True))
        self.view, self.protocol, self.members = view, protocol, members
        self._expected, self.metrics = expected, metrics
        self.watcher = watcher if members is not None else None
        self._standby = standby or Standby
        self._told: tuple[object, ...] | None = None  # what the watch was last told
        self.settle_timeout = settle_timeout
        self._clock = clock
        self.gate = Gate() if members is not None else Gate(settled=True)
        self.config: Config | None = None
        self.config_error: str | None = None
        self.peers: list[str] | None = None  # the gossip addresses last given to the member
        self.rounds = 0
        # For callers: settled, and the first round is done.
        self.ready = ready if ready is not None else threading.Event()
        self._wake = threading.Event()
        self._config_dirty = threading.Event()
        self._config_at = float("-inf")  # when the configuration last changed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what wakes it ---------------------------------------------------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def config_changed(self) -> None:
        self._config_at = self._clock()
        self._config_dirty.set()
        self._wake.set()

    # -- the thread ------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="speaker-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Returns once no round runs, nor will (a round in progress finishes first)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def run(self) -> None:
        while not self._stop.is_set():
            # An idle speaker only wakes to end the settle wait or to catch an isolation change it was not
            # told about.
            woken = self._wake.wait(0.5)
            if self._stop.is_set():
                return
            if not self.due(woken):
                continue
            if (pause := self.config_pause()) > 0 and self._stop.wait(pause):
                return
            self._wake.clear()
            began = self._clock()
            try:
                self.run_round()
            except Exception:
                log.exception("election round failed; retrying")
                self._stop.wait(0.5)
                self._wake.set()
            # Changes that arrive while it rests are taken in one round: under a storm of them (members
            # flapping on a starved machine) a speaker spends at most half its time in rounds, and a round
            # after a quiet spell (a failover) starts at once.
            self._stop.wait(self.rest(self._clock() - began))

    @staticmethod
    def rest(took: float) -> float:
        """How long the worker rests after a round that took `took` seconds."""
        return min(max(took, 0.0), REST_AT_MOST)

    def settle_over(self, now: float) -> bool:
        """Whether this speaker has been settling for the settle time (it still may not be settled)."""
        return self.gate.since is not None and self.gate.settling_for(now) >= self.settle_timeout

    def config_pause(self) -> float:
        """How long to wait before a round reads a changed configuration: one `kubectl apply` changes several
        objects a few milliseconds apart, and a round that waits until the configuration has been still for
        CONFIG_SETTLE reads them all at once (one round, not one per object). 0 when nothing changed."""
        if not self._config_dirty.is_set():
            return 0.0
        return max(0.0, CONFIG_SETTLE - (self._clock() - self._config_at))

    def due(self, woken: bool) -> bool:
        """Whether to run a round now (gate.round_due, with what the gossip says now)."""
        members = self.members
        if members is None:
            return woken
        expected = self._expected(self._clock())
        peers = sorted(expected.values())
        isolated = cut_off(members.isolated(), set(expected) - {self.me}, set(members.alive()) - {self.me})
        return round_due(self.gate, woken=woken, isolated_now=isolated, peers_changed=peers != self.peers)

    # -- one round -------------------------------------------------------------------------------------------

    def run_round(self) -> Step | None:
        """One round now; what it did (None: the watches have not listed yet)."""
        if not self.view.synced():
            return None
        if self._config_dirty.is_set() or (self.config is None and self.config_error is None):
            self._config_dirty.clear()
            self._reload_config()
        live: set[str] | None = None
        step = Step.ELECT
        if self.members is not None:
            now = self._clock()
            live = set(self.members.alive())
            turn = advance(self.gate, self._gossip_view(now, live), now, self.settle_timeout)
            self.gate = turn.gate
            self._report(turn, live)
            if turn.step is Step.WAIT:
                self._tell_watch(now, ready=False)
                return turn.step
            self.metrics.members_alive.set(len(live))
            step = turn.step
            if self.watcher is not None:
                live = electable(live, self.me, held=self.watcher.held())
        config = self.config
        ready = step is Step.ELECT and config is not None
        if ready:
            assert config is not None
            self.protocol.elect_and_apply(config, self.view, live)
        else:
            self.protocol.withdraw_all()
        if self.members is not None:
            self._tell_watch(self._clock(), ready=ready)
        self.rounds += 1
        self.ready.set()
        return step

    def _tell_watch(self, now: float, *, ready: bool) -> None:
        """Heartbeat targets, takeovers and readiness to the watch, when they changed."""
        if self.watcher is None:
            return
        plan = self._standby() if ready else Standby()
        peers = self._expected(now)
        held, unready = self.watcher.held(), self.watcher.unready()
        to = targets(self.me, peers, plan, held=held, unready=unready)
        takeovers = {owner: [(ip, list(i)) for ip, i in items] for owner, items in plan.takeovers.items()}
        told = (sorted(to.items()), sorted(plan.takeovers.items()), ready)
        if told == self._told:
            return
        self.watcher.set_watch(to, takeovers, ready)
        self._told = told
        log.debug(
            "watch plan",
            extra={"targets": sorted(to), "stands_by_for": sorted(takeovers), "ready": ready},
        )

    def _gossip_view(self, now: float, live: set[str]) -> GossipView:
        assert self.members is not None
        expected = self._expected(now)
        peers = sorted(expected.values())
        if peers != self.peers:
            if self.peers is not None:
                gone, new = sorted(set(self.peers) - set(peers)), sorted(set(peers) - set(self.peers))
                log.info("expected peers changed", extra={"no_longer": gone, "new": new})
            self.members.set_peers(peers)
            self.peers = peers
        expected_names, alive = frozenset(expected) - {self.me}, frozenset(live) - {self.me}
        return GossipView(
            others=frozenset(self.view.nodes()) - {self.me},
            expected=expected_names,
            alive=alive,
            isolated=cut_off(self.members.isolated(), expected_names, alive),
        )

    def _report(self, turn: Turn, live: set[str]) -> None:
        for note in turn.notes:
            if note is Note.BACK:
                self.metrics.isolated.set(0)
                log.info("no longer cut off: settling before announcing")
            elif note is Note.JOINED:
                log.info(
                    "joined the speakers",
                    extra={
                        "alive": sorted(live),
                        "missing": sorted(turn.missing),
                        "after": round(turn.waited, 3),
                    },
                )
            elif note is Note.CUT_OFF:
                self.metrics.isolated.set(1)
                log.warning("cut off from every peer: withdrawing every address until one is heard again")

    def _reload_config(self) -> None:
        objects = self.view.config_objects()
        if not objects:
            error = NO_CONFIGURATION
        else:
            try:
                config = load_objects([dict(o) for o in objects], source="cluster", strict=self.strict)
            except ConfigError as exc:
                error = str(exc)
            else:
                if config != self.config:
                    log.info("configuration loaded", extra={"summary": config.summary()})
                    self.config = (
                        config  # an equal one is not swapped in: what was parsed with it stays valid
                    )
                self.config_error = None
                self.metrics.set_config(loaded=True, stale=False)
                return
        self.metrics.set_config(loaded=self.config is not None, stale=True)
        self.metrics.config_refusals.inc()
        if error != self.config_error:
            # No configuration yet is a normal first state (installed before configured); a bad one is not.
            level = logging.WARNING if not objects else logging.ERROR
            log.log(
                level,
                "configuration refused; the last good one stays in force",
                extra={"error": error, "in_force": self.config is not None},
            )
        self.config_error = error
