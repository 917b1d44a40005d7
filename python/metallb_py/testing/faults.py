"""The fault lab: Toxiproxy between a program and the API server, and an independent observer of Services
with a pure checker of MetalLB's promises.

- `ensure_toxiproxy_binary()` finds the Toxiproxy server that tools/toxiproxy/build.sh built from the Go
  module proxy and cached (never building it unasked, like the control plane's binaries).
- `Toxiproxy` runs that server on 127.0.0.1 (a free port) and drives its HTTP API: `create_proxy()` puts a
  `Proxy` in front of a loopback port (the API server's), on which toxics (`Toxic.latency`, `bandwidth`,
  `timeout`, `reset_peer`, `slicer`) are added, updated and removed, and which can be disabled (every
  connection dropped and refused) and enabled again.
- `ServiceObserver` watches Services on the API server directly (never through a proxy) and records every
  change with its resourceVersion as an `Observation`: the addresses, what MetalLB's sharing rule reads, and a
  fingerprint of what the user asked (spec, labels, MetalLB's annotations).
- `check(history, pool)` is pure: it replays the observations in resourceVersion order and returns a
  `Verdict` naming every `Duplicate` (two Services holding one address at one moment without the sharing rule
  allowing it), every `Move` (an assigned address changed although the user asked nothing since it was
  given) and every `Stuck` Service (unassigned at the end while an address is free for it).

Every byte stays on 127.0.0.1. Only the observer talks to the API, through metallb_py.k8s.
"""

from __future__ import annotations

import atexit
import hashlib
import ipaddress
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

import yaml

from metallb_py.errors import MetalLBError
from metallb_py.k8s import ApiError, GoneError, KubeClient, connect
from metallb_py.k8s.resources import SERVICES
from metallb_py.testing.controlplane import LocalControlPlane, default_cache_dir
from metallb_py.testing.process import NO_PROXY_ENV, ChildProcess, free_loopback_port, tail_log

__all__ = [
    "DEFAULT_TOXIPROXY_VERSION",
    "POOL_ANNOTATION",
    "TOXIC_KINDS",
    "Duplicate",
    "FaultLabError",
    "Move",
    "Observation",
    "Proxy",
    "ServiceObserver",
    "Stuck",
    "Toxic",
    "Toxiproxy",
    "ToxiproxyNotBuiltError",
    "Verdict",
    "addresses",
    "check",
    "ensure_toxiproxy_binary",
    "may_share",
    "observe",
]

# The version pinned by tools/toxiproxy/go.mod; a unit test keeps the two equal.
DEFAULT_TOXIPROXY_VERSION = "v2.5.0"
# The annotation the controller writes itself: not something the user asked.
POOL_ANNOTATION = "metallb.io/ip-allocated-from-pool"
TOXIC_KINDS = ("latency", "bandwidth", "timeout", "reset_peer", "slicer")

_REPO_ROOT = Path(__file__).resolve().parents[3]
_BUILD_SCRIPT = _REPO_ROOT / "tools" / "toxiproxy" / "build.sh"
_LOOPBACK = "127.0.0.1"
_SERVER = "toxiproxy-server"
_METALLB_PREFIXES = ("metallb.io/", "metallb.universe.tf/")
_OWNED = "/ip-allocated-from-pool"  # under either prefix


class FaultLabError(MetalLBError):
    """Toxiproxy failed to start or refused a request, or the observer could not start: the message says
    why."""


class ToxiproxyNotBuiltError(FaultLabError):
    """The Toxiproxy server is not in the cache and nobody asked for a build: the message says how
    (`tools/toxiproxy/build.sh`, about 20 seconds). Fault tests skip on it unless told to require it."""


