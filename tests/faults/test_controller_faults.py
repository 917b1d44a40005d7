"""Controller faults: two controllers (child processes, leader election on short leases) talk to the API
server through Toxiproxy while a stream of Service creates, updates and deletes goes on; an independent
observer (testing.faults.ServiceObserver) watches every Service straight from the API server, and after each
fault stops and the cluster converges, the checker judges the whole record:

- no address held by two Services at any moment unless MetalLB's sharing rule allows it,
- no assigned address changed unless the user asked (changed the Service's spec, labels or MetalLB
  annotations) since it was given,
- no Service left unassigned while an address is free for it.

Faults: every toxic (latency with jitter, bandwidth, a black hole, connection resets, slicing), the proxy
disabled (connections dropped and refused), SIGSTOP of the leader for longer than its lease then SIGCONT,
an etcd restart, an API server restart. Resident Services (some sharing one address) live through all of
them and must never move; each run adds its own churn.

Per fault the figures (runs, duplicates, unasked moves, stuck, time to converge once the fault stopped) are
printed at the end and written to $FAULTS_REPORT (conftest). FAULT_RUNS=N repeats every fault N times and
FAULT_SERVICES=N sets how many churn Services each run keeps alive (default 6).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _controller_support import ControllerProcess

from metallb_py.k8s import ApiError, KubeClient, NotFoundError, connect
from metallb_py.k8s.resources import IP_ADDRESS_POOLS, LEASES, NAMESPACES, SERVICES
from metallb_py.testing import (
    LocalControlPlane,
    ServiceObserver,
    Toxic,
    Toxiproxy,
    Verdict,
    check,
)
from metallb_py.testing.faults import POOL_ANNOTATION, Proxy, addresses

if TYPE_CHECKING:
    from conftest import FaultReport

CONFIG_NS = "metallb-system"
POOL_RANGE = "198.51.100.0/24"
POOL = addresses(POOL_RANGE)
LEASE = (3.0, 2.0, 0.4)  # duration, renew deadline, retry period: client-go's ratios, 5x shorter
FAULT_RUNS = int(os.environ.get("FAULT_RUNS", "1"))
CHURN = int(os.environ.get("FAULT_SERVICES", "6"))
HOLD = 8.0  # how long a toxic stays: longer than the lease, so leadership can be lost under it
CONVERGE = 120.0  # a Service still unassigned this long after the fault stopped is stuck
PROBES = 2  # Services created as soon as the fault stops
SEED = int(os.environ.get("FAULT_SEED", time.time_ns() % 100_000))


# -- the lab -------------------------------------------------------------------------------------------------


@dataclass
class Lab:
    cp: LocalControlPlane
    api: KubeClient  # straight to the API server: the user's and the checker's side
    proxy: Proxy
    controllers: dict[str, ControllerProcess]
    observer: ServiceObserver
    logs: Path

    def leader(self) -> str:
        try:
            holder = self.api.get(LEASES, "metallb-controller", CONFIG_NS)["spec"].get("holderIdentity")
        except ApiError:
            return ""
        return str(holder or "")

    def wait(self, predicate: Callable[[], Any], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {n}:\n{c.tail(15)}" for n, c in self.controllers.items())
                raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tails}")
            time.sleep(0.1)

    def namespace(self, name: str) -> str:
        self.api.create(NAMESPACES, {"metadata": {"name": name}})
        return name


def manifest(
    name: str, ns: str, *, sharing: str | None = None, port: int = 80, app: str = "", **spec: Any
) -> dict[str, Any]:
    annotations = {"metallb.io/allow-shared-ip": sharing} if sharing else {}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "selector": {"app": app or name}, "ports": [{"port": port}], **spec},
    }


@pytest.fixture(scope="module")
def lab(fault_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    logs = tmp_path_factory.mktemp("controller-faults")
    with LocalControlPlane() as cp, Toxiproxy() as toxiproxy:
        api = connect(cp.kubeconfig, timeout=(2.0, 10.0))
        through_proxy = logs / "through-toxiproxy.kubeconfig"
        proxy = toxiproxy.proxy_api_server(cp, through_proxy)
        api.create(NAMESPACES, {"metadata": {"name": CONFIG_NS}})
        pool = {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "faults", "namespace": CONFIG_NS},
            "spec": {"addresses": [POOL_RANGE]},
        }
        api.create(IP_ADDRESS_POOLS, pool, CONFIG_NS)
        duration, deadline, retry = LEASE
        flags = (f"--lease-duration={duration}", f"--renew-deadline={deadline}", f"--retry-period={retry}")
        controllers = {
            name: ControllerProcess(
                cp, CONFIG_NS, logs / f"{name}.log", *flags, identity=name, kubeconfig=through_proxy
            ).start()
            for name in ("controller-a", "controller-b")
        }
        observer = ServiceObserver(cp.kubeconfig).start()
        the_lab = Lab(cp, api, proxy, controllers, observer, logs)
        try:
            the_lab.wait(lambda: the_lab.leader() in controllers, 60, "a leader")
            # Residents live through every fault: plain ones, four sharing one key (distinct ports), and two
            # under externalTrafficPolicy Local sharing a key and a selector.
            ns = the_lab.namespace("resident")
            residents = [manifest(f"plain-{i}", ns) for i in range(4)]
            residents += [
                manifest(f"shared-{p}", ns, sharing="resident", port=p) for p in (80, 443, 53, 8080)
            ]
            residents += [
                manifest(
                    f"local-{p}", ns, sharing="local", port=p, app="local", externalTrafficPolicy="Local"
                )
                for p in (80, 443)
            ]
            for body in residents:
                api.create(SERVICES, body, ns)
            assert converge(the_lab, time.monotonic(), CONVERGE) is not None, str(judge(the_lab))
            yield the_lab
        finally:
            observer.stop()
            for controller in controllers.values():
                controller.resume()  # a test that failed mid-pause leaves it stopped
                controller.kill()
            api.close()


# -- the stream of user changes ------------------------------------------------------------------------------


class Churn:
    """Creates, updates and deletes Services in one namespace, about four changes a second, straight to the
    API server (its failures while the API server or etcd restarts are counted, not fatal). A third of the
    Services share one key on ports of their own; updates touch an unrelated annotation (not a request: the
    address must stay), add a port, or ask for a given address (requests)."""

    def __init__(self, api: KubeClient, ns: str, live: int, rng: random.Random) -> None:
        self.api, self.ns, self.live, self.rng = api, ns, live, rng
        self.names: list[str] = []
        self.counter = itertools.count()
        self.done = {"create": 0, "delete": 0, "touch": 0, "port": 0, "reask": 0, "failed": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="churn", daemon=True)

    def __enter__(self) -> Churn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self._step()
            except NotFoundError:
                pass
            except ApiError:
                self.done["failed"] += 1

    def _step(self) -> None:
        n = next(self.counter)
        if len(self.names) < self.live or self.rng.random() < 0.2:
            name = f"c{n}"
            sharing = "churn" if self.rng.random() < 0.34 else None
            self.api.create(SERVICES, manifest(name, self.ns, sharing=sharing, port=20000 + n), self.ns)
            self.names.append(name)
            self.done["create"] += 1
            return
        name = self.rng.choice(self.names)
        action = self.rng.choice(("delete", "touch", "touch", "port", "reask"))
        if action == "delete":
            self.names.remove(name)
            self.api.delete(SERVICES, name, self.ns)
        elif action == "reask":
            # A request that moves the Service: the controller releases its address and takes the one
            # asked for (from the top of the pool, which nothing else is given first). A release that
            # lands in memory before the status write shows as a duplicate when the write is lost.
            wanted = POOL[200 + n % 50]
            body = {"metadata": {"annotations": {"metallb.io/loadBalancerIPs": wanted}}}
            self.api.patch(SERVICES, name, body, self.ns)
        elif action == "touch":
            body = {"metadata": {"annotations": {"faults.metallb-py.test/touched": str(n)}}}
            self.api.patch(SERVICES, name, body, self.ns)
        else:
            current = self.api.get(SERVICES, name, self.ns)
            ports = [*current["spec"]["ports"], {"name": f"p{n}", "port": 30000 + n}]
            if "name" not in ports[0]:
                ports[0] = {**ports[0], "name": "first"}
            self.api.patch(SERVICES, name, {"spec": {"ports": ports}}, self.ns)
        self.done[action] += 1


# -- convergence and the verdict -----------------------------------------------------------------------------


def converge(lab: Lab, stopped: float, timeout: float) -> float | None:
    """Waits until every LoadBalancer Service the controllers serve (those without a class) shows an
    address and its pool annotation, and the observer has seen exactly what a fresh list returns; the
    seconds from `stopped` to the last change that took, as the observer saw it (None: not converged
    within `timeout`; the checker names who is stuck).

    The check may land between two API calls of one Service (its address written, its annotation not yet):
    that Service is simply not done, and the wait goes on."""

    def done() -> bool:
        try:
            items = lab.api.list(SERVICES).items
        except ApiError:
            return False
        ready = all(
            ((s.get("status") or {}).get("loadBalancer") or {}).get("ingress")
            and POOL_ANNOTATION in ((s.get("metadata") or {}).get("annotations") or {})
            for s in items
            if (s.get("spec") or {}).get("type") == "LoadBalancer" and not s["spec"].get("loadBalancerClass")
        )
        return ready and lab.observer.agrees_with(items)

    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)
    last = max((o.at for o in lab.observer.current().values() if o.lb_class is None), default=stopped)
    return max(0.0, last - stopped)


def create(api: KubeClient, body: dict[str, Any]) -> bool:
    try:
        api.create(SERVICES, body, body["metadata"]["namespace"])
    except ApiError:
        return False
    return True


@dataclass(frozen=True)
class Fault:
    name: str
    apply: Callable[[Lab], None]  # returns once the fault has stopped


def toxics(*applied: Toxic) -> Callable[[Lab], None]:
    def apply(lab: Lab) -> None:
        with lab.proxy.toxic(*applied):
            time.sleep(HOLD)

    return apply


def disabled_proxy(lab: Lab) -> None:
    lab.proxy.disable()
    try:
        time.sleep(6.0)
    finally:
        lab.proxy.enable()


def paused_leader(lab: Lab) -> None:
    leader = lab.leader()
    assert leader in lab.controllers, f"no leader to pause: {leader!r}"
    paused = lab.controllers[leader]
    paused.pause()
    try:
        # Longer than its lease: the other takes over and works while this one is frozen mid-step.
        lab.wait(lambda: lab.leader() not in ("", leader), 30, "the other controller to take the lease")
        time.sleep(LEASE[0])
    finally:
        paused.resume()


def paused_leader_mid_write(lab: Lab) -> None:
    # Under latency the leader almost always has a write in flight when it freezes: the write lands after
    # its lease ran out, possibly after the new leader acted on the same Service.
    with lab.proxy.toxic(Toxic.latency(300, 100), Toxic.latency(300, 100, stream="upstream")):
        time.sleep(1.0)
        paused_leader(lab)
        time.sleep(1.0)


FAULTS = [
    Fault("latency 800+-400 ms", toxics(Toxic.latency(800, 400), Toxic.latency(100, 50, stream="upstream"))),
    Fault("bandwidth 2 KB/s", toxics(Toxic.bandwidth(2), Toxic.bandwidth(2, stream="upstream"))),
    # Toxiproxy's timeout 0 silently drops bytes mid-stream, which TCP never does; a close after 4 s makes
    # the hole end the way a client's read timeout would end it.
    Fault("black hole (timeout)", toxics(Toxic.timeout(4000), Toxic.timeout(4000, stream="upstream"))),
    Fault("connection resets", toxics(Toxic.reset_peer(200))),
    Fault("slicer 16 B / 5 ms", toxics(Toxic.slicer(16, 8, 5000))),
    Fault("proxy down 6 s", disabled_proxy),
    Fault("leader SIGSTOP > lease", paused_leader),
    Fault("leader SIGSTOP mid-write", paused_leader_mid_write),
    Fault("etcd restart", lambda lab: lab.cp.restart_etcd(downtime=3.0)),
    Fault("API server restart", lambda lab: lab.cp.restart_apiserver(downtime=2.0)),
]

SEEN: set[object] = set()  # findings already reported by an earlier run


def judge(lab: Lab) -> Verdict:
    """The checker on everything the controllers serve (Services without a class)."""
    served = [o for o in lab.observer.history() if o.lb_class is None]
    return check(served, POOL)


def test_the_observer_and_checker_catch_a_forged_duplicate_and_move(lab: Lab) -> None:
    """The pipeline the fault tests rely on, end to end on real objects: two Services of a class no
    controller serves get one address written into their status by hand, then one of them another."""
    ns = lab.namespace(f"forged-{random.randrange(1 << 20):05x}")
    lb_class = "faults.metallb-py.test/unserved"
    for name in ("x", "y"):
        lab.api.create(SERVICES, manifest(name, ns, loadBalancerClass=lb_class), ns)
    forged = POOL[-1]

    def write(name: str, ip: str) -> None:
        status = {"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}
        lab.api.patch(SERVICES, name, status, ns, subresource="status")

    write("x", forged)
    write("y", forged)
    write("y", POOL[-2])
    seen = lab.observer.wait_for(lambda current: POOL[-2] in current[f"{ns}/y"].ips, 30)
    assert seen, "the observer never saw the last status write"
    mine = [o for o in lab.observer.history() if o.key.startswith(f"{ns}/")]
    verdict = check(mine, POOL)
    assert [(d.ip, d.keys) for d in verdict.duplicates] == [(forged, (f"{ns}/x", f"{ns}/y"))], str(verdict)
    assert [(m.key, m.before, m.after) for m in verdict.moves] == [(f"{ns}/y", (forged,), (POOL[-2],))]
    for name in ("x", "y"):
        lab.api.delete(SERVICES, name, ns)


# Each run takes about 15 s (a few minutes in a bad case): the per-test timeout grows with FAULT_RUNS.
@pytest.mark.timeout(120 + 240 * FAULT_RUNS)
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_controller_fault(lab: Lab, fault: Fault, fault_report: FaultReport) -> None:
    row = fault_report.row("controller", fault.name)
    rng = random.Random(f"{SEED}-{fault.name}")
    failures = []
    for run in range(FAULT_RUNS):
        ns = lab.namespace(f"churn-{len(fault_report.rows)}-{run}-{rng.randrange(1 << 20):05x}")
        with Churn(lab.api, ns, CHURN, rng) as churn:
            time.sleep(1.0)  # the stream is under way when the fault begins
            fault.apply(lab)
            stopped = time.monotonic()
        # New Services right after the fault: the time to converge includes serving them, so it says how
        # soon the controllers work again, not only whether they had kept up.
        for i in range(PROBES):
            probe = manifest(f"probe-{i}", ns, port=40000 + i)
            lab.wait(lambda probe=probe: create(lab.api, probe), 60, "the API server to take a create")
            churn.names.append(probe["metadata"]["name"])
        took = converge(lab, stopped, CONVERGE)
        verdict = judge(lab)
        new = [f for f in (*verdict.duplicates, *verdict.moves, *verdict.stuck) if f not in SEEN]
        SEEN.update(new)
        row.runs += 1
        row.duplicates += sum(1 for f in verdict.duplicates if f in new)
        row.moves += sum(1 for f in verdict.moves if f in new)
        row.stuck += sum(1 for f in verdict.stuck if f in new)
        if took is not None:
            row.converge_s.append(took)
        dead = [name for name, c in lab.controllers.items() if not c.alive]
        row.notes.append(
            f"run {run} (seed {SEED}): churn {churn.done}, observer relists {lab.observer.relists}"
        )
        if new or took is None or dead:
            failures.append(
                f"{fault.name}, run {run} (FAULT_SEED={SEED}, churn {churn.done}): "
                + (f"not converged in {CONVERGE:.0f} s; " if took is None else "")
                + (f"controllers exited: {dead}; " if dead else "")
                + "\n".join(str(f) for f in new)
            )
        # The churn Services go, so the pool does not run out over many runs; residents stay.
        for name in list(churn.names):
            with contextlib.suppress(NotFoundError):
                lab.api.delete(SERVICES, name, ns)
    tails = "\n".join(f"--- {n} ({c.log}):\n{c.tail(20)}" for n, c in lab.controllers.items())
    assert not failures, "\n".join(failures) + "\n" + tails
