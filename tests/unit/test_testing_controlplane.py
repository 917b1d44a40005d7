"""metallb_py.testing without a cluster: version pins agree, CRD manifests are well formed, and a machine that
cannot build the control plane gets ControlPlaneUnavailableError (the integration tests skip on it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from metallb_py.testing import (
    DEFAULT_KUBERNETES_VERSION,
    ControlPlaneError,
    ControlPlaneUnavailableError,
    LocalControlPlane,
    controlplane,
    ensure_kubernetes_binaries,
)

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "tools" / "k8s" / "build.sh"
CRDS = REPO / "deploy" / "crds"
# kind -> (plural, served versions, storage version). MetalLB's plurals, so users' manifests apply unchanged.
EXPECTED_CRDS = {
    "IPAddressPool": ("ipaddresspools", ["v1beta1"], "v1beta1"),
    "L2Advertisement": ("l2advertisements", ["v1beta1"], "v1beta1"),
    "BGPAdvertisement": ("bgpadvertisements", ["v1beta1"], "v1beta1"),
    "BGPPeer": ("bgppeers", ["v1beta2", "v1beta1"], "v1beta2"),
    "Community": ("communities", ["v1beta1"], "v1beta1"),
    "BFDProfile": ("bfdprofiles", ["v1beta1"], "v1beta1"),
    "ServiceL2Status": ("servicel2statuses", ["v1beta1"], "v1beta1"),
    "ConfigurationState": ("configurationstates", ["v1beta1"], "v1beta1"),
}


def test_default_version_is_the_one_pinned_by_the_wrapper_module() -> None:
    gomod = (REPO / "tools" / "k8s" / "kubernetes" / "go.mod").read_text()
    assert f"\tk8s.io/kubernetes {DEFAULT_KUBERNETES_VERSION} " in gomod
    staging = f"v0.{DEFAULT_KUBERNETES_VERSION.removeprefix('v1.')}"
    assert f"k8s.io/api => k8s.io/api {staging}\n" in gomod


def test_build_script_prints_the_cache_location(tmp_path: Path) -> None:
    env = {**os.environ, "METALLB_PY_CACHE": str(tmp_path)}
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-bin-dir"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert out == f"{tmp_path}/k8s/{DEFAULT_KUBERNETES_VERSION}/bin\n"
    bad = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "1.37"], capture_output=True, text=True, env=env, check=False
    )
    assert bad.returncode == 2
    assert "not a Kubernetes version" in bad.stderr


def test_crds_are_the_metallb_kinds_with_metallb_plurals() -> None:
    found = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        spec = crd["spec"]
        names = spec["names"]
        assert crd["metadata"]["name"] == f"{names['plural']}.metallb.io" == path.stem
        assert (spec["group"], spec["scope"]) == ("metallb.io", "Namespaced")
        served = [v["name"] for v in spec["versions"] if v["served"]]
        storage = [v["name"] for v in spec["versions"] if v["storage"]]
        assert len(storage) == 1
        for version in spec["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            assert schema["type"] == "object"
            assert {"apiVersion", "kind", "metadata", "spec"} <= set(schema["properties"])
        found[names["kind"]] = (names["plural"], served, storage[0])
    assert found == EXPECTED_CRDS


def test_no_go_and_nothing_cached_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controlplane, "_find_go", lambda: None)
    with pytest.raises(ControlPlaneUnavailableError, match="Go is not installed"):
        ensure_kubernetes_binaries(cache_dir=tmp_path)


def test_a_bin_dir_without_binaries_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ControlPlaneUnavailableError, match="not executable"):
        LocalControlPlane(bin_dir=tmp_path).start()


def test_a_stopped_control_plane_says_so() -> None:
    cp = LocalControlPlane()
    cp.stop()  # harmless before start
    with pytest.raises(ControlPlaneError, match="not running"):
        _ = cp.server
    with pytest.raises(ControlPlaneError, match="not running"):
        cp.kubectl("get", "pods")
    assert cp.pids == {}
    assert "stopped" in repr(cp)
