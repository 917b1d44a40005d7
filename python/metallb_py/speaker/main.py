"""`metallb-py speaker`: runs a Speaker until SIGTERM or SIGINT, then stops it gracefully.

Thin wiring: flags to SpeakerOptions, a client from the kubeconfig (or the pod's service account), the gossip
secret from $METALLB_ML_SECRET_KEY (MetalLB's manifests set it from the Secret `memberlist`) or that Secret
read through the API, JSON logs on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
from types import FrameType

from metallb_py._core import Membership  # noqa: F401  (fail early when the extension is missing)
from metallb_py.controller.logs import configure_logging
from metallb_py.controller.main import default_namespace
from metallb_py.errors import MetalLBError
from metallb_py.k8s.client import connect
from metallb_py.k8s.errors import ApiError
from metallb_py.speaker.speaker import SECRET_ENV, Speaker, SpeakerOptions

__all__ = ["options_from_args", "run"]

log = logging.getLogger("metallb_py.speaker")


def options_from_args(args: argparse.Namespace) -> SpeakerOptions:
    node = args.node_name or os.environ.get("NODE_NAME")
    if not node:
        raise MetalLBError("no node name: pass --node-name or set $NODE_NAME (the DaemonSet sets it)")
    secret = os.environ.get(SECRET_ENV)
    return SpeakerOptions(
        node_name=node,
        namespace=args.namespace or default_namespace(),
        netns=args.netns,
        gossip=args.gossip,
        gossip_address=args.gossip_address,
        secret=secret.encode() if secret else None,
        metrics_port=args.metrics_port if args.metrics_port > 0 else None,
        metrics_address=args.metrics_address,
        ignore_exclude_label=args.ignore_exclude_lb,
        busy_poll=args.busy_poll,
    )


def run(args: argparse.Namespace) -> int:
    configure_logging(args.log_level)
    try:
        options = options_from_args(args)
        client = connect(args.kubeconfig, context=args.context)
    except MetalLBError as exc:
        log.error(str(exc))
        return 2
    except Exception as exc:  # the client raises several unrelated types for unusable configurations
        log.error("cannot load the API client configuration", extra={"error": f"{type(exc).__name__}: {exc}"})
        return 1
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    speaker = Speaker(client, options)
    try:
        speaker.start()
    except (MetalLBError, ApiError, OSError) as exc:
        log.error("cannot start", extra={"error": str(exc)})
        client.close()
        return 1
    stop.wait()
    speaker.stop(graceful=True)
    client.close()
    return 0
