"""metallb_py.testing without a cluster: version pins agree, CRD manifests are well formed, nothing but an
explicit build (`make k8s`, build=True) runs Go, and binaries that are not built give
ControlPlaneUnavailableError (the integration tests skip on it, saying how to build them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from metallb_py.testing import (
    DEFAULT_KUBERNETES_VERSION,
    ControlPlaneError,
    ControlPlaneUnavailableError,
    KubernetesNotBuiltError,
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
    "ServiceBGPStatus": ("servicebgpstatuses", ["v1beta1"], "v1beta1"),
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


@pytest.fixture
def go_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `go` first on PATH that logs each run to the file it returns and fails, as a broken build."""
    bin_dir = tmp_path / "fake-go"
    bin_dir.mkdir()
    ran = tmp_path / "go-ran"
    go = bin_dir / "go"
    go.write_text(f'#!/bin/sh\necho "$@" >> {ran}\nexit 1\n')
    go.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("GO", raising=False)
    return ran


def test_nothing_cached_is_not_built_and_go_is_never_run(tmp_path: Path, go_on_path: Path) -> None:
    with pytest.raises(KubernetesNotBuiltError, match="make k8s") as raised:
        ensure_kubernetes_binaries(cache_dir=tmp_path / "cache")
    assert isinstance(raised.value, ControlPlaneUnavailableError)  # what the test suites skip on
    with pytest.raises(KubernetesNotBuiltError, match=r"tools/k8s/build\.sh v1\.36\.3"):
        ensure_kubernetes_binaries("v1.36.3", tmp_path / "cache")
    with pytest.raises(KubernetesNotBuiltError, match="make k8s"):
        LocalControlPlane(cache_dir=tmp_path / "cache").start()
    assert not go_on_path.exists(), f"go ran: {go_on_path.read_text()}"


def test_only_an_explicit_build_runs_the_build_script_and_go(tmp_path: Path, go_on_path: Path) -> None:
    # The same fake Go as above, so that test's "go never ran" would see a build.
    with open(os.devnull, "w") as quiet, pytest.raises(ControlPlaneError, match=r"build\.sh exited"):
        ensure_kubernetes_binaries(cache_dir=tmp_path / "cache", build=True, progress=quiet)
    assert "mod download" in go_on_path.read_text()


def test_cached_binaries_are_found_without_a_build(tmp_path: Path, go_on_path: Path) -> None:
    bin_dir = tmp_path / "k8s" / DEFAULT_KUBERNETES_VERSION / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("kube-apiserver", "etcd", "kubectl"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    found = ensure_kubernetes_binaries(cache_dir=tmp_path)
    assert (found.kube_apiserver, found.etcd, found.kubectl) == (
        bin_dir / "kube-apiserver",
        bin_dir / "etcd",
        bin_dir / "kubectl",
    )
    assert not go_on_path.exists()


def test_no_go_and_nothing_cached_cannot_be_built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(controlplane, "_find_go", lambda: None)
    with pytest.raises(ControlPlaneUnavailableError, match="Go is not installed"):
        ensure_kubernetes_binaries(cache_dir=tmp_path, build=True)


@pytest.mark.parametrize("required", [False, True])
def test_plain_pytest_never_builds_the_control_plane(
    tmp_path: Path, go_on_path: Path, required: bool
) -> None:
    """`pytest` of the suites that need a control plane, with Go on PATH and nothing built: they skip (or,
    under METALLB_PY_REQUIRE_K8S=1, fail) saying `make k8s`, and Go never runs, at collection or later."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METALLB_PY_", "PYTEST_"))}
    env["METALLB_PY_CACHE"] = str(tmp_path / "cache")
    if required:
        env["METALLB_PY_REQUIRE_K8S"] = "1"
    suites = ["tests/integration/test_controlplane.py", "tests/e2e/test_speaker_library.py"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rsf", *suites],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = done.stdout + done.stderr
    assert not go_on_path.exists(), f"go ran: {go_on_path.read_text()}\n{out}"
    assert "make k8s" in out, out
    if required:
        assert done.returncode == 1 and "METALLB_PY_REQUIRE_K8S=1" in out, out
    else:
        assert done.returncode == 0 and " passed" not in out and " skipped" in out, out


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
