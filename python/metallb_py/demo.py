"""`metallb-py demo`: the seed scenario from start to finish on this machine, shown as a terminal session.

The seed ran kubectl against a kubeadm cluster with MetalLB in layer 2 mode: two deployments of three echo
pods, the ConfigMap with the pool 192.168.1.11-192.168.1.13, two Services exposed as LoadBalancer, which got
192.168.1.11 and .12, and a browser that reached them. Here a `LabCluster` stands in for that cluster (a
real kube-apiserver on 127.0.0.1; node1-3 and a control-plane node as network namespaces; our controller
and a speaker per node), the same kubectl commands run against it, a client namespace plays the browser,
and then the announcing node dies (its speaker SIGKILLed, its cable cut) while a prober measures how long
the address stays unreachable.

Needs root (network namespaces). Exit status: 0 when every step did what the seed shows, 1 when one did
not (the message says which, and where the logs are), 2 without root, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TextIO

from metallb_py.errors import MetalLBError
from metallb_py.testing import FetchError, LabCluster, Probe
from metallb_py.testing.netlab import EchoKind

__all__ = ["SEED_CONFIGMAP", "run"]

# examples/seed/metallb-l2config.yaml, for installations without the examples directory.
SEED_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  namespace: metallb-system
  name: config
data:
  config: |
    address-pools:
    - name: nginx-ip-range
      protocol: layer2
      addresses:
      - 192.168.1.11-192.168.1.13
"""
_SEED_FILE = Path(__file__).resolve().parents[2] / "examples" / "seed" / "metallb-l2config.yaml"


@dataclass(frozen=True)
class _SeedService:
    """One of the seed's deployments, the Service exposing it, and the address the seed shows for it."""

    deployment: str
    image: str
    service: str
    kind: EchoKind  # what its pods answer: their name (echo-hname) or the request (echo-ip)
    ip: str


_SEED = (
    _SeedService("lb-hname-pods", "sysnet4admin/echo-hname", "lb-hname-svc", "hname", "192.168.1.11"),
    _SeedService("lb-ip-pods", "sysnet4admin/echo-ip", "lb-ip-svc", "ip", "192.168.1.12"),
)
_NAMESPACE = "default"
_WAIT = 30.0  # seconds for any one step; every step normally takes well under one
_PROBE_INTERVAL = 0.01


class _DemoError(Exception):
    """A step did not do what the seed shows; the message says which."""


class _Terminal:
    """Prints the session: commands after `$ `, their output as is, narration after `# `."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def note(self, text: str) -> None:
        self.out.write(f"# {text}\n")
        self.out.flush()

    def command(self, shown: str, output: str) -> None:
        self.out.write(f"$ {shown}\n{output.rstrip()}\n" if output.strip() else f"$ {shown}\n")
        self.out.flush()

    def blank(self) -> None:
        self.out.write("\n")
        self.out.flush()


def run(args: argparse.Namespace) -> int:
    if os.geteuid() != 0:
        print("metallb-py demo needs root (network namespaces); run it with sudo", file=sys.stderr)
        return 2
    term = _Terminal(sys.stdout)
    keep = Path(args.keep_logs) if args.keep_logs else None
    log_dir = keep if keep is not None else Path(tempfile.mkdtemp(prefix="metallb-py-demo-"))
    # SIGTERM unwinds like Ctrl-C, so the lab and the control plane are removed either way.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        term.note("metallb-py demo: the seed scenario (MetalLB in layer 2 mode) on this machine")
        with LabCluster(
            prefix=args.prefix, log_dir=log_dir, progress=term.note, build_kubernetes=True
        ) as cluster:
            failover = _play(cluster, term)
            term.blank()
            term.note("cleaning up: speakers, controller, lab namespaces, control plane")
    except (_DemoError, MetalLBError, subprocess.SubprocessError) as exc:
        print(f"\nmetallb-py demo failed: {exc}\nlogs: {log_dir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nmetallb-py demo interrupted; logs: {log_dir}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    term.note(f"done: every step as in the seed; failover {failover}")
    if keep is None:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 0


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _kubectl(
    cluster: LabCluster, term: _Terminal, *args: str, shown: str | None = None, stdin: str | None = None
) -> str:
    output = cluster.kubectl(*args, stdin=stdin)
    term.command(shown or shlex.join(["kubectl", *args]), output)
    return output


def _play(cluster: LabCluster, term: _Terminal) -> str:
    """The seed's steps, then the failover; returns the failover summary."""
    term.blank()
    for seed in _SEED:
        _kubectl(cluster, term, "create", "deployment", seed.deployment, f"--image={seed.image}")
        _kubectl(cluster, term, "scale", "deployment", seed.deployment, "--replicas=3")
    term.note(
        "no pods will run (no scheduler or kubelet here): each node's HTTP server in the lab plays them, and "
        "the demo publishes the EndpointSlices the endpoint controller would"
    )
    shown = "kubectl apply -f metallb-l2config.yaml"
    if _SEED_FILE.is_file():
        _kubectl(cluster, term, "apply", "-f", str(_SEED_FILE), shown=shown)
    else:
        _kubectl(cluster, term, "apply", "-f", "-", stdin=SEED_CONFIGMAP, shown=shown)

    vips: dict[str, str] = {}
    for seed in _SEED:
        expose = ("expose", "deployment", seed.deployment, "--type=LoadBalancer", f"--name={seed.service}")
        _kubectl(cluster, term, *expose, "--port=80")
        # As the person at the seed's terminal: the next command once this one has its address.
        ips = cluster.wait_for(
            partial(cluster.external_ips, _NAMESPACE, seed.service),
            _WAIT,
            f"an EXTERNAL-IP for {seed.service}",
        )
        vips[seed.service] = ips[0]

    for seed in _SEED:
        cluster.lab.serve(vips[seed.service], seed.kind)
        cluster.publish_endpoints(_NAMESPACE, seed.service)
    workers = ", ".join(f"{n} ({cluster.lab.node_address(n)})" for n in cluster.workers)
    term.note(f"EndpointSlices published: both Services ready on {workers}")
    published = time.monotonic()
    owners = {
        seed.service: cluster.wait_for(
            partial(cluster.announcer, _NAMESPACE, seed.service), _WAIT, f"a node to announce {seed.service}"
        )
        for seed in _SEED
    }
    term.note(f"both Services announced {1000 * (time.monotonic() - published):.0f} ms after publishing")
    _kubectl(cluster, term, "get", "services")
    unexpected = [f"{s.service} got {vips[s.service]}, not {s.ip}" for s in _SEED if vips[s.service] != s.ip]
    if unexpected:
        raise _DemoError(f"the seed's addresses differ: {'; '.join(unexpected)}")
    _check_owners(cluster, owners)
    _kubectl(cluster, term, "get", "servicel2statuses", "-n", cluster.namespace)

    term.note(f"from the client ({cluster.lab.client_address()}), as the seed's browser:")
    for seed in _SEED:
        _fetch(cluster, term, vips[seed.service])
    term.note("(no kube-proxy here: the announcing node answers itself)")
    return _failover(cluster, term, vips, owners)


