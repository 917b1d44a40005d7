"""LocalControlPlane itself: it starts, serves kubectl and our CRDs, survives an API server restart, and stops
without leaving a process or a file behind."""

from __future__ import annotations

import ipaddress
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from metallb_py.testing import KubectlError, LocalControlPlane

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
CRD_NAMES = {
    f"{plural}.metallb.io"
    for plural in (
        "ipaddresspools",
        "l2advertisements",
        "bgpadvertisements",
        "bgppeers",
        "communities",
        "bfdprofiles",
        "servicel2statuses",
        "servicebgpstatuses",
    )
}


def get_json(cp: LocalControlPlane, *args: str) -> dict[str, object]:
    result = cp.kubectl("get", *args, "-o", "json", check=True)
    loaded: dict[str, object] = json.loads(result.stdout)
    return loaded


def status_of(cp: LocalControlPlane, path: str, token: str | None) -> int:
    """The status of a GET on the API server, verifying its certificate with cp.ca_file."""
    context = ssl.create_default_context(cafile=str(cp.ca_file))
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with opener.open(urllib.request.Request(cp.server + path, headers=headers), timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code)


def test_kubectl_lists_the_namespaces(control_plane: LocalControlPlane) -> None:
    names = control_plane.kubectl("get", "namespaces", "-o", "name", check=True).stdout.split()
    assert {"namespace/default", "namespace/kube-system"} <= set(names)


def test_server_is_https_on_loopback_and_the_token_is_cluster_admin(control_plane: LocalControlPlane) -> None:
    assert control_plane.server.startswith("https://127.0.0.1:")
    assert status_of(control_plane, "/api/v1/namespaces", token=None) in (401, 403)
    assert status_of(control_plane, "/api/v1/namespaces", token="not-the-token") == 401
    assert status_of(control_plane, "/api/v1/namespaces", token=control_plane.token) == 200
    can = control_plane.kubectl("auth", "can-i", "*", "*", "--all-namespaces", check=True)
    assert can.stdout.strip() == "yes"


