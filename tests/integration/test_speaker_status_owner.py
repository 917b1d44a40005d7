"""The speaker's Pod owns its ServiceL2Status objects, on a real API server and with only the rights
deploy/rbac.yaml gives the speaker: it may read its own Pod (get, in metallb-system, nothing more), and the
API server accepts the ownerReference it writes. (Nothing here runs the garbage collector that then deletes
the objects with the Pod: the control plane has no controller-manager.)

On a control plane of its own: the manifests install cluster-wide objects (ClusterRoles).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from _controller_support import REPO, wait_until

from metallb_py.k8s import connect
from metallb_py.k8s.resources import PODS, SERVICE_L2_STATUSES
from metallb_py.k8s.watch import Change, Reflector
from metallb_py.speaker.reporter import StatusReporter
from metallb_py.speaker.status import service_selector
from metallb_py.testing import LocalControlPlane

pytestmark = pytest.mark.integration

DEPLOY = REPO / "deploy"
NS = "metallb-system"
SA = f"system:serviceaccount:{NS}:speaker"
WEB = "default/web"


def speaker_kubeconfig(cp: LocalControlPlane, path: Path) -> Path:
    token = cp.kubectl("create", "token", "speaker", "-n", NS, "--duration=1h", check=True).stdout.strip()
    admin = yaml.safe_load(cp.kubeconfig.read_text())
    admin["users"] = [{"name": "admin", "user": {"token": token}}]
    path.write_text(yaml.safe_dump(admin))
    return path


class NoServices:
    def get(self, key: str) -> dict[str, Any] | None:
        return None  # no Service: no Event to write

    def items(self) -> list[dict[str, Any]]:
        return []


class NoEvents:
    def record(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        raise AssertionError("no Service, no Event")


def test_the_speakers_pod_owns_its_status_objects_with_the_speakers_own_rights(
    new_control_plane: Callable[[], LocalControlPlane], tmp_path: Path
) -> None:
    with new_control_plane() as cp:
        cp.kubectl("apply", "-f", str(DEPLOY / "namespace.yaml"), "-f", str(DEPLOY / "rbac.yaml"), check=True)
        allowed = [
            f"get pods -n {NS}",
            f"create servicel2statuses.metallb.io -n {NS}",
            f"get configmaps/metallb-excludel2 -n {NS}",
            f"watch configmaps/config -n {NS}",
        ]
        denied = [
            f"list pods -n {NS}",
            f"watch pods -n {NS}",
            f"delete pods -n {NS}",
            "get pods -n default",
            f"get configmaps/other -n {NS}",
        ]
        for check, expected in [(c, "yes") for c in allowed] + [(c, "no") for c in denied]:
            answer = cp.kubectl("auth", "can-i", *check.split(), f"--as={SA}").stdout.strip()
            assert answer == expected, f"can-i {check}: {answer}"

        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "speaker-x1", "namespace": NS},
            "spec": {"containers": [{"name": "speaker", "image": "metallb-py:test"}]},
        }
        admin = connect(cp.kubeconfig)
        uid = admin.create(PODS, pod, NS)["metadata"]["uid"]
        client = connect(speaker_kubeconfig(cp, tmp_path / "speaker.kubeconfig"))
        reporters: list[StatusReporter] = []

        def on_status(change: Change) -> None:
            for reporter in reporters:
                reporter.status_changed(change.obj)

        statuses = Reflector(client, SERVICE_L2_STATUSES, on_status, namespace=NS)
        statuses.start()
        stop = threading.Event()
        threads: list[threading.Thread] = []
        try:
            for node, pod_name in (("node1", "speaker-x1"), ("node2", None)):
                reporter = StatusReporter(
                    client,
                    node,
                    NS,
                    wanted=lambda: {WEB: ("eth0",)},
                    statuses=statuses,
                    services=NoServices(),
                    events=NoEvents(),
                    pod=pod_name,
                )
                reporters.append(reporter)
            owned, unowned = reporters
            # node2 (no Pod) claims first; then node1 (with its Pod) takes over, deleting node2's claim.
            unowned.announce_changed()
            threads.append(threading.Thread(target=unowned.run, args=(stop, statuses.synced.is_set)))
            threads[-1].start()

            def objects() -> list[dict[str, Any]]:
                listed = admin.list(SERVICE_L2_STATUSES, NS, label_selector=service_selector(WEB))
                return listed.items

            [claim] = wait_until(lambda: [o for o in objects() if o.get("status")], what="node2's claim")
            assert "ownerReferences" not in claim["metadata"], "no Pod known: no owner"
            unowned.stop()
            threads[-1].join(10)

            owned.announce_changed()
            threads.append(threading.Thread(target=owned.run, args=(stop, statuses.synced.is_set)))
            threads[-1].start()

            def node1_alone() -> list[dict[str, Any]]:
                found = objects()
                return found if [(o.get("status") or {}).get("node") for o in found] == ["node1"] else []

            [claim] = wait_until(node1_alone, what="node1's claim, alone, with its status")
            assert claim["metadata"]["ownerReferences"] == [
                {"apiVersion": "v1", "kind": "Pod", "name": "speaker-x1", "uid": uid}
            ]
            assert claim["status"]["interfaces"] == [{"name": "eth0"}]
        finally:
            stop.set()
            for reporter in reporters:
                reporter.stop()
            for thread in threads:
                thread.join(10)
            statuses.stop()
            client.close()
            admin.close()
