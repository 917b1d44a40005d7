"""A small client for the Kubernetes API on plain dicts, built on the official client's configuration.

The official `kubernetes` package loads kubeconfig files and in-cluster service-account credentials (with
token refresh) and builds the connection pool (TLS, client certificates, proxy); this module sends requests
through that pool with urllib3 itself and reads and writes JSON itself, so the rest of metallb-py works on
the same dicts as the API (and `kubectl get -o json`) shows, without the generated models' cost or their
loose types. Only the parts of the package that every supported version shares are used (`Configuration`,
`auth_settings()`, `ApiClient.rest_client.pool_manager`, `default_headers`): its request methods changed
shape in 37 (`param_serialize`), and the floor in pyproject.toml is tested in CI (`make test-floor`).

The `kubernetes` package costs a process about 20 MiB (its generated client imports every model), so it is
imported only when needed: `connect` reads the common configurations itself (in-cluster: the service
account's token, re-read every minute, and CA; a kubeconfig context whose user has a token or a client
certificate and whose cluster has a server and a CA or skips verification) and hands anything else (exec
plugins, auth providers, proxies, ...) to the package's loader, as before.

Every request is counted (`RequestCounter`), and writes can be gated by a guard (leader election: a replica
that is not the leader sends nothing) or fenced (each write sent only within a margin of time, which bounds
its request: see `fenced` and `metallb_py.k8s.leader.TermFence`). Whatever a request can fail with is one of
`metallb_py.k8s.errors`.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import json
import math
import os
import socket
import ssl
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import urllib3
import yaml

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

__all__ = [
    "Api",
    "KubeClient",
    "LightApi",
    "ListResult",
    "RequestCounter",
    "WatchStream",
    "connect",
    "in_cluster_api",
    "kubeconfig_api",
]

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


class RestClient(Protocol):
    @property
    def pool_manager(self) -> urllib3.PoolManager: ...


class Api(Protocol):
    """What KubeClient uses of its connection: a kubernetes.client.ApiClient, or the LightApi `connect` builds
    for the common configurations (same attributes)."""

    @property
    def configuration(self) -> Any: ...  # .host, .auth_settings()
    @property
    def rest_client(self) -> RestClient: ...
    @property
    def default_headers(self) -> dict[str, str]: ...
    def close(self) -> None: ...


class KubeClient:
    """Requests on dicts. Build one with `connect()`; share it between threads.

    `guard`, when set, is asked before every write (create, patch, update, delete); when it says no, the write
    raises NotLeaderError and nothing is sent. `fence`, when set, is asked right before each write is sent:
    the seconds the write may take (its whole request is bounded by them, and not retried), or None (or
    nothing left): NotLeaderError, nothing sent. Reads are never gated.
    """

    def __init__(
        self,
        api: Api,
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
        self._api.close()

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
    light = in_cluster_api() if kubeconfig is None else kubeconfig_api(Path(kubeconfig), context)
    if light is not None:
        light.default_headers["User-Agent"] = user_agent
        return KubeClient(light, timeout=timeout)
    import kubernetes  # noqa: PLC0415  (only these configurations pay for the package's 20 MiB)

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


# -- the common configurations, without the kubernetes package ---------------------------------------------

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_TOKEN_REFRESH = 60.0  # seconds between reads of a rotated service-account token (as the package does)
_LIGHT_USER_KEYS = frozenset(
    {"token", "client-certificate", "client-certificate-data", "client-key", "client-key-data"}
)
_LIGHT_CLUSTER_KEYS = frozenset(
    {"server", "certificate-authority", "certificate-authority-data", "insecure-skip-tls-verify"}
)


class _Configuration:
    """The part of kubernetes.client.Configuration KubeClient reads: `host`, and `auth_settings()` with the
    bearer token (from `token_file`, re-read every _TOKEN_REFRESH seconds, when given)."""

    def __init__(self, host: str, token: str | None = None, token_file: Path | None = None) -> None:
        self.host = host
        self._token, self._token_file = token, token_file
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def auth_settings(self) -> dict[str, dict[str, str]]:
        with self._lock:
            if self._token_file is not None and time.monotonic() - self._read_at >= _TOKEN_REFRESH:
                self._token = self._token_file.read_text().strip()
                self._read_at = time.monotonic()
            token = self._token
        if not token:
            return {}
        return {"BearerToken": {"in": "header", "key": "authorization", "value": f"Bearer {token}"}}


class _Rest:
    def __init__(self, pool_manager: urllib3.PoolManager) -> None:
        self.pool_manager = pool_manager


class LightApi:
    """A connection pool and a configuration with the attributes KubeClient uses of an ApiClient.

    The CA and the client certificate come as files (`ca_file`, `cert_file` and `key_file`, read at each new
    connection, so a rotated file is used) or as PEM data (`ca_data`, `client_data`: certificate and key),
    which stays in memory: a client key is never left in a file, also when the process is killed."""

    def __init__(
        self,
        host: str,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        ca_file: str | None = None,
        ca_data: str | None = None,
        verify: bool = True,
        cert_file: str | None = None,
        key_file: str | None = None,
        client_data: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.configuration = _Configuration(host, token, token_file)
        keepalive = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)]
        self.rest_client = _Rest(
            urllib3.PoolManager(
                num_pools=4,
                maxsize=_POOL_SIZE,
                cert_reqs="CERT_REQUIRED" if verify else "CERT_NONE",
                ca_certs=ca_file if verify else None,
                ca_cert_data=ca_data if verify else None,
                cert_file=cert_file,
                key_file=key_file,
                ssl_context=_client_context(*client_data) if client_data else None,
                socket_options=[*urllib3.connection.HTTPConnection.default_socket_options, *keepalive],
            )
        )
        self.default_headers: dict[str, str] = {}

    def close(self) -> None:
        self.rest_client.pool_manager.clear()


def in_cluster_api(directory: Path = SERVICE_ACCOUNT_DIR) -> LightApi | None:
    """The pod's service account as the package's load_incluster_config reads it; None when this is not a
    pod (the package's loader then says what is missing)."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    token, ca = directory / "token", directory / "ca.crt"
    if not host or not port or not token.is_file() or not ca.is_file():
        return None
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    return LightApi(f"https://{host}:{port}", token_file=token, ca_file=str(ca))


def kubeconfig_api(path: Path, context: str | None = None) -> LightApi | None:
    """The kubeconfig's context (`context`, else its current one) when its cluster and user need nothing
    but a server, a CA (or no verification), a token or a client certificate; None otherwise (and for
    anything unexpected: the package's loader reads it then, and says what is wrong)."""
    try:
        config = yaml.safe_load(path.read_text())
        contexts = {c["name"]: c["context"] for c in config.get("contexts") or []}
        chosen = contexts[context or config["current-context"]]
        cluster = {c["name"]: c["cluster"] for c in config.get("clusters") or []}[chosen["cluster"]]
        user = {u["name"]: u.get("user") or {} for u in config.get("users") or []}[chosen["user"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None
    if not isinstance(cluster, dict) or not isinstance(user, dict):
        return None
    if set(cluster) - _LIGHT_CLUSTER_KEYS or set(user) - _LIGHT_USER_KEYS or not cluster.get("server"):
        return None
    base = path.parent

    def file_of(item: Mapping[str, Any], key: str) -> str | None:
        """The path of `key`, relative to the kubeconfig's folder."""
        return str(base / str(item[key])) if item.get(key) else None

    def data_of(item: Mapping[str, Any], key: str) -> bytes | None:
        return base64.b64decode(item[f"{key}-data"]) if item.get(f"{key}-data") else None

    try:
        ca_data = data_of(cluster, "certificate-authority")
        cert_data, key_data = data_of(user, "client-certificate"), data_of(user, "client-key")
        if (cert_data is None) != (key_data is None):
            return None  # one as data, the other as a file: the package's loader handles it
        return LightApi(
            str(cluster["server"]).rstrip("/"),
            token=str(user["token"]) if user.get("token") else None,
            ca_file=file_of(cluster, "certificate-authority"),
            ca_data=ca_data.decode("ascii") if ca_data is not None else None,
            verify=not cluster.get("insecure-skip-tls-verify"),
            cert_file=file_of(user, "client-certificate"),
            key_file=file_of(user, "client-key"),
            client_data=(cert_data, key_data) if cert_data is not None and key_data is not None else None,
        )
    except (OSError, ValueError, ssl.SSLError):
        return None


def _client_context(cert: bytes, key: bytes) -> ssl.SSLContext:
    """A TLS context holding a client certificate and key given as PEM data. Python's ssl reads them only
    from files: they are written to a private folder and removed again before this returns."""
    context = urllib3.util.ssl_.create_urllib3_context()
    with tempfile.TemporaryDirectory(prefix="metallb-py-client-") as folder:
        cert_path, key_path = Path(folder, "tls.crt"), Path(folder, "tls.key")
        for path, data in ((cert_path, cert), (key_path, key)):
            path.touch(mode=0o600)
            path.write_bytes(data)
        context.load_cert_chain(cert_path, key_path)
    return context
