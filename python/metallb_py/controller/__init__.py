"""The controller: assigns addresses to LoadBalancer Services in a cluster and writes them to the API.

`reconcile` holds the pure decisions (one Service and the allocator in, the writes out) and the startup
restore; `config` the configuration reloads; `controller` the loop that wires the
watches, the single worker, leader election, events and `metrics` together; `main` the CLI command.
"""

from __future__ import annotations

from metallb_py.controller.config import ConfigOutcome, ConfigState
from metallb_py.controller.controller import Controller, ControllerOptions
from metallb_py.controller.metrics import Metrics
from metallb_py.controller.reconcile import (
    ANNOTATION_ALLOCATED_FROM_POOL,
    Decision,
    Event,
    Outcome,
    SyncState,
    reconcile_service,
    restore_assignments,
)
from metallb_py.runtime.workqueue import WorkQueue

__all__ = [
    "ANNOTATION_ALLOCATED_FROM_POOL",
    "ConfigOutcome",
    "ConfigState",
    "Controller",
    "ControllerOptions",
    "Decision",
    "Event",
    "Metrics",
    "Outcome",
    "SyncState",
    "WorkQueue",
    "reconcile_service",
    "restore_assignments",
]
