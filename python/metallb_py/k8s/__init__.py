"""Everything that talks to the Kubernetes API, and the only package that imports its client library.

`connect()` builds a `KubeClient` (requests on plain dicts, counted, writes optionally gated by leadership);
`Reflector` keeps a watched copy of one resource across expiry and API server restarts; `LeaderElector`
elects one replica through a Lease; `EventRecorder` sends Events. An import-linter contract keeps every other
package off the `kubernetes` package.
"""

from __future__ import annotations

from metallb_py.k8s.client import KubeClient, ListResult, RequestCounter, WatchStream, connect
from metallb_py.k8s.errors import (
    ApiError,
    ApiUnavailableError,
    ConflictError,
    ForbiddenError,
    GoneError,
    InvalidError,
    NotFoundError,
    NotLeaderError,
)
from metallb_py.k8s.events import EventRecorder
from metallb_py.k8s.leader import LeaderElector, LeaseAction, LeaseRecord, decide
from metallb_py.k8s.resources import Resource
from metallb_py.k8s.watch import Backoff, Change, Reflector

__all__ = [
    "ApiError",
    "ApiUnavailableError",
    "Backoff",
    "Change",
    "ConflictError",
    "EventRecorder",
    "ForbiddenError",
    "GoneError",
    "InvalidError",
    "KubeClient",
    "LeaderElector",
    "LeaseAction",
    "LeaseRecord",
    "ListResult",
    "NotFoundError",
    "NotLeaderError",
    "Reflector",
    "RequestCounter",
    "Resource",
    "WatchStream",
    "connect",
    "decide",
]
