"""`metallb-py demo`: the seed scenario from start to finish on this machine, shown as a terminal session.

The seed ran kubectl against a kubeadm cluster with MetalLB in layer 2 mode: two deployments of three echo
pods, the ConfigMap with the pool 192.168.1.11-192.168.1.13, two Services exposed as LoadBalancer, which got
192.168.1.11 and .12, and a browser that reached them. Here a `LabCluster` stands in for that cluster (a
real kube-apiserver on 127.0.0.1; node1-3 and a control-plane node as network namespaces; our controller
and a speaker per node), the same kubectl commands run against it, a client namespace plays the browser,
and then the announcing node dies (its speaker SIGKILLed, its cable cut) while a prober measures how long
the address stays unreachable.

`--mode bgp` plays the same Services in BGP mode: the lab's client sits behind a router (FRR, AS 64512, at
198.51.100.254) that peers with every node's speaker, the BGP configuration in examples/seed/
metallb-bgpconfig.yaml replaces the ConfigMap (with BFD, 50 ms x 3, beside each session, and graceful
restart), and the router spreads each address over the three workers (ECMP). The router's own view (vtysh)
shows the next hops, the community and the BFD sessions; then a node's cable is cut, its speaker left
running: nothing closes its BGP connection, so only BFD (or, without it, the 9 s hold time) tells the
router. The demo measures how long the router's FIB kept routing to the node and how many requests were
lost, shows the node's own speaker reporting its BFD session down, then plugs the cable back in.

Needs root (network namespaces). The logs of the controller, the speakers and the control plane are kept,
in --keep-logs DIR or else in one folder per mode and prefix under the cache (`default_log_dir`), which the
next such run empties first: the folder the demo names stays there to read, and runs do not pile up. Exit
status: 0 when every step did what the seed shows, 1 when one did not (the message says which, and where the
logs are), 2 without root, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import TextIO

from metallb_py.errors import MetalLBError
from metallb_py.k8s.resources import EVENTS, SERVICE_BGP_STATUSES
from metallb_py.speaker.status import service_selector
from metallb_py.testing import FetchError, FrrRouter, LabCluster, Probe
from metallb_py.testing.bgplab import DEFAULT_NODE_ASN, DEFAULT_ROUTER_ASN, Peering
from metallb_py.testing.controlplane import default_cache_dir
from metallb_py.testing.netlab import EchoKind
from metallb_py.testing.routers import BfdConfig

__all__ = ["MODES", "SEED_BGP_CONFIG", "SEED_CONFIGMAP", "default_log_dir", "run"]

MODES = ("layer2", "bgp")

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
_EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "seed"
_SEED_FILE = _EXAMPLES / "metallb-l2config.yaml"

# The BFD profile of the seed's BGPPeer, which the lab's router mirrors: an interval in milliseconds (both
# ways) and how many missed packets mean the path is down.
_BFD_INTERVAL_MS = 50
_BFD_MULTIPLIER = 3

# examples/seed/metallb-bgpconfig.yaml: the seed's pool, advertised over BGP to the lab's router (its AS and
# address are the lab's: DEFAULT_ROUTER_ASN at 198.51.100.254, the nodes in DEFAULT_NODE_ASN) with a
# community, from every node. holdTime bounds how long the router keeps the path of a node that vanishes
# without closing its connection; BFD beside the session notices it within interval x multiplier.
# Graceful restart lets the router keep a node's routes while its speaker restarts.
SEED_BGP_CONFIG = f"""\
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  namespace: metallb-system
  name: nginx-ip-range
spec:
  addresses:
  - 192.168.1.11-192.168.1.13
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata:
  namespace: metallb-system
  name: fast
spec:
  receiveInterval: {_BFD_INTERVAL_MS}
  transmitInterval: {_BFD_INTERVAL_MS}
  detectMultiplier: {_BFD_MULTIPLIER}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata:
  namespace: metallb-system
  name: router
spec:
  myASN: {DEFAULT_NODE_ASN}
  peerASN: {DEFAULT_ROUTER_ASN}
  peerAddress: 198.51.100.254
  holdTime: 9s
  bfdProfile: fast
  enableGracefulRestart: true
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata:
  namespace: metallb-system
  name: nginx-ip-range
spec:
  ipAddressPools:
  - nginx-ip-range
  communities:
  - 64513:100
