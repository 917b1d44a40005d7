"""A long-running component's process: connect, start, watch its health, stop on SIGTERM or SIGINT.

Shared by `metallb-py controller` and `metallb-py speaker`, which differ only in what they build (a
`Component`) and the name they give the API server (`user_agent`).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from types import FrameType
from typing import Protocol

from metallb_py.errors import MetalLBError
from metallb_py.k8s.client import KubeClient, connect
from metallb_py.k8s.errors import ApiError

__all__ = ["Component", "default_namespace", "run_until_signalled"]

_POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

# How often the health of a running component is checked.
_HEALTH_PERIOD = 1.0


class Component(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def healthy(self) -> str | None:
        """None while it works; else what broke (the process then exits with status 1)."""


def default_namespace() -> str:
    """$METALLB_NAMESPACE, else the pod's own namespace (in a cluster), else metallb-system."""
    configured = os.environ.get("METALLB_NAMESPACE")
    if configured:
        return configured
    try:
        return _POD_NAMESPACE_FILE.read_text().strip() or "metallb-system"
    except OSError:
        return "metallb-system"


def run_until_signalled(
    make: Callable[[KubeClient], Component],
    logger: logging.Logger,
    *,
    kubeconfig: str | PathLike[str] | None,
    context: str | None = None,
    user_agent: str,
    health_period: float = _HEALTH_PERIOD,
) -> int:
    """Connects (`kubeconfig` None: in-cluster) as `user_agent`, starts what `make` builds, runs it until
    SIGTERM or SIGINT or until it reports itself unhealthy, and stops it.

    0 after a signal; 1 when it cannot connect or start, or broke, with the reason logged. Call it from the
    main thread (it installs the signal handlers, and puts the previous ones back before returning).
    """
    try:
        client = connect(kubeconfig, context=context, user_agent=user_agent)
    except Exception as exc:  # the client raises several unrelated types for unusable configurations
        logger.error(
            "cannot load the API client configuration", extra={"error": f"{type(exc).__name__}: {exc}"}
        )
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(make(client), client, stop, logger, health_period)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(
    component: Component,
    client: KubeClient,
    stop: threading.Event,
    logger: logging.Logger,
    health_period: float,
) -> int:
    try:
        component.start()
    except (MetalLBError, ApiError, OSError) as exc:
        logger.error("cannot start", extra={"error": str(exc)})
        component.stop()
        client.close()
        return 1
    broken = None
    while not stop.wait(health_period):
        broken = component.healthy()
        if broken is not None:
            logger.error("stopping: a part of it stopped working", extra={"error": broken})
            break
    component.stop()
    client.close()
    return 0 if broken is None else 1
