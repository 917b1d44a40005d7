"""The controller loop: watches in, decisions (reconcile.py) through one worker, writes out.

Threads: one Reflector per watched resource (Services in every namespace, Namespaces, the ConfigMap `config`
and the metallb.io resources in the controller's namespace) keeps a local copy and puts keys in the work
queue; one worker takes keys one at a time (the allocator is not thread-safe, and one writer makes the order
of allocations deterministic); the leader elector; the event recorder; the IPAddressPool status writer
(`poolstatus`); the metrics server.

The worker only acts while this replica leads (always, without leader election). Each time it becomes leader
it starts from nothing: a fresh consistent list of Services, a new allocator, the configuration loaded, then
every address the cluster already shows restored (`restore_assignments`) before any Service is reconciled, so
no address is ever handed out while a Service still shows it. A follower watches but writes nothing.

Each stretch of leading is a numbered term (`k8s.leader`; one endless term without election). The worker
handles a key only in the term whose resync completed: keys queued before it (the watches queue while this
replica follows or is paused) are dropped, since the resync queues every Service again. Every write is fenced
by the term the work was decided in (`TermFence`): the worker, the Event recorder and the pool status writer
each write for the term in which the work began, and a write whose term is over is not sent; one sent has a
request timeout that ends before another replica may take over.

Each configuration reload is told by `configreport.ConfigReporter` (log, Events, ConfigurationState; a
ConfigurationState write that failed for now is retried with per-key backoff, without reloading). The
pools' status counters are published to the writer when the worker has no key waiting (so a burst of
Services costs one status write per pool), and at least every `pool_status_interval` seconds while it is busy.

Each Service key goes through `sync.ServiceSync`: decided, written on the resourceVersion it was decided on
(409 Conflict: read again, decide again), then settled by its `SyncState`: forgotten when converged, retried
with per-key backoff after a temporary failure, and reported once and left until something changes when it
cannot converge (no address for it; a write the API server refuses for good, such as 403 or 422).
"""

from __future__ import annotations

import itertools
import logging
import sys
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from metallb_py._core import Allocator
from metallb_py.controller.config import ConfigState
from metallb_py.controller.configreport import CONFIGURATION_STATE_NAME, INVALID_CONFIGURATION, ConfigReporter
from metallb_py.controller.metrics import Metrics
from metallb_py.controller.poolstatus import PoolStatusWriter, pool_status
from metallb_py.controller.reconcile import restore_assignments, service_order
from metallb_py.controller.sync import ServiceSync, service_key_of
from metallb_py.k8s.client import KubeClient
from metallb_py.k8s.config_watch import CONFIGMAP_NAME, ConfigWatch
from metallb_py.k8s.errors import NotLeaderError
from metallb_py.k8s.events import EventRecorder
from metallb_py.k8s.leader import LeaderElector, TermFence
from metallb_py.k8s.resources import IP_ADDRESS_POOLS, NAMESPACES, SERVICES, object_key
from metallb_py.k8s.watch import Change, Reflector
from metallb_py.runtime.workqueue import WorkQueue

__all__ = [
    "CONFIGMAP_NAME",
    "CONFIGURATION_STATE_NAME",
    "INVALID_CONFIGURATION",
    "Controller",
    "ControllerOptions",
]

log = logging.getLogger("metallb_py.controller")

_CONFIG_KEY = "@config"  # reload the configuration
_RESYNC_KEY = "@resync"  # became leader: start from nothing
_STATE_KEY = "@configstate"  # write the ConfigurationState again after a temporary failure
# How long the start waits for the first leader election attempt before the watches begin listing.
_FIRST_ROUND_WAIT = 2.0


@dataclass(frozen=True)
class ControllerOptions:
    """How a controller runs; the CLI's flags map one to one."""

    namespace: str = "metallb-system"
    lb_class: str | None = None
    leader_election: bool = True
    lease_name: str = "metallb-controller"
    identity: str = "metallb-controller"
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    metrics_port: int | None = None  # None: no metrics server
    metrics_address: str = "0.0.0.0"
    watch_timeout: int = 300
    conflict_retries: int = 5
    strict: bool = False  # refuse a configuration with warnings (what MetalLB accepts) as an error
    pool_status_interval: float = 1.0  # while busy, publish the pools' status counters at least this often


