"""The light connection (no `kubernetes` package) against the real API server, in a process of its own: the
package is not imported, and requests work with the control plane's kubeconfig."""

from __future__ import annotations

import json
import subprocess
import sys

from metallb_py.testing import LocalControlPlane

CHILD = """
import json, sys
from metallb_py.k8s import connect
from metallb_py.k8s.resources import NAMESPACES
client = connect(sys.argv[1])
names = [n["metadata"]["name"] for n in client.list(NAMESPACES).items]
print(json.dumps({"names": names, "kubernetes": "kubernetes" in sys.modules}))
"""


def test_a_kubeconfig_with_a_token_connects_without_the_kubernetes_package(
    control_plane: LocalControlPlane,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(control_plane.kubeconfig)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seen = json.loads(out.stdout)
    assert "default" in seen["names"]
    assert seen["kubernetes"] is False
