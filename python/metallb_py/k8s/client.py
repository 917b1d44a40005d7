"""A small client for the Kubernetes API on plain dicts, built on the official client's configuration.

The official `kubernetes` package loads kubeconfig files and in-cluster service-account credentials (with
token refresh) and builds the connection pool (TLS, client certificates, proxy); this module sends requests
through that pool with urllib3 itself and reads and writes JSON itself, so the rest of metallb-py works on
the same dicts as the API (and `kubectl get -o json`) shows, without the generated models' cost or their
loose types. Only the parts of the package that every supported version shares are used (`Configuration`,
`auth_settings()`, `ApiClient.rest_client.pool_manager`, `default_headers`): its request methods changed
shape in 37 (`param_serialize`), and the floor in pyproject.toml is tested in CI (`make test-floor`).

Every request is counted (`RequestCounter`), and writes can be gated by a guard (leader election: a replica
that is not the leader sends nothing) or fenced (each write sent only within a margin of time, which bounds
its request: see `fenced` and `metallb_py.k8s.leader.TermFence`). Whatever a request can fail with is one of
`metallb_py.k8s.errors`.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from os import PathLike
from typing import Any
from urllib.parse import urlencode

import kubernetes
import urllib3

from metallb_py.k8s.errors import (
    ApiError,
    ApiUnavailableError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    NotLeaderError,
)
from metallb_py.k8s.resources import Resource

__all__ = ["KubeClient", "ListResult", "RequestCounter", "WatchStream", "connect"]

JSON = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"
_DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
_POOL_SIZE = 32  # one connection per watch (about ten) plus writers; urllib3 discards beyond this


class RequestCounter:
    """Requests sent, by verb (`list`, `watch`, `get`, `create`, `patch`, `update`, `delete`) and resource.

    Thread-safe; shared by every view of one client (see KubeClient.guarded).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, verb: str, resource: str) -> None:
        with self._lock:
            self._counts[verb, resource] += 1

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def snapshot(self) -> dict[tuple[str, str], int]:
        with self._lock:
            return dict(self._counts)

    def by_verb(self) -> dict[str, int]:
        totals: Counter[str] = Counter()
        for (verb, _), n in self.snapshot().items():
            totals[verb] += n
        return dict(totals)


@dataclass(frozen=True)
class ListResult:
    """Every item of a (possibly paged) list, and the resourceVersion to watch from."""

    items: list[JSON]
    resource_version: str


