"""Helpers of the controller's integration tests: Service manifests, polling, controllers in a thread or in
a subprocess, and per-test isolation on the shared control plane.

Isolation: every test gets its own namespaces and, on the session's control plane, its own
loadBalancerClass (`--lb-class`), so a controller started by one test never touches another test's
Services. Tests that need Services without a class start a control plane of their own.

A test that needs the API server to refuse the controller something (a 403 on a write, a list or a watch)
runs it as a ServiceAccount of its own (`Cluster.account`) with exactly the rights it gives: the refusals
are the API server's, not a patched method's.
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

import yaml

from metallb_py.controller import Controller, ControllerOptions
from metallb_py.k8s import KubeClient, NotFoundError, Resource, connect
from metallb_py.k8s.resources import CONFIGMAPS, EVENTS, IP_ADDRESS_POOLS, NAMESPACES, SERVICES
from metallb_py.testing import LocalControlPlane

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
T = TypeVar("T")

SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False)
CLUSTER_ROLE_BINDINGS = Resource(
    "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False
)
SERVICE_VERBS = ("get", "list", "watch", "patch")


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


def controller_rules(
    *, service_verbs: tuple[str, ...] = SERVICE_VERBS, write_status: bool = True
) -> list[dict[str, Any]]:
    """RBAC rules for everything a controller does (cluster-wide, unlike deploy/rbac.yaml, for brevity),
    with `service_verbs` on Services and, if `write_status`, the right to write their status."""
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["services"], "verbs": list(service_verbs)},
        {"apiGroups": [""], "resources": ["namespaces", "configmaps"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {"apiGroups": ["metallb.io"], "resources": ["*"], "verbs": ["*"]},
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["*"]},
    ]
    if write_status:
        rules.append({"apiGroups": [""], "resources": ["services/status"], "verbs": ["patch"]})
    return rules


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
        self._accounts: list[Account] = []

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
        """The Events our programs wrote (about `name`): the API server's own, such as its ClusterIP repair
        loop's `ClusterIPNotAllocated` on a loaded machine, are not the controller's doing."""
        selector = f"involvedObject.name={name}" if name else None
        return [
            e
            for e in self.client.list(EVENTS, namespace, field_selector=selector).items
            if str((e.get("source") or {}).get("component", "")).startswith("metallb-")
        ]

    def event_reasons(self, namespace: str, name: str) -> list[str]:
        return [e["reason"] for e in self.events(namespace, name)]

    def account(self, rules: list[dict[str, Any]]) -> Account:
        """A ServiceAccount with exactly `rules` (cluster-wide); removed by cleanup()."""
        account = Account(self, rules)
        self._accounts.append(account)
        return account

    def cleanup(self) -> None:
        for account in self._accounts:
            account.remove()
        for namespace in self._namespaces:
            with contextlib.suppress(Exception):
                for svc in self.services(namespace):
                    with contextlib.suppress(NotFoundError):
                        self.delete_service(namespace, svc["metadata"]["name"])
        self.client.close()


class ServiceEnv:
    """One test's place on a shared control plane: namespaces for the configuration and the Services, and a
    loadBalancerClass of its own (so only its own controller acts on its Services)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.config_ns = cluster.namespace("mlb")
        self.ns = cluster.namespace("svc")
        self.lb_class = f"metallb-py.test/{unique('c')}"

    def svc(self, name: str, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("lb_class", self.lb_class)
        return self.cluster.create_service(service(name, self.ns, **kwargs))

    def ips(self, name: str) -> list[str]:
        return lb_ips(self.cluster.get_service(self.ns, name))


class Account:
    """A ServiceAccount bound to a ClusterRole of its own, and a kubeconfig that authenticates as it."""

    def __init__(self, cluster: Cluster, rules: list[dict[str, Any]]) -> None:
        self.cluster = cluster
        self.namespace = cluster.namespace("sa")
        self.name = unique("controller")
        self.user = f"system:serviceaccount:{self.namespace}:{self.name}"
        api = cluster.client
        api.create(
            SERVICE_ACCOUNTS,
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": self.name}},
            self.namespace,
        )
        rbac = "rbac.authorization.k8s.io"
        api.create(
            CLUSTER_ROLES,
            {
                "apiVersion": f"{rbac}/v1",
                "kind": "ClusterRole",
                "metadata": {"name": self.name},
                "rules": rules,
            },
        )
        api.create(
            CLUSTER_ROLE_BINDINGS,
            {
                "apiVersion": f"{rbac}/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": self.name},
                "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": self.name},
                "subjects": [{"kind": "ServiceAccount", "name": self.name, "namespace": self.namespace}],
            },
        )
        cp = cluster.cp
        token = cp.kubectl(
            "create", "token", self.name, "-n", self.namespace, "--duration=1h", check=True
        ).stdout.strip()
        config = yaml.safe_load(cp.kubeconfig.read_text())
        for user in config["users"]:
            user["user"] = {"token": token}
        self.kubeconfig = cp.workdir / f"{self.name}.kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump(config))

    def connect(self) -> KubeClient:
        return connect(self.kubeconfig)

    def grant(self, rules: list[dict[str, Any]]) -> None:
        """Replaces the account's rights with `rules`."""
        self.cluster.client.patch(CLUSTER_ROLES, self.name, {"rules": rules})

    def can(self, verb: str, resource: str, namespace: str, *, subresource: str = "") -> bool:
        """What the API server's authorizer answers for this account now (`kubectl auth can-i`): the same
        cache that decides its requests, so a grant is in force once this says yes."""
        extra = [f"--subresource={subresource}"] if subresource else []
        answer = self.cluster.cp.kubectl(
            "auth", "can-i", verb, resource, "-n", namespace, f"--as={self.user}", *extra
        )
        return answer.stdout.strip() == "yes"

    def remove(self) -> None:
        for resource in (CLUSTER_ROLE_BINDINGS, CLUSTER_ROLES):
            with contextlib.suppress(NotFoundError):
                self.cluster.client.delete(resource, self.name)


@contextlib.contextmanager
def running_controller(
    cluster: Cluster, namespace: str, *, client: KubeClient | None = None, **options: Any
) -> Iterator[Controller]:
    """A controller in a thread of this process, stopped at the end. Its client is `client` (closed at the
    end), by default one of its own with the cluster's admin credentials."""
    options.setdefault("leader_election", False)
    options.setdefault("identity", unique("test"))
    if client is None:
        client = connect(cluster.cp.kubeconfig)
    controller = Controller(client, ControllerOptions(namespace=namespace, **options))
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()
        client.close()


class ControllerProcess:
    """`python -m metallb_py.cli controller ...` as a child process, with its log in a file. It talks to the
    API server through `kubeconfig` (default: the control plane's own), e.g. one pointing at a Toxiproxy."""

    def __init__(
        self,
        cp: LocalControlPlane,
        namespace: str,
        log: Path,
        *args: str,
        identity: str,
        kubeconfig: Path | None = None,
    ) -> None:
        self.cp, self.namespace, self.log, self.identity = cp, namespace, log, identity
        self.kubeconfig = kubeconfig
        self.args = args
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "metallb_py.cli",
            "controller",
            f"--kubeconfig={self.kubeconfig or self.cp.kubeconfig}",
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

    def pause(self) -> None:
        """SIGSTOP: the process freezes mid-step, as in a long GC pause, a VM migration, CPU starvation."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT: it carries on from where it froze, unaware that time passed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

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
