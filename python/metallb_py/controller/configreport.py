"""What became of each configuration reload, told three ways: a log line, Events, and a ConfigurationState.

- Refused (an error; with `strict`, a warning too): an error log line, a Warning Event `InvalidConfiguration`
  on the object at fault saying the last valid configuration stays in force, and the ConfigurationState
  `Invalid` with the error as its errorSummary.
- Loaded with warnings (what MetalLB accepts but this package would not write that way): once per distinct
  configuration and warnings (not per reload, nor when the objects are only numbered differently), one
  warning log line with every warning and a Warning Event
  `ConfigurationWarning` per warning on the object it names (the ConfigMap, else the ConfigurationState,
  when it names none); the ConfigurationState says `Valid`, with the warnings in a condition.

The ConfigurationState `controller` in the controller's namespace, labelled `metallb.io/component-type:
controller` as MetalLB's, is written through its status subresource only when its content changes; a write
that fails for now (no answer, 5xx, 429) is tried again (`write_state`, which the controller's worker calls
with backoff) until it is written or refused for good (403, or 404: no such CRD). Each write is conditional
on the resourceVersion this reporter last wrote or read in the current term (read afresh at each new term and
after a conflict), so a late write of a previous leader cannot replace what the current one wrote:

    result: Valid | Invalid             (MetalLB's: Valid whenever the configuration was accepted)
    errorSummary: the error; empty when Valid
    conditions:
    - type: poolReconcilerValid         (MetalLB's controller condition)
      status: "True", reason: Reconciled, message: ""   or   "False", ConfigurationError, the error
    - type: configurationWarnings       (ours: MetalLB has no warnings; "True" does not make it Invalid)
      status: "True", reason: AcceptedWithWarnings, message: the warnings, one per line
           or "False", reason: NoWarnings;   "Unknown", NoConfigurationInForce before a first good one
      about the configuration in force: a refused one leaves it as it was.

`lastTransitionTime` is when the condition's status last changed, as Kubernetes' conventions ask.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from metallb_py.config import Config
from metallb_py.controller.config import ConfigOutcome, named_object, without_object_index
from metallb_py.controller.reconcile import WARNING
from metallb_py.controller.sync import EventSink
from metallb_py.k8s.errors import ApiError, ConflictError, ForbiddenError, NotFoundError, NotLeaderError
from metallb_py.k8s.resources import CONFIGURATION_STATES, Resource, meta

__all__ = [
    "CONFIGURATION_STATE_NAME",
    "CONFIGURATION_WARNING",
    "CONFIGURATION_WARNINGS",
    "INVALID_CONFIGURATION",
    "POOL_RECONCILER_VALID",
    "ConfigReporter",
    "configuration_state_status",
    "warning_subject",
]

log = logging.getLogger("metallb_py.controller")

JSON = dict[str, Any]
CONFIGURATION_STATE_NAME = "controller"
COMPONENT_LABEL = "metallb.io/component-type"
INVALID_CONFIGURATION = "InvalidConfiguration"  # Event reason: a configuration refused
CONFIGURATION_WARNING = "ConfigurationWarning"  # Event reason: a configuration accepted with a warning
POOL_RECONCILER_VALID = "poolReconcilerValid"
CONFIGURATION_WARNINGS = "configurationWarnings"
MAX_WARNING_EVENTS = 20  # per configuration; the ConfigurationState and the log line carry them all
_CONDITION_MESSAGE_LIMIT = 32768  # the CRD's maxLength


class StateApi(Protocol):
    """The requests the reporter sends (KubeClient's)."""

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> JSON: ...

    def create(self, resource: Resource, body: Mapping[str, Any], namespace: str | None = None) -> JSON: ...

    def patch(
        self,
        resource: Resource,
        name: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JSON: ...


def configuration_state_status(
    *,
    error: str | None,
    warnings: Sequence[str] | None,
    now: str,
    previous: Sequence[Mapping[str, Any]] = (),
) -> JSON:
    """The ConfigurationState's status: `error` the latest configuration's (None: it is in force),
    `warnings` those of the configuration in force (None: none is in force yet), `now` the RFC 3339 time of
    this write, `previous` the conditions last written (their transition times are kept when the status
    did not change)."""
    valid = (
        {"status": "True", "reason": "Reconciled", "message": ""}
        if error is None
        else {"status": "False", "reason": "ConfigurationError", "message": _limit(error)}
    )
    if warnings is None:
        warned = {"status": "Unknown", "reason": "NoConfigurationInForce", "message": ""}
    elif warnings:
        warned = {"status": "True", "reason": "AcceptedWithWarnings", "message": _limit("\n".join(warnings))}
    else:
        warned = {"status": "False", "reason": "NoWarnings", "message": ""}
    before = {str(c.get("type")): c for c in previous}
    conditions = []
    for kind, condition in ((POOL_RECONCILER_VALID, valid), (CONFIGURATION_WARNINGS, warned)):
        old = before.get(kind) or {}
        kept = old.get("status") == condition["status"] and old.get("lastTransitionTime")
        since = str(old["lastTransitionTime"]) if kept else now
        conditions.append({"type": kind, **condition, "lastTransitionTime": since})
    return {
        "result": "Valid" if error is None else "Invalid",
        "errorSummary": error or "",
        "conditions": conditions,
    }


def warning_subject(
    warning: str, objects: Sequence[Mapping[str, Any]], namespace: str, name: str = CONFIGURATION_STATE_NAME
) -> Mapping[str, Any]:
    """The object a warning is about: the one of `objects` it names, else the ConfigMap, else the
    ConfigurationState `name` (the Event's subject need not exist)."""
    named = named_object(warning, objects)
    if named is not None:
        return named
    configmap = next((o for o in objects if o.get("kind") == "ConfigMap"), None)
    if configmap is not None:
        return configmap
    return {
        "apiVersion": CONFIGURATION_STATES.api_version,
        "kind": CONFIGURATION_STATES.kind,
        "metadata": {"name": name, "namespace": namespace},
    }


def _limit(message: str) -> str:
    if len(message) <= _CONDITION_MESSAGE_LIMIT:
        return message
    return message[: _CONDITION_MESSAGE_LIMIT - 3] + "..."


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ConfigReporter:
    """Tells what became of each reload; see the module docstring. Runs on the controller's worker thread.

    `reset()` at each new term as leader: the ConfigurationState is written again (another replica may have
    written it meanwhile); the warnings already told stay told.
    """

    def __init__(
        self,
        api: StateApi,
        events: EventSink,
        namespace: str,
        *,
        name: str = CONFIGURATION_STATE_NAME,
        clock: Callable[[], str] = _now,
    ) -> None:
        self.api = api
        self.events = events
        self.namespace = namespace
        self.name = name
        self._clock = clock
        self._wanted: tuple[str | None, tuple[str, ...] | None] | None = None  # the latest report's
        self._written: tuple[str | None, tuple[str, ...] | None] | None = None
        self._conditions: list[JSON] = []
        self._warned: tuple[Config, tuple[str, ...]] | None = None
        self._version: str | None = None  # the state's resourceVersion as last written or read; None: read it
        self._unconditional = False  # the state cannot be read (RBAC): written without a precondition

    def reset(self) -> None:
        self._written = None
        self._version = None

    def report(
        self, outcome: ConfigOutcome, objects: Sequence[Mapping[str, Any]], in_force: Config | None
    ) -> bool:
        """Tells the outcome of a reload of `objects` (as given to `ConfigState.apply`); `in_force` is the
        configuration in force after it. The ConfigurationState is written first: whoever sees the Event
        finds the state saying the same. Returns `write_state()`'s verdict: False when the state must be
        written again later (the Events and the log line are not repeated for it)."""
        warnings = None if in_force is None else tuple(in_force.warnings)
        self._wanted = (None if outcome.loaded else (outcome.error or "refused"), warnings)
        settled = self.write_state()
        if not outcome.loaded:
            log.error(
                "configuration refused; the last good one stays in force",
                extra={"error": outcome.error, "in_force": in_force is not None},
            )
            if outcome.culprit is not None:
                self.events.record(
                    dict(outcome.culprit),
                    WARNING,
                    INVALID_CONFIGURATION,
                    f"Configuration refused, the last valid one stays in force: {outcome.error}",
                )
        elif in_force is not None:
            self._tell_warnings(in_force, outcome.warnings, objects)
        return settled

    def _tell_warnings(
        self, config: Config, warnings: tuple[str, ...], objects: Sequence[Mapping[str, Any]]
    ) -> None:
        # Told again when the configuration or what its warnings say changes; not when objects were only
        # numbered differently (a ConfigMap added before them), which a warning's text would otherwise show.
        told = (config, tuple(without_object_index(w) for w in warnings))
        if self._warned == told:
            return
        self._warned = told
        if not warnings:
            return
        log.warning(
            "configuration accepted with warnings (MetalLB accepts it; --strict would refuse it)",
            extra={"warnings": list(warnings)},
        )
        for warning in warnings[:MAX_WARNING_EVENTS]:
            self.events.record(
                dict(warning_subject(warning, objects, self.namespace, self.name)),
                WARNING,
                CONFIGURATION_WARNING,
                f"Configuration accepted with a warning: {warning}",
            )

    def write_state(self) -> bool:
        """Writes the ConfigurationState the latest report wants, unless it is written already. True when it
        is settled: written, or refused for good (403: RBAC; 404: no ConfigurationState CRD, which is
        optional), not tried again until the outcome changes. False after a temporary failure (no answer, 5xx,
        429, a conflict): call it again later, with backoff. NotLeaderError propagates."""
        wanted = self._wanted
        if wanted is None or self._written == wanted:
            return True
        error, warnings = wanted
        status = configuration_state_status(
            error=error, warnings=warnings, now=self._clock(), previous=self._conditions
        )
        try:
            self._write_status(status)
        except NotLeaderError:
            raise
        except ApiError as exc:
            if isinstance(exc, ConflictError):
                self._version = None  # written by someone else since: read it again on the next try
            if exc.temporary:
                log.warning("ConfigurationState not written; retrying", extra={"error": str(exc)})
                return False
            # An optional CRD: without it the state is in the metrics, the logs and the events.
            level = logging.DEBUG if isinstance(exc, NotFoundError) else logging.WARNING
            log.log(
                level,
                "ConfigurationState not written; not retried until the configuration's outcome changes",
                extra={"error": str(exc)},
            )
        self._written = wanted
        self._conditions = status["conditions"]
        return True

    def _write_status(self, status: JSON) -> None:
        """Patches the status on the version last seen; reads it first when there is none (a new term, a
        conflict). When there is no object, creates it (a create is conditional by nature), then patches."""
        if self._version is None and not self._unconditional:
            try:
                self._version = _version(self.api.get(CONFIGURATION_STATES, self.name, self.namespace))
            except NotFoundError:
                self._version = _version(self._create())
            except ForbiddenError as exc:
                log.warning(
                    "cannot read the ConfigurationState, so it is written without a resourceVersion "
                    "precondition; grant the controller `get` on configurationstates (deploy/rbac.yaml)",
                    extra={"error": str(exc)},
                )
                self._unconditional = True
        try:
            written = self._patch(status)
        except NotFoundError:
            created = self._create()  # deleted since (or never there): create it again
            self._version = None if self._unconditional else _version(created)
            written = self._patch(status)
        self._version = None if self._unconditional else _version(written)

    def _patch(self, status: JSON) -> JSON:
        body: JSON = {"status": status}
        if self._version is not None:
            body["metadata"] = {"resourceVersion": self._version}
        return self.api.patch(CONFIGURATION_STATES, self.name, body, self.namespace, subresource="status")

    def _create(self) -> JSON:
        manifest = {
            "apiVersion": CONFIGURATION_STATES.api_version,
            "kind": CONFIGURATION_STATES.kind,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {COMPONENT_LABEL: "controller"},
            },
            "spec": {},
        }
        return self.api.create(CONFIGURATION_STATES, manifest, self.namespace)


def _version(obj: JSON) -> str | None:
    """An object's resourceVersion; None when it shows none."""
    return meta(obj, "resourceVersion") or None