"""
_SEED_BGP_FILE = _EXAMPLES / "metallb-bgpconfig.yaml"
_COMMUNITY = "64513:100"
_HOLD_TIME = 9.0  # the BGPPeer's holdTime
# FRR's last NOTIFICATION for a session it ended because BFD went down (Cease, subcode 10 "BFD down").
_FRR_BFD_DOWN = "Cease/BFD Down"


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
_PROBE_TIMEOUT = 1.0  # a request without an answer by then failed (it went to a dead node)
_FIB_POLL = 0.002  # the router's kernel FIB is read this often while a node dies
# The lab router's end of the seed's BGPPeer: the same BFD profile, graceful restart (helper) on.
_BGP_PEERING = Peering(
    router_asn=DEFAULT_ROUTER_ASN,
    node_asn=DEFAULT_NODE_ASN,
    bfd=BfdConfig(_BFD_INTERVAL_MS, _BFD_INTERVAL_MS, _BFD_MULTIPLIER),
    graceful_restart=True,
)
_MAX_FETCHES = 30  # requests until every node has answered once through the router's ECMP
_STOPPED = "stopped"  # a prober request still in flight when the prober stopped (netlab's helper)


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
    bgp = args.mode == "bgp"
    term = _Terminal(sys.stdout)
    if args.keep_logs:
        log_dir = Path(args.keep_logs)
    else:
        # Ours alone (a folder of this mode and prefix under the cache): the last run's logs go.
        log_dir = default_log_dir(args.mode, args.prefix)
        shutil.rmtree(log_dir, ignore_errors=True)
    # SIGTERM unwinds like Ctrl-C, so the lab and the control plane are removed either way.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        if bgp:
            term.note("metallb-py demo: the seed scenario in BGP mode, behind an FRR router, on this machine")
        else:
            term.note("metallb-py demo: the seed scenario (MetalLB in layer 2 mode) on this machine")
        with LabCluster(
            prefix=args.prefix,
            log_dir=log_dir,
            progress=term.note,
            build_kubernetes=True,
            router="frr" if bgp else None,
            peering=_BGP_PEERING if bgp else None,
        ) as cluster:
            failover = _play_bgp(cluster, term) if bgp else _play(cluster, term)
            term.blank()
            term.note(
                f"cleaning up: speakers, controller, {'router, ' if bgp else ''}lab namespaces, control plane"
            )
    except (_DemoError, MetalLBError, subprocess.SubprocessError) as exc:
        print(f"\nmetallb-py demo failed: {exc}\nlogs: {log_dir}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\nmetallb-py demo interrupted; logs: {log_dir}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    term.note(f"done: every step as in the seed{' (in BGP mode)' if bgp else ''}; failover {failover}")
    term.note(f"logs of the controller, the speakers and the control plane: {log_dir}")
    return 0


def default_log_dir(mode: str, prefix: str) -> Path:
    """Where a demo keeps its logs without --keep-logs: `demo-logs/PREFIX-MODE` under the cache of the
    control plane's binaries ($METALLB_PY_CACHE, else ~/.cache/metallb-py). Each run empties it first."""
    return default_cache_dir() / "demo-logs" / f"{prefix}-{mode}"


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
    vips = _replay_seed(cluster, term, _SEED_FILE, SEED_CONFIGMAP)
    published = time.monotonic()
    owners = {
        seed.service: cluster.wait_for(
            partial(cluster.announcer, _NAMESPACE, seed.service), _WAIT, f"a node to announce {seed.service}"
        )
        for seed in _SEED
    }
    term.note(f"both Services announced {1000 * (time.monotonic() - published):.0f} ms after publishing")
    _kubectl(cluster, term, "get", "services")
    _check_addresses(vips)
    _check_owners(cluster, owners)
    _kubectl(cluster, term, "get", "servicel2statuses", "-n", cluster.namespace)

    term.note(f"from the client ({cluster.lab.client_address()}), as the seed's browser:")
    for seed in _SEED:
        _fetch(cluster, term, vips[seed.service])
    term.note("(no kube-proxy here: the announcing node answers itself)")
    return _failover(cluster, term, vips, owners)


def _replay_seed(cluster: LabCluster, term: _Terminal, config_file: Path, config_text: str) -> dict[str, str]:
    """The seed's kubectl steps with this mode's configuration, up to both Services having ready endpoints
    (each node's HTTP server playing their pods); returns each Service's address."""
    term.blank()
    for seed in _SEED:
        _kubectl(cluster, term, "create", "deployment", seed.deployment, f"--image={seed.image}")
        _kubectl(cluster, term, "scale", "deployment", seed.deployment, "--replicas=3")
    term.note(
        "no pods will run (no scheduler or kubelet here): each node's HTTP server in the lab plays them, and "
        "the demo publishes the EndpointSlices the endpoint controller would"
    )
    shown = f"kubectl apply -f {config_file.name}"
    if config_file.is_file():
        _kubectl(cluster, term, "apply", "-f", str(config_file), shown=shown)
    else:
        _kubectl(cluster, term, "apply", "-f", "-", stdin=config_text, shown=shown)

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
    return vips


