"""`metallb-py speaker`: runs a Speaker until SIGTERM or SIGINT, then stops it gracefully.

Thin wiring: flags to SpeakerOptions, a client from the kubeconfig (or the pod's service account), the gossip
secret from $METALLB_ML_SECRET_KEY (MetalLB's manifests set it from the Secret `memberlist`) or that Secret
read through the API, JSON logs on stderr.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os

from metallb_py.errors import MetalLBError
from metallb_py.runtime import configure_logging, default_namespace, run_until_signalled
from metallb_py.speaker.speaker import SECRET_ENV, Speaker, SpeakerOptions

__all__ = ["MALLOC_ARENAS", "USER_AGENT", "limit_malloc_arenas", "options_from_args", "run"]

log = logging.getLogger("metallb_py.speaker")

# How the API server tells a speaker's requests from the controller's.
USER_AGENT = "metallb-py-speaker"
# glibc's malloc arenas for the whole speaker (see limit_malloc_arenas).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter, from glibc's malloc.h


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Caps glibc's malloc arenas, as MALLOC_ARENA_MAX does. glibc gives threads that allocate arenas of their
    own, up to eight per core, and each keeps the pages it touched: a speaker runs about thirty threads
    (watches, workers, the Rust protocol threads), which cost it 1-2 MiB of resident memory for nothing (its
    threads mostly wait). Call it before the threads start. Leaves $MALLOC_ARENA_MAX, when set, in force;
    False when it did nothing (set, or not glibc: musl has no arenas)."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


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
        lb_class=args.lb_class or None,
        busy_poll=args.busy_poll,
        fast_takeover=args.fast_takeover,
        heartbeat_interval=args.heartbeat_interval,
        heartbeat_timeout=args.heartbeat_timeout,
        gossip_probe_interval=args.gossip_probe_interval,
        strict=args.strict,
        pod_name=args.pod_name or os.environ.get("POD_NAME") or None,
    )


def run(args: argparse.Namespace) -> int:
    limit_malloc_arenas()
    configure_logging(args.log_level)
    try:
        options = options_from_args(args)
    except MetalLBError as exc:
        log.error(str(exc))
        return 2
    return run_until_signalled(
        lambda client: Speaker(client, options),
        log,
        kubeconfig=args.kubeconfig,
        context=args.context,
        user_agent=USER_AGENT,
    )
