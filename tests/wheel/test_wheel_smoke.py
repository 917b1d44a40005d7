"""The installed wheel runs MetalLB's job: its `metallb-py controller` gives a Service an address from the
seed's ConfigMap, and its `metallb-py speaker`, in a network namespace, joins and answers ARP for that
address (a client in another namespace reaches the node through it).

Run by `.ci/wheel-test` with the wheel's virtualenv (see conftest.py): metallb_py, its Rust extension and
the console script all come from there, and there is no cargo on PATH. The local control plane and the
namespace lab are the wheel's own metallb_py.testing; only the CRDs and the seed ConfigMap come from this
checkout (an installed wheel carries no deploy/).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

import metallb_py
from metallb_py import _core
from metallb_py.ipam.fields import ingress_ips
from metallb_py.k8s import KubeClient, connect
from metallb_py.k8s.resources import (
    ENDPOINT_SLICES,
    LEASES,
    NODES,
    SECRETS,
    SERVICE_L2_STATUSES,
    SERVICES,
)
from metallb_py.speaker import GOSSIP_LABEL, SECRET_ENV
from metallb_py.speaker.status import service_selector, status_node
from metallb_py.testing import (
    ControlPlaneUnavailableError,
    FetchError,
    LocalControlPlane,
    NetnsLab,
    ensure_kubernetes_binaries,
)
from metallb_py.testing.labcluster import (
    endpoint_slice_manifest,
    memberlist_secret,
    node_manifest,
    node_status,
)
from metallb_py.testing.process import NO_PROXY_ENV, ChildProcess, free_loopback_port

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "deploy" / "crds"
SEED_CONFIGMAP = REPO / "tests" / "fixtures" / "seed-configmap.yaml"
SEED_POOL = ("192.168.1.11", "192.168.1.12", "192.168.1.13")
NS = "metallb-system"
NODE = "node1"
WAIT = 60.0

T = TypeVar("T")


@pytest.fixture(scope="module")
def control_plane() -> Iterator[LocalControlPlane]:
    """The wheel's local control plane with this checkout's CRDs, the namespace and the seed ConfigMap."""
    try:
        ensure_kubernetes_binaries()  # the cache `make k8s` filled; the wheel has no build script
    except ControlPlaneUnavailableError as exc:
        if os.environ.get("METALLB_PY_REQUIRE_K8S") == "1":
            pytest.fail(f"no local Kubernetes control plane (METALLB_PY_REQUIRE_K8S=1): {exc}", pytrace=False)
        pytest.skip(f"no local Kubernetes control plane: {exc}")
    with LocalControlPlane(crds_dir=CRDS) as cp:
        cp.kubectl("create", "namespace", NS, check=True)
        cp.kubectl("apply", "-f", str(SEED_CONFIGMAP), check=True)
        yield cp


@pytest.fixture
def client(control_plane: LocalControlPlane) -> Iterator[KubeClient]:
    c = connect(control_plane.kubeconfig)
    yield c
    c.close()


def console_script(venv: Path, *args: str, name: str, log: Path) -> ChildProcess:
    """`metallb-py ARGS` from the wheel's virtualenv, with this process's (cargo-free) PATH."""
    env = {k: v for k, v in os.environ.items() if k != SECRET_ENV}  # the speaker reads the Secret instead
    return ChildProcess(name, [str(venv / "bin" / "metallb-py"), *args], log, {**env, **NO_PROXY_ENV})


def wait_for(predicate: Callable[[], T | None], what: str, children: Sequence[ChildProcess]) -> T:
    """Polls `predicate` until it returns something truthy; fails at once, with its log, when a child has
    exited, or after WAIT seconds (a hang, not a measure)."""
    deadline = time.monotonic() + WAIT
    while True:
        for child in children:
            if not child.running():
                pytest.fail(
                    f"{child.name} exited with status {child.exited()} waiting for {what}:\n{child.tail()}"
                )
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(f"-- {c.name}:\n{c.tail()}" for c in children)
            pytest.fail(f"timed out after {WAIT:g} s waiting for {what} (last: {value!r})\n{logs}")
        time.sleep(0.1)


@contextlib.contextmanager
def running(*children: ChildProcess) -> Iterator[None]:
    """Stops the children at the end of the block; each must stop cleanly on SIGTERM (status 0)."""
    try:
        yield
    except BaseException:
        for child in children:
            child.stop()
        raise
    for child in children:
        child.terminate()
    statuses = {child.name: child.wait(30.0) for child in children}
    assert statuses == {child.name: 0 for child in children}, "\n".join(c.tail() for c in children)


def create_lb_service(client: KubeClient, name: str) -> dict[str, Any]:
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]},
    }
    return client.create(SERVICES, manifest, "default")


def external_ips(client: KubeClient, name: str) -> list[str]:
    return ingress_ips(client.get(SERVICES, name, "default"))


def test_metallb_py_is_the_wheel(wheel_venv: Path) -> None:
    """Everything below would prove nothing if it ran this checkout's python/ or could build Rust."""
    assert Path(sys.prefix).resolve() == wheel_venv
    for module in (metallb_py, _core):
        assert module.__file__ is not None
        assert wheel_venv in Path(module.__file__).resolve().parents, module.__file__
    assert REPO not in Path(metallb_py.__file__ or "").resolve().parents
    assert (shutil.which("cargo"), shutil.which("rustc")) == (None, None)


