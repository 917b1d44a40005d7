"""Test and demo helpers that users can use too: a real local Kubernetes control plane, a lab of node
and client network namespaces (`NetnsLab`, root only) where a VIP reaches the node that announces it, and
`LabCluster` (root only), both together with our controller and a speaker per node: a whole cluster.
For BGP mode, real routing daemons (FRR, BIRD 2, GoBGP: `FrrRouter`, `BirdRouter`, `GobgpRouter` from one
`RouterConfig`) run in a namespace, and `BgpLab` puts one on a router between the nodes and the client.

`LocalControlPlane` runs etcd and kube-apiserver on 127.0.0.1, built once per Kubernetes version from the Go
module proxy by `make k8s` (tools/k8s/build.sh) and cached in ~/.cache/metallb-py (or $METALLB_PY_CACHE).
Nothing here builds them unless asked (`build=True`): without them, KubernetesNotBuiltError says how.

The fault lab (`faults`): `Toxiproxy` (built by tools/toxiproxy/build.sh, cached the same way) puts toxics
between a program and the API server, `ServiceObserver` records every change of every Service straight from
the API server, and `check()` judges that record: no address held twice, none moved unasked, none stuck.
"""

from __future__ import annotations

from metallb_py.testing.bgplab import BgpLab, Peering
from metallb_py.testing.controlplane import (
    DEFAULT_KUBERNETES_VERSION,
    ControlPlaneError,
    ControlPlaneUnavailableError,
    KubectlError,
    KubernetesBinaries,
    KubernetesNotBuiltError,
    LocalControlPlane,
    default_cache_dir,
    ensure_kubernetes_binaries,
)
from metallb_py.testing.faults import (
    DEFAULT_TOXIPROXY_VERSION,
    Duplicate,
    FaultLabError,
    Move,
    Observation,
    Proxy,
    ServiceObserver,
    Stuck,
    Toxic,
    Toxiproxy,
    ToxiproxyNotBuiltError,
    Verdict,
    check,
    ensure_toxiproxy_binary,
)
from metallb_py.testing.labcluster import LabCluster, LabClusterError
from metallb_py.testing.netlab import (
    FetchError,
    NetnsLab,
    NetnsLabError,
    Probe,
    Prober,
    cleanup_stale,
    neighbour_table_fulls,
)
from metallb_py.testing.routers import (
    BFD_STATES,
    BfdConfig,
    BfdCounters,
    BfdPeerView,
    BgpPath,
    BirdRouter,
    FrrRouter,
    GobgpRouter,
    GracefulRestartView,
    ListenRange,
    Neighbor,
    NextHop,
    Origination,
    Peer,
    RouterConfig,
    RouterDaemon,
    RouterError,
    RouterNotInstalledError,
    RouterTimeoutError,
    cleanup_stale_routers,
    make_router,
    missing_binaries,
    read_fib,
)

__all__ = [
    "BFD_STATES",
    "DEFAULT_KUBERNETES_VERSION",
    "DEFAULT_TOXIPROXY_VERSION",
    "BfdConfig",
    "BfdCounters",
    "BfdPeerView",
    "BgpLab",
    "BgpPath",
    "BirdRouter",
    "ControlPlaneError",
    "ControlPlaneUnavailableError",
    "Duplicate",
    "FaultLabError",
    "FetchError",
    "FrrRouter",
    "GobgpRouter",
    "GracefulRestartView",
    "KubectlError",
    "KubernetesBinaries",
    "KubernetesNotBuiltError",
    "LabCluster",
    "LabClusterError",
    "ListenRange",
    "LocalControlPlane",
    "Move",
    "Neighbor",
    "NetnsLab",
    "NetnsLabError",
    "NextHop",
    "Observation",
    "Origination",
    "Peer",
    "Peering",
    "Probe",
    "Prober",
    "Proxy",
    "RouterConfig",
    "RouterDaemon",
    "RouterError",
    "RouterNotInstalledError",
    "RouterTimeoutError",
    "ServiceObserver",
    "Stuck",
    "Toxic",
    "Toxiproxy",
    "ToxiproxyNotBuiltError",
    "Verdict",
    "check",
    "cleanup_stale",
    "cleanup_stale_routers",
    "default_cache_dir",
    "ensure_kubernetes_binaries",
    "ensure_toxiproxy_binary",
    "make_router",
    "missing_binaries",
    "neighbour_table_fulls",
    "read_fib",
]