def _check_addresses(vips: dict[str, str]) -> None:
    unexpected = [f"{s.service} got {vips[s.service]}, not {s.ip}" for s in _SEED if vips[s.service] != s.ip]
    if unexpected:
        raise _DemoError(f"the seed's addresses differ: {'; '.join(unexpected)}")


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
    # One object per (node, Service) with a generated name: found by MetalLB's labels, as its users do.
    selector = service_selector(f"{_NAMESPACE}/{service}")
    _kubectl(cluster, term, "get", "servicel2statuses", "-n", cluster.namespace, "-l", selector)
    for seed in _SEED:
        _fetch(cluster, term, vips[seed.service])
    return f"{outage:.0f} ms ({dying} -> {taker})"


def _announcer_other_than(cluster: LabCluster, service: str, node: str) -> str | None:
    current = cluster.announcer(_NAMESPACE, service)
    return current if current != node else None


def _failed_between(probes: list[Probe], start: float, first: Probe) -> int:
    """Requests sent from `start` until the one that got the first answer, that got none."""
    return sum(1 for p in probes if start <= p.sent < first.sent and not p.ok)


# -- BGP mode ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """The prober's requests sent within a time window: how many, how many failed, which nodes answered.
    Requests still in flight when the prober stopped count as neither."""

    sent: int
    failed: int
    answers: frozenset[str]


def _window(probes: list[Probe], start: float, end: float) -> _Window:
    chosen = [p for p in probes if start <= p.sent < end and p.error != _STOPPED]
    return _Window(
        sent=len(chosen),
        failed=sum(1 for p in chosen if not p.ok),
        answers=frozenset(p.answer for p in chosen if p.answer is not None),
    )


def _play_bgp(cluster: LabCluster, term: _Terminal) -> str:
    """The seed's steps in BGP mode, the router's view, the client's requests spread over the nodes, then a
    node's cable cut and plugged back in; returns the failover summary."""
    router = cluster.router
    if not isinstance(router, FrrRouter):
        raise _DemoError(f"the BGP demo shows FRR's own view (vtysh), and the lab's router is {router}")
    vips = _replay_seed(cluster, term, _SEED_BGP_FILE, SEED_BGP_CONFIG)
    published = time.monotonic()
    cluster.wait_for(
        partial(_routed_over, cluster, list(vips.values()), cluster.workers),
        _WAIT,
        f"the router's FIB to route both addresses over {', '.join(cluster.workers)}",
    )
    term.note(
        f"the router routes both addresses over {', '.join(cluster.workers)} "
        f"{1000 * (time.monotonic() - published):.0f} ms after publishing"
    )
    _kubectl(cluster, term, "get", "services")
    _check_addresses(vips)
    every = {(node, seed.service) for node in cluster.workers for seed in _SEED}
    cluster.wait_for(
        lambda: _bgp_statuses(cluster) == every, _WAIT, "a ServiceBGPStatus per worker and Service"
    )
    _kubectl(cluster, term, "get", "servicebgpstatuses", "-n", cluster.namespace)

    vip = vips[_SEED[0].service]
    term.note(
        f"the router (FRR, AS {DEFAULT_ROUTER_ASN}, {cluster.lab.router_address()}) as its operator sees it: "
        f"a next hop per worker (ECMP), each path from AS {DEFAULT_NODE_ASN} with the community {_COMMUNITY}"
    )
    _vtysh(router, term, f"show ip route {vip}/32")
    _vtysh(router, term, f"show bgp ipv4 unicast {vip}/32")
    _check_paths(cluster, router, list(vips.values()))
    cluster.wait_for(
        partial(_bfd_up, cluster, router, cluster.nodes), _WAIT, "a BFD session up with every node"
    )
    term.note(
        f"beside each BGP session a BFD session ({_BFD_INTERVAL_MS} ms x {_BFD_MULTIPLIER}, the BFDProfile "
        "'fast'): every node's speaker and the router send each other a packet every "
        f"{_BFD_INTERVAL_MS} ms"
    )
    _vtysh(router, term, "show bfd peers brief")

    term.note(
        f"from the client ({cluster.lab.client_address()}) behind the router, as the seed's browser: each "
        "request is a new connection, which the router hashes onto one of its next hops"
    )
    answers = _fetch_until_each_answers(cluster, term, vip, cluster.workers)
    _fetch(cluster, term, vips[_SEED[1].service])
    term.note("(no kube-proxy here: the node the router picked answers itself)")
    return _bgp_failover(cluster, term, router, vips, answers[0])


