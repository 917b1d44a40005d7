"""`metallb-py controller`: runs a Controller until SIGTERM or SIGINT, then stops it cleanly.

Thin wiring: flags to ControllerOptions, a client from the kubeconfig (or the pod's service account), JSON
logs on stderr. A clean stop hands the leader lease back, so another replica takes over at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Protocol

from metallb_py.controller.controller import Controller, ControllerOptions
from metallb_py.controller.logs import configure_logging
from metallb_py.errors import MetalLBError
from metallb_py.k8s.client import KubeClient, connect
from metallb_py.k8s.errors import ApiError

__all__ = ["default_identity", "default_namespace", "options_from_args", "run", "run_until_signalled"]

log = logging.getLogger("metallb_py.controller")

_POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_namespace() -> str:
    """$METALLB_NAMESPACE, else the pod's own namespace (in a cluster), else metallb-system."""
    configured = os.environ.get("METALLB_NAMESPACE")
    if configured:
        return configured
    try:
        return _POD_NAMESPACE_FILE.read_text().strip() or "metallb-system"
    except OSError:
        return "metallb-system"


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
    )


class Component(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def healthy(self) -> str | None:
        """None while it works; else what broke (the process then exits with status 1)."""


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    options = options_from_args(args)
    return run_until_signalled(args, lambda client: Controller(client, options), log)


def run_until_signalled(
    args: argparse.Namespace, make: Callable[[KubeClient], Component], logger: logging.Logger
) -> int:
    """Connects (`--kubeconfig`, `--context`), starts what `make` builds, runs it until SIGTERM or SIGINT and
    stops it. 1 when it cannot connect or start, with the reason logged."""
    try:
        client = connect(args.kubeconfig, context=args.context)
    except Exception as exc:  # the client raises several unrelated types for unusable configurations
        logger.error(
            "cannot load the API client configuration", extra={"error": f"{type(exc).__name__}: {exc}"}
        )
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    component = make(client)
    try:
        component.start()
    except (MetalLBError, ApiError, OSError) as exc:
        logger.error("cannot start", extra={"error": str(exc)})
        component.stop()
        client.close()
        return 1
    broken = None
    while not stop.wait(1.0):
        broken = component.healthy()
        if broken is not None:
            logger.error("stopping: a part of it stopped working", extra={"error": broken})
            break
    component.stop()
    client.close()
    return 0 if broken is None else 1
