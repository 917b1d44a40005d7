"""Helpers of the controller's integration tests: Service manifests, polling, controllers in a thread or in
a subprocess, and per-test isolation on the shared control plane.

Isolation: every test gets its own namespaces and, on the session's control plane, its own
loadBalancerClass (`--lb-class`), so a controller started by one test never touches another test's
Services. Tests that need Services without a class start a control plane of their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from metallb_py.controller import Controller, ControllerOptions
from metallb_py.k8s import NotFoundError, connect
from metallb_py.k8s.resources import CONFIGMAPS, EVENTS, IP_ADDRESS_POOLS, NAMESPACES, SERVICES
from metallb_py.testing import LocalControlPlane

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
T = TypeVar("T")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def service(
    name: str,
    namespace: str,
    *,
    lb_class: str | None = None,
    annotations: dict[str, str] | None = None,
    ports: tuple[tuple[int, str], ...] = ((80, "TCP"),),
    **spec: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "LoadBalancer",
        "ports": [
            {"name": f"p{port}-{proto.lower()}", "port": port, "protocol": proto} for port, proto in ports
        ],
        "selector": {"app": name},
    }
    if lb_class:
        body["loadBalancerClass"] = lb_class
    body.update(spec)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": body}


def pool_manifest(name: str, namespace: str, *addresses: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"addresses": list(addresses), **spec},
    }


def configmap(namespace: str, text: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "config", "namespace": namespace},
        "data": {"config": text},
    }


def legacy_config(*addresses: str, name: str = "pool") -> str:
    lines = ["address-pools:", f"- name: {name}", "  protocol: layer2", "  addresses:"]
    return "\n".join([*lines, *(f"  - {a}" for a in addresses)]) + "\n"


def lb_ips(svc: dict[str, Any] | None) -> list[str]:
    ingress = ((svc or {}).get("status") or {}).get("loadBalancer", {}).get("ingress") or []
    return [entry["ip"] for entry in ingress if entry.get("ip")]


def wait_until(predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.1, what: str = "") -> T:
    """Polls until `predicate()` is truthy and returns it; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what or predicate}; last: {value!r}"
            )
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    """The metrics served on 127.0.0.1:port, as {'name{labels}': value}."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    metrics: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            metrics[name] = float(value)
    return metrics


class Cluster:
    """A control plane plus a client for fast API calls from the test, and per-test clean-up."""

    def __init__(self, cp: LocalControlPlane) -> None:
        self.cp = cp
        self.client = connect(cp.kubeconfig)
        self._namespaces: list[str] = []

    def namespace(self, prefix: str = "t", labels: dict[str, str] | None = None) -> str:
        name = unique(prefix)
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}
        self.client.create(NAMESPACES, body)
        self._namespaces.append(name)
        return name

    def create_service(self, svc: dict[str, Any]) -> dict[str, Any]:
        return self.client.create(SERVICES, svc, svc["metadata"]["namespace"])

    def create_services(self, services: list[dict[str, Any]], threads: int = 8) -> list[float]:
        """Creates them concurrently; returns when each create returned (monotonic seconds), in order."""

        def create(svc: dict[str, Any]) -> float:
            self.create_service(svc)
            return time.monotonic()

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(create, services))

    def get_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.client.get(SERVICES, name, namespace)
        except NotFoundError:
            return None

    def services(self, namespace: str) -> list[dict[str, Any]]:
        return self.client.list(SERVICES, namespace).items

    def ips_by_service(self, namespace: str) -> dict[str, list[str]]:
        return {s["metadata"]["name"]: lb_ips(s) for s in self.services(namespace)}

    def delete_service(self, namespace: str, name: str) -> None:
        self.client.delete(SERVICES, name, namespace)

    def apply_configmap(self, namespace: str, text: str) -> None:
        try:
            current = self.client.get(CONFIGMAPS, "config", namespace)
        except NotFoundError:
            self.client.create(CONFIGMAPS, configmap(namespace, text), namespace)
            return
        version = current["metadata"]["resourceVersion"]
        body = {"metadata": {"resourceVersion": version}, "data": {"config": text}}
        self.client.patch(CONFIGMAPS, "config", body, namespace)

    def apply_pool(self, namespace: str, name: str, *addresses: str, **spec: Any) -> None:
        manifest = pool_manifest(name, namespace, *addresses, **spec)
        try:
            self.client.get(IP_ADDRESS_POOLS, name, namespace)
        except NotFoundError:
            self.client.create(IP_ADDRESS_POOLS, manifest, namespace)
            return
        self.client.patch(IP_ADDRESS_POOLS, name, {"spec": manifest["spec"]}, namespace)

    def events(self, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
        selector = f"involvedObject.name={name}" if name else None
        return self.client.list(EVENTS, namespace, field_selector=selector).items

    def event_reasons(self, namespace: str, name: str) -> list[str]:
        return [e["reason"] for e in self.events(namespace, name)]

    def cleanup(self) -> None:
        for namespace in self._namespaces:
            with contextlib.suppress(Exception):
                for svc in self.services(namespace):
                    with contextlib.suppress(NotFoundError):
                        self.delete_service(namespace, svc["metadata"]["name"])
        self.client.close()


@contextlib.contextmanager
def running_controller(cluster: Cluster, namespace: str, **options: Any) -> Iterator[Controller]:
    """A controller in a thread of this process (its own client), stopped at the end."""
    options.setdefault("leader_election", False)
    options.setdefault("identity", unique("test"))
    client = connect(cluster.cp.kubeconfig)
    controller = Controller(client, ControllerOptions(namespace=namespace, **options))
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()
        client.close()


class ControllerProcess:
    """`python -m metallb_py.cli controller ...` as a child process, with its log in a file."""

    def __init__(self, cp: LocalControlPlane, namespace: str, log: Path, *args: str, identity: str) -> None:
        self.cp, self.namespace, self.log, self.identity = cp, namespace, log, identity
        self.args = args
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "metallb_py.cli",
            "controller",
            f"--kubeconfig={self.cp.kubeconfig}",
            f"--namespace={self.namespace}",
            f"--identity={self.identity}",
            f"--metrics-port={self.metrics_port}",
            "--metrics-address=127.0.0.1",
            *self.args,
        ]

    def start(self) -> ControllerProcess:
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up at all, as a crash or an OOM kill."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def metrics(self) -> dict[str, float]:
        return scrape(self.metrics_port)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