def _routed_over(cluster: LabCluster, vips: list[str], nodes: tuple[str, ...]) -> bool:
    """Whether the router's kernel FIB routes each of `vips` over exactly `nodes` (one ECMP leg each)."""
    fib = cluster.router.fib(4)
    wanted = {cluster.lab.node_address(n) for n in nodes}
    return all({h.gateway for h in fib.get(f"{vip}/32", [])} == wanted for vip in vips)


def _bgp_statuses(cluster: LabCluster) -> set[tuple[str, str]]:
    """(node, Service) for each ServiceBGPStatus of a seed Service."""
    found = set()
    for obj in cluster.client.list(SERVICE_BGP_STATUSES, cluster.namespace).items:
        status = obj.get("status") or {}
        if status.get("serviceNamespace") == _NAMESPACE:
            found.add((str(status.get("node")), str(status.get("serviceName"))))
    return found


def _check_paths(cluster: LabCluster, router: FrrRouter, vips: list[str]) -> None:
    """What the vtysh lines show, read from FRR's JSON: a path from each worker, from the nodes' AS, with
    the community."""
    routes = router.routes(4)
    wanted = {cluster.lab.node_address(n) for n in cluster.workers}
    for vip in vips:
        paths = routes.get(f"{vip}/32", [])
        if {p.next_hop for p in paths} != wanted:
            raise _DemoError(
                f"the router's paths to {vip}/32 are {paths}, not one from each of {sorted(wanted)}"
            )
        wrong = [p for p in paths if _COMMUNITY not in p.communities or p.as_path != (DEFAULT_NODE_ASN,)]
        if wrong:
            raise _DemoError(
                f"paths to {vip}/32 without the community {_COMMUNITY} or not from AS {DEFAULT_NODE_ASN}: "
                f"{wrong}"
            )


def _vtysh(router: FrrRouter, term: _Terminal, command: str) -> str:
    output = router.vtysh(command)
    term.command(shlex.join(["vtysh", "-c", command]), output)
    return output


def _fetch_until_each_answers(
    cluster: LabCluster, term: _Terminal, vip: str, nodes: tuple[str, ...]
) -> list[str]:
    """Requests `vip` until each of `nodes` has answered once; returns the answers in order. Fails on an
    answer from another node, or when one of them never answers (the router does not spread the requests)."""
    answers: list[str] = []
    while missing := set(nodes) - set(answers):
        if len(answers) == _MAX_FETCHES:
            raise _DemoError(
                f"{len(answers)} requests to {vip}, and {', '.join(sorted(missing))} never answered: the "
                "router does not spread them over every node"
            )
        answer = _fetch(cluster, term, vip)
        if answer not in nodes:
            raise _DemoError(f"{answer!r} answered {vip}; only {', '.join(nodes)} should")
        answers.append(answer)
    return answers


def _bfd_up(cluster: LabCluster, router: FrrRouter, nodes: tuple[str, ...]) -> bool:
    """Whether the router's BFD session with each of `nodes` is up."""
    peers = router.bfd_peers()
    return all((view := peers.get(cluster.lab.node_address(n))) is not None and view.up for n in nodes)


def _bfd_down_events(cluster: LabCluster, node: str) -> int:
    """How many times `node`'s speaker reported its BFD session down, as Events on the BGPPeer."""
    return sum(
        int(e.get("count") or 1)
        for e in cluster.client.list(EVENTS, cluster.namespace).items
        if e.get("reason") == "BFDSessionDown" and e.get("reportingInstance") == node
    )