class Controller:
    """Assigns addresses to LoadBalancer Services; see the module docstring.

    controller = Controller(connect("kubeconfig"), ControllerOptions(namespace="metallb-system"))
    controller.start()
    ...
    controller.stop()
    """

    def __init__(
        self, client: KubeClient, options: ControllerOptions, *, metrics: Metrics | None = None
    ) -> None:
        self.options = options
        self.metrics = metrics if metrics is not None else Metrics()
        self.raw_client = client
        self.elector: LeaderElector | None = None
        if options.leader_election:
            self.elector = LeaderElector(
                client,
                namespace=options.namespace,
                name=options.lease_name,
                identity=options.identity,
                lease_duration=options.lease_duration,
                renew_deadline=options.renew_deadline,
                retry_period=options.retry_period,
                on_started_leading=self._started_leading,
                on_stopped_leading=self._stopped_leading,
            )
        # Every write of the worker, the recorder and the pool status writer goes through the term fence.
        self.fence = TermFence(self.elector)
        self.client = client.fenced(self.fence.margin)
        self.metrics.count_requests(client.requests.snapshot)
        self.events = EventRecorder(
            self.client, component="metallb-controller", instance=options.identity, fence=self.fence
        )
        self.queue = WorkQueue()
        ns = options.namespace
        timeout = options.watch_timeout
        self.services = Reflector(client, SERVICES, self._on_service, watch_timeout=timeout)
        self.namespaces = Reflector(client, NAMESPACES, self._on_namespace, watch_timeout=timeout)
        self.config_watch = ConfigWatch(client, ns, self._on_config, watch_timeout=timeout)
        self.reflectors = [self.services, self.namespaces, *self.config_watch.reflectors]
        self.pool_status = PoolStatusWriter(
            self.client,
            self.config_watch.pools,
            ns,
            on_write=self.metrics.pool_status_writes.inc,
            fence=self.fence,
        )
        self.config_report = ConfigReporter(self.client, self.events, ns)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        # Owned by the worker thread:
        self._allocator = Allocator()
        self._config = ConfigState(ns, strict=options.strict)
        self._term: int | None = None  # the term whose resync completed: the only one whose keys are handled
        self._resync_list: tuple[int, int] | None = None  # (term, number of the list its resync waits for)
        self.resync_timeout = 30.0  # how long one try of a resync waits for that list before retrying
        self._synced = False  # leading, and every watch has listed since: the copies are complete
        self._ready = False  # configuration in force and existing assignments restored
        # When each Service was first seen: watch events arrive in creation order, which breaks the ties of
        # creationTimestamp's one-second resolution (Services created in one second keep their order).
        self._seen: dict[str, int] = {}
        self._seen_counter = itertools.count()
        self.sync = ServiceSync(
            self.client,
            self.services,
            self.events,
            self.queue,
            self.metrics,
            lb_class=options.lb_class,
            conflict_retries=options.conflict_retries,
            order=self._allocation_order,
            namespace_labels=self._namespace_labels,
        )
        # When (monotonic) the pools' status counters first changed since they were last published.
        self._counters_changed: float | None = None
        self.ready = threading.Event()  # for callers: the first restore is done
        self.metrics_port: int | None = None

    # -- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self.options.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.options.metrics_port, self.options.metrics_address)
        self.metrics.set_config(loaded=False, stale=False)
        self.events.start()
        self.pool_status.start()
        if self.elector is not None:
            # The first attempt before the watches list: a term won then began before their first lists,
            # which count as read afresh for it (see _started_leading), so a restarted leader lists every
            # Service once, not twice. A slow attempt does not hold the start up: the term then asks for a
            # list of its own.
            self.elector.start()
            self.elector.first_round.wait(_FIRST_ROUND_WAIT)
        for reflector in self.reflectors:
            reflector.start()
        self._worker = threading.Thread(target=self._work, name="controller-worker", daemon=True)
        self._worker.start()
        if self.elector is None:
            self._started_leading()
        log.info(
            "controller started",
            extra={
                "namespace": self.options.namespace,
                "lb_class": self.options.lb_class,
                "identity": self.options.identity,
                "leader_election": self.options.leader_election,
                "metrics_port": self.metrics_port,
            },
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the worker (after its current key) and the writers, hands the lease back, stops watching.

        The lease is handed back only once every thread that writes has ended: a write still in flight (a slow
        API server) is bounded to end before the lease can be taken over without a release, so it is left to
        expire then; released, another replica could take over at once and the write land after its resync.
        """
        self._stop.set()
        self.fence.close()
        self.queue.shutdown()
        ended = True
        if self._worker is not None:
            self._worker.join(timeout)
            ended = not self._worker.is_alive()
        ended = self.pool_status.stop(timeout) and ended
        ended = self.events.stop(timeout) and ended
        if self.elector is not None:
            if not ended:
                log.warning(
                    "a write may still be in flight: the leader lease is left to expire, not handed back",
                    extra={"lease": self.options.lease_name},
                )
            self.elector.stop(release=ended)
        for reflector in self.reflectors:
            reflector.stop()
        self.metrics.close()
        log.info("controller stopped", extra={"identity": self.options.identity})

    def healthy(self) -> str | None:
        """None while the worker runs; else why not."""
        if self._worker is not None and not self._worker.is_alive() and not self._stop.is_set():
            return "the controller's worker thread ended"
        return None

    def is_leader(self) -> bool:
        return not self._stop.is_set() and self.fence.current() is not None

    def _started_leading(self) -> None:
        self.metrics.leader.set(1)
        if self.elector is not None:
            term = self.elector.term()
            if term is not None:
                # The list the term's resync restores from, asked for the moment the term begins: one begun
                # after it (the watch's first list, when this is the first attempt before the watches start).
                self._resync_list = (term, self.services.request_list())
        self.queue.add(_RESYNC_KEY)

    def _stopped_leading(self) -> None:
        self.metrics.leader.set(0)
        self.ready.clear()
        self.pool_status.clear()

    # -- watch handlers (reflector threads) ------------------------------------------------------------------

    def _on_service(self, change: Change) -> None:
        if change.type == "DELETED":
            self._seen.pop(change.key, None)
        else:
            self._seen.setdefault(change.key, next(self._seen_counter))
        self.queue.add(change.key)

    def _allocation_order(self, svc: dict[str, Any]) -> tuple[Any, int, str]:
        """Oldest first; within one second of creationTimestamp, in the order the Services appeared."""
        created, key = service_order(svc)
        return created, self._seen.get(key, sys.maxsize), key

    def _on_namespace(self, change: Change) -> None:
        # Pools may select namespaces by label: a namespace's Services are reconsidered when its labels
        # change.
        labels = (change.obj.get("metadata") or {}).get("labels")
        old_labels = ((change.old or {}).get("metadata") or {}).get("labels")
        if change.type == "MODIFIED" and labels != old_labels:
            prefix = change.key + "/"
            self.queue.add_all([k for k in self.services.keys() if k.startswith(prefix)])

    def _on_config(self, change: Change) -> None:
        if change.obj.get("kind") == IP_ADDRESS_POOLS.kind:
            # Created again, or its status written by someone else: the writer compares it again.
            self.pool_status.pool_changed(str((change.obj.get("metadata") or {}).get("name", "")))
            if change.type == "MODIFIED" and _without_status(change.old) == _without_status(change.obj):
                return  # only its status changed: the configuration did not
        self.queue.add(_CONFIG_KEY)

    # -- the worker ------------------------------------------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            key = self.queue.get(timeout=1.0)
            if key is not None:
                self.process(key)

    def process(self, key: str) -> None:
        """One key of the worker, taken from the queue (marked done here); never raises, so nothing ends the
        worker. The worker thread runs it; a test can call it without the thread."""
        try:
            self._handle(key)
        finally:
            self.queue.done(key)
        try:
            self._publish_pool_status()
        except Exception as exc:
            # The counters are published again at their next change; the allocations are not held back.
            log.exception("pool status counters not published", extra={"error": repr(exc)})
            self.metrics.update_errors.inc()

    def _handle(self, key: str) -> None:
        term = self.fence.current()
        if term is None or self._stop.is_set():
            self._synced = self._ready = False
            return  # dropped: becoming leader again starts from a full resync
        if key != _RESYNC_KEY and term != self._term:
            # Queued before this term's resync (leadership lapsed and came back, and another replica may have
            # allocated meanwhile): the resync decides afresh and queues every Service again.
            return
        try:
            with self.fence.working(term):
                if key == _RESYNC_KEY:
                    self._resync(term)
                elif key == _CONFIG_KEY:
                    self._reload_config()
                elif key == _STATE_KEY:
                    self._state_written(self.config_report.write_state())
                elif self.sync.handle(key, self._allocator, ready=self._ready).allocations_changed:
                    self._set_pool_metrics()
                    self._counters_change()
        except NotLeaderError:
            log.info("lost leadership while working; dropping", extra={"key": key})
        except Exception:
            log.exception("unexpected error; retrying later", extra={"key": key})
            self.metrics.update_errors.inc()
            self.queue.add_rate_limited(key)

    def _wait_synced(self) -> bool:
        """Waits until every watch has listed once (a leader never decides on partial copies)."""
        warn_at = time.monotonic() + 30
        while not all(r.synced.is_set() for r in self.reflectors):
            if self._stop.wait(0.05):
                return False
            if time.monotonic() > warn_at:
                missing = [r.name for r in self.reflectors if not r.synced.is_set()]
                log.warning("still waiting for the first list of", extra={"resources": missing})
                warn_at += 30
        return True

    def _resync(self, term: int) -> None:
        """Became leader (or started without election) in `term`: rebuild every piece of state from the
        cluster; from then on the keys of `term` are handled."""
        if not self._wait_synced():
            return
        # A follower's watched copy may lag the previous leader's last writes by a moment: read afresh (one
        # consistent list, begun after this term began) before restoring from it. The list is asked for once
        # per term: a retry waits for that same list, or a list slower than the wait would never do.
        if self.elector is not None:
            if self._resync_list is None or self._resync_list[0] != term:
                self._resync_list = (term, self.services.request_list())
            if not self.services.wait_listed(self._resync_list[1], timeout=self.resync_timeout):
                log.warning("the Services are not listed afresh yet; retrying the resync")
                self.queue.add_rate_limited(_RESYNC_KEY)
                return
        self.queue.forget(_RESYNC_KEY)
        self._term = term
        self._allocator = Allocator()
        self._config = ConfigState(self.options.namespace, strict=self.options.strict)
        self._synced = True
        self._ready = False
        self.sync.reset()
        self.config_report.reset()
        self.pool_status.clear()
        log.info("leading: restoring state from the cluster", extra={"services": len(self.services.keys())})
        self._reload_config()

    def _reload_config(self) -> None:
        if not self._synced:
            # A configuration change seen before the resync that starts every term as leader: that resync
            # loads the configuration itself, once it has complete copies to restore assignments from.
            return
        objects = self.config_watch.objects()
        outcome = self._config.apply(objects, self._allocator)
        self.metrics.set_config(loaded=outcome.loaded, stale=not outcome.loaded)
        config = self._config.config
        if outcome.loaded:
            assert config is not None
            # Before the report, which makes the reload visible (ConfigurationState, Events).
            self.metrics.config_warnings.set(len(config.warnings))
        self._state_written(self.config_report.report(outcome, objects, config))
        self.metrics.config_reloads.inc()
        if not outcome.loaded:
            return
        assert config is not None
        if outcome.first or outcome.changed or not self._ready:
            log.info(
                "configuration loaded",
                extra={"summary": outcome.summary, "evicted": list(outcome.evicted), "first": outcome.first},
            )
        if not self._ready:
            kept = restore_assignments(self.services.items(), self._allocator, lb_class=self.options.lb_class)
            self._ready = True
            self.ready.set()
            not_kept = sorted(k for k, ok in kept.items() if not ok)
            log.info(
                "restored existing assignments",
                extra={
                    "kept": len(kept) - len(not_kept),
                    "not_kept": len(not_kept),
                    "first_not_kept": not_kept[:20],
                },
            )
            self._enqueue_all(settled={key for key, ok in kept.items() if ok})
        elif outcome.changed:
            # A placeholder of `sync` (an address a Service may still show) stands for its Service.
            self.queue.add_all(sorted({service_key_of(k) for k in outcome.evicted}))
            self._enqueue_all()
        self._set_pool_metrics()
        self._counters_change()

    def _state_written(self, settled: bool) -> None:
        if settled:
            self.queue.forget(_STATE_KEY)
        else:
            self.queue.add_rate_limited(_STATE_KEY)

    def _counters_change(self) -> None:
        if self._counters_changed is None:
            self._counters_changed = time.monotonic()

    def _publish_pool_status(self) -> None:
        """Hands the pools' status counters to the writer when they may have changed and the worker has no
        key waiting, or they changed `pool_status_interval` ago and the worker is still busy."""
        config = self._config.config
        changed = self._counters_changed
        term = self.fence.current()
        if changed is None or not self._ready or config is None or term is None or term != self._term:
            return
        if len(self.queue) > 0 and time.monotonic() - changed < self.options.pool_status_interval:
            return
        self._counters_changed = None
        legacy = config.legacy_protocols
        self.pool_status.publish(
            {
                p.name: pool_status(self._allocator, p.name)
                for p in config.pools
                if p.name not in legacy  # a legacy ConfigMap's pools have no object to write to
            },
            term=term,
        )

    def _set_pool_metrics(self) -> None:
        config = self._config.config
        if config is not None:
            self.metrics.set_pools(self._allocator, [p.name for p in config.pools])

    def _enqueue_all(self, settled: Collection[str] = ()) -> None:
        """Every Service, in allocation order; those in `settled` (restored as they show: their addresses are
        already held in the allocator) after the others, so that after a restart a Service waiting for an
        address is not queued behind thousands that only need a look."""
        ordered = [object_key(s) for s in sorted(self.services.items(), key=self._allocation_order)]
        first = [key for key in ordered if key not in settled]
        self.queue.add_all(first + [key for key in ordered if key in settled], in_order=True)

    def _namespace_labels(self, namespace: str) -> dict[str, str]:
        ns = self.namespaces.get(namespace)
        labels = (ns or {}).get("metadata", {}).get("labels") if ns else None
        return dict(labels) if isinstance(labels, dict) else {"kubernetes.io/metadata.name": namespace}


def _without_status(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The object without what a status write alone changes (status, resourceVersion, managedFields)."""
    obj = obj or {}
    metadata = {
        k: v for k, v in (obj.get("metadata") or {}).items() if k not in ("resourceVersion", "managedFields")
    }
    return {**{k: v for k, v in obj.items() if k != "status"}, "metadata": metadata}
