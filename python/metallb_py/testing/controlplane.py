"""A real Kubernetes control plane on loopback: etcd and kube-apiserver, for tests and demos.

Owns the whole life of that control plane: finding the binaries (built once per version from the Go module
proxy by `make k8s` / tools/k8s/build.sh, then cached; never built unasked), the throwaway credentials (a
bearer token in system:masters, the API server's self-signed serving certificate, a service-account signing
key), the processes, the kubeconfig, the installation of our CRDs, and the clean-up. There are no nodes,
scheduler or controller-manager: objects are stored and validated but nothing reconciles them, so a
LoadBalancer Service stays `<pending>` until our controller assigns it an address.

Every byte of traffic stays on 127.0.0.1. This module drives the API server through kubectl and plain HTTP;
only metallb_py.k8s talks to it through a client library.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import secrets
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import yaml

from metallb_py.errors import MetalLBError
from metallb_py.testing.process import NO_PROXY_ENV, ChildProcess, free_loopback_port, tail_log

__all__ = [
    "DEFAULT_KUBERNETES_VERSION",
    "ControlPlaneError",
    "ControlPlaneUnavailableError",
    "KubectlError",
    "KubernetesBinaries",
    "KubernetesNotBuiltError",
    "LocalControlPlane",
    "default_cache_dir",
    "ensure_kubernetes_binaries",
]

# The version pinned by tools/k8s/kubernetes/go.mod; a unit test keeps the two equal.
DEFAULT_KUBERNETES_VERSION = "v1.37.2"

_REPO_ROOT = Path(__file__).resolve().parents[3]
_BUILD_SCRIPT = _REPO_ROOT / "tools" / "k8s" / "build.sh"
_REPO_CRDS = _REPO_ROOT / "deploy" / "crds"
_BINARIES = ("kube-apiserver", "etcd", "kubectl")
_LOOPBACK = "127.0.0.1"
_WORKDIR_PREFIX = "metallb-py-cp-"


class ControlPlaneError(MetalLBError):
    """The local control plane failed to build, start or answer; the message says why and what to look at."""


class ControlPlaneUnavailableError(ControlPlaneError):
    """The control plane cannot exist on this machine (no Go to build the binaries, no openssl...).

    Tests skip on this error (unless METALLB_PY_REQUIRE_K8S=1); every other ControlPlaneError is a failure.
    """


class KubernetesNotBuiltError(ControlPlaneUnavailableError):
    """The Kubernetes binaries are not in the cache and nobody asked for a build: the message says how to
    build them (`make k8s`). Only `make k8s` (or an explicit build=True) spends the 15-30 minutes."""


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero under check=True; unlike its base class, str() includes kubectl's stderr."""

    def __str__(self) -> str:
        stderr = self.stderr.strip() if isinstance(self.stderr, str) else ""
        command = " ".join(self.cmd[3:]) if isinstance(self.cmd, list) else str(self.cmd)
        return f"kubectl {command} exited with {self.returncode}: {stderr or '(no stderr)'}"


@dataclass(frozen=True)
class KubernetesBinaries:
    """Paths of the three executables of one Kubernetes version."""

    kube_apiserver: Path
    etcd: Path
    kubectl: Path

    @classmethod
    def in_dir(cls, bin_dir: Path) -> KubernetesBinaries:
        return cls(bin_dir / "kube-apiserver", bin_dir / "etcd", bin_dir / "kubectl")

    def missing(self) -> list[Path]:
        return [p for p in (self.kube_apiserver, self.etcd, self.kubectl) if not os.access(p, os.X_OK)]


