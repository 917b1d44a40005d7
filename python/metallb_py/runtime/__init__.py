"""What the controller and the speaker both run on, owned by neither: the process around a component
(signals, health, connecting as itself), JSON logs, and the work queue.

An import-linter contract keeps this package below `controller` and `speaker` and above `k8s`, so the two
programs share it without importing each other.
"""

from __future__ import annotations

from metallb_py.runtime.logs import JSONFormatter, configure_logging
from metallb_py.runtime.process import Component, default_namespace, run_until_signalled
from metallb_py.runtime.stopflag import StopFlag
from metallb_py.runtime.workqueue import WorkQueue

__all__ = [
    "Component",
    "JSONFormatter",
    "StopFlag",
    "WorkQueue",
    "configure_logging",
    "default_namespace",
    "run_until_signalled",
]
