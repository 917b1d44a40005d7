"""`metallb-py controller`: runs a Controller until SIGTERM or SIGINT, then stops it cleanly.

Thin wiring: flags to ControllerOptions, a client from the kubeconfig (or the pod's service account), JSON
logs on stderr. A clean stop hands the leader lease back, so another replica takes over at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import uuid

from metallb_py.controller.controller import Controller, ControllerOptions
from metallb_py.runtime import configure_logging, default_namespace, run_until_signalled

__all__ = ["USER_AGENT", "default_identity", "options_from_args", "run"]

log = logging.getLogger("metallb_py.controller")

# How the API server tells the controller's requests from the speakers'.
USER_AGENT = "metallb-py-controller"


def default_identity() -> str:
    """$POD_NAME (stable across container restarts, so a restarted leader takes its lease back at once),
    else the host name with a random suffix (two processes on one host must never share an identity)."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def options_from_args(args: argparse.Namespace) -> ControllerOptions:
    return ControllerOptions(
        namespace=args.namespace or default_namespace(),
        lb_class=args.lb_class or None,
        leader_election=args.leader_elect,
        lease_name=args.lease_name,
        identity=args.identity or default_identity(),
        lease_duration=args.lease_duration,
        renew_deadline=args.renew_deadline,
        retry_period=args.retry_period,
        metrics_port=args.metrics_port if args.metrics_port > 0 else None,
        metrics_address=args.metrics_address,
        watch_timeout=args.watch_timeout,
        strict=args.strict,
    )


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    options = options_from_args(args)
    return run_until_signalled(
        lambda client: Controller(client, options),
        log,
        kubeconfig=args.kubeconfig,
        context=args.context,
        user_agent=USER_AGENT,
    )
