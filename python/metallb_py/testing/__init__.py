"""Test and demo helpers that users can use too: a real local Kubernetes control plane, a lab of node
and client network namespaces (`NetnsLab`, root only) where a VIP reaches the node that announces it, and
`LabCluster` (root only), both together with our controller and a speaker per node: a whole cluster.

`LocalControlPlane` runs etcd and kube-apiserver on 127.0.0.1, built once per Kubernetes version from the Go
module proxy by `make k8s` (tools/k8s/build.sh) and cached in ~/.cache/metallb-py (or $METALLB_PY_CACHE).
Nothing here builds them unless asked (`build=True`): without them, KubernetesNotBuiltError says how.
"""

from __future__ import annotations

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
from metallb_py.testing.labcluster import LabCluster, LabClusterError
from metallb_py.testing.netlab import FetchError, NetnsLab, NetnsLabError, Probe, Prober, cleanup_stale

__all__ = [
    "DEFAULT_KUBERNETES_VERSION",
    "ControlPlaneError",
    "ControlPlaneUnavailableError",
    "FetchError",
    "KubectlError",
    "KubernetesBinaries",
    "KubernetesNotBuiltError",
    "LabCluster",
    "LabClusterError",
    "LocalControlPlane",
    "NetnsLab",
    "NetnsLabError",
    "Probe",
    "Prober",
    "cleanup_stale",
    "default_cache_dir",
    "ensure_kubernetes_binaries",
]