def _check_owners(cluster: LabCluster, owners: dict[str, str]) -> None:
    wrong = {s: n for s, n in owners.items() if n not in cluster.workers}
    if wrong:
        raise _DemoError(f"a node that must never announce does: {wrong}")


def _fetch(cluster: LabCluster, term: _Terminal, vip: str) -> str:
    try:
        status, body = cluster.lab.fetch(vip)
    except FetchError as exc:
        raise _DemoError(f"the client could not reach {vip}: {exc}") from exc
    term.out.write(f"GET http://{vip}/ -> {status} {body.strip()}\n")
    term.out.flush()
    if status != 200:
        raise _DemoError(f"http://{vip}/ answered {status}: {body.strip()}")
    return body.strip()


def _failover(cluster: LabCluster, term: _Terminal, vips: dict[str, str], owners: dict[str, str]) -> str:
    service = _SEED[0].service
    vip, dying = vips[service], owners[service]
    term.blank()
    term.note(
        f"failover: a prober requests http://{vip}/ from the client every {1000 * _PROBE_INTERVAL:.0f} ms"
    )
    prober = cluster.lab.prober(vip, interval=_PROBE_INTERVAL)
    try:
        if prober.wait_for_answer(dying, timeout=_WAIT) is None:
            raise _DemoError(f"the prober got no answer from {dying} at {vip}")
        term.note(f"{dying} dies: its speaker gets SIGKILL and its cable is cut")
        killed = time.monotonic()
        cluster.kill_speaker(dying)
        cluster.lab.kill_link(dying)
        first = cluster.wait_for(
            lambda: prober.first_answer(killed, other_than=dying),
            _WAIT,
            f"an answer at {vip} from another node",
        )
        taker = first.answer or ""
        cluster.wait_for(
            lambda: cluster.announcer(_NAMESPACE, service) == taker,
            _WAIT,
            f"the ServiceL2Status of {service} to name {taker}",
        )
        recorded = time.monotonic()
    finally:
        probes = prober.stop()
    lost = _failed_between(probes, killed, first)
    outage = 1000 * (first.received - killed)
    term.note(
        f"first answer from {taker} {outage:.0f} ms after the kill ({lost} requests failed in between); "
        f"ServiceL2Status names {taker} after {1000 * (recorded - killed):.0f} ms"
    )

    moved = {service: taker}
    for other, owner in owners.items():
        if other != service and owner == dying:
            moved[other] = cluster.wait_for(
                partial(_announcer_other_than, cluster, other, dying),
                _WAIT,
                f"{other} to move off {dying}",
            )
    _check_owners(cluster, moved)
    _kubectl(cluster, term, "get", "servicel2statuses", "-n", cluster.namespace)
    for seed in _SEED:
        _fetch(cluster, term, vips[seed.service])
    return f"{outage:.0f} ms ({dying} -> {taker})"


def _announcer_other_than(cluster: LabCluster, service: str, node: str) -> str | None:
    current = cluster.announcer(_NAMESPACE, service)
    return current if current != node else None


def _failed_between(probes: list[Probe], start: float, first: Probe) -> int:
    """Requests sent from `start` until the one that got the first answer, that got none."""
    return sum(1 for p in probes if start <= p.sent < first.sent and not p.ok)
