"""`metallb-py status`: the cluster as MetalLB sees it, in one screen, from the Kubernetes API only.

`model` turns a snapshot of API objects into a `ClusterStatus` (pure); `render` shows it as text or JSON
(pure); `cluster` reads the snapshot with the project's client and loops for `--watch`. This module only
registers the command: importing it costs nothing, the API client is imported when the command runs.
"""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds the `status` command to the CLI's sub-parsers."""
    parser = groups.add_parser(
        "status",
        help="show pools, Services and who announces them, speakers and the configuration's state",
        description="One screen from the Kubernetes API only: each pool's usage, each LoadBalancer "
        "Service's addresses and the node announcing them (layer 2: its ServiceL2Status) or the nodes and "
        "BGPPeers advertising them (BGP: their ServiceBGPStatus), the speakers and their gossip "
        "membership (their Leases; stale ones flagged), and the configuration's state and warnings as the "
        "controller published them. Needs list/get on those objects (a read-only ClusterRole will do). "
        "Exit status 1 when the API server cannot be read.",
    )
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file (default: in-cluster config)")
    parser.add_argument("--context", help="kubeconfig context (default: its current context)")
    parser.add_argument(
        "--namespace",
        help="where MetalLB's configuration, Leases and status objects live (default: $METALLB_NAMESPACE, "
        "else the pod's namespace, else metallb-system)",
    )
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="default text")
    parser.add_argument(
        "-w",
        "--watch",
        action="store_true",
        help="show it again every --interval seconds until Ctrl-C (with -o json: one document per line)",
    )
    parser.add_argument(
        "--interval", type=_positive, default=2.0, metavar="SECONDS", help="with --watch (default 2)"
    )
    parser.add_argument(
        "--lb-class",
        metavar="CLASS",
        help="the spec.loadBalancerClass MetalLB serves (its --lb-class; default: Services without one)",
    )
    parser.add_argument(
        "--controller-lease",
        default="metallb-controller",
        metavar="NAME",
        help="the controller's leader Lease (its --lease-name; default metallb-controller)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Runs the command for parsed arguments (as `register` defines them); returns the exit status."""
    from metallb_py.status.cluster import run as run_status  # noqa: PLC0415 (the API client loads slowly)

    return run_status(args)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value
