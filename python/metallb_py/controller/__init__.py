"""The controller: assigns addresses to LoadBalancer Services in a cluster and writes them to the API.

`reconcile` holds the pure decisions (one Service and the allocator in, the writes out) and the startup
restore; `config` the configuration reloads; `sync` the worker's pass over one Service (decide, write, and
retry, report or leave the key by its `SyncState`); `controller` the loop that wires the watches, the single
worker, leader election, events and `metrics` together; `main` the CLI command. The work queue is
`metallb_py.runtime.WorkQueue`, shared with the speaker, and exported here too.
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