def ensure_toxiproxy_binary(
    cache_dir: Path | None = None, *, build: bool = False, progress: IO[str] | None = None
) -> Path:
    """The toxiproxy-server of DEFAULT_TOXIPROXY_VERSION from the cache (~/.cache/metallb-py/toxiproxy).

    By default this only looks, and raises ToxiproxyNotBuiltError saying how to build it. With build=True
    it runs tools/toxiproxy/build.sh when the binary is missing (progress to `progress`, default stderr);
    FaultLabError when that fails or there is no Go.
    """
    cache = cache_dir if cache_dir is not None else default_cache_dir()  # as build.sh's
    binary = cache / "toxiproxy" / DEFAULT_TOXIPROXY_VERSION / "bin" / _SERVER
    if os.access(binary, os.X_OK):
        return binary
    if not build or not _BUILD_SCRIPT.is_file():
        raise ToxiproxyNotBuiltError(
            f"Toxiproxy {DEFAULT_TOXIPROXY_VERSION} is not built in {binary.parent}: build it once with "
            "`tools/toxiproxy/build.sh` from a metallb-py checkout (about 20 s with Go >= 1.26), or point "
            "METALLB_PY_CACHE at a cache that has it"
        )
    out = progress if progress is not None else sys.stderr
    env = {**os.environ, "METALLB_PY_CACHE": str(cache)}
    done = subprocess.run(["bash", str(_BUILD_SCRIPT)], capture_output=True, text=True, env=env, check=False)
    out.write(done.stderr)
    out.flush()
    if done.returncode != 0 or not os.access(binary, os.X_OK):
        raise FaultLabError(
            f"building Toxiproxy failed (tools/toxiproxy/build.sh exited {done.returncode}); see its output "
            "above for what to do"
        )
    return binary


# -- Toxiproxy -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Toxic:
    """One toxic as Toxiproxy's API takes it. `stream` is "downstream" (server to client, the default) or
    "upstream"; `toxicity` the share of connections it applies to. Build one with the class methods."""

    kind: str
    attributes: Mapping[str, int]
    stream: str = "downstream"
    toxicity: float = 1.0
    name: str = ""

    def __post_init__(self) -> None:
        if self.kind not in TOXIC_KINDS:
            raise ValueError(f"unknown toxic {self.kind!r}; expected one of {', '.join(TOXIC_KINDS)}")
        if self.stream not in ("downstream", "upstream"):
            raise ValueError(f"stream must be 'downstream' or 'upstream', not {self.stream!r}")
        if not 0.0 <= self.toxicity <= 1.0:
            raise ValueError(f"toxicity is a share of connections in [0, 1], not {self.toxicity}")
        if any(value < 0 for value in self.attributes.values()):
            raise ValueError(f"toxic attributes cannot be negative: {dict(self.attributes)}")

    @property
    def key(self) -> str:
        """Its name in the proxy (kind_stream unless named)."""
        return self.name or f"{self.kind}_{self.stream}"

    @classmethod
    def latency(cls, ms: int, jitter_ms: int = 0, *, stream: str = "downstream") -> Toxic:
        """Every chunk of data waits `ms` milliseconds, +/- up to `jitter_ms`."""
        return cls("latency", {"latency": ms, "jitter": jitter_ms}, stream)

    @classmethod
    def bandwidth(cls, kb_per_second: int, *, stream: str = "downstream") -> Toxic:
        """At most `kb_per_second` KB a second get through."""
        return cls("bandwidth", {"rate": kb_per_second}, stream)

    @classmethod
    def timeout(cls, ms: int = 0, *, stream: str = "downstream") -> Toxic:
        """A black hole: no data gets through; the connection closes after `ms` (0: stays open, silent,
        until the toxic is removed)."""
        return cls("timeout", {"timeout": ms}, stream)

    @classmethod
    def reset_peer(cls, after_ms: int = 0, *, stream: str = "downstream") -> Toxic:
        """Connections are reset (TCP RST, "connection reset by peer") `after_ms` after they carry data."""
        return cls("reset_peer", {"timeout": after_ms}, stream)

    @classmethod
    def slicer(
        cls, average_size: int, size_variation: int = 0, delay_us: int = 0, *, stream: str = "downstream"
    ) -> Toxic:
        """Data arrives in slices of about `average_size` bytes (+/- `size_variation`), `delay_us`
        microseconds apart: every reader's reassembly of partial lines and frames is exercised."""
        return cls(
            "slicer",
            {"average_size": average_size, "size_variation": size_variation, "delay": delay_us},
            stream,
        )

    def body(self) -> dict[str, Any]:
        return {
            "name": self.key,
            "type": self.kind,
            "stream": self.stream,
            "toxicity": self.toxicity,
            "attributes": dict(self.attributes),
        }


