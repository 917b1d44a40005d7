"""List-then-watch of one resource into a local store, resumed across expiry and API server restarts.

A `Reflector` keeps an up-to-date copy of every object of one resource (optionally one namespace and
selectors) and calls a handler with each change. It lists once (a consistent, paged read), then watches from
the list's resourceVersion with bookmarks, and:

- when the server ends the watch (timeout), watches again from the last version seen;
- when that version is too old (410 Gone, as an HTTP status or an ERROR event), lists again and hands the
  handler the difference (objects added, changed and deleted meanwhile), so no change is lost;
- when the connection breaks or the server does not answer (an API server restart), retries with capped
  exponential backoff and jitter, resuming the watch where it stopped;
- when the resource type does not exist (a CRD not installed: 404), counts as synced with no objects and
  keeps retrying slowly, so optional CRDs do not block the controller.

The handler runs in the reflector's thread and must be quick (enqueue a key). `resync()` forces a fresh
consistent list (the controller does this when it becomes leader, to start from the latest state).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from metallb_py.backoff import Backoff
from metallb_py.k8s.client import KubeClient, WatchStream
from metallb_py.k8s.errors import ApiError, GoneError, NotFoundError
from metallb_py.k8s.resources import Resource, meta, object_key

__all__ = [
    "Backoff",
    "Change",
    "Reflector",
    "default_backoff",
    "drop_bookkeeping",
]  # Backoff: metallb_py.backoff's, for users

log = logging.getLogger("metallb_py.k8s.watch")

JSON = dict[str, Any]


@dataclass(frozen=True)
class Change:
    """One change of an object: `type` is ADDED, MODIFIED or DELETED; `old` the previous copy (None when
    ADDED); `obj` the new one (for DELETED: the last copy known)."""

    type: str
    key: str
    obj: JSON
    old: JSON | None = None


# What the API server and kubectl keep in an object for themselves: often the larger part of a small
# object's copy, and read by nothing that watches it here.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def drop_bookkeeping(obj: JSON) -> None:
    """Drops, in place, metadata.managedFields (server-side apply's field owners) and kubectl's
    last-applied-configuration annotation: a Reflector's `trim` for watchers that read neither."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            annotations.pop(LAST_APPLIED, None)


def default_backoff() -> Backoff:
    """A reflector's retry delays unless given others: 0.2 s doubling to 10 s, each within [d/2, d]."""
    return Backoff(0.2, 10.0, jitter=0.5)


class Reflector:
    """Keeps `store` equal to the API's objects of one resource; see the module docstring. `trim`, when
    given, changes each object in place before it is stored or handed to the handler: what the watcher
    never reads need not stay in memory (drop_bookkeeping)."""

    def __init__(
        self,
        client: KubeClient,
        resource: Resource,
        handler: Callable[[Change], None],
        *,
        namespace: str | None = None,
        field_selector: str | None = None,
        label_selector: str | None = None,
        watch_timeout: int = 300,
        page_size: int = 500,
        backoff: Backoff | None = None,
        missing_retry: float = 30.0,
        trim: Callable[[JSON], None] | None = None,
    ) -> None:
        self.client = client
        self._trim = trim
        self.resource = resource
        self.namespace = namespace
        self._handler = handler
        self._field_selector = field_selector
        self._label_selector = label_selector
        self._watch_timeout = watch_timeout
        self._page_size = page_size
        self._backoff = backoff or default_backoff()
        self._missing_retry = missing_retry
        self._lock = threading.Lock()
        self._store: dict[str, JSON] = {}
        self._own: dict[str, set[str]] = {}  # versions our own writes produced, not echoed by the watch yet
        self._version = ""
        self._stream: WatchStream | None = None
        self._stop = threading.Event()
        self._relist = threading.Event()
        self._lists_started = 0  # lists begun; each list's number, for resync()
        self._listed_number = 0  # the number of the last list completed
        self._served = False  # a list has succeeded: a later 404 is a hiccup, not "type not installed"
        self._listed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()
        self.missing = False  # the resource type does not exist (last list answered 404)

    @property
    def name(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"{self.resource}{where}"

    # -- the store -------------------------------------------------------------------------------------------

    def get(self, key: str) -> JSON | None:
        with self._lock:
            return self._store.get(key)

    def items(self) -> list[JSON]:
        with self._lock:
            return list(self._store.values())

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._store)

    def observe(self, obj: JSON) -> None:
        """Stores an object a write of ours returned, so the next read sees it before the watch echoes it.

        Safe for objects written with a resourceVersion precondition: nothing happened between the version
        we read and this one, and the watch delivers only later versions. No handler call: the caller knows.
        The watch's echoes of these writes are then skipped, including those of earlier writes in a row that
        arrive after a later one was stored (they must not take the copy back in time).
        """
        key = object_key(obj)
        if key:
            self._prepare(obj)
            with self._lock:
                if key in self._store:
                    self._store[key] = obj
                    self._own.setdefault(key, set()).add(meta(obj, "resourceVersion"))

    # -- life cycle ------------------------------------------------------------------------------------------

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self.run, name=f"reflector-{self.name}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._close_stream()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def resync(self, timeout: float | None = None) -> bool:
        """Lists again now (ending the current watch) and waits for a list that started after this call;
        False on timeout. `wait_listed(request_list(), timeout)`."""
        return self.wait_listed(self.request_list(), timeout)

    def request_list(self) -> int:
        """Asks for a list that starts after this call (ending the current watch); returns its number, for
        `wait_listed`.

        A list already under way does not count: it may have been read before the writes that the caller
        means to see (a new leader's resync must include the previous leader's last writes).
        """
        with self._lock:
            number = self._lists_started + 1  # lists are numbered as they begin, one at a time
            self._relist.set()
        self._close_stream()
        return number

    def wait_listed(self, number: int, timeout: float | None = None) -> bool:
        """Waits until list `number` (or a later one) has completed; False on timeout. Waiting again for
        the same number after a timeout is still satisfied by that list, however long it takes."""
        with self._listed:
            return self._listed.wait_for(
                lambda: self._listed_number >= number or self._stop.is_set(), timeout
            )

    def run(self) -> None:
        """List, then watch, until stop(); never raises."""
        need_list = True
        while not self._stop.is_set():
            try:
                if need_list or self._relist.is_set():
                    self._list()
                    need_list = False
                self._watch()
                self._backoff.reset()
            except GoneError as exc:
                log.info("watch expired, listing again", extra={"resource": self.name, "error": str(exc)})
                need_list = True
            except NotFoundError as exc:
                need_list = True
                if self._served:
                    # The API server answers 404 for custom resources for a moment around restarts; emptying
                    # the store then would delete every pool. Keep the copies and retry like any failure.
                    delay = self._backoff.next()
                    log.warning(
                        "resource answered 404 after it had listed; keeping the last copies",
                        extra={"resource": self.name, "error": exc.message, "retry_in": round(delay, 3)},
                    )
                    self._stop.wait(delay)
                    continue
                self._mark_missing(exc)
                self._stop.wait(self._missing_retry)
            except ApiError as exc:
                delay = self._backoff.next()
                log.warning(
                    "list/watch failed, retrying",
                    extra={"resource": self.name, "error": str(exc), "retry_in": round(delay, 3)},
                )
                # A watch can resume from the last version; a failed list starts over.
                self._stop.wait(delay)
            except Exception:
                if self._stop.is_set():
                    return  # stop() closed the stream under the reading thread: not an error
                log.exception("unexpected error in list/watch", extra={"resource": self.name})
                need_list = True
                self._stop.wait(self._backoff.next())

    def _mark_missing(self, exc: NotFoundError) -> None:
        if not self.missing:
            log.warning(
                "resource type not served; treating it as empty",
                extra={"resource": self.name, "error": exc.message},
            )
        self.missing = True
        self._replace([], "")
        self.synced.set()

    def _list(self) -> None:
        with self._lock:  # one step with resync()'s: a resync either sees this list begun or asks for another
            self._lists_started += 1
            self._relist.clear()
        result = self.client.list(
            self.resource,
            self.namespace,
            field_selector=self._field_selector,
            label_selector=self._label_selector,
            page_size=self._page_size,
        )
        self.missing = False
        self._served = True
        self._replace(result.items, result.resource_version)
        self.synced.set()

    def _prepare(self, obj: JSON) -> JSON:
        # List items of built-in types carry no kind or apiVersion (watch events do); consumers need both.
        if "kind" not in obj:
            obj["kind"] = self.resource.kind
        if "apiVersion" not in obj:
            obj["apiVersion"] = self.resource.api_version
        if self._trim is not None:
            self._trim(obj)
        return obj

    def _replace(self, items: list[JSON], version: str) -> None:
        """Swaps in a full list and reports the difference to the handler."""
        fresh = {object_key(obj): self._prepare(obj) for obj in items}
        changes: list[Change] = []
        with self._lock:
            old_store = self._store
            for key, obj in fresh.items():
                old = old_store.get(key)
                if old is None:
                    changes.append(Change("ADDED", key, obj))
                elif meta(old, "resourceVersion") != meta(obj, "resourceVersion"):
                    changes.append(Change("MODIFIED", key, obj, old))
            changes += [
                Change("DELETED", key, obj, obj) for key, obj in old_store.items() if key not in fresh
            ]
            self._store = fresh
            self._own.clear()
            self._version = version
            self._listed_number = self._lists_started  # the list under way (a 404 counts as an empty one)
            self._listed.notify_all()
        for change in changes:
            self._deliver(change)

    def _watch(self) -> None:
        if self._stop.is_set() or self._relist.is_set():
            return
        stream = self.client.watch(
            self.resource,
            self.namespace,
            resource_version=self._version,
            timeout_seconds=self._watch_timeout,
            field_selector=self._field_selector,
            label_selector=self._label_selector,
        )
        with self._lock:
            self._stream = stream
        if self._stop.is_set() or self._relist.is_set():  # stop()/resync() raced the open
            stream.close()
        try:
            for kind, obj in stream:
                self._backoff.reset()
                self._apply(kind, obj)
        finally:
            with self._lock:
                self._stream = None

    def _apply(self, kind: str, obj: JSON) -> None:
        version = meta(obj, "resourceVersion")
        if kind == "BOOKMARK":
            with self._lock:
                self._version = version or self._version
            return
        key = object_key(obj)
        if not key:
            return
        self._prepare(obj)
        with self._lock:
            if version:
                self._version = version
            own = self._own.get(key)
            if own is not None and kind != "DELETED":
                if version in own:
                    own.discard(version)
                    if not own:
                        del self._own[key]
                    return  # the echo of our own write, already stored (or superseded by a later one)
                del self._own[key]  # someone else's write, necessarily after ours
            elif own is not None:
                del self._own[key]
            old = self._store.get(key)
            if kind == "DELETED":
                self._store.pop(key, None)
            else:
                self._store[key] = obj
        if kind == "DELETED":
            self._deliver(Change("DELETED", key, obj, old))
        elif old is None:
            self._deliver(Change("ADDED", key, obj))
        elif meta(old, "resourceVersion") != version:
            self._deliver(Change("MODIFIED", key, obj, old))

    def _deliver(self, change: Change) -> None:
        try:
            self._handler(change)
        except Exception:
            log.exception("change handler failed", extra={"resource": self.name, "key": change.key})

    def _close_stream(self) -> None:
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()
