"""The seed walkthrough replayed with kubectl against a real API server, `metallb-py controller` running.

On a control plane of its own (the seed works in the `default` namespace with Services without a class),
exactly as the seed: the ConfigMap applied as written, two deployments scaled to 3, two Services exposed
and given 192.168.1.11 and .12; a third gets .13; a fourth stays <pending> with an AllocationFailed event;
deleting one frees its address for the pending one. No packet is sent anywhere: the addresses are only
written to the API.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _controller_support import FIXTURES, free_port, scrape, wait_until

from metallb_py.testing import LocalControlPlane

pytestmark = pytest.mark.integration

CONSOLE_SCRIPT = Path(sys.executable).parent / "metallb-py"


def services_table(cp: LocalControlPlane) -> dict[str, str]:
    """`kubectl get services` as NAME -> EXTERNAL-IP."""
    lines = cp.kubectl("get", "services", check=True).stdout.splitlines()
    header = lines[0].split()
    name_at, ip_at = header.index("NAME"), header.index("EXTERNAL-IP")
    return {row.split()[name_at]: row.split()[ip_at] for row in lines[1:]}


@pytest.fixture
def seed_cluster(new_control_plane: Callable[[], LocalControlPlane]) -> Iterator[LocalControlPlane]:
    with new_control_plane() as cp:
        yield cp


def test_seed_walkthrough(seed_cluster: LocalControlPlane, tmp_path: Path) -> None:
    cp = seed_cluster
    kubectl = cp.kubectl
    kubectl("create", "namespace", "metallb-system", check=True)
    kubectl("apply", "-f", str(FIXTURES / "seed-configmap.yaml"), check=True)

    metrics_port = free_port()
    log = tmp_path / "controller.log"
    with log.open("wb") as out:
        controller = subprocess.Popen(
            [
                str(CONSOLE_SCRIPT),
                "controller",
                f"--kubeconfig={cp.kubeconfig}",
                "--namespace=metallb-system",
                f"--metrics-port={metrics_port}",
                "--metrics-address=127.0.0.1",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={"PATH": "/usr/bin:/bin", "NO_PROXY": "127.0.0.1", "HOME": str(tmp_path)},
        )
    try:
        for deployment in ("lb-hname-pods", "lb-ip-pods"):
            kubectl("create", "deployment", deployment, "--image=sysnet4admin/echo-hname", check=True)
            kubectl("scale", "deployment", deployment, "--replicas=3", check=True)
        for deployment, name in (("lb-hname-pods", "lb-hname-svc"), ("lb-ip-pods", "lb-ip-svc")):
            kubectl(
                "expose",
                "deployment",
                deployment,
                "--type=LoadBalancer",
                f"--name={name}",
                "--port=80",
                check=True,
            )

        wait_until(
            lambda: services_table(cp).get("lb-ip-svc") not in (None, "<pending>"),
            timeout=120,
            what="lb-ip-svc to get an EXTERNAL-IP",
        )
        table = services_table(cp)
        assert table["lb-hname-svc"] == "192.168.1.11"
        assert table["lb-ip-svc"] == "192.168.1.12"
        assert table["kubernetes"] == "<none>"

        kubectl(
            "expose",
            "deployment",
            "lb-hname-pods",
            "--type=LoadBalancer",
            "--name=third-svc",
            "--port=80",
            check=True,
        )
        assert wait_until(lambda: services_table(cp)["third-svc"] != "<pending>" and services_table(cp)) == {
            **table,
            "third-svc": "192.168.1.13",
        }

        kubectl(
            "expose",
            "deployment",
            "lb-ip-pods",
            "--type=LoadBalancer",
            "--name=fourth-svc",
            "--port=80",
            check=True,
        )

        def described_with_failure() -> str:
            out = kubectl("describe", "service", "fourth-svc", check=True).stdout
            return out if "AllocationFailed" in out else ""

        described = wait_until(described_with_failure, what="an AllocationFailed event on fourth-svc")
        assert 'no available IPv4 address in pool "nginx-ip-range"' in described
        assert services_table(cp)["fourth-svc"] == "<pending>"

        kubectl("delete", "service", "lb-ip-svc", check=True)
        wait_until(lambda: services_table(cp)["fourth-svc"] == "192.168.1.12", what="fourth-svc to get .12")
        assert "lb-ip-svc" not in services_table(cp)
        assert "IPAllocated" in kubectl("describe", "service", "fourth-svc", check=True).stdout

        annotations = kubectl(
            "get", "service", "lb-hname-svc", "-o", "jsonpath={.metadata.annotations}", check=True
        ).stdout
        assert '"metallb.io/ip-allocated-from-pool":"nginx-ip-range"' in annotations

        metrics = scrape(metrics_port)
        assert metrics['metallb_allocator_addresses_total{pool="nginx-ip-range"}'] == 3
        assert metrics['metallb_allocator_addresses_in_use_total{pool="nginx-ip-range"}'] == 3
        assert metrics["metallb_k8s_client_config_loaded_bool"] == 1
        assert metrics["metallb_k8s_client_config_stale_bool"] == 0
        assert metrics["metallb_k8s_client_updates_total"] >= 5

        # A clean stop hands the leader lease back.
        controller.send_signal(signal.SIGTERM)
        assert controller.wait(60) == 0
        holder = kubectl(
            "get",
            "lease",
            "metallb-controller",
            "-n",
            "metallb-system",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ).stdout
        assert holder == ""
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait()
    # Structured logs: every line is a JSON object.
    lines = log.read_text().splitlines()
    assert lines and all(line.startswith("{") for line in lines), log.read_text()[-2000:]
