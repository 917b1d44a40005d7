"""A whole MetalLB-like cluster on one machine: control plane, nodes, controller and speakers, for end-to-end
tests and the demo.

`LabCluster` owns its whole life: a `LocalControlPlane` (API on 127.0.0.1), a `NetnsLab` with one namespace
per node, the API objects a real cluster would already hold (the speakers' namespace, the memberlist Secret,
a Node per lab node with its InternalIP and Ready condition), one `metallb-py controller` process, one
`metallb-py speaker` process per lab node, and the clean-up. With `router=` (BGP mode) the lab has a router
namespace running that routing daemon (FRR, BIRD or GoBGP), peering with every node as `peering` says
(bgplab), and the client sits behind it. Nothing reconciles workloads here (no
scheduler, kubelet or controller-manager), so the harness publishes the EndpointSlices the endpoint
controller would: each node's HTTP server in the lab stands for the pods on it.

For the fault lab, a speaker can run under libfaketime (`speaker_faketime=`, `start_speaker(clock_offset=)`)
with its wall clock stepped while it runs (`set_speaker_clock`), be paused and resumed (`pause_speaker`,
`resume_speaker`: SIGSTOP and SIGCONT), and reach the API server another way (`start_speaker(kubeconfig=)`,
e.g. through a Toxiproxy proxy from `testing.faults`).

The processes run as children of this Python process, each in a session of its own and killed if this
process dies (PR_SET_PDEATHSIG follows the thread that started them: start and stop a cluster from one
thread that outlives it, as the main thread does). Needs root, like NetnsLab.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import datetime as _dt
import hashlib
import io
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from metallb_py.errors import MetalLBError
from metallb_py.ipam.fields import ingress_ips
from metallb_py.k8s import ApiError, ConflictError, KubeClient, NotFoundError, connect
from metallb_py.k8s.resources import (
    ENDPOINT_SLICES,
    LEASES,
    NAMESPACES,
    NODES,
    SECRETS,
    SERVICE_L2_STATUSES,
    SERVICES,
)
from metallb_py.speaker import (
    EXCLUDE_FROM_LB_LABEL,
    GOSSIP_LABEL,
    SECRET_ENV,
    SECRET_KEY,
    SECRET_NAME,
    SERVICE_NAME_LABEL,
)
from metallb_py.speaker.status import service_selector, status_node
from metallb_py.testing.bgplab import Peering, router_config
from metallb_py.testing.controlplane import (
    DEFAULT_KUBERNETES_VERSION,
    KubernetesBinaries,
    LocalControlPlane,
    default_cache_dir,
    ensure_kubernetes_binaries,
)
from metallb_py.testing.netlab import DEFAULT_VIP_ROUTES, NetnsLab
from metallb_py.testing.process import NO_PROXY_ENV, ChildProcess, free_loopback_port, run_checked
from metallb_py.testing.routers import RouterDaemon, RouterKind, make_router

__all__ = [
    "CONTROL_PLANE_ROLE_LABEL",
    "EXCLUDE_FROM_LB_LABEL",
    "FAKETIME_SLEEP_FIX_C",
    "LIBFAKETIME_CANDIDATES",
    "EndpointPort",
    "LabCluster",
    "LabClusterError",
    "Scrape",
    "endpoint_ports",
    "endpoint_slice_manifest",
    "faketime_env",
    "faketime_sleep_fix",
    "libfaketime",
    "memberlist_secret",
    "node_manifest",
    "node_status",
    "parse_metrics",
]

T = TypeVar("T")

# The objects a real cluster holds that the controller never touches; written here in its place.

CONTROL_PLANE_ROLE_LABEL = "node-role.kubernetes.io/control-plane"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "labcluster.testing.metallb-py"
# What a speaker publishes once it runs: a Lease labelled so, held by its node (see speaker/state.py).
SPEAKER_LEASE_LABEL = GOSSIP_LABEL
CONTROLLER_LEASE = "metallb-controller"
CONTROLLER_IDENTITY = "lab-controller"
MEMBERLIST_SECRET = SECRET_NAME
_STOP_GRACE = 15.0
# Debian's libfaketime (package faketime); the MT build, as the speaker runs threads that read the clock.
LIBFAKETIME_CANDIDATES = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
    "/usr/lib/faketime/libfaketimeMT.so.1",
)
# libfaketime 0.9.10 (Debian 12) breaks clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) when the monotonic
# clock is not faked: it hands the kernel a negative time, and Python's time.sleep (which sleeps so since
# 3.11) fails with EINVAL (wolfcw/libfaketime#426, fixed after 0.9.10). Preloaded before libfaketime, this
# clock_nanosleep sleeps on the true clock: an absolute time on a faked clock is moved by the fake offset.
FAKETIME_SLEEP_FIX_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *request, struct timespec *remain) {
    struct timespec target = *request;
    if (flags & TIMER_ABSTIME) {
        struct timespec seen, real;
        if (clock_gettime(clock, &seen) != 0 || syscall(SYS_clock_gettime, clock, &real) != 0) return errno;
        long long shift = (real.tv_sec - seen.tv_sec) * 1000000000LL + (real.tv_nsec - seen.tv_nsec);
        long long at = target.tv_sec * 1000000000LL + target.tv_nsec + shift;
        if (at < 0) at = 0;
        target.tv_sec = at / 1000000000LL;
        target.tv_nsec = at % 1000000000LL;
    }
    return syscall(SYS_clock_nanosleep, clock, flags, &target, remain) == 0 ? 0 : errno;
}
"""


