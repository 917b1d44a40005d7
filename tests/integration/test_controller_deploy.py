"""deploy/: every manifest is accepted by a real API server (`--dry-run=server`), and the controller's RBAC is
enough to do its whole job, and no more.

On a control plane of its own: the manifests install cluster-wide objects (CRDs, ClusterRoles).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from _controller_support import FIXTURES, REPO, Cluster, lb_ips, service, wait_until

from metallb_py.controller import Controller, ControllerOptions
from metallb_py.k8s import ForbiddenError, connect
from metallb_py.k8s.resources import CONFIGURATION_STATES, IP_ADDRESS_POOLS, LEASES, SERVICES
from metallb_py.testing import LocalControlPlane

pytestmark = pytest.mark.integration

DEPLOY = REPO / "deploy"
SA = "system:serviceaccount:metallb-system:controller"


def test_every_manifest_is_accepted_by_the_api_server(
    new_control_plane: Callable[[], LocalControlPlane],
) -> None:
    with new_control_plane() as cp:
        ns = cp.kubectl("apply", "--dry-run=server", "-f", str(DEPLOY / "namespace.yaml"))
        assert ns.returncode == 0, ns.stderr
        cp.kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"), check=True)
        applied = cp.kubectl("apply", "--dry-run=server", "-k", str(DEPLOY))
        assert applied.returncode == 0, applied.stderr
        kinds = {line.split()[0].split("/")[0] for line in applied.stdout.splitlines()}
        assert {
            "customresourcedefinition.apiextensions.k8s.io",
            "serviceaccount",
            "clusterrole.rbac.authorization.k8s.io",
            "clusterrolebinding.rbac.authorization.k8s.io",
            "role.rbac.authorization.k8s.io",
            "rolebinding.rbac.authorization.k8s.io",
            "deployment.apps",
            "daemonset.apps",
        } <= kinds
        # The kustomization lists every manifest in deploy/ and deploy/crds/.
        listed = set(yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"])
        present = {
            p.relative_to(DEPLOY).as_posix() for p in [*DEPLOY.glob("*.yaml"), *DEPLOY.glob("crds/*.yaml")]
        } - {"kustomization.yaml"}
        assert listed == present


def token_kubeconfig(cp: LocalControlPlane, path: Path) -> Path:
    token = cp.kubectl(
        "create", "token", "controller", "-n", "metallb-system", "--duration=1h", check=True
    ).stdout.strip()
    admin = yaml.safe_load(cp.kubeconfig.read_text())
    admin["users"] = [{"name": "admin", "user": {"token": token}}]
    path.write_text(yaml.safe_dump(admin))
    return path


def test_the_controller_rbac_is_enough_and_no_more(
    new_control_plane: Callable[[], LocalControlPlane], tmp_path: Path
) -> None:
    with new_control_plane() as cp:
        cp.kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"), "-f", str(DEPLOY / "rbac.yaml"), check=True)
        cp.kubectl("apply", "-f", str(FIXTURES / "seed-crds.yaml"), check=True)
        kubeconfig = token_kubeconfig(cp, tmp_path / "controller.kubeconfig")

        allowed = [
            "list services -A",
            "patch services/status -n x",
            "create events -n x",
            "get configmaps/config -n metallb-system",
            "list ipaddresspools.metallb.io -n metallb-system",
            "update leases/metallb-controller -n metallb-system",
        ]
        denied = [
            "create services -n x",
            "delete services -n x",
            "update services -n x",
            "get secrets -A",
            "list pods -A",
            "update configmaps/config -n metallb-system",
            "get configmaps/other -n metallb-system",
            "list ipaddresspools.metallb.io -n default",
            "create ipaddresspools.metallb.io -n metallb-system",
            "update leases/someone-else -n metallb-system",
        ]
        for check, expected in [(c, "yes") for c in allowed] + [(c, "no") for c in denied]:
            answer = cp.kubectl("auth", "can-i", *check.split(), f"--as={SA}").stdout.strip()
            assert answer == expected, f"can-i {check}: {answer}"

        # The whole job with only those rights: leader lease, configuration, addresses, events, state.
        cluster = Cluster(cp)
        client = connect(kubeconfig)
        with pytest.raises(ForbiddenError):
            client.create(SERVICES, service("nope", "default"), "default")
        for i in range(2):
            cluster.create_service(service(f"web-{i}", "default"))
        options = ControllerOptions(namespace="metallb-system", leader_election=True, identity="rbac-test")
        controller = Controller(client, options)
        controller.start()
        try:
            wait_until(
                lambda: (
                    [lb_ips(cluster.get_service("default", f"web-{i}")) for i in range(2)]
                    == [["192.168.1.11"], ["192.168.1.12"]]
                ),
                what="both Services to get addresses with the controller's own rights",
            )
            wait_until(lambda: "IPAllocated" in cluster.event_reasons("default", "web-0"))
            state = cluster.client.get(CONFIGURATION_STATES, "controller", "metallb-system")
            assert state["status"]["result"] == "Valid"
            lease = cluster.client.get(LEASES, "metallb-controller", "metallb-system")
            assert lease["spec"]["holderIdentity"] == "rbac-test"
            registry = controller.metrics.registry
            for errors in ("metallb_k8s_client_update_errors", "metallb_py_controller_permanent_errors"):
                assert registry.get_sample_value(errors + "_total") == 0, errors
        finally:
            controller.stop()
            client.close()
            cluster.cleanup()


def test_the_controller_rbac_lets_it_write_pool_status(
    new_control_plane: Callable[[], LocalControlPlane], tmp_path: Path
) -> None:
    """Without it the controller allocates as usual but leaves the pools' status counters unwritten."""
    with new_control_plane() as cp:
        cp.kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"), "-f", str(DEPLOY / "rbac.yaml"), check=True)
        cp.kubectl("apply", "-f", str(FIXTURES / "seed-crds.yaml"), check=True)
        kubeconfig = token_kubeconfig(cp, tmp_path / "controller.kubeconfig")
        can = ["patch", "ipaddresspools.metallb.io", "--subresource=status", "-n", "metallb-system"]
        assert cp.kubectl("auth", "can-i", *can, f"--as={SA}").stdout.strip() == "yes"

        cluster = Cluster(cp)
        client = connect(kubeconfig)
        cluster.create_service(service("web", "default"))
        controller = Controller(client, ControllerOptions(namespace="metallb-system", leader_election=False))
        controller.start()
        try:
            expected = {"assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 2, "availableIPv6": 0}
            wait_until(
                lambda: (
                    cluster.client.get(IP_ADDRESS_POOLS, "nginx-ip-range", "metallb-system").get("status")
                    == expected
                ),
                what="the pool's status counters",
            )
        finally:
            controller.stop()
            client.close()
            cluster.cleanup()