def default_cache_dir() -> Path:
    """$METALLB_PY_CACHE, else ~/.cache/metallb-py: the same default as tools/k8s/build.sh."""
    configured = os.environ.get("METALLB_PY_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "metallb-py"


def _find_go() -> str | None:
    """$GO if set (as for build.sh), else go on PATH, else Go's default install location."""
    configured = os.environ.get("GO")
    if configured is not None:
        return shutil.which(configured)
    return shutil.which("go") or shutil.which("/usr/local/go/bin/go")


def ensure_kubernetes_binaries(
    version: str = DEFAULT_KUBERNETES_VERSION,
    cache_dir: Path | None = None,
    *,
    build: bool = False,
    progress: IO[str] | None = None,
) -> KubernetesBinaries:
    """The kube-apiserver, etcd and kubectl of `version` from the cache (default_cache_dir()).

    By default this only looks: it never runs Go or tools/k8s/build.sh, and raises KubernetesNotBuiltError
    (a ControlPlaneUnavailableError, on which the test suites skip) saying how to build them: `make k8s`.
    With `build=True` it builds them first when they are not cached, by running tools/k8s/build.sh (15-30
    minutes the first time on two cores; a no-op once cached), whose progress goes to `progress` (default:
    this process's stderr); it raises ControlPlaneUnavailableError when they cannot be built here (no Go,
    an installed wheel without the script) and ControlPlaneError when a build fails.
    """
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    cached = KubernetesBinaries.in_dir(cache / "k8s" / version / "bin")
    if not cached.missing():
        return cached
    if not _BUILD_SCRIPT.is_file():
        # An installed wheel has no tools/: use what a checkout built into the shared cache, or explain.
        raise KubernetesNotBuiltError(
            f"Kubernetes {version} is not built in {cached.kubectl.parent} and this installation has no "
            "build script; run tools/k8s/build.sh from a metallb-py checkout (with METALLB_PY_CACHE "
            f"pointing at {cache}), then retry"
        )
    if not build:
        how = "`make k8s`" if version == DEFAULT_KUBERNETES_VERSION else f"`tools/k8s/build.sh {version}`"
        raise KubernetesNotBuiltError(
            f"Kubernetes {version} is not built in {cached.kubectl.parent}: build it once with {how} "
            "(15-30 minutes on two cores), or point METALLB_PY_CACHE at a cache that has it"
        )
    return _build(version, cache, progress if progress is not None else sys.stderr)


def _build(version: str, cache: Path, out: IO[str]) -> KubernetesBinaries:
    go = _find_go()
    if go is None:
        raise ControlPlaneUnavailableError(
            f"Go is not installed, so Kubernetes {version} cannot be built (tools/k8s/build.sh needs "
            "Go >= 1.26 on PATH or in /usr/local/go)"
        )
    env = {**os.environ, "METALLB_PY_CACHE": str(cache), "GO": go}
    print(f">> metallb-py: building Kubernetes {version} (once; cached in {cache})", file=out, flush=True)
    # build.sh prints progress on stderr and the bin directory on stdout.
    tail: list[str] = []
    with subprocess.Popen(
        ["bash", str(_BUILD_SCRIPT), version],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        for line in proc.stderr:
            out.write(line)
            out.flush()
            tail = [*tail[-39:], line]
        stdout = proc.stdout.read().strip()
    if proc.returncode != 0 or not stdout:
        raise ControlPlaneError(
            f"building Kubernetes {version} failed (tools/k8s/build.sh exited {proc.returncode}):\n"
            + "".join(tail)
        )
    binaries = KubernetesBinaries.in_dir(Path(stdout.splitlines()[-1]))
    if binaries.missing():
        raise ControlPlaneError(f"tools/k8s/build.sh succeeded but left no {binaries.missing()}")
    return binaries


def _sweep_orphaned_workdirs() -> None:
    """Removes the work directories of control planes whose Python process was killed before stop() ran.

    Their etcd and kube-apiserver died with it (see _die_with_parent); only the files remain.
    """
    for workdir in Path(tempfile.gettempdir()).glob(f"{_WORKDIR_PREFIX}*"):
        try:
            owner = int((workdir / "owner.pid").read_text())
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(workdir, ignore_errors=True)
        except (OSError, ValueError):
            continue  # unreadable, half-written, or owned by a live process of another user: leave it


class LocalControlPlane:
    """etcd and kube-apiserver on 127.0.0.1, with a cluster-admin kubeconfig and our CRDs installed.

        with LocalControlPlane() as cp:
            cp.kubectl("get", "services", check=True)

    Parameters:
        version: the Kubernetes version to run; its binaries must be built (`make k8s`) unless `build`.
        cache_dir: where built binaries are cached (default: default_cache_dir()).
        build: build the binaries at start when they are not cached (15-30 minutes once, see
            ensure_kubernetes_binaries); by default start() raises KubernetesNotBuiltError instead.
        bin_dir: a directory holding kube-apiserver, etcd and kubectl to use instead of the cache.
        crds_dir: CRD manifests to install at start (default: deploy/crds of this checkout, if present);
            pass a directory that does not exist to install none.
        service_cluster_ip_range: ClusterIP range. /20 leaves room for the benchmarks' 1,000 Services.
        start_timeout: seconds to wait for each process to become healthy.
    """

    def __init__(
        self,
        version: str = DEFAULT_KUBERNETES_VERSION,
        cache_dir: Path | str | None = None,
        *,
        build: bool = False,
        bin_dir: Path | str | None = None,
        crds_dir: Path | str | None = None,
        service_cluster_ip_range: str = "10.96.0.0/20",
        start_timeout: float = 90.0,
    ) -> None:
        self.version = version
        self._cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._build = build
        self._bin_dir = Path(bin_dir) if bin_dir is not None else None
        self._crds_dir = Path(crds_dir) if crds_dir is not None else _REPO_CRDS
        self._service_range = service_cluster_ip_range
        self._timeout = start_timeout
        self._binaries: KubernetesBinaries | None = None
        self._workdir: Path | None = None
        self._etcd: ChildProcess | None = None
        self._apiserver: ChildProcess | None = None
        self._apiserver_argv: list[str] = []
        self._etcd_argv: list[str] = []
        self._port = 0
        self._etcd_url = ""
        self._token = ""
        self._ssl: ssl.SSLContext | None = None
        self._env: dict[str, str] = {}

    # -- what a test uses ------------------------------------------------------------------------------------

    @property
    def server(self) -> str:
        """The API server's URL, https://127.0.0.1:PORT."""
        self._require_running()
        return f"https://{_LOOPBACK}:{self._port}"

    @property
    def token(self) -> str:
        """A bearer token of user `admin` in group system:masters (cluster-admin)."""
        self._require_running()
        return self._token

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig for `admin` that verifies the server's certificate (context `metallb-py`)."""
        return self._require_running() / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        """The PEM bundle that verifies the API server's self-signed serving certificate."""
        return self._require_running() / "pki" / "apiserver.crt"

    @property
    def kubectl_path(self) -> Path:
        """The kubectl built for this version; run it with --kubeconfig=cp.kubeconfig."""
        self._require_running()
        assert self._binaries is not None
        return self._binaries.kubectl

    @property
    def workdir(self) -> Path:
        """The temporary directory holding etcd's data, the logs and the credentials; removed by stop()."""
        return self._require_running()

    @property
    def pids(self) -> dict[str, int]:
        """Process ids by name ("etcd", "kube-apiserver") of the processes currently running."""
        return {p.name: p.pid for p in (self._etcd, self._apiserver) if p is not None and p.exited() is None}

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = False, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Runs `kubectl ARGS` against this control plane and returns its output as text.

        With check=True a non-zero exit raises KubectlError (a CalledProcessError whose message has stderr).
        """
        workdir = self._require_running()
        assert self._binaries is not None
        argv = [
            str(self._binaries.kubectl),
            f"--kubeconfig={self.kubeconfig}",
            # kubectl's discovery cache would otherwise land in ~/.kube/cache and outlive us.
            f"--cache-dir={workdir / 'kubectl-cache'}",
            *args,
        ]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, env=self._env, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    # -- life cycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Finds (or, with build=True, builds) the binaries, starts etcd and kube-apiserver, installs the
        CRDs."""
        if self._workdir is not None:
            raise ControlPlaneError("this control plane is already running")
        if self._bin_dir is not None:
            self._binaries = KubernetesBinaries.in_dir(self._bin_dir)
            if self._binaries.missing():
                raise ControlPlaneUnavailableError(
                    f"not executable: {', '.join(map(str, self._binaries.missing()))}"
                )
        else:
            self._binaries = ensure_kubernetes_binaries(self.version, self._cache_dir, build=self._build)
        if shutil.which("openssl") is None:
            raise ControlPlaneUnavailableError(
                "openssl is not installed (needed for the service-account key)"
            )

        _sweep_orphaned_workdirs()
        self._workdir = Path(tempfile.mkdtemp(prefix=_WORKDIR_PREFIX))
        (self._workdir / "owner.pid").write_text(f"{os.getpid()}\n")
        atexit.register(self.stop)
        try:
            self._prepare_credentials()
            for attempt in (1, 2):
                try:
                    self._start_etcd()
                    self._start_apiserver()
                    break
                except _PortTakenError:
                    # Another process took a port between our probe and the bind; pick new ports once.
                    self._stop_processes()
                    if attempt == 2:
                        raise ControlPlaneError("could not bind loopback ports twice in a row") from None
            self._write_kubeconfig()
            self._wait_for_default_namespace()
            self._install_crds()
        except BaseException:
            self.stop()
            raise

    def restart_apiserver(self, downtime: float = 0.0) -> None:
        """Stops kube-apiserver and starts it again on the same port, with etcd (and so every object) kept;
        `downtime` seconds pass between the stop and the start.

        Clients see their connections and watches drop, then the same server come back.
        """
        self._require_running()
        assert self._apiserver is not None
        self._apiserver.stop()
        self._apiserver = None
        time.sleep(downtime)
        self._launch_apiserver()

    def restart_etcd(self, downtime: float = 0.0) -> None:
        """Stops etcd (SIGTERM) and starts it again on the same ports and data, `downtime` seconds later;
        returns once etcd and the API server in front of it are healthy again.

        kube-apiserver stays up: its requests fail or wait while etcd is gone, then it reconnects.
        """
        workdir = self._require_running()
        assert self._etcd is not None
        self._etcd.stop()
        self._etcd = None
        time.sleep(downtime)
        self._launch_etcd()
        deadline = time.monotonic() + self._timeout
        while self._api_get("/readyz") != 200:
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"kube-apiserver was not ready {self._timeout:.0f}s after etcd came back\n"
                    + tail_log(workdir / "kube-apiserver.log")
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Stops kube-apiserver then etcd (SIGTERM, then SIGKILL), and removes every file start() created."""
        atexit.unregister(self.stop)
        self._stop_processes()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- internals -------------------------------------------------------------------------------------------

    def _require_running(self) -> Path:
        if self._workdir is None:
            raise ControlPlaneError("the control plane is not running; use start() or a with block")
        return self._workdir

    def _stop_processes(self) -> None:
        for attr in ("_apiserver", "_etcd"):
            proc: ChildProcess | None = getattr(self, attr)
            if proc is not None:
                proc.stop()
                setattr(self, attr, None)

    def _prepare_credentials(self) -> None:
        workdir = self._require_running()
        self._env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir), **NO_PROXY_ENV}
        self._token = secrets.token_urlsafe(32)
        # user,uid,"group": kube-apiserver's static token file format.
        (workdir / "tokens.csv").write_text(f'{self._token},admin,admin,"system:masters"\n')
        (workdir / "tokens.csv").chmod(0o600)
        # ECDSA P-256 signs service-account tokens; kube-apiserver verifies with the same (private) key file.
        subprocess.run(
            [
                "openssl",
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                str(workdir / "sa.key"),
            ],
            check=True,
            capture_output=True,
        )
        (workdir / "pki").mkdir()

    def _start_etcd(self) -> None:
        workdir = self._require_running()
        assert self._binaries is not None
        client, peer = free_loopback_port(), free_loopback_port()
        self._etcd_url = f"http://{_LOOPBACK}:{client}"
        peer_url = f"http://{_LOOPBACK}:{peer}"
        self._etcd_argv = [
            str(self._binaries.etcd),
            "--name=metallb-py",
            f"--data-dir={workdir / 'etcd'}",
            f"--listen-client-urls={self._etcd_url}",
            f"--advertise-client-urls={self._etcd_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=metallb-py={peer_url}",
            "--initial-cluster-state=new",
            # A test cluster's data is thrown away; not syncing to disk makes every write far cheaper.
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        self._launch_etcd()

    def _launch_etcd(self) -> None:
        log = self._require_running() / "etcd.log"
        self._etcd = ChildProcess("etcd", self._etcd_argv, log, self._env)
        self._wait("etcd", self._etcd, log, lambda: self._get(f"{self._etcd_url}/health", None) == 200)

    def _start_apiserver(self) -> None:
        workdir = self._require_running()
        assert self._binaries is not None
        self._port = free_loopback_port()
        self._apiserver_argv = [
            str(self._binaries.kube_apiserver),
            f"--etcd-servers={self._etcd_url}",
            f"--bind-address={_LOOPBACK}",
            f"--advertise-address={_LOOPBACK}",
            # The endpoint reconciler of default/kubernetes refuses loopback addresses; nothing here needs it.
            "--endpoint-reconciler-type=none",
            f"--secure-port={self._port}",
            # kube-apiserver writes a self-signed serving certificate (for 127.0.0.1 and localhost) here.
            f"--cert-dir={workdir / 'pki'}",
            f"--token-auth-file={workdir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={workdir / 'sa.key'}",
            f"--service-account-signing-key-file={workdir / 'sa.key'}",
            f"--service-cluster-ip-range={self._service_range}",
            # ServiceAccount admission would refuse every Pod: no controller-manager creates the accounts.
            "--disable-admission-plugins=ServiceAccount",
            "--profiling=false",
            "--v=0",
        ]
        self._launch_apiserver()

    def _launch_apiserver(self) -> None:
        workdir = self._require_running()
        log = workdir / "kube-apiserver.log"
        self._apiserver = ChildProcess("kube-apiserver", self._apiserver_argv, log, self._env)
        self._ssl = None
        self._wait("kube-apiserver", self._apiserver, log, lambda: self._api_get("/readyz") == 200)

    def _wait(self, name: str, proc: ChildProcess, log: Path, ready: Callable[[], bool]) -> None:
        deadline = time.monotonic() + self._timeout
        while True:
            code = proc.exited()
            if code is not None:
                text = tail_log(log)
                if "address already in use" in text:
                    raise _PortTakenError(name)
                raise ControlPlaneError(f"{name} exited with status {code} while starting\n{text}")
            if ready():
                return
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"{name} was not ready after {self._timeout:.0f}s\n{tail_log(log)}")
            time.sleep(0.1)

    def _get(self, url: str, context: ssl.SSLContext | None, headers: Mapping[str, str] | None = None) -> int:
        """Status of a GET on loopback, 0 when nothing answers; proxies are bypassed."""
        assert url.startswith((f"http://{_LOOPBACK}:", f"https://{_LOOPBACK}:")), url
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
        )
        request = urllib.request.Request(url, headers=dict(headers or {}))
        try:
            with opener.open(request, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            with exc:
                return int(exc.code)
        except (urllib.error.URLError, OSError):
            return 0

    def _api_get(self, path: str) -> int:
        context = self._ssl_context()
        if context is None:
            return 0
        return self._get(
            f"https://{_LOOPBACK}:{self._port}{path}", context, {"Authorization": f"Bearer {self._token}"}
        )

    def _ssl_context(self) -> ssl.SSLContext | None:
        # The certificate appears in --cert-dir shortly after kube-apiserver starts; restarts keep it.
        if self._ssl is None and self.ca_file.is_file():
            with contextlib.suppress(ssl.SSLError):
                self._ssl = ssl.create_default_context(cafile=str(self.ca_file))
        return self._ssl

    def _write_kubeconfig(self) -> None:
        ca = base64.b64encode(self.ca_file.read_bytes()).decode()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "metallb-py", "cluster": {"server": self.server, "certificate-authority-data": ca}}
            ],
            "users": [{"name": "admin", "user": {"token": self._token}}],
            "contexts": [
                {
                    "name": "metallb-py",
                    "context": {"cluster": "metallb-py", "user": "admin", "namespace": "default"},
                }
            ],
            "current-context": "metallb-py",
        }
        self.kubeconfig.write_text(yaml.safe_dump(config, sort_keys=False))
        self.kubeconfig.chmod(0o600)

    def _wait_for_default_namespace(self) -> None:
        # /readyz can pass before the bootstrap controller has created the `default` namespace.
        deadline = time.monotonic() + self._timeout
        while self._api_get("/api/v1/namespaces/default") != 200:
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    "namespace `default` never appeared\n" + tail_log(self.workdir / "kube-apiserver.log")
                )
            time.sleep(0.1)

    def _install_crds(self) -> None:
        if not self._crds_dir.is_dir() or not any(self._crds_dir.glob("*.yaml")):
            return
        crds = str(self._crds_dir)
        applied = self.kubectl("apply", "--server-side", "--field-manager=metallb-py-testing", "-f", crds)
        if applied.returncode != 0:
            raise ControlPlaneError(f"installing the CRDs of {crds} failed:\n{applied.stderr}")
        waited = self.kubectl(
            "wait", "--for=condition=Established", f"--timeout={self._timeout:.0f}s", "-f", crds
        )
        if waited.returncode != 0:
            raise ControlPlaneError(f"the CRDs of {crds} were not established:\n{waited.stderr}")

    def __repr__(self) -> str:
        state = f"running at {self.server}" if self._workdir is not None else "stopped"
        return f"LocalControlPlane({self.version!r}, {state})"


class _PortTakenError(Exception):
    """A process could not bind the port we picked for it."""