class Toxiproxy:
    """A toxiproxy-server on 127.0.0.1 (its API on a free port), stopped and forgotten by stop().

    with Toxiproxy() as toxiproxy:
        proxy = toxiproxy.create_proxy("apiserver", api_port)
        with proxy.toxic(Toxic.latency(500)):
            ...  # clients of 127.0.0.1:proxy.listen_port see 500 ms more per response
    """

    def __init__(self, binary: Path | None = None, *, start_timeout: float = 30.0) -> None:
        self._binary = binary
        self._timeout = start_timeout
        self._process: ChildProcess | None = None
        self._workdir: Path | None = None
        self.api_port = 0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{_LOOPBACK}:{self.api_port}"

    def start(self) -> None:
        if self._process is not None:
            raise FaultLabError("this toxiproxy is already running")
        binary = self._binary if self._binary is not None else ensure_toxiproxy_binary()
        self._workdir = Path(tempfile.mkdtemp(prefix="metallb-py-toxiproxy-"))
        atexit.register(self.stop)
        log = self._workdir / "toxiproxy.log"
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **NO_PROXY_ENV}
        for _attempt in (1, 2):  # a port taken between the probe and the bind: once more, on a new one
            self.api_port = free_loopback_port()
            self._process = ChildProcess(
                "toxiproxy", [str(binary), "-host", _LOOPBACK, "-port", str(self.api_port)], log, env
            )
            deadline = time.monotonic() + self._timeout
            while self._process.running() and time.monotonic() < deadline:
                try:
                    self._request("GET", "/version")
                    return
                except FaultLabError:
                    time.sleep(0.05)
            self._process.stop()
            if "address already in use" not in tail_log(log):
                break
        text = tail_log(log)
        self.stop()
        raise FaultLabError(
            f"toxiproxy-server did not answer on 127.0.0.1 within {self._timeout:.0f}s\n{text}"
        )

    def stop(self) -> None:
        """Stops the server: every proxy closes with it."""
        atexit.unregister(self.stop)
        if self._process is not None:
            self._process.stop(5)
            self._process = None
        if self._workdir is not None:
            for child in self._workdir.iterdir():
                child.unlink(missing_ok=True)
            self._workdir.rmdir()
            self._workdir = None

    def create_proxy(self, name: str, upstream_port: int, *, listen_port: int = 0) -> Proxy:
        """A proxy from 127.0.0.1:listen_port (0: Toxiproxy picks a free one) to 127.0.0.1:upstream_port."""
        body = {
            "name": name,
            "listen": f"{_LOOPBACK}:{listen_port}",
            "upstream": f"{_LOOPBACK}:{upstream_port}",
            "enabled": True,
        }
        created = self._request("POST", "/proxies", body)
        listen = str(created.get("listen", ""))
        return Proxy(self, name, int(listen.rpartition(":")[2]), upstream_port)

    def proxy_api_server(self, cp: LocalControlPlane, kubeconfig: Path, *, name: str = "apiserver") -> Proxy:
        """A proxy before `cp`'s API server; writes at `kubeconfig` a copy of cp's kubeconfig that reaches the
        API server through it."""
        port = urllib.parse.urlsplit(cp.server).port
        if port is None:
            raise FaultLabError(f"the control plane's server {cp.server} names no port")
        proxy = self.create_proxy(name, port)
        proxy.kubeconfig(cp.kubeconfig, kubeconfig)
        return proxy

    def reset(self) -> None:
        """Every proxy enabled, every toxic removed."""
        self._request("POST", "/reset")

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float = 10.0,
        missing_ok: bool = False,
    ) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as exc:
            with exc:
                detail = exc.read().decode(errors="replace").strip()
            if missing_ok and exc.code == 404:
                return {}
            raise FaultLabError(f"toxiproxy refused {method} {path}: {exc.code} {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise FaultLabError(f"toxiproxy at {self.url} did not answer {method} {path}: {exc}") from None
        if not text.strip():
            return {}
        try:
            decoded = json.loads(text)
        except ValueError:  # /version answers plain text
            return {"text": text.decode(errors="replace").strip()}
        return decoded if isinstance(decoded, dict) else {"items": decoded}


REMOVE_PATIENCE = 120.0  # seconds a toxic's removal is retried before the fault lab gives up


@dataclass
class Proxy:
    """One proxy of a Toxiproxy server: clients connect to 127.0.0.1:listen_port instead of the upstream."""

    server: Toxiproxy
    name: str
    listen_port: int
    upstream_port: int

    def add(self, toxic: Toxic) -> None:
        self.server._request("POST", f"/proxies/{self.name}/toxics", toxic.body())

    def update(self, key: str, **attributes: int) -> None:
        """Changes attributes of the toxic named `key` in place (open connections included)."""
        self.server._request("POST", f"/proxies/{self.name}/toxics/{key}", {"attributes": attributes})

    def remove(self, key: str) -> None:
        """Removes the toxic `key` (gone already is fine). Toxiproxy answers only once the toxic's pending
        data went through, which under long latency on a busy machine can outlast one request's timeout
        (seen in CI: the latency toxic stayed and every later fault ran behind it): the removal is asked
        again until it is gone, for up to REMOVE_PATIENCE seconds."""
        deadline = time.monotonic() + REMOVE_PATIENCE
        while True:
            try:
                self.server._request(
                    "DELETE", f"/proxies/{self.name}/toxics/{key}", timeout=30, missing_ok=True
                )
                return
            except FaultLabError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def toxics(self) -> list[dict[str, Any]]:
        answer = self.server._request("GET", f"/proxies/{self.name}/toxics")
        items = answer.get("items", [])
        return list(items) if isinstance(items, list) else []

    def clear(self) -> None:
        """Removes every toxic."""
        for toxic in self.toxics():
            self.remove(str(toxic["name"]))

    def disable(self) -> None:
        """Closes every connection and refuses new ones until enable()."""
        self.server._request("POST", f"/proxies/{self.name}", {"enabled": False})

    def enable(self) -> None:
        self.server._request("POST", f"/proxies/{self.name}", {"enabled": True})

    def toxic(self, *toxics: Toxic) -> _Applied:
        """`with proxy.toxic(t1, t2):` the toxics hold inside the block and are removed after it."""
        return _Applied(self, toxics)

    def kubeconfig(self, original: Path, out: Path) -> Path:
        """A copy of kubeconfig `original` (for a server on upstream_port) whose clusters point at this proxy;
        TLS still verifies the API server's certificate (issued for 127.0.0.1), as only the port changes."""
        config = yaml.safe_load(original.read_text())
        for cluster in config.get("clusters") or []:
            server = str(cluster["cluster"]["server"])
            expected = f"https://{_LOOPBACK}:{self.upstream_port}"
            if server.rstrip("/") != expected:
                raise FaultLabError(
                    f"{original}: cluster server {server} is not this proxy's upstream {expected}"
                )
            cluster["cluster"]["server"] = f"https://{_LOOPBACK}:{self.listen_port}"
        out.write_text(yaml.safe_dump(config, sort_keys=False))
        out.chmod(0o600)
        return out


class _Applied:
    def __init__(self, proxy: Proxy, toxics: Sequence[Toxic]) -> None:
        self._proxy, self._toxics = proxy, toxics

    def __enter__(self) -> Proxy:
        for toxic in self._toxics:
            self._proxy.add(toxic)
        return self._proxy

    def __exit__(self, *exc: object) -> None:
        for toxic in self._toxics:
            self._proxy.remove(toxic.key)


# -- observations --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """One Service as one watch event showed it. `kind` is ADDED, MODIFIED, DELETED, or RELISTED (seen in a
    list after a watch could not resume: changes in between were missed); `resource_version` orders them."""

    kind: str
    key: str
    uid: str
    resource_version: int
    ips: tuple[str, ...]
    sharing_key: str | None
    ports: frozenset[tuple[int, str]]
    backend_key: str
    intent: str
    load_balancer: bool
    lb_class: str | None
    requested: tuple[str, ...] = ()
    pool_annotation: str | None = None
    at: float = 0.0

    @property
    def holds(self) -> tuple[str, ...]:
        """The addresses it holds at this moment (none once deleted)."""
        return () if self.kind == "DELETED" else self.ips


def _annotation(annotations: Mapping[str, str], suffix: str) -> str | None:
    # MetalLB's reading: the metallb.io form wins whenever present; an empty value means unset.
    for prefix in _METALLB_PREFIXES:
        if f"{prefix}{suffix}" in annotations:
            return annotations[f"{prefix}{suffix}"] or None
    return None


def observe(kind: str, svc: Mapping[str, Any], *, at: float = 0.0) -> Observation:
    """An Observation of a Service object as the API returned it. Tolerant: the checker must judge whatever
    the API server stored, so odd values are read as what MetalLB would make of them, never rejected."""
    metadata = svc.get("metadata") or {}
    spec = svc.get("spec") or {}
    annotations = {str(k): str(v) for k, v in (metadata.get("annotations") or {}).items()}
    labels = {str(k): str(v) for k, v in (metadata.get("labels") or {}).items()}
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    ips = tuple(sorted(str(e["ip"]) for e in ingress if isinstance(e, dict) and e.get("ip")))
    ports = frozenset(
        (int(p.get("port") or 0), str(p.get("protocol") or "TCP"))
        for p in spec.get("ports") or []
        if isinstance(p, dict)
    )
    backend_key = ""
    if spec.get("externalTrafficPolicy") == "Local":
        selector = spec.get("selector") or {}
        backend_key = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    requested_text = _annotation(annotations, "loadBalancerIPs") or str(spec.get("loadBalancerIP") or "")
    requested = tuple(sorted(a.strip() for a in requested_text.split(",") if a.strip()))
    # What the user asked: everything MetalLB reads, i.e. the spec, the labels (pool selectors) and MetalLB's
    # annotations, but not the annotation the controller writes itself.
    asked = {
        "spec": spec,
        "labels": labels,
        "annotations": {
            k: v for k, v in annotations.items() if k.startswith(_METALLB_PREFIXES) and not k.endswith(_OWNED)
        },
    }
    intent = hashlib.sha256(json.dumps(asked, sort_keys=True, default=str).encode()).hexdigest()[:16]
    rv = str(metadata.get("resourceVersion") or "0")
    return Observation(
        kind=kind,
        key=f"{metadata.get('namespace') or 'default'}/{metadata.get('name', '')}",
        uid=str(metadata.get("uid") or ""),
        resource_version=int(rv) if rv.isdigit() else 0,
        ips=ips,
        sharing_key=_annotation(annotations, "allow-shared-ip"),
        ports=ports,
        backend_key=backend_key,
        intent=intent,
        load_balancer=spec.get("type") == "LoadBalancer",
        lb_class=spec.get("loadBalancerClass") or None,
        requested=requested,
        pool_annotation=_annotation(annotations, "ip-allocated-from-pool"),
        at=at,
    )


# -- the checker ---------------------------------------------------------------------------------------------


def may_share(a: Observation, b: Observation) -> bool:
    """MetalLB's sharing rule: the same non-empty allow-shared-ip key, the same backend key (the selector,
    for externalTrafficPolicy Local) and no (port, protocol) in common."""
    if a.sharing_key is None or a.sharing_key != b.sharing_key:
        return False
    if a.backend_key != b.backend_key:
        return False
    return not (a.ports & b.ports)


@dataclass(frozen=True)
class Duplicate:
    """Two Services held `ip` at once (from `resource_version` on) without the sharing rule allowing it."""

    ip: str
    keys: tuple[str, str]
    resource_version: int

    def __str__(self) -> str:
        return (
            f"{self.ip} held by {self.keys[0]} and {self.keys[1]} at resourceVersion {self.resource_version}"
        )


@dataclass(frozen=True)
class Move:
    """The addresses of `key` changed from `before` to `after` with no change of what the user asked since
    `before` was given."""

    key: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    resource_version: int

    def __str__(self) -> str:
        after = ",".join(self.after) or "(none)"
        return (
            f"{self.key} moved from {','.join(self.before)} to {after} at resourceVersion "
            f"{self.resource_version}, unasked"
        )


@dataclass(frozen=True)
class Stuck:
    """`key` had no address at the end although `free` (one of its candidates) was free for it."""

    key: str
    free: str

    def __str__(self) -> str:
        return f"{self.key} is unassigned although {self.free} is free for it"


@dataclass(frozen=True)
class Verdict:
    duplicates: tuple[Duplicate, ...] = ()
    moves: tuple[Move, ...] = ()
    stuck: tuple[Stuck, ...] = ()
    observations: int = 0

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.moves or self.stuck)

    def __str__(self) -> str:
        if self.ok:
            return f"ok: {self.observations} observations, no duplicate, no unasked move, none stuck"
        lines = [
            f"{len(self.duplicates)} duplicates, {len(self.moves)} unasked moves, {len(self.stuck)} stuck "
            f"in {self.observations} observations:"
        ]
        lines += [f"  duplicate: {d}" for d in self.duplicates]
        lines += [f"  move: {m}" for m in self.moves]
        lines += [f"  stuck: {s}" for s in self.stuck]
        return "\n".join(lines)


@dataclass
class _Holding:
    """The replay's view of one Service: its latest observation, and whether the user asked anything since
    its current addresses were first seen."""

    latest: Observation
    asked_since: bool = False


def check(
    history: Iterable[Observation],
    pool: Iterable[str] = (),
    *,
    ours: Callable[[Observation], bool] | None = None,
) -> Verdict:
    """Judges a recorded history (any order: it is replayed by resourceVersion).

    Duplicates and moves are judged at every moment; stuck Services at the end only, for the Services
    `ours` selects (default: every LoadBalancer Service): unassigned while one of its candidates (the
    addresses it requested, else every address of `pool`) is held by nobody it may not share with.
    A RELISTED observation follows a gap in the record: a move across it is still a move (the user's changes
    in the gap are seen through the intent fingerprint, which compares the whole of what was asked).
    """
    wanted = ours if ours is not None else (lambda o: o.load_balancer)
    state: dict[str, _Holding] = {}
    holders: dict[str, set[str]] = {}
    duplicates: dict[tuple[str, tuple[str, str]], Duplicate] = {}
    moves: list[Move] = []
    observations = sorted(history, key=lambda o: o.resource_version)
    for obs in observations:
        previous = state.get(obs.key)
        for ip in previous.latest.holds if previous else ():
            holders[ip].discard(obs.key)
        if previous is not None and previous.latest.uid == obs.uid:
            before = previous.latest.ips
            if obs.intent != previous.latest.intent:
                previous.asked_since = True
            if before and obs.kind != "DELETED" and obs.ips != before and not previous.asked_since:
                moves.append(Move(obs.key, before, obs.ips, obs.resource_version))
            if obs.ips != before:
                previous.asked_since = False
            previous.latest = obs
        else:
            state[obs.key] = _Holding(obs)
        if obs.kind == "DELETED":
            del state[obs.key]
            continue
        for ip in obs.holds:
            others = holders.setdefault(ip, set())
            for other in sorted(others):
                if not may_share(state[other].latest, obs):
                    pair = (min(other, obs.key), max(other, obs.key))
                    duplicates.setdefault((ip, pair), Duplicate(ip, pair, obs.resource_version))
            others.add(obs.key)
    stuck = _stuck(state, holders, list(pool), wanted)
    return Verdict(tuple(duplicates.values()), tuple(moves), tuple(stuck), len(observations))


def _stuck(
    state: Mapping[str, _Holding],
    holders: Mapping[str, set[str]],
    pool: Sequence[str],
    wanted: Callable[[Observation], bool],
) -> list[Stuck]:
    found = []
    for key, holding in sorted(state.items()):
        obs = holding.latest
        if obs.ips or not wanted(obs):
            continue
        candidates = obs.requested or pool
        for ip in candidates:
            if all(may_share(state[h].latest, obs) for h in holders.get(ip, ())):
                found.append(Stuck(key, ip))
                break
    return found


# -- the observer --------------------------------------------------------------------------------------------


@dataclass
class _Record:
    history: list[Observation] = field(default_factory=list)
    current: dict[str, Observation] = field(default_factory=dict)
    resource_version: str = ""
    relists: int = 0
    errors: int = 0


class ServiceObserver:
    """Its own list and watch of Services (in `namespace`, or all), straight to the API server of
    `kubeconfig`: every change is recorded as an Observation, in resourceVersion order.

        with ServiceObserver(cp.kubeconfig) as observer:
            ...
            verdict = check(observer.history(), pool)

    A broken watch resumes from the last resourceVersion seen (nothing missed); only when the API server no
    longer has that version (410 Gone) does it list again, recording the differences as RELISTED/DELETED.
    """

    def __init__(
        self, kubeconfig: Path | str, namespace: str | None = None, *, watch_timeout: int = 60
    ) -> None:
        self._kubeconfig = Path(kubeconfig)
        self._namespace = namespace
        self._watch_timeout = watch_timeout
        self._client: KubeClient | None = None
        self._record = _Record()
        self._lock = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> Self:
        """Starts watching; returns once the first list is recorded."""
        self._client = connect(self._kubeconfig, user_agent="metallb-py-fault-observer")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._relist()
                break
            except ApiError as exc:
                if time.monotonic() > deadline:
                    self._client.close()
                    raise FaultLabError(f"the observer could not list Services: {exc}") from exc
                time.sleep(0.2)
        self._thread = threading.Thread(target=self._run, name="fault-observer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def history(self) -> list[Observation]:
        with self._lock:
            return list(self._record.history)

    def current(self) -> dict[str, Observation]:
        """The latest observation of every Service that exists as far as the observer knows."""
        with self._lock:
            return dict(self._record.current)

    @property
    def relists(self) -> int:
        """How many times it had to list again after a watch could not resume (gaps in the record)."""
        return self._record.relists

    def wait_for(self, predicate: Callable[[Mapping[str, Observation]], bool], timeout: float) -> bool:
        """Waits until `predicate(current())` holds, re-checked at every observation; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: predicate(self._record.current), timeout)

    def agrees_with(self, items: Iterable[Mapping[str, Any]]) -> bool:
        """Whether the observer has seen exactly these objects (a list just taken) at their versions."""
        listed = {o.key: o.resource_version for o in (observe("LISTED", item) for item in items)}
        with self._lock:
            seen = {k: o.resource_version for k, o in self._record.current.items()}
        return seen == listed

    def _add(self, obs: Observation) -> None:
        with self._lock:
            self._record.history.append(obs)
            if obs.kind == "DELETED":
                self._record.current.pop(obs.key, None)
            else:
                self._record.current[obs.key] = obs
            self._lock.notify_all()

    def _relist(self) -> None:
        assert self._client is not None
        listed = self._client.list(SERVICES, self._namespace)
        now = time.monotonic()
        first = not self._record.resource_version
        seen = {}
        for item in listed.items:
            obs = observe("ADDED" if first else "RELISTED", item, at=now)
            seen[obs.key] = obs
        with self._lock:
            known = dict(self._record.current)
        rv = int(listed.resource_version) if listed.resource_version.isdigit() else 0
        for key, gone in known.items():
            if key not in seen:
                self._add(_deleted(gone, rv, now))
        for key, obs in seen.items():
            before = known.get(key)
            if before is None or before.resource_version != obs.resource_version:
                if before is not None and before.uid != obs.uid:
                    self._add(_deleted(before, obs.resource_version, now))
                self._add(obs)
        self._record.resource_version = listed.resource_version
        if not first:
            self._record.relists += 1

    def _run(self) -> None:
        assert self._client is not None
        while not self._stop.is_set():
            try:
                self._stream = self._client.watch(
                    SERVICES,
                    self._namespace,
                    resource_version=self._record.resource_version,
                    timeout_seconds=self._watch_timeout,
                )
                for kind, obj in self._stream:
                    if self._stop.is_set():
                        return
                    rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
                    if kind != "BOOKMARK":
                        self._add(observe(kind, obj, at=time.monotonic()))
                    if rv:
                        self._record.resource_version = rv
            except GoneError:
                self._retry(self._relist)
            except ApiError:
                self._record.errors += 1
                self._stop.wait(0.2)
            finally:
                self._stream = None

    def _retry(self, action: Callable[[], None]) -> None:
        while not self._stop.is_set():
            try:
                action()
                return
            except ApiError:
                self._record.errors += 1
                self._stop.wait(0.2)


def _deleted(old: Observation, resource_version: int, at: float) -> Observation:
    return Observation(
        "DELETED",
        old.key,
        old.uid,
        resource_version,
        old.ips,
        old.sharing_key,
        old.ports,
        old.backend_key,
        old.intent,
        old.load_balancer,
        old.lb_class,
        old.requested,
        old.pool_annotation,
        at,
    )


def addresses(*ranges: str) -> list[str]:
    """Every address of the given CIDRs and `a-b` ranges, for check()'s pool."""
    out: list[str] = []
    for text in ranges:
        if "-" in text:
            first, last = (ipaddress.ip_address(part.strip()) for part in text.split("-", 1))
            out += [str(ipaddress.ip_address(i)) for i in range(int(first), int(last) + 1)]
        else:
            out += [str(ip) for ip in ipaddress.ip_network(text, strict=False)]
    return out