class KubeClient:
    """Requests on dicts. Build one with `connect()`; share it between threads.

    `guard`, when set, is asked before every write (create, patch, update, delete); when it says no, the write
    raises NotLeaderError and nothing is sent. `fence`, when set, is asked right before each write is sent:
    the seconds the write may take (its whole request is bounded by them, and not retried), or None (or
    nothing left): NotLeaderError, nothing sent. Reads are never gated.
    """

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        timeout: tuple[float, float] = _DEFAULT_TIMEOUT,
        counter: RequestCounter | None = None,
        guard: Callable[[], bool] | None = None,
        fence: Callable[[], float | None] | None = None,
    ) -> None:
        self._api = api
        self.timeout = timeout
        self.requests = counter if counter is not None else RequestCounter()
        self._guard = guard
        self._fence = fence

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def guarded(self, guard: Callable[[], bool]) -> KubeClient:
        """A view of this client (same connections and counter) whose writes need `guard()` to be true."""
        return KubeClient(self._api, timeout=self.timeout, counter=self.requests, guard=guard)

    def fenced(self, margin: Callable[[], float | None]) -> KubeClient:
        """A view of this client whose writes are fenced by `margin()`, asked right before each is sent: the
        seconds it may take, or None when it must not be sent (NotLeaderError). A write cannot land later
        than that, as far as this side can tell: its request (connect, send, answer) is bounded by the
        margin and never retried here; the caller retries it, fenced again."""
        return KubeClient(self._api, timeout=self.timeout, counter=self.requests, fence=margin)

    def close(self) -> None:
        self._api.rest_client.pool_manager.clear()
        self._api.close()  # type: ignore[no-untyped-call]

    # -- reads -----------------------------------------------------------------------------------------------

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        return self._json("get", resource, "GET", resource.path(namespace, name))

    def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
        page_size: int = 500,
    ) -> ListResult:
        """Every object, page by page, as one consistent snapshot (resourceVersion unset: a quorum read).

        A continue token that expires between pages (GoneError) restarts the list once without paging.
        """
        query: dict[str, str] = {}
        if field_selector:
            query["fieldSelector"] = field_selector
        if label_selector:
            query["labelSelector"] = label_selector
        items: list[JSON] = []
        token = ""
        paged = page_size > 0
        while True:
            page_query = dict(query)
            if paged:
                page_query["limit"] = str(page_size)
            if token:
                page_query["continue"] = token
            try:
                page = self._json("list", resource, "GET", resource.path(namespace), query=page_query)
            except GoneError:
                if not token or not paged:
                    raise
                items, token, paged = [], "", False
                continue
            items.extend(page.get("items") or [])
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            if not token:
                return ListResult(items, str(metadata.get("resourceVersion", "")))

    def watch(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        resource_version: str,
        timeout_seconds: int = 300,
        field_selector: str | None = None,
        label_selector: str | None = None,
    ) -> WatchStream:
        """Opens a watch from `resource_version` (with bookmarks); the server ends it after `timeout_seconds`.

        Raises GoneError when that version is too old to resume from.
        """
        query = {
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if field_selector:
            query["fieldSelector"] = field_selector
        if label_selector:
            query["labelSelector"] = label_selector
        path = resource.path(namespace)
        # The read timeout only guards against a dead connection: the server sends bookmarks about once a
        # minute and closes the stream itself after timeout_seconds.
        response = self._send(
            "watch",
            resource,
            "GET",
            path,
            query=query,
            timeout=(self.timeout[0], timeout_seconds + 30.0),
        )
        return WatchStream(response, f"watch {path}")

    # -- writes ----------------------------------------------------------------------------------------------

    def create(self, resource: Resource, body: Mapping[str, Any], namespace: str | None = None) -> JSON:
        return self._json("create", resource, "POST", resource.path(namespace), body=body, write=True)

    def patch(
        self,
        resource: Resource,
        name: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> JSON:
        """A JSON merge patch by default. Put `metadata.resourceVersion` in `body` to make it conditional:
        the server then answers ConflictError when the object changed since that version."""
        return self._json(
            "patch",
            resource,
            "PATCH",
            resource.path(namespace, name, subresource),
            body=body,
            content_type=content_type,
            write=True,
        )

    def replace(
        self,
        resource: Resource,
        name: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JSON:
        """PUT: conditional on the body's metadata.resourceVersion (ConflictError when it changed)."""
        path = resource.path(namespace, name, subresource)
        return self._json("update", resource, "PUT", path, body=body, write=True)

    def delete(self, resource: Resource, name: str, namespace: str | None = None) -> JSON:
        return self._json("delete", resource, "DELETE", resource.path(namespace, name), write=True)

    # -- plumbing --------------------------------------------------------------------------------------------

    def _json(
        self,
        verb: str,
        resource: Resource,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        write: bool = False,
    ) -> JSON:
        if write and self._guard is not None and not self._guard():
            raise NotLeaderError(f"not the leader: {method} {path} not sent")
        response = self._send(
            verb,
            resource,
            method,
            path,
            query=query,
            body=body,
            content_type=content_type,
            fence=self._fence if write else None,
        )
        try:
            data = response.data
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiUnavailableError(
                0, "", f"reading the answer failed: {exc}", request=f"{method} {path}"
            ) from exc
        finally:
            response.release_conn()
        try:
            decoded = json.loads(data) if data else {}
        except ValueError as exc:
            raise ApiUnavailableError(0, "", f"not JSON: {data[:200]!r}", request=f"{method} {path}") from exc
        if not isinstance(decoded, dict):
            raise ApiUnavailableError(0, "", f"expected an object, got {type(decoded).__name__}")
        return decoded

    def _credentials(self, request: str) -> dict[str, str]:
        """The Authorization header of the configuration's bearer token, if it has one (client certificates
        are in the connection pool instead).

        Asking for the token runs the configuration's refresh hook: in a pod it rereads the rotated
        service-account token, with a kubeconfig it may run an exec plugin or an OIDC refresh. Whatever that
        third-party code raises means no request can be sent now, like a refused connection.
        """
        try:
            auth = self._api.configuration.auth_settings().get("BearerToken")
        except Exception as exc:
            raise ApiUnavailableError(0, "", f"no credentials: {exc!r}", request=request) from exc
        if auth is None or not auth.get("value"):
            return {}
        return {"Authorization": str(auth["value"])}

    def _send(
        self,
        verb: str,
        resource: Resource,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: tuple[float, float] | None = None,
        fence: Callable[[], float | None] | None = None,
    ) -> urllib3.BaseHTTPResponse:
        """Sends one request; returns the urllib3 response of a 2xx answer, raises ApiError otherwise.

        With `fence`, asked last before sending (after the credentials, which may take a while): None or no
        time left raises NotLeaderError; otherwise the margin bounds the whole request, which urllib3 must
        not retry (a retry would start the clock again)."""
        request = f"{method} {path}"
        headers = {**self._api.default_headers, **self._credentials(request), "Accept": "application/json"}
        connect_timeout, read_timeout = timeout if timeout is not None else self.timeout
        limits = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        retries: urllib3.Retry | bool | None = None
        if fence is not None:
            margin = fence()
            if margin is None or margin <= 0:
                raise NotLeaderError(f"not leading in the term this write was decided in: {request} not sent")
            if math.isfinite(margin):
                limits = urllib3.Timeout(
                    total=margin, connect=min(connect_timeout, margin), read=min(read_timeout, margin)
                )
                retries = False
        self.requests.add(verb, str(resource))
        payload = None
        if body is not None:
            headers["Content-Type"] = content_type
            payload = json.dumps(body).encode()
        url = str(self._api.configuration.host) + path
        if query:
            url += "?" + urlencode(query)
        options: dict[str, Any] = {} if retries is None else {"retries": retries}
        try:
            response = self._api.rest_client.pool_manager.request(
                method, url, body=payload, headers=headers, timeout=limits, preload_content=False, **options
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ApiUnavailableError(0, "", f"no answer: {exc}", request=request) from exc
        status = int(response.status)
        if 200 <= status < 300:
            return response
        try:
            data = response.data
        except (urllib3.exceptions.HTTPError, OSError):
            data = b""
        finally:
            response.release_conn()
        raise error_for_status(status, data, request)


def error_for_status(status: int, body: bytes, request: str = "") -> ApiError:
    """The ApiError subclass for an HTTP status and the Status object the server sent with it."""
    reason, message = "", body.decode("utf-8", errors="replace")[:500]
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        reason = str(decoded.get("reason") or "")
        message = str(decoded.get("message") or message)
    return status_error(status, reason, message, request)


def status_error(status: int, reason: str, message: str, request: str = "") -> ApiError:
    cls: type[ApiError]
    if status == 409:
        cls = ConflictError
    elif status == 404:
        cls = NotFoundError
    elif status == 410:
        cls = GoneError
    elif status == 403:
        cls = ForbiddenError
    elif status in (400, 422):
        cls = InvalidError
    elif status == 429 or status >= 500 or status == 0:
        cls = ApiUnavailableError
    else:
        cls = ApiError
    return cls(status, reason, message, request=request)


class WatchStream:
    """The events of one watch: `(type, object)` pairs, type one of ADDED, MODIFIED, DELETED, BOOKMARK.

    Iteration ends when the server closes the stream; an ERROR event raises its ApiError (GoneError for an
    expired resourceVersion); a broken connection raises ApiUnavailableError. `close()` may be called from
    another thread to end it at once.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse, request: str) -> None:
        self._response = response
        self._request = request
        self._closed = False

    def __iter__(self) -> Iterator[tuple[str, JSON]]:
        buffer = b""
        try:
            # A closed urllib3 response must not be read again (its file object is gone: AttributeError), so
            # the closed flag is checked before every read: closed before the first one (a stop that raced
            # the open), or by the consumer while it handled an event.
            chunks = self._response.stream(amt=None, decode_content=True)
            while not self._closed:
                chunk = next(chunks, None)
                if chunk is None:
                    return
                buffer += chunk
                while not self._closed:
                    line, newline, rest = buffer.partition(b"\n")
                    if not newline:
                        break
                    buffer = rest
                    if line.strip():
                        yield self._event(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError, AttributeError) as exc:
            # Closed from another thread in the middle of a read: shutdown() ends the read with an error,
            # close() may take the file object from under it.
            if self._closed:
                return
            if isinstance(exc, AttributeError):
                raise
            raise ApiUnavailableError(0, "", f"watch interrupted: {exc}", request=self._request) from exc
        finally:
            self.close()

    def _event(self, line: bytes) -> tuple[str, JSON]:
        try:
            event = json.loads(line)
            kind, obj = event["type"], event["object"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ApiUnavailableError(
                0, "", f"bad watch event: {line[:200]!r}", request=self._request
            ) from exc
        if kind == "ERROR":
            obj = obj if isinstance(obj, dict) else {}
            raise status_error(
                int(obj.get("code") or 0),
                str(obj.get("reason") or ""),
                str(obj.get("message") or ""),
                self._request,
            )
        return str(kind), obj

    def close(self) -> None:
        """Ends the stream, from any thread: a reader blocked on the socket returns at once."""
        if self._closed:
            return
        self._closed = True
        # shutdown() unblocks a read in another thread (release_conn() alone would wait for it); it refuses
        # (ValueError, RuntimeError) when the connection is already closed or back in the pool: then there
        # is nothing left to unblock.
        with contextlib.suppress(urllib3.exceptions.HTTPError, OSError, ValueError, RuntimeError):
            self._response.shutdown()
        with contextlib.suppress(urllib3.exceptions.HTTPError, OSError):
            self._response.close()
        self._response.release_conn()


def connect(
    kubeconfig: str | PathLike[str] | None = None,
    *,
    context: str | None = None,
    timeout: tuple[float, float] = _DEFAULT_TIMEOUT,
    user_agent: str = "metallb-py",
) -> KubeClient:
    """A client from a kubeconfig file, or (kubeconfig None) from the pod's service account (in-cluster).

    `user_agent` is how the API server (its audit log, its metrics, `kubectl get --raw /metrics`) tells this
    program's requests from the others': the controller and the speaker each pass their own.
    """
    configuration = kubernetes.client.Configuration()
    if kubeconfig is None:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    else:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig),
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    configuration.connection_pool_maxsize = _POOL_SIZE
    api = kubernetes.client.ApiClient(configuration)
    api.user_agent = user_agent
    return KubeClient(api, timeout=timeout)
