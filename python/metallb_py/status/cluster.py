"""The I/O of `metallb-py status`: one snapshot of the objects it shows, read with the project's client, and
the `--watch` loop (a fresh snapshot every `--interval` seconds: a few LISTs, no watches to keep)."""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import functools
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TextIO

from metallb_py.controller.configreport import CONFIGURATION_STATE_NAME
from metallb_py.k8s import ApiError, ForbiddenError, KubeClient, NotFoundError, connect
from metallb_py.k8s.config_watch import CONFIGMAP_NAME
from metallb_py.k8s.resources import (
    CONFIG_CRDS,
    CONFIGMAPS,
    CONFIGURATION_STATES,
    EVENTS,
    LEASES,
    NODES,
    SERVICE_BGP_STATUSES,
    SERVICE_L2_STATUSES,
    SERVICES,
    Resource,
    object_key,
)
from metallb_py.runtime import StopFlag, default_namespace
from metallb_py.speaker.leases import GOSSIP_LABEL
from metallb_py.status.model import (
    ADDRESS_CONFLICT,
    ALLOCATION_FAILED,
    NODE_ASSIGNED,
    ClusterStatus,
    Snapshot,
    build_status,
)
from metallb_py.status.render import render_json, render_text

__all__ = ["USER_AGENT", "read_snapshot", "run"]

JSON = dict[str, Any]
USER_AGENT = "metallb-py-status"
_CLEAR = "\x1b[H\x1b[2J"  # cursor home, clear screen


def read_snapshot(
    client: KubeClient,
    namespace: str,
    *,
    controller_lease: str = "metallb-controller",
    lb_class: str | None = None,
) -> Snapshot:
    """Every object `build_status` reads. A resource that is not installed (404) or not allowed (403) is
    left out and named in `unavailable`; other API errors propagate."""
    missing: list[str] = []

    def items(
        resource: Resource,
        ns: str | None,
        *,
        field_selector: str | None = None,
        label_selector: str | None = None,
    ) -> list[JSON] | None:
        try:
            listed = client.list(resource, ns, field_selector=field_selector, label_selector=label_selector)
        except (NotFoundError, ForbiddenError) as exc:
            missing.append(f"{resource}: {_why(exc)}")
            return None
        # List items of built-in kinds carry no kind or apiVersion (the configuration loader needs both).
        for obj in listed.items:
            obj.setdefault("kind", resource.kind)
            obj.setdefault("apiVersion", resource.api_version)
        return listed.items

    def one(resource: Resource, name: str) -> JSON | None:
        try:
            return client.get(resource, name, namespace)
        except NotFoundError:
            return None
        except ForbiddenError as exc:
            missing.append(f"{resource} {namespace}/{name}: {_why(exc)}")
            return None

    now = _dt.datetime.now(_dt.UTC)
    config_objects = list(
        items(CONFIGMAPS, namespace, field_selector=f"metadata.name={CONFIGMAP_NAME}") or []
    )
    for resource in CONFIG_CRDS:
        config_objects += sorted(items(resource, namespace) or [], key=object_key)
    l2 = items(SERVICE_L2_STATUSES, namespace)
    events: list[JSON] = []
    reasons = [ALLOCATION_FAILED, ADDRESS_CONFLICT] + ([NODE_ASSIGNED] if l2 is None else [])
    for reason in reasons:
        events += items(EVENTS, None, field_selector=f"reason={reason}") or []
    return Snapshot(
        namespace=namespace,
        now=now,
        config_objects=config_objects,
        services=items(SERVICES, None) or [],
        l2_statuses=l2,
        bgp_statuses=items(SERVICE_BGP_STATUSES, namespace),
        gossip_leases=items(LEASES, namespace, label_selector=GOSSIP_LABEL),
        controller_lease=one(LEASES, controller_lease),
        configuration_state=one(CONFIGURATION_STATES, CONFIGURATION_STATE_NAME),
        nodes=items(NODES, None),
        events=events,
        unavailable=tuple(missing),
        lb_class=lb_class,
    )


def _why(exc: ApiError) -> str:
    if isinstance(exc, NotFoundError):
        return "not found (is the CRD installed?)"
    return f"forbidden ({exc}); grant this user list/get on it"


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """The `status` command: print one snapshot, or (`--watch`) one every `--interval` seconds until
    Ctrl-C or SIGTERM, which end it at once, even in the middle of a request (exit status 0; 130 for a
    single snapshot cut short). Exit status 1 when the API server cannot be read; with --watch, that is
    said on standard error and the next round tries again (standard output keeps only whole snapshots)."""
    out = out if out is not None else sys.stdout
    render: Callable[[ClusterStatus], str] = render_text
    if args.output == "json":
        render = functools.partial(render_json, lines=args.watch)
    try:
        client = connect(args.kubeconfig, context=args.context, user_agent=USER_AGENT)
    except Exception as exc:  # the kubernetes package's config loaders raise their own kinds
        print(f"error: cannot load the API client's configuration: {exc}", file=sys.stderr)
        return 1
    read = functools.partial(
        read_snapshot,
        client,
        args.namespace or default_namespace(),
        controller_lease=args.controller_lease,
        lb_class=args.lb_class,
    )
    clear = args.watch and args.output == "text" and out.isatty()
    stopping = StopFlag()
    try:
        with _interrupted_by_signals(stopping):
            while not stopping.is_set():
                try:
                    snapshot = read()
                except ApiError as exc:
                    print(f"error: cannot read the cluster at {client.host}: {exc}", file=sys.stderr)
                    if not args.watch:
                        return 1
                else:
                    frame = render(build_status(snapshot))
                    if not args.watch:
                        out.write(frame)
                        return 0
                    # A terminal shows one screen, redrawn; a pipe gets every snapshot.
                    out.write(_CLEAR + frame if clear else frame + ("\n" if args.output == "text" else ""))
                    out.flush()
                stopping.wait(args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        client.close()
        stopping.close()
    return 0 if args.watch else 130


@contextlib.contextmanager
def _interrupted_by_signals(stopping: StopFlag) -> Iterator[None]:
    """SIGINT and SIGTERM end the loop: they set `stopping` (the loop ends at its next check even if a library
    swallowed the interruption) and raise KeyboardInterrupt wherever it waits (between rounds, or in a request
    to an API server that does not answer); the previous handlers come back after. `stopping` is a StopFlag,
    not a threading.Event: an Event's set() in a handler can wait for ever on a lock its thread holds."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        stopping.set(signal.Signals(signum).name)
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
