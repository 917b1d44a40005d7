"""A long-running component's process: connect, start, watch its health, stop on SIGTERM or SIGINT.

Shared by `metallb-py controller` and `metallb-py speaker`, which differ only in what they build (a
`Component`) and the name they give the API server (`user_agent`).
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from os import PathLike
from pathlib import Path
from types import FrameType
from typing import Protocol

from metallb_py.backoff import Backoff
from metallb_py.errors import MetalLBError
from metallb_py.k8s.client import KubeClient, connect
from metallb_py.k8s.errors import ApiError
from metallb_py.runtime.stopflag import StopFlag

__all__ = ["Component", "default_namespace", "run_until_signalled"]

_POD_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

# How often the health of a running component is checked.
_HEALTH_PERIOD = 1.0
# Retries of a start that failed for a temporary reason (the API server timed out, answered 5xx or 429): a
# fleet restarted together must not fail on the API server's first slow answer, nor retry in step.
_START_RETRY_BASE = 0.5
_START_RETRY_CAP = 30.0


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

    0 after a signal; 1 when it cannot connect or start, or broke, with the reason logged. A start that fails
    for a temporary reason (an ApiError marked `temporary`: no answer, a timeout, 5xx, 429, a conflict) is
    retried with a fresh component from `make`, after a capped, jittered backoff, until a signal. Call it from
    the main thread (it installs the signal handlers, and puts the previous ones back before returning).
    """
    try:
        client = connect(kubeconfig, context=context, user_agent=user_agent)
    except Exception as exc:  # the client raises several unrelated types for unusable configurations
        logger.error(
            "cannot load the API client configuration", extra={"error": f"{type(exc).__name__}: {exc}"}
        )
        return 1
    stop = StopFlag()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Nothing here may take a lock the interrupted main thread could hold (logging's, an Event's):
        # the flag takes none, and the main loop logs once it wakes.
        stop.set(signal.Signals(signum).name)

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _run(make, client, stop, logger, health_period)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        stop.close()


def _run(
    make: Callable[[KubeClient], Component],
    client: KubeClient,
    stop: StopFlag,
    logger: logging.Logger,
    health_period: float,
) -> int:
    component = _start(make, client, stop, logger)
    if component is None:
        _log_signal(stop, logger)
        client.close()
        return 0 if stop.is_set() else 1
    broken = None
    while not stop.wait(health_period):
        broken = component.healthy()
        if broken is not None:
            logger.error("stopping: a part of it stopped working", extra={"error": broken})
            break
    _log_signal(stop, logger)
    component.stop()
    client.close()
    return 0 if broken is None else 1


def _start(
    make: Callable[[KubeClient], Component],
    client: KubeClient,
    stop: StopFlag,
    logger: logging.Logger,
) -> Component | None:
    """A started component; None when a start failed for good, or a signal came while retrying one."""
    backoff = Backoff(_START_RETRY_BASE, _START_RETRY_CAP, jitter=0.5)
    while True:
        component = make(client)
        try:
            component.start()
            return component
        except ApiError as exc:
            component.stop()
            if not exc.temporary:
                logger.error("cannot start", extra={"error": str(exc)})
                return None
            delay = backoff.next()
            logger.warning(
                "cannot start yet: the API server did not answer in time; retrying",
                extra={"error": str(exc), "retry_in": round(delay, 2), "attempt": backoff.failures},
            )
            if stop.wait(delay):
                return None
        except (MetalLBError, OSError) as exc:
            logger.error("cannot start", extra={"error": str(exc)})
            component.stop()
            return None


def _log_signal(stop: StopFlag, logger: logging.Logger) -> None:
    if stop.is_set():
        logger.info("stopping", extra={"signal": stop.reason})