class LabClusterError(MetalLBError):
    """The lab cluster could not start, a process of it died, or a wait timed out; the message says what and
    where the logs are."""


# -- manifests (pure) ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointPort:
    """One port of an EndpointSlice: the Service port's name, the number traffic is sent to, the protocol."""

    name: str
    port: int
    protocol: str = "TCP"


def node_manifest(name: str, *, control_plane: bool = False) -> dict[str, Any]:
    """A Node as kubeadm registers it: a control-plane node carries the role label, the NoSchedule taint and
    the label that keeps it out of external load balancers (so no speaker ever elects it)."""
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    spec: dict[str, Any] = {}
    if control_plane:
        labels[CONTROL_PLANE_ROLE_LABEL] = ""
        labels[EXCLUDE_FROM_LB_LABEL] = ""
        spec["taints"] = [{"key": CONTROL_PLANE_ROLE_LABEL, "effect": "NoSchedule"}]
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": spec}


def node_status(name: str, address: str, now: _dt.datetime) -> dict[str, Any]:
    """The status a kubelet would report: the node's InternalIP (the speakers' default gossip address) and
    Ready=True. Written through the status subresource; nothing here ever makes the node NotReady."""
    stamp = now.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "lab node (network namespace)",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": stamp,
            }
        ],
    }


def memberlist_secret(namespace: str, key: bytes) -> dict[str, Any]:
    """The Secret `memberlist` whose `secretkey` authenticates the speakers' gossip, as MetalLB's manifests
    create it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": MEMBERLIST_SECRET, "namespace": namespace},
        "data": {SECRET_KEY: base64.b64encode(key).decode()},
    }


def faketime_env(library: Path, clock_file: Path, sleep_fix: Path | None = None) -> dict[str, str]:
    """The environment that runs a program under libfaketime with its wall clock offset by what
    `clock_file` says (`+7200`, `-7200.5`: seconds), read again at every clock call, so rewriting the file
    steps the running program's clock. Only the wall clock moves, as with a real step (settimeofday, NTP):
    CLOCK_MONOTONIC stays true. `sleep_fix`: the library built from FAKETIME_SLEEP_FIX_C, preloaded first."""
    preload = f"{sleep_fix} {library}" if sleep_fix is not None else str(library)
    return {
        "LD_PRELOAD": preload,
        "FAKETIME_TIMESTAMP_FILE": str(clock_file),
        "FAKETIME_NO_CACHE": "1",
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }


def clock_offset_line(seconds: float) -> str:
    """The clock file's content for a wall clock `seconds` ahead (negative: behind) of the true one."""
    return f"{seconds:+.6f}\n"


def libfaketime(candidates: Sequence[str] = LIBFAKETIME_CANDIDATES) -> Path:
    """The first libfaketime library found, else LabClusterError saying how to install it."""
    for candidate in candidates:
        if os.access(candidate, os.R_OK):
            return Path(candidate)
    raise LabClusterError(
        f"libfaketime is not installed (looked for {', '.join(candidates)}): apt-get install faketime"
    )


def faketime_sleep_fix(cache_dir: Path | None = None) -> Path:
    """The shared library built from FAKETIME_SLEEP_FIX_C with the C compiler (`cc`), cached by the source's
    hash under the metallb-py cache; LabClusterError when it cannot be built."""
    source = FAKETIME_SLEEP_FIX_C.encode()
    directory = (cache_dir or default_cache_dir()) / "faketime-sleep-fix"
    built = directory / f"sleepfix-{hashlib.sha256(source).hexdigest()[:16]}.so"
    if built.is_file():
        return built
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise LabClusterError("building the libfaketime sleep fix needs a C compiler: apt-get install gcc")
    directory.mkdir(parents=True, exist_ok=True)
    source_file = directory / f"{built.stem}.c"
    source_file.write_bytes(source)
    partial = built.with_suffix(f".{os.getpid()}.tmp")
    run_checked(
        [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(partial), str(source_file)], LabClusterError
    )
    os.replace(partial, built)  # whole or absent, also with several builds at once
    return built


def endpoint_ports(service: Mapping[str, Any]) -> list[EndpointPort]:
    """The ports an EndpointSlice of `service` lists, as the endpoint controller derives them: each Service
    port's name and protocol, and its numeric targetPort (else its port: a named targetPort would name a
    container port, and here no container exists)."""
    ports: list[EndpointPort] = []
    for entry in (service.get("spec") or {}).get("ports") or ():
        target = entry.get("targetPort")
        number = target if isinstance(target, int) else entry.get("port")
        ports.append(
            EndpointPort(str(entry.get("name") or ""), int(number), str(entry.get("protocol") or "TCP"))
        )
    return ports


