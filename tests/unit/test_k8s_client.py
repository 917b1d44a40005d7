"""KubeClient on the wire, against a small HTTP server on 127.0.0.1 that stands in for the API server: what
it sends (user agent, credentials, query, body) and how every way a request can fail maps to one of
metallb_py.k8s.errors. The same requests against a real API server are in
tests/integration/test_k8s_client_apiserver.py.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import kubernetes
import pytest
import yaml

from metallb_py.k8s import (
    ApiError,
    ApiUnavailableError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    KubeClient,
    NotFoundError,
    NotLeaderError,
    connect,
)
from metallb_py.k8s.resources import CONFIGMAPS

TOKEN = "a-token-of-the-kubeconfig"


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


# What the server does with a request: (status, headers, body), or None to close the connection unanswered.
Answer = tuple[int, dict[str, str], bytes] | None


@dataclass
class FakeApiServer:
    answer: Callable[[Seen], Answer]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""


def ok(obj: dict[str, Any]) -> Answer:
    return 200, {"Content-Type": "application/json"}, json.dumps(obj).encode()


def status(code: int, reason: str, message: str) -> Answer:
    body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code}
    body |= {"reason": reason, "message": message}
    return code, {"Content-Type": "application/json"}, json.dumps(body).encode()


@pytest.fixture
def server() -> Iterator[FakeApiServer]:
    fake = FakeApiServer(answer=lambda seen: ok({"kind": "ConfigMap", "metadata": {"name": "x"}}))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            parts = urlsplit(self.path)
            seen = Seen(
                self.command,
                parts.path,
                parse_qs(parts.query),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            fake.seen.append(seen)
            answer = fake.answer(seen)
            if answer is None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            code, headers, body = answer
            self.send_response(code)
            if "Transfer-Encoding" not in headers:
                headers.setdefault("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
            if int(headers.get("Content-Length", len(body))) > len(body):
                # Promised more than it sent: cut the connection mid-body.
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle  # noqa: N815 (http.server names them)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def kubeconfig_for(tmp_path: Path, server_url: str) -> Path:
    path = tmp_path / "kubeconfig"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server_url}}],
        "users": [{"name": "u", "user": {"token": TOKEN}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def client(server: FakeApiServer, tmp_path: Path) -> Iterator[KubeClient]:
    kube = connect(kubeconfig_for(tmp_path, server.url), timeout=(5.0, 10.0))
    try:
        yield kube
    finally:
        kube.close()


def test_the_api_server_sees_the_agent_connect_was_given(server: FakeApiServer, tmp_path: Path) -> None:
    kube = connect(kubeconfig_for(tmp_path, server.url), user_agent="metallb-py-speaker")
    try:
        kube.get(CONFIGMAPS, "x", "default")
    finally:
        kube.close()
    assert [seen.headers["user-agent"] for seen in server.seen] == ["metallb-py-speaker"]


def test_without_an_agent_the_library_names_itself(server: FakeApiServer, client: KubeClient) -> None:
    client.get(CONFIGMAPS, "x", "default")
    assert server.seen[0].headers["user-agent"] == "metallb-py"


def test_every_request_carries_the_kubeconfig_token(server: FakeApiServer, client: KubeClient) -> None:
    client.get(CONFIGMAPS, "x", "default")
    client.delete(CONFIGMAPS, "x", "default")
    assert [seen.headers["authorization"] for seen in server.seen] == [f"Bearer {TOKEN}"] * 2


def test_a_list_sends_its_selectors_and_page_size(server: FakeApiServer, client: KubeClient) -> None:
    server.answer = lambda seen: ok(
        {"items": [{"metadata": {"name": "a"}}], "metadata": {"resourceVersion": "7"}}
    )
    result = client.list(CONFIGMAPS, "default", label_selector="app in (a,b),tier!=x", field_selector="a=b")
    assert (result.items, result.resource_version) == ([{"metadata": {"name": "a"}}], "7")
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("GET", "/api/v1/namespaces/default/configmaps")
    assert seen.query == {
        "labelSelector": ["app in (a,b),tier!=x"],
        "fieldSelector": ["a=b"],
        "limit": ["500"],
    }


def test_a_patch_sends_its_body_as_a_merge_patch(server: FakeApiServer, client: KubeClient) -> None:
    answer = client.patch(CONFIGMAPS, "x", {"data": {"k": "v"}}, "default")
    assert answer == {"kind": "ConfigMap", "metadata": {"name": "x"}}
    (seen,) = server.seen
    assert (seen.method, seen.path) == ("PATCH", "/api/v1/namespaces/default/configmaps/x")
    assert seen.headers["content-type"] == "application/merge-patch+json"
    assert json.loads(seen.body) == {"data": {"k": "v"}}


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [
        (404, "NotFound", NotFoundError),
        (409, "Conflict", ConflictError),
        (410, "Expired", GoneError),
        (403, "Forbidden", ForbiddenError),
        (422, "Invalid", InvalidError),
        (400, "BadRequest", InvalidError),
        (429, "TooManyRequests", ApiUnavailableError),
        (503, "ServiceUnavailable", ApiUnavailableError),
        (418, "Teapot", ApiError),
    ],
)
def test_a_status_answer_is_its_error(
    server: FakeApiServer, client: KubeClient, code: int, reason: str, error: type[ApiError]
) -> None:
    server.answer = lambda seen: status(code, reason, f"said {code}")
    with pytest.raises(ApiError) as raised:
        client.get(CONFIGMAPS, "x", "default")
    assert type(raised.value) is error
    assert (raised.value.status, raised.value.reason, raised.value.message) == (code, reason, f"said {code}")
    assert raised.value.request == "GET /api/v1/namespaces/default/configmaps/x"


def test_nobody_listening_is_api_unavailable(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    kube = connect(kubeconfig_for(tmp_path, f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(ApiUnavailableError) as raised:
            kube.get(CONFIGMAPS, "x", "default")
    finally:
        kube.close()
    assert raised.value.status == 0
    assert raised.value.temporary


def test_a_connection_closed_without_an_answer_is_api_unavailable(
    server: FakeApiServer, client: KubeClient
) -> None:
    server.answer = lambda seen: None
    with pytest.raises(ApiUnavailableError):
        client.create(CONFIGMAPS, {"metadata": {"name": "x"}}, "default")
    assert server.seen, "the request reached the server"


def test_an_answer_cut_mid_body_is_api_unavailable(server: FakeApiServer, client: KubeClient) -> None:
    server.answer = lambda seen: (200, {"Content-Length": "1000"}, b'{"kind": "Con')
    with pytest.raises(ApiUnavailableError):
        client.get(CONFIGMAPS, "x", "default")


@pytest.mark.parametrize("body", [b"<html>a proxy page</html>", b"[1, 2]"])
def test_an_answer_that_is_not_a_json_object_is_api_unavailable(
    server: FakeApiServer, client: KubeClient, body: bytes
) -> None:
    server.answer = lambda seen: (200, {"Content-Type": "application/json"}, body)
    with pytest.raises(ApiUnavailableError):
        client.get(CONFIGMAPS, "x", "default")


def test_credentials_that_cannot_be_refreshed_are_api_unavailable_and_nothing_is_sent(
    server: FakeApiServer,
) -> None:
    """The in-cluster loader rereads the service-account token in this hook and raises when it is gone."""

    def token_file_gone(configuration: kubernetes.client.Configuration) -> None:
        raise kubernetes.config.ConfigException("Service token file does not exist.")

    configuration = kubernetes.client.Configuration()
    configuration.host = server.url
    configuration.api_key = {"authorization": "Bearer old"}
    configuration.refresh_api_key_hook = token_file_gone  # type: ignore[assignment]  # typed as None there
    kube = KubeClient(kubernetes.client.ApiClient(configuration))
    try:
        with pytest.raises(ApiUnavailableError, match="Service token file does not exist"):
            kube.get(CONFIGMAPS, "x", "default")
    finally:
        kube.close()
    assert server.seen == []


def chunked(*pieces: bytes) -> Answer:
    """A streamed answer, as the API server sends a watch: each piece one HTTP chunk."""
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"
    return 200, {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}, body


def event(kind: str, name: str) -> bytes:
    return json.dumps({"type": kind, "object": {"metadata": {"name": name}}}).encode() + b"\n"


def test_a_watch_yields_each_event_whatever_the_chunks(server: FakeApiServer, client: KubeClient) -> None:
    lines = event("ADDED", "a") + event("MODIFIED", "a") + event("DELETED", "a")
    server.answer = lambda seen: chunked(lines[:10], lines[10:70], lines[70:])
    stream = client.watch(CONFIGMAPS, "default", resource_version="5")
    assert [(kind, obj["metadata"]["name"]) for kind, obj in stream] == [
        ("ADDED", "a"),
        ("MODIFIED", "a"),
        ("DELETED", "a"),
    ]
    assert server.seen[0].query["resourceVersion"] == ["5"]
    assert server.seen[0].query["watch"] == ["1"]


def test_a_watch_closed_before_its_first_read_yields_nothing(
    server: FakeApiServer, client: KubeClient
) -> None:
    """The Reflector closes a stream that a stop raced while it was opening, then iterates it."""
    server.answer = lambda seen: chunked(event("ADDED", "a"))
    stream = client.watch(CONFIGMAPS, "default", resource_version="5")
    stream.close()
    assert list(stream) == []


def test_a_watch_closed_by_its_consumer_ends_after_that_event(
    server: FakeApiServer, client: KubeClient
) -> None:
    server.answer = lambda seen: chunked(event("ADDED", "a"), event("ADDED", "b"), event("ADDED", "c"))
    stream = client.watch(CONFIGMAPS, "default", resource_version="5")
    names = []
    for _, obj in stream:
        names.append(obj["metadata"]["name"])
        stream.close()
    assert names == ["a"]


def test_an_error_event_raises_its_status_error(server: FakeApiServer, client: KubeClient) -> None:
    expired = {
        "type": "ERROR",
        "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "old"},
    }
    server.answer = lambda seen: chunked(event("ADDED", "a"), json.dumps(expired).encode() + b"\n")
    stream = client.watch(CONFIGMAPS, "default", resource_version="5")
    with pytest.raises(GoneError) as raised:
        list(stream)
    assert (raised.value.reason, raised.value.message) == ("Expired", "old")


@pytest.mark.parametrize("line", [b"not json\n", b'{"type": "ADDED"}\n'])
def test_a_garbled_event_is_api_unavailable(server: FakeApiServer, client: KubeClient, line: bytes) -> None:
    server.answer = lambda seen: chunked(line)
    with pytest.raises(ApiUnavailableError, match="bad watch event"):
        list(client.watch(CONFIGMAPS, "default", resource_version="5"))


def late_answer(released: threading.Event, hold: float = 8.0) -> Callable[[Seen], Answer]:
    """An API server that takes its time: answers 200 once `released` (or after `hold` seconds)."""

    def answer(seen: Seen) -> Answer:
        released.wait(hold)
        return ok({"kind": "ConfigMap", "metadata": {"name": "x", "resourceVersion": "2"}})

    return answer


def test_a_fenced_write_gives_up_when_its_margin_runs_out_and_is_not_resent(
    server: FakeApiServer, client: KubeClient
) -> None:
    """A write whose fence allowed it with half a second of leadership left must not wait for an answer the
    server gives later (after another replica may have taken over): its request is bounded by the margin,
    not by the client's read timeout (10 s here), and urllib3 does not send it again."""
    released = threading.Event()
    server.answer = late_answer(released)
    fenced = client.fenced(lambda: 0.5)
    try:
        with pytest.raises(ApiUnavailableError):
            fenced.patch(CONFIGMAPS, "x", {"metadata": {"resourceVersion": "1"}}, "default")
    finally:
        released.set()
    assert [s.method for s in server.seen] == ["PATCH"]


@pytest.mark.parametrize("margin", [None, 0.0, -1.0])
def test_a_fenced_write_without_margin_is_not_sent(
    server: FakeApiServer, client: KubeClient, margin: float | None
) -> None:
    fenced = client.fenced(lambda: margin)
    with pytest.raises(NotLeaderError):
        fenced.create(CONFIGMAPS, {"metadata": {"name": "x"}}, "default")
    assert fenced.get(CONFIGMAPS, "x", "default")["metadata"]["name"] == "x"  # reads are not fenced
    assert [s.method for s in server.seen] == ["GET"]
    assert client.requests.by_verb() == {"get": 1}