@pytest.mark.integration
def test_controller_assigns_the_seed_address(
    wheel_venv: Path, control_plane: LocalControlPlane, client: KubeClient, tmp_path: Path
) -> None:
    controller = console_script(
        wheel_venv,
        "controller",
        f"--kubeconfig={control_plane.kubeconfig}",
        f"--namespace={NS}",
        "--metrics-port=0",
        name="controller",
        log=tmp_path / "controller.log",
    )
    with running(controller):
        create_lb_service(client, "first")
        assert wait_for(lambda: external_ips(client, "first"), "an address for first", [controller]) == [
            SEED_POOL[0]
        ]


@pytest.mark.integration
@pytest.mark.netns
def test_speaker_joins_and_answers_for_the_address(
    wheel_venv: Path, control_plane: LocalControlPlane, client: KubeClient, tmp_path: Path
) -> None:
    with NetnsLab(nodes=[NODE], prefix="mlbwhl") as lab:
        client.create(SECRETS, memberlist_secret(NS, os.urandom(32)), NS)
        client.create(NODES, node_manifest(NODE))
        status = node_status(NODE, lab.node_address(NODE), dt.datetime.now(dt.UTC))
        client.patch(NODES, NODE, {"status": status}, subresource="status")

        common = [f"--kubeconfig={control_plane.kubeconfig}", f"--namespace={NS}"]
        controller = console_script(
            wheel_venv,
            "controller",
            *common,
            "--metrics-port=0",
            name="controller",
            log=tmp_path / "controller.log",
        )
        speaker = console_script(
            wheel_venv,
            "speaker",
            *common,
            f"--node-name={NODE}",
            f"--netns={lab.node_ns(NODE)}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={free_loopback_port()}",
            name=f"speaker {NODE}",
            log=tmp_path / "speaker.log",
        )
        with running(controller, speaker):
            children = [controller, speaker]

            def gossip_holders() -> set[str]:
                leases = client.list(LEASES, NS, label_selector=GOSSIP_LABEL).items
                return {str((lease.get("spec") or {}).get("holderIdentity") or "") for lease in leases}

            wait_for(
                lambda: NODE in gossip_holders(), f"{NODE}'s speaker to publish its gossip Lease", children
            )

            svc = create_lb_service(client, "announced")
            endpoints = endpoint_slice_manifest(
                "default", "announced", [(NODE, lab.node_address(NODE))], owner_uid=svc["metadata"]["uid"]
            )
            client.create(ENDPOINT_SLICES, endpoints, "default")
            [vip] = wait_for(lambda: external_ips(client, "announced"), "an address for announced", children)
            assert vip in SEED_POOL

            def announcers() -> list[str]:
                selector = service_selector("default/announced")
                statuses = client.list(SERVICE_L2_STATUSES, NS, label_selector=selector).items
                return sorted({node for s in statuses if (node := status_node(s))})

            assert wait_for(announcers, "a ServiceL2Status for announced", children) == [NODE]

            # The client's ARP request for the VIP is answered by the wheel's Rust responder in node1.
            lab.serve(vip, "hname")

            def answer() -> str | None:
                try:
                    status_code, text = lab.fetch(vip, timeout=0.5)
                except FetchError:
                    return None
                return text.strip() if status_code == 200 else None

            assert wait_for(answer, f"an HTTP answer from {vip}", children) == NODE