def _bgp_failover(
    cluster: LabCluster, term: _Terminal, router: FrrRouter, vips: dict[str, str], dying: str
) -> str:
    vip = vips[_SEED[0].service]
    address = cluster.lab.node_address(dying)
    survivors = tuple(n for n in cluster.workers if n != dying)
    term.blank()
    term.note(
        f"failover: a prober requests http://{vip}/ from the client every {1000 * _PROBE_INTERVAL:.0f} ms, "
        f"each on a new connection, so the router spreads them over the nodes"
    )
    reported = _bfd_down_events(cluster, dying)
    prober = cluster.lab.prober(vip, interval=_PROBE_INTERVAL, timeout=_PROBE_TIMEOUT)
    try:
        if prober.wait_for_answer(dying, timeout=_WAIT) is None:
            raise _DemoError(f"the prober got no answer from {dying} at {vip}")
        term.note(
            f"{dying}'s cable is cut; its speaker keeps running, and nothing closes its BGP connection: only "
            f"BFD, or the {_HOLD_TIME:.0f} s hold time, can tell the router"
        )
        cut = time.monotonic()
        cluster.lab.kill_link(dying)
        cluster.wait_for(
            partial(_routed_over, cluster, list(vips.values()), survivors),
            _WAIT,
            f"the router's FIB to route both addresses over {', '.join(survivors)} only",
            interval=_FIB_POLL,
        )
        dropped = time.monotonic()
        # Every request sent before the FIB changed has its answer, or its timeout, a little after this.
        prober.wait_until(
            lambda probes: any(p.received >= dropped + _PROBE_TIMEOUT + 0.1 for p in probes), _WAIT
        )
    finally:
        probes = prober.stop()
    during, after = _window(probes, cut, dropped), _window(probes, dropped, float("inf"))
    converged = 1000 * (dropped - cut)
    ended = router.neighbors()[address].last_error
    if ended != _FRR_BFD_DOWN:
        raise _DemoError(
            f"the router dropped {dying} {converged:.0f} ms after the cut, but not because BFD went down "
            f"(the session ended with {ended!r}, not {_FRR_BFD_DOWN!r})"
        )
    term.note(
        f"the router's FIB dropped {dying} {converged:.0f} ms after the cut: its BFD session went down after "
        f"{_BFD_MULTIPLIER} missed packets ({_BFD_MULTIPLIER * _BFD_INTERVAL_MS} ms) and took the BGP "
        f"session with it; without BFD the router would have kept routing to {dying} until the "
        f"{_HOLD_TIME:.0f} s hold time ran out"
    )
    term.note(
        f"requests sent meanwhile: {during.sent}, {during.failed} failed (those the router sent to {dying}); "
        f"after: {after.sent}, {after.failed} failed, answered by {', '.join(sorted(after.answers))}"
    )
    if after.failed or not after.answers or not after.answers <= set(survivors):
        raise _DemoError(
            f"after the router dropped {dying}, {after.failed} of {after.sent} requests failed and "
            f"{', '.join(sorted(after.answers)) or 'no node'} answered; expected only {', '.join(survivors)}"
        )
    _vtysh(router, term, "show bfd peers brief")
    _vtysh(router, term, f"show ip route {vip}/32")
    _fetch_until_each_answers(cluster, term, vip, survivors)
    _fetch(cluster, term, vips[_SEED[1].service])
    term.note(
        f"{dying}'s speaker, cut off from the router, saw its BFD session go down: an Event on the BGPPeer"
    )
    cluster.wait_for(
        lambda: _bfd_down_events(cluster, dying) > reported, _WAIT, f"a BFDSessionDown Event from {dying}"
    )
    _kubectl(
        cluster,
        term,
        "get",
        "events",
        "-n",
        cluster.namespace,
        "--field-selector=reason=BFDSessionDown",
    )

    term.blank()
    term.note(f"{dying}'s cable is plugged back in")
    restored = time.monotonic()
    cluster.lab.restore_link(dying)
    cluster.wait_for(partial(_bfd_up, cluster, router, (dying,)), _WAIT, f"BFD with {dying} up again")
    bfd_back = time.monotonic()
    cluster.wait_for(
        partial(_routed_over, cluster, list(vips.values()), cluster.workers),
        _WAIT,
        f"the router's FIB to route both addresses over {', '.join(cluster.workers)} again",
        interval=_FIB_POLL,
    )
    term.note(
        f"BFD up again {1000 * (bfd_back - restored):.0f} ms later, and the router routes over "
        f"{', '.join(cluster.workers)} again {1000 * (time.monotonic() - restored):.0f} ms after the plug "
        "(the BGP session came back as soon as BFD was up)"
    )
    _vtysh(router, term, f"show ip route {vip}/32")
    _fetch_until_each_answers(cluster, term, vip, cluster.workers)
    return (
        f"{converged:.0f} ms until the router dropped {dying} (BFD; hold time {_HOLD_TIME:.0f} s), "
        f"{during.failed} requests lost"
    )