def endpoint_slice_manifest(
    namespace: str,
    service: str,
    endpoints: Sequence[tuple[str, str]],
    *,
    family: int = 4,
    ports: Sequence[EndpointPort] = (EndpointPort("", 80, "TCP"),),
    owner_uid: str | None = None,
) -> dict[str, Any]:
    """The EndpointSlice the endpoint controller would publish for `service`: one ready endpoint per
    (node, address) in `endpoints`, with `ports`, owned by the Service when its `owner_uid` is given. Empty
    `endpoints` means no ready endpoint, so no speaker announces the Service."""
    if family not in (4, 6):
        raise ValueError(f"family {family}: expected 4 or 6")
    metadata: dict[str, Any] = {
        "name": f"{service}-lab-ipv{family}",
        "namespace": namespace,
        "labels": {SERVICE_NAME_LABEL: service, MANAGED_BY_LABEL: MANAGED_BY},
    }
    if owner_uid is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "v1",
                "kind": "Service",
                "name": service,
                "uid": owner_uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata,
        "addressType": f"IPv{family}",
        "endpoints": [
            {
                "addresses": [address],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                "nodeName": node,
            }
            for node, address in endpoints
        ],
        "ports": [{"name": p.name, "port": p.port, "protocol": p.protocol} for p in ports],
    }


# -- metrics -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    """One scrape of a Prometheus /metrics page: the metric families it declares and every sample."""

    families: frozenset[str]
    samples: tuple[tuple[str, tuple[tuple[str, str], ...], float], ...]

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The sample `name` with exactly `labels` (none by default), None when there is none; as
        prometheus_client's CollectorRegistry.get_sample_value."""
        wanted = tuple(sorted((labels or {}).items()))
        return next((v for n, ls, v in self.samples if n == name and ls == wanted), None)

    def series(self, name: str) -> list[tuple[dict[str, str], float]]:
        """Every sample `name`, with its labels."""
        return [(dict(ls), v) for n, ls, v in self.samples if n == name]


def parse_metrics(text: str) -> Scrape:
    """A Scrape of a page in Prometheus' text format."""
    families, samples = set(), []
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples.append((sample.name, tuple(sorted(sample.labels.items())), float(sample.value)))
    return Scrape(frozenset(families), tuple(samples))