def test_kubeconfig_works_for_any_kubectl_invocation(control_plane: LocalControlPlane) -> None:
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == control_plane.server
    # No --insecure-skip-tls-verify: the kubeconfig carries the CA that signed the serving certificate.
    result = subprocess.run(
        [
            str(control_plane.kubectl_path),
            f"--kubeconfig={control_plane.kubeconfig}",
            "version",
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=control_plane.workdir,
        env={"HOME": str(control_plane.workdir), "NO_PROXY": "127.0.0.1"},
    )
    versions = json.loads(result.stdout)
    assert versions["serverVersion"]["gitVersion"] == control_plane.version
    assert versions["clientVersion"]["gitVersion"] == control_plane.version


def test_our_crds_are_installed_and_validate(control_plane: LocalControlPlane) -> None:
    crds = control_plane.kubectl("get", "crds", "-o", "name", check=True).stdout.split()
    assert {f"customresourcedefinition.apiextensions.k8s.io/{n}" for n in CRD_NAMES} <= set(crds)
    control_plane.kubectl("create", "namespace", "metallb-system")
    control_plane.kubectl("apply", "-f", str(FIXTURES / "seed-crds.yaml"), check=True)
    pool = get_json(control_plane, "ipaddresspool", "nginx-ip-range", "-n", "metallb-system")
    # The schema's defaults are applied by the API server.
    assert pool["spec"] == {
        "addresses": ["192.168.1.11-192.168.1.13"],
        "autoAssign": True,
        "avoidBuggyIPs": False,
    }
    bad = control_plane.kubectl(
        "apply",
        "-f",
        "-",
        input=(
            "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\n"
            "metadata: {name: bad, namespace: metallb-system}\n"
            "spec: {addresses: [10.0.0.0/24], autoAssign: maybe}\n"
        ),
    )
    assert bad.returncode != 0
    assert "autoAssign" in bad.stderr


def test_legacy_configmap_converted_by_our_cli_fits_the_crds(control_plane: LocalControlPlane) -> None:
    converted = subprocess.run(
        [sys.executable, "-m", "metallb_py.cli", "config", "convert", str(FIXTURES / "legacy-full.yaml")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for namespace in {doc["metadata"]["namespace"] for doc in yaml.safe_load_all(converted) if doc}:
        control_plane.kubectl("create", "namespace", namespace)
    result = control_plane.kubectl("apply", "--dry-run=server", "-f", "-", input=converted)
    assert result.returncode == 0, result.stderr


def test_bgppeer_is_served_in_v1beta2_and_v1beta1(control_plane: LocalControlPlane) -> None:
    manifest = """
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: old-style, namespace: default}
spec: {myASN: 64500, peerASN: 64501, peerAddress: 10.0.0.1}
"""
    created = control_plane.kubectl("apply", "-f", "-", input=manifest, check=True)
    assert "deprecated" in created.stderr
    peer = get_json(control_plane, "bgppeers.v1beta2.metallb.io", "old-style")
    assert peer["apiVersion"] == "metallb.io/v1beta2"
    assert peer["spec"] == {
        "myASN": 64500,
        "peerASN": 64501,
        "peerAddress": "10.0.0.1",
        "peerPort": 179,
        "disableMP": False,
        "dualStackAddressFamily": False,
    }


def test_loadbalancer_service_stays_pending_without_our_controller(control_plane: LocalControlPlane) -> None:
    control_plane.kubectl(
        "create", "deployment", "lb-hname-pods", "--image=sysnet4admin/echo-hname", check=True
    )
    control_plane.kubectl(
        "expose",
        "deployment",
        "lb-hname-pods",
        "--type=LoadBalancer",
        "--name=lb-hname-svc",
        "--port=80",
        check=True,
    )
    table = control_plane.kubectl("get", "service", "lb-hname-svc", check=True).stdout.splitlines()
    header, row = table[0].split(), table[1].split()
    columns = dict(zip(header, row, strict=False))
    assert columns["TYPE"] == "LoadBalancer"
    assert columns["EXTERNAL-IP"] == "<pending>"
    assert ipaddress.ip_address(columns["CLUSTER-IP"]) in ipaddress.ip_network("10.96.0.0/20")
    service = get_json(control_plane, "service", "lb-hname-svc")
    assert service["spec"]["selector"] == {"app": "lb-hname-pods"}  # type: ignore[index]
    assert service["status"] == {"loadBalancer": {}}


def test_kubectl_check_raises_with_stderr_in_the_message(control_plane: LocalControlPlane) -> None:
    with pytest.raises(KubectlError, match="not found") as raised:
        control_plane.kubectl("get", "configmap", "no-such-thing", check=True)
    assert raised.value.returncode == 1
    assert isinstance(raised.value, subprocess.CalledProcessError)


def test_restart_apiserver_keeps_data_port_and_credentials(control_plane: LocalControlPlane) -> None:
    control_plane.kubectl("create", "configmap", "survivor", "--from-literal=k=v", check=True)
    server, old_pid = control_plane.server, control_plane.pids["kube-apiserver"]
    etcd_pid = control_plane.pids["etcd"]
    control_plane.restart_apiserver()
    assert control_plane.server == server
    assert control_plane.pids == {"etcd": etcd_pid, "kube-apiserver": control_plane.pids["kube-apiserver"]}
    assert control_plane.pids["kube-apiserver"] != old_pid
    assert not Path(f"/proc/{old_pid}").exists()
    survivor = get_json(control_plane, "configmap", "survivor")
    assert survivor["data"] == {"k": "v"}


def test_stop_leaves_no_process_and_no_file(new_control_plane: Callable[[], LocalControlPlane]) -> None:
    # A control plane of its own: stopping the session's one would break the other tests.
    home_kube = Path.home() / ".kube"
    home_kube_before = sorted(home_kube.rglob("*")) if home_kube.exists() else []
    with new_control_plane() as cp:
        pids = cp.pids
        workdir = cp.workdir
        assert set(pids) == {"etcd", "kube-apiserver"}
        assert all(Path(f"/proc/{pid}").exists() for pid in pids.values())
        cp.kubectl("get", "namespaces", check=True)
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids.values())
    assert not workdir.exists()
    assert cp.pids == {}
    assert (sorted(home_kube.rglob("*")) if home_kube.exists() else []) == home_kube_before
    cp.stop()  # stopping twice is harmless