def _scrape(port: int) -> Scrape | None:
    """A scrape of http://127.0.0.1:`port`/metrics, never through a proxy; None when nothing answers."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return parse_metrics(response.read().decode())
    except (urllib.error.URLError, OSError):
        return None


# -- processes -----------------------------------------------------------------------------------------------


class _ProgressLines(io.StringIO):
    """A text stream that hands each complete line to a progress callback (the Kubernetes build's output)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        super().__init__()
        self._emit = emit
        self._partial = ""

    def write(self, s: str) -> int:
        *lines, self._partial = (self._partial + s).split("\n")
        for line in lines:
            if line.strip():
                self._emit(line.rstrip())
        return len(s)


# -- the cluster ---------------------------------------------------------------------------------------------


class LabCluster:
    """A control plane, a namespace lab, the controller and a speaker per node; see the module docstring.

    ```
    with LabCluster(progress=print) as cluster:
        cluster.kubectl("apply", "-f", "examples/seed/metallb-l2config.yaml")
        cluster.kubectl("create", "deployment", "web", "--image=sysnet4admin/echo-hname")
        cluster.kubectl("expose", "deployment", "web", "--type=LoadBalancer", "--port=80")
        ip = cluster.wait_for(lambda: cluster.external_ips("default", "web"), 30, "an external IP")[0]
        cluster.lab.serve(ip, "hname")
        cluster.publish_endpoints("default", "web")            # ready on node1-3
        node = cluster.wait_for(lambda: cluster.announcer("default", "web"), 30, "an announcer")
        cluster.lab.fetch(ip)                                  # (200, f"{node}\\n")
    ```

    Parameters:
        workers: the nodes that run the seed's pods (echo servers) and may announce.
        control_plane_node: a node with a speaker that must never announce (labelled as excluded from
            external load balancers, as kubeadm's control-plane nodes are).
        namespace: where the controller and the speakers live (their configuration, Leases, Secret).
        prefix: the lab's namespace prefix (see NetnsLab).
        log_dir: where the processes' logs go (kept, with the control plane's logs copied in by close());
            default: a temporary directory that close() removes.
        speaker_args, controller_args: extra flags for every speaker / the controller (later flags win).
        service_cluster_ip_range: the API server's Service range (e.g. an IPv6 one for IPv6 Services).
        progress: called with one line per step (and per line of a Kubernetes build); default: silent
            steps, and the build's output on stderr.
        speaker_faketime: start every speaker under libfaketime, its wall clock true until
            set_speaker_clock() steps it (see start_speaker's `clock_offset`).
        speaker_batch: start() starts the speakers this many at a time, each batch once the previous one
            serves its metrics and has published its gossip Lease (its start-up reads are done): on a small
            machine a hundred Python start-ups at once would starve each other and the API server. Default:
            all at once.
        speaker_batch_joined: with speaker_batch, each batch also waits until every speaker started so far
            counts all of them alive (wait_for_speakers): a paced start, for machines where every join costs
            every running speaker an election round it cannot afford while the next batch starts.
        vip_routes: the address ranges the client reaches on-link (see NetnsLab); default the seed's.
        pin_neighbours: the nodes' and the client's addresses are permanent entries of each other's
            neighbour tables (see NetnsLab): needed past about 30 nodes, whose dynamic entries together
            overflow the kernel's one ARP table.
        speakers: start() starts the speakers too and waits until they join (the default); False: only the
            controller, and the caller starts them later (start_speakers, wait_for_speakers), e.g. to time
            a cold start with the Services already there.
        kubernetes_version: the control plane's version; its binaries must be built (`make k8s`), else
            start() raises KubernetesNotBuiltError, unless `build_kubernetes`.
        build_kubernetes: build them at start when they are not cached (15-30 minutes once).
    """

    def __init__(
        self,
        workers: Sequence[str] = ("node1", "node2", "node3"),
        control_plane_node: str = "control-plane",
        *,
        namespace: str = "metallb-system",
        prefix: str = "mlbe2e",
        log_dir: Path | str | None = None,
        speaker_args: Sequence[str] = (),
        controller_args: Sequence[str] = (),
        progress: Callable[[str], None] | None = None,
        kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
        build_kubernetes: bool = False,
        service_cluster_ip_range: str | None = None,
        router: RouterKind | None = None,
        peering: Peering | None = None,
        speaker_faketime: bool = False,
        speaker_batch: int | None = None,
        speaker_batch_joined: bool = False,
        vip_routes: Sequence[str] = DEFAULT_VIP_ROUTES,
        pin_neighbours: bool = False,
        speakers: bool = True,
    ) -> None:
        if not workers:
            raise LabClusterError("a lab cluster needs at least one worker node")
        if control_plane_node in workers:
            raise LabClusterError(f"{control_plane_node!r} is both a worker and the control-plane node")
        if speaker_batch is not None and speaker_batch < 1:
            raise LabClusterError(f"speaker_batch {speaker_batch}: start at least one speaker at a time")
        self.workers: tuple[str, ...] = tuple(workers)
        self.control_plane_node = control_plane_node
        self.namespace = namespace
        self.kubernetes_version = kubernetes_version
        self._build_kubernetes = build_kubernetes
        self._service_range = service_cluster_ip_range
        self.router_kind = router
        self.peering = peering or Peering()
        self._router: RouterDaemon | None = None
        self._prefix = prefix
        self._speaker_args = tuple(speaker_args)
        self._controller_args = tuple(controller_args)
        self._progress = progress
        self._given_log_dir = Path(log_dir) if log_dir is not None else None
        self._log_dir: Path | None = None
        self._control_plane: LocalControlPlane | None = None
        self._client: KubeClient | None = None
        self._lab: NetnsLab | None = None
        self._controller: ChildProcess | None = None
        self._speakers: dict[str, ChildProcess] = {}
        self._metrics_ports: dict[str, int] = {}
        self._speaker_faketime = speaker_faketime
        self._speaker_batch = speaker_batch
        self._speaker_batch_joined = speaker_batch_joined
        self._with_speakers = speakers
        self._vip_routes = tuple(vip_routes)
        self._pin_neighbours = pin_neighbours
        self._controller_metrics_port: int | None = None
        self._paused: set[str] = set()
        # Processes that must be running: a wait fails at once, with the log, when one of them has exited.
        self._expected: set[str] = set()
        self._started = False

    # -- what a test uses ------------------------------------------------------------------------------------

    @property
    def nodes(self) -> tuple[str, ...]:
        """Every lab node, workers first, then the control-plane node."""
        return (*self.workers, self.control_plane_node)

    @property
    def control_plane(self) -> LocalControlPlane:
        if self._control_plane is None:
            raise LabClusterError("the lab cluster is not running; use start() or a with block")
        return self._control_plane

    @property
    def client(self) -> KubeClient:
        """A client of the control plane with cluster-admin rights (the controller and speakers have their
        own)."""
        if self._client is None:
            raise LabClusterError("the lab cluster is not running; use start() or a with block")
        return self._client

    @property
    def lab(self) -> NetnsLab:
        if self._lab is None:
            raise LabClusterError("the lab cluster is not running; use start() or a with block")
        return self._lab

    @property
    def router(self) -> RouterDaemon:
        """The routing daemon in the router namespace (with `router=`)."""
        if self._router is None:
            raise LabClusterError("this lab cluster has no router (pass router='frr', 'bird' or 'gobgp')")
        return self._router

    @property
    def kubeconfig(self) -> Path:
        return self.control_plane.kubeconfig

    @property
    def log_dir(self) -> Path:
        if self._log_dir is None:
            raise LabClusterError("the lab cluster has no log directory before start()")
        return self._log_dir

    @property
    def controller_log(self) -> Path:
        return self.log_dir / "controller.log"

    def speaker_log(self, node: str) -> Path:
        self._check_node(node)
        return self.log_dir / f"speaker-{node}.log"

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60.0) -> str:
        """Runs `kubectl ARGS` against the control plane; returns stdout, raises KubectlError on failure."""
        return self.control_plane.kubectl(*args, input=stdin, check=True, timeout=timeout).stdout

    # -- life cycle ------------------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
        else:
            # The error in flight says what went wrong; a clean-up error would only hide it.
            with contextlib.suppress(LabClusterError):
                self.close()

    def start(self, timeout: float = 60.0) -> None:
        """Starts everything, in order, and returns when every speaker has published its gossip Lease and the
        controller leads (without `speakers`: when the controller leads). On any failure, whatever started
        is stopped again before the error propagates."""
        if self._started:
            raise LabClusterError("this lab cluster has already been started")
        self._started = True
        atexit.register(self.close)
        try:
            self._start(timeout)
        except BaseException:
            with contextlib.suppress(LabClusterError):
                self.close()
            raise

    def _start(self, timeout: float) -> None:
        if self._given_log_dir is not None:
            self._given_log_dir.mkdir(parents=True, exist_ok=True)
            self._log_dir = self._given_log_dir
        else:
            self._log_dir = Path(tempfile.mkdtemp(prefix="metallb-py-lab-"))

        began = time.monotonic()
        binaries = self._binaries()
        bin_dir = binaries.kubectl.parent
        if self._service_range:
            self._control_plane = LocalControlPlane(
                self.kubernetes_version, bin_dir=bin_dir, service_cluster_ip_range=self._service_range
            )
        else:
            self._control_plane = LocalControlPlane(self.kubernetes_version, bin_dir=bin_dir)
        self._control_plane.start()
        self._client = connect(self._control_plane.kubeconfig)
        self._say(f"control plane up at {self._control_plane.server} ({time.monotonic() - began:.1f} s)")

        began = time.monotonic()
        self._lab = NetnsLab(
            nodes=self.workers,
            extra_nodes=[self.control_plane_node],
            prefix=self._prefix,
            router=self.router_kind is not None,
            vip_routes=self._vip_routes,
            pin_neighbours=self._pin_neighbours,
        )
        self._lab.start()
        addresses = ", ".join(f"{n} {self._lab.node_address(n)}" for n in self.nodes[:8])
        if len(self.nodes) > 8:
            addresses += f", ... ({len(self.nodes)} nodes)"
        self._say(
            f"lab {self._lab.name}: {addresses}; client {self._lab.client_address()} "
            f"({1000 * (time.monotonic() - began):.0f} ms)"
        )
        if self.router_kind is not None:
            began = time.monotonic()
            config = router_config(self._lab, self.peering)
            self._router = make_router(self.router_kind, self._lab.router_ns, config, name="router")
            self._router.start()
            self._say(
                f"router {self.router_kind} (AS {self.peering.router_asn}) up in {self._lab.router_ns} "
                f"({1000 * (time.monotonic() - began):.0f} ms)"
            )

        self._create_cluster_objects()
        named = ", ".join(self.nodes) if len(self.nodes) <= 8 else f"{len(self.nodes)} Nodes"
        self._say(
            f"namespace {self.namespace}, Secret {MEMBERLIST_SECRET}, Nodes {named} "
            f"({self.control_plane_node} excluded from load balancers)"
        )

        began = time.monotonic()
        self.start_controller()
        if self._with_speakers:
            self.start_speakers(timeout=timeout)
        if "--no-leader-elect" not in self._controller_args:
            self.wait_for(self._controller_leads, timeout, "the controller to take its leader Lease")
        if not self._with_speakers:
            self._say(f"controller running ({time.monotonic() - began:.1f} s); logs in {self._log_dir}")
            return
        self.wait_for_speakers(timeout=timeout)
        self._say(
            f"controller and {len(self.nodes)} speakers running ({time.monotonic() - began:.1f} s); "
            f"logs in {self._log_dir}"
        )

    def start_speakers(self, nodes: Sequence[str] | None = None, *, timeout: float = 60.0) -> None:
        """Starts the speakers of `nodes` (default: every node), `speaker_batch` at a time: each batch once
        the previous one serves its metrics. Returns when the last batch is started (see
        wait_for_speakers); start() calls it unless the cluster was made with `speakers=False`. Each batch
        waits for the previous one to serve its metrics and publish its gossip Lease."""
        wanted = tuple(self.nodes if nodes is None else nodes)
        size = self._speaker_batch or len(wanted)
        began = time.monotonic()
        for first in range(0, len(wanted), size):
            batch = wanted[first : first + size]
            for node in batch:
                self.start_speaker(node)
            if size >= len(wanted):
                return
            self.wait_for(
                partial(self._speakers_up, batch),
                timeout,
                f"the speakers of {', '.join(batch)} to serve their metrics and publish their gossip Leases",
                interval=0.25,
            )
            if self._speaker_batch_joined:
                self.wait_for_speakers(wanted[: first + len(batch)], timeout)
            self._say(
                f"speakers {first + len(batch)}/{len(wanted)} started ({time.monotonic() - began:.1f} s)"
            )

    def _speakers_up(self, nodes: Sequence[str]) -> bool:
        # Past their first reads of the API (the Lease comes after them): the next batch's reads do not pile
        # onto theirs, which at a hundred speakers and a thousand Services outlast the client's timeouts.
        if not all(self.speaker_metrics(node) is not None for node in nodes):
            return False
        return "--no-gossip" in self._speaker_args or set(nodes) <= self._speaker_leases()

    def _binaries(self) -> KubernetesBinaries:
        sink = _ProgressLines(self._progress) if self._progress is not None else None
        return ensure_kubernetes_binaries(
            self.kubernetes_version, build=self._build_kubernetes, progress=sink
        )

    def _create_cluster_objects(self) -> None:
        client, lab = self.client, self.lab
        with contextlib.suppress(ConflictError):  # an existing namespace (`default`) is fine
            client.create(
                NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}}
            )
        client.create(SECRETS, memberlist_secret(self.namespace, secrets.token_bytes(32)), self.namespace)
        now = _dt.datetime.now(_dt.UTC)
        for node in self.nodes:
            client.create(NODES, node_manifest(node, control_plane=node == self.control_plane_node))
            status = node_status(node, lab.node_address(node, 4), now)
            client.patch(NODES, node, {"status": status}, subresource="status")

    def close(self) -> None:
        """Stops every process (SIGTERM together, SIGKILL after a grace period), removes the lab and the
        control plane, and the log directory unless one was given (then the control plane's logs are copied
        into it). Safe to call twice; raises LabClusterError after the whole clean-up if a step failed."""
        atexit.unregister(self.close)
        failures: list[str] = []
        children = [*self._speakers.values(), *([self._controller] if self._controller else [])]
        self._expected.clear()
        for node in list(self._paused):  # a stopped process would not see SIGTERM
            with contextlib.suppress(LabClusterError):
                self.resume_speaker(node)
        # Together: the speakers leave their gossip and withdraw in parallel, while the API still answers.
        for child in children:
            child.terminate()
        for child in children:
            if child.wait(_STOP_GRACE) is None:
                failures.append(f"{child.name} ignored SIGTERM for {_STOP_GRACE:.0f} s and was killed")
        self._speakers.clear()
        self._controller = None
        if self._router is not None:
            try:
                self._router.stop()
            except MetalLBError as exc:
                failures.append(f"stopping the router: {exc}")
            self._router = None
        if self._lab is not None:
            try:
                self._lab.close()
            except MetalLBError as exc:
                failures.append(f"removing the lab: {exc}")
            self._lab = None
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._control_plane is not None:
            if self._given_log_dir is not None:
                self._keep_control_plane_logs(self._control_plane)
            self._control_plane.stop()
            self._control_plane = None
        if self._given_log_dir is None and self._log_dir is not None:
            shutil.rmtree(self._log_dir, ignore_errors=True)
            self._log_dir = None
        if failures:
            raise LabClusterError("; ".join(failures))

    def _keep_control_plane_logs(self, cp: LocalControlPlane) -> None:
        with contextlib.suppress(MetalLBError, OSError):
            for name in ("kube-apiserver.log", "etcd.log"):
                source = cp.workdir / name
                if source.is_file():
                    shutil.copyfile(source, self.log_dir / name)

    # -- processes -------------------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        # Without the variable, speakers read the memberlist Secret, as in a cluster.
        env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}
        return {**env, **NO_PROXY_ENV}

    def start_controller(self) -> None:
        """Starts `metallb-py controller`, its metrics on 127.0.0.1 at a free port (see
        controller_metrics)."""
        if self._controller is not None and self._controller.running():
            raise LabClusterError("the controller is already running")
        self._controller_metrics_port = free_loopback_port()
        argv = [
            sys.executable,
            "-m",
            "metallb_py.cli",
            "controller",
            f"--kubeconfig={self.kubeconfig}",
            f"--namespace={self.namespace}",
            f"--identity={CONTROLLER_IDENTITY}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={self._controller_metrics_port}",
            *self._controller_args,
        ]
        self._controller = ChildProcess("controller", argv, self.controller_log, self._env())
        self._expected.add("controller")

    def start_speaker(
        self, node: str, *, kubeconfig: Path | None = None, clock_offset: float | None = None
    ) -> None:
        """Starts `metallb-py speaker` for `node`: in this host's network namespace for its API traffic and
        its metrics (127.0.0.1, a free port: see speaker_metrics), with its responder and gossip in the
        node's namespace (`--netns`). Returns at once; see wait_for_speakers.

        `kubeconfig`: another way to the API server for this speaker (a proxy's, as
        faults.Proxy.kubeconfig writes it), instead of the cluster's. `clock_offset`: run it under
        libfaketime with its wall clock that many seconds ahead (negative: behind), steppable while it runs
        with set_speaker_clock; with `speaker_faketime` every speaker runs so, at 0 unless given."""
        self._check_node(node)
        current = self._speakers.get(node)
        if current is not None and current.running():
            raise LabClusterError(f"the speaker of {node} is already running")
        metrics_port = free_loopback_port()
        argv = [
            sys.executable,
            "-m",
            "metallb_py.cli",
            "speaker",
            f"--node-name={node}",
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            f"--namespace={self.namespace}",
            f"--netns={self.lab.node_ns(node)}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={metrics_port}",
            *self._speaker_args,
        ]
        env = self._env()
        if clock_offset is not None or self._speaker_faketime:
            clock = self.speaker_clock_file(node)
            clock.write_text(clock_offset_line(clock_offset or 0.0))
            env.update(faketime_env(libfaketime(), clock, faketime_sleep_fix()))
        else:
            self.speaker_clock_file(node).unlink(missing_ok=True)
        self._paused.discard(node)
        self._speakers[node] = ChildProcess(f"speaker {node}", argv, self.speaker_log(node), env)
        self._metrics_ports[node] = metrics_port
        self._expected.add(node)

    def speaker_clock_file(self, node: str) -> Path:
        """The file libfaketime reads the node's speaker's clock offset from (when it runs under it)."""
        self._check_node(node)
        return self.log_dir / f"speaker-{node}.faketime"

    def set_speaker_clock(self, node: str, offset: float) -> None:
        """Steps the wall clock of the node's running speaker to `offset` seconds from the true time (0: true
        again), at its next clock read. The speaker must run under libfaketime (see start_speaker)."""
        clock = self.speaker_clock_file(node)
        if not clock.is_file():
            raise LabClusterError(
                f"the speaker of {node} does not run under libfaketime: start it with clock_offset= or the "
                "cluster with speaker_faketime=True"
            )
        # A new file renamed into place: the speaker never reads half an offset.
        fresh = clock.with_suffix(".new")
        fresh.write_text(clock_offset_line(offset))
        os.replace(fresh, clock)

    def pause_speaker(self, node: str) -> None:
        """SIGSTOP to the node's speaker (its process group): every thread freezes, its sockets stay open
        and fill up, as in a long garbage-collection or a frozen VM. resume_speaker continues it."""
        self._signal_speaker(node, signal.SIGSTOP)
        self._paused.add(node)

    def resume_speaker(self, node: str) -> None:
        """SIGCONT: the paused speaker runs on from where it stopped, with whatever piled up meanwhile."""
        self._signal_speaker(node, signal.SIGCONT)
        self._paused.discard(node)

    def _signal_speaker(self, node: str, sig: signal.Signals) -> None:
        self._check_node(node)
        speaker = self._speakers.get(node)
        if speaker is None or not speaker.running():
            raise LabClusterError(f"the speaker of {node} does not run")
        # Its own session and process group (ChildProcess): the group is the speaker and its children.
        os.killpg(speaker.pid, sig)

    def speaker_running(self, node: str) -> bool:
        self._check_node(node)
        speaker = self._speakers.get(node)
        return speaker is not None and speaker.running()

    def speaker_metrics(self, node: str) -> Scrape | None:
        """A scrape of the node's speaker's /metrics (served on 127.0.0.1, on a port of its own); None while
        it does not run or does not answer yet."""
        self._check_node(node)
        port = self._metrics_ports.get(node)
        if port is None or not self.speaker_running(node):
            return None
        return _scrape(port)

    def controller_metrics(self) -> Scrape | None:
        """A scrape of the controller's /metrics (127.0.0.1, a port of its own); None while it does not run
        or does not answer yet, or when controller_args turned its metrics off (--metrics-port=0)."""
        port = self._controller_metrics_port
        if port is None or self._controller is None or not self._controller.running():
            return None
        return _scrape(port)

    def apiserver_metrics(self) -> Scrape:
        """A scrape of the API server's own /metrics (apiserver_request_total by verb, resource and
        subresource...): what every client of the lab cost it, counted where it is served."""
        return parse_metrics(self.kubectl("get", "--raw", "/metrics"))

    def speaker_pid(self, node: str) -> int | None:
        """The process id of the node's running speaker, None when it does not run."""
        speaker = self._speakers.get(node)
        return speaker.pid if speaker is not None and speaker.running() else None

    def kill_speaker(self, node: str) -> None:
        """SIGKILL: the speaker crashes without leaving its gossip, withdrawing or deleting anything."""
        self._check_node(node)
        self._expected.discard(node)
        self._paused.discard(node)  # SIGKILL ends a stopped process too
        speaker = self._speakers.get(node)
        if speaker is not None:
            speaker.kill()

    def stop_speaker(self, node: str, grace: float = _STOP_GRACE) -> int:
        """SIGTERM, and waits for the speaker to exit: a graceful stop (it leaves the gossip at once and
        withdraws). Returns its exit status; raises LabClusterError if it had to be killed after `grace`."""
        self._check_node(node)
        self._expected.discard(node)
        speaker = self._speakers.get(node)
        if speaker is None:
            raise LabClusterError(f"no speaker was started for {node}")
        if node in self._paused:  # a stopped process would not see SIGTERM
            self.resume_speaker(node)
        speaker.terminate()
        status = speaker.wait(grace)
        if status is None:
            raise LabClusterError(
                f"the speaker of {node} ignored SIGTERM for {grace:.0f} s and was killed\n{speaker.tail()}"
            )
        return status

    def kill_controller(self) -> None:
        self._expected.discard("controller")
        if self._controller is not None:
            self._controller.kill()

    def check_processes(self) -> None:
        """Raises LabClusterError, with the end of its log, if a process that should run has exited."""
        children = dict(self._speakers)
        if self._controller is not None:
            children["controller"] = self._controller
        for name in sorted(self._expected):
            child = children.get(name)
            if child is not None and not child.running():
                self._expected.discard(name)
                raise LabClusterError(
                    f"the {child.name} exited with status {child.returncode}\n{child.tail()}"
                )

    # -- waiting ---------------------------------------------------------------------------------------------

    def wait_for(
        self, predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 0.05
    ) -> T:
        """Polls `predicate` until it returns something truthy and returns that. Fails (LabClusterError) after
        `timeout` seconds, or at once when a process that should run has exited. A temporary API error in
        `predicate` (no answer in time, 5xx, 429: a loaded API server) counts as "not yet"."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_processes()
            try:
                value = predicate()
            except ApiError as exc:
                if not exc.temporary:
                    raise
                value = None  # asked again at the next poll
            if value:
                return value
            if time.monotonic() > deadline:
                raise LabClusterError(
                    f"timed out after {timeout:g} s waiting for {what} (last: {value!r}); "
                    f"logs in {self._log_dir}"
                )
            time.sleep(interval)

    def wait_for_speakers(self, nodes: Sequence[str] | None = None, timeout: float = 60.0) -> None:
        """Waits until the speakers of `nodes` (default: every node) run, have published their gossip Lease
        and have joined the others (their metrics count the members they hear: at least themselves, once
        settled). Speakers without gossip (`--no-gossip` in speaker_args) publish no Lease and count no
        members: for them, this waits until each exports its layer 2 responder's counters (its responder
        runs)."""
        wanted = sorted(set(self.nodes if nodes is None else nodes))
        if "--no-gossip" in self._speaker_args:

            def responding(node: str) -> bool:
                scrape = self.speaker_metrics(node)
                return scrape is not None and "metallb_layer2_requests_received" in scrape.families

            self.wait_for(lambda: all(map(responding, wanted)), timeout, f"the speakers of {wanted} to start")
            return

        def joined(node: str) -> bool:
            # It counts every running speaker alive, itself included (set once it has settled).
            running = sum(self.speaker_running(n) for n in self.nodes)
            scrape = self.speaker_metrics(node)
            alive = scrape.value("metallb_py_speaker_members_alive") if scrape is not None else None
            return alive is not None and alive >= running

        # Each poll lists the Leases and scrapes every speaker: at a hundred, not twenty times a second.
        self.wait_for(
            lambda: set(wanted) <= self._speaker_leases() and all(map(joined, wanted)),
            timeout,
            f"the speakers of {wanted} to publish their gossip Leases and join",
            interval=max(0.05, len(wanted) / 100),
        )

    def _speaker_leases(self) -> set[str]:
        leases = self.client.list(LEASES, self.namespace, label_selector=SPEAKER_LEASE_LABEL).items
        return {str((lease.get("spec") or {}).get("holderIdentity") or "") for lease in leases}

    def _controller_leads(self) -> bool:
        try:
            lease = self.client.get(LEASES, CONTROLLER_LEASE, self.namespace)
        except NotFoundError:
            return False
        return (lease.get("spec") or {}).get("holderIdentity") == CONTROLLER_IDENTITY

    # -- services --------------------------------------------------------------------------------------------

    def create_service(
        self, name: str, namespace: str = "default", *, annotations: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Creates a LoadBalancer Service `name` (TCP port 80, selector app=`name`) with `annotations`, and
        its EndpointSlice on every worker (see publish_endpoints). Returns the Service as stored."""
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if annotations:
            metadata["annotations"] = dict(annotations)
        svc = self.client.create(
            SERVICES,
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": metadata,
                "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]},
            },
            namespace,
        )
        self.publish_endpoints(namespace, name)
        return svc

    def publish_endpoints(
        self,
        namespace: str,
        service: str,
        nodes: Sequence[str] | None = None,
        *,
        family: int = 4,
    ) -> dict[str, Any]:
        """Creates or replaces the Service's EndpointSlice of `family`: one ready endpoint on each of `nodes`
        (default: every worker), at the node's lab address, where its echo server plays the pod, with the
        Service's ports. `nodes=[]` leaves the Service without ready endpoints. Returns the object as
        stored. The Service must exist."""
        chosen = self.workers if nodes is None else tuple(nodes)
        for node in chosen:
            self._check_node(node)
        svc = self.client.get(SERVICES, service, namespace)
        endpoints = [(node, self.lab.node_address(node, family)) for node in chosen]
        body = endpoint_slice_manifest(
            namespace,
            service,
            endpoints,
            family=family,
            ports=endpoint_ports(svc),
            owner_uid=str(svc["metadata"]["uid"]),
        )
        name = body["metadata"]["name"]
        try:
            current = self.client.get(ENDPOINT_SLICES, name, namespace)
        except NotFoundError:
            return self.client.create(ENDPOINT_SLICES, body, namespace)
        body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return self.client.replace(ENDPOINT_SLICES, name, body, namespace)

    def external_ips(self, namespace: str, service: str) -> list[str]:
        """The Service's external addresses as its status shows them; [] while pending or absent."""
        try:
            return ingress_ips(self.client.get(SERVICES, service, namespace))
        except NotFoundError:
            return []

    def announcers(self, namespace: str, service: str) -> list[str]:
        """Every node a ServiceL2Status names for the Service, sorted (one at most when speakers agree). The
        objects are found by MetalLB's labels, as `kubectl get servicel2statuses -l ...` finds them."""
        statuses = self.client.list(
            SERVICE_L2_STATUSES, self.namespace, label_selector=service_selector(f"{namespace}/{service}")
        ).items
        return sorted({node for s in statuses if (node := status_node(s))})

    def announcer(self, namespace: str, service: str) -> str | None:
        """The node whose ServiceL2Status says it announces the Service; None when none does, or while
        several do (each node writes its own object: a new announcer deletes the old one's claim, and for a
        moment both may show). A crashed announcer's claim stays until the next one deletes it."""
        nodes = self.announcers(namespace, service)
        return nodes[0] if len(nodes) == 1 else None

    # -- internals -------------------------------------------------------------------------------------------

    def _check_node(self, node: str) -> None:
        if node not in self.nodes:
            raise LabClusterError(f"no node {node!r} in this lab cluster (nodes: {', '.join(self.nodes)})")

    def _say(self, message: str) -> None:
        if self._progress is not None:
            self._progress(message)

    def __repr__(self) -> str:
        state = f"lab {self._lab.name}" if self._lab is not None else "stopped"
        return f"LabCluster({', '.join(self.nodes)}; {state})"
