"""metallb_py.controller.configreport: a reload's verdict as Events and a ConfigurationState, warnings too."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from metallb_py import Allocator
from metallb_py.controller.config import ConfigState
from metallb_py.controller.configreport import (
    CONFIGURATION_WARNING,
    CONFIGURATION_WARNINGS,
    INVALID_CONFIGURATION,
    MAX_WARNING_EVENTS,
    POOL_RECONCILER_VALID,
    ConfigReporter,
    configuration_state_status,
    warning_subject,
)
from metallb_py.k8s.errors import (
    ApiError,
    ApiUnavailableError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
)
from metallb_py.k8s.resources import CONFIGURATION_STATES, Resource

NS = "metallb-system"
HOST_BITS = "192.0.2.5/28"  # accepted as 192.0.2.0/28, with a warning (as MetalLB masks it)


def pool(name: str, *addresses: str) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}"},
        "spec": {"addresses": list(addresses)},
    }


def l2(name: str, *pools: str) -> dict[str, Any]:
    return {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "L2Advertisement",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"ipAddressPools": list(pools)},
    }


def conditions(status: Mapping[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {c["type"]: (c["status"], c["reason"], c["message"]) for c in status["conditions"]}


# -- the ConfigurationState's status -------------------------------------------------------------------------


def test_valid_without_warnings_is_metallbs_status() -> None:
    status = configuration_state_status(error=None, warnings=(), now="2026-01-01T00:00:00Z")
    assert status["result"] == "Valid" and status["errorSummary"] == ""
    assert conditions(status) == {
        POOL_RECONCILER_VALID: ("True", "Reconciled", ""),
        CONFIGURATION_WARNINGS: ("False", "NoWarnings", ""),
    }
    assert {c["lastTransitionTime"] for c in status["conditions"]} == {"2026-01-01T00:00:00Z"}


def test_warnings_leave_it_valid_and_are_listed_in_a_condition() -> None:
    status = configuration_state_status(error=None, warnings=("w1", "w2"), now="t")
    assert status["result"] == "Valid" and status["errorSummary"] == ""
    assert conditions(status)[CONFIGURATION_WARNINGS] == ("True", "AcceptedWithWarnings", "w1\nw2")


def test_invalid_says_why() -> None:
    status = configuration_state_status(error="bad pool", warnings=("w",), now="t")
    assert status["result"] == "Invalid" and status["errorSummary"] == "bad pool"
    assert conditions(status)[POOL_RECONCILER_VALID] == ("False", "ConfigurationError", "bad pool")
    before_any = configuration_state_status(error="bad pool", warnings=None, now="t")
    assert conditions(before_any)[CONFIGURATION_WARNINGS] == ("Unknown", "NoConfigurationInForce", "")


def test_a_transition_time_moves_only_when_the_status_does() -> None:
    first = configuration_state_status(error=None, warnings=("w",), now="t1")
    second = configuration_state_status(
        error="bad", warnings=("w", "v"), now="t2", previous=first["conditions"]
    )
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times == {POOL_RECONCILER_VALID: "t2", CONFIGURATION_WARNINGS: "t1"}


def test_a_huge_message_fits_the_crd() -> None:
    status = configuration_state_status(error=None, warnings=("x" * 40000,), now="t")
    assert len(conditions(status)[CONFIGURATION_WARNINGS][2]) == 32768


# -- the reporter ------------------------------------------------------------------------------------------


class FakeApi:
    """The ConfigurationState as the API server keeps it, resourceVersion preconditions included; `failures`
    are raised by the next requests."""

    def __init__(self, order: list[str], *, exists: bool = True) -> None:
        self.order = order
        self.exists = exists
        self.version = 1
        self.created: list[Mapping[str, Any]] = []
        self.statuses: list[Mapping[str, Any]] = []
        self.failures: list[ApiError] = []
        self.requests = 0

    def _request(self) -> None:
        self.requests += 1
        if self.failures:
            raise self.failures.pop(0)

    def _stored(self) -> dict[str, Any]:
        return {"metadata": {"name": "controller", "resourceVersion": str(self.version)}}

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        assert (resource, name, namespace) == (CONFIGURATION_STATES, "controller", NS)
        self._request()
        if not self.exists:
            raise NotFoundError(404, "NotFound", "configurationstates controller")
        return self._stored()

    def create(
        self, resource: Resource, body: Mapping[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        assert resource == CONFIGURATION_STATES
        self._request()
        if self.exists:
            raise ConflictError(409, "AlreadyExists", "configurationstates controller already exists")
        self.created.append(body)
        self.exists = True
        self.version += 1
        return self._stored()

    def patch(
        self,
        resource: Resource,
        name: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        assert (resource, name, namespace, subresource) == (CONFIGURATION_STATES, "controller", NS, "status")
        self._request()
        if not self.exists:
            raise NotFoundError(404, "NotFound", "configurationstates controller")
        version = (body.get("metadata") or {}).get("resourceVersion")
        if version is not None and version != str(self.version):
            raise ConflictError(409, "Conflict", "the object has been modified")
        self.statuses.append(body["status"])
        self.order.append("state")
        self.version += 1
        return self._stored()


class FakeEvents:
    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.recorded: list[tuple[str, str, str, str]] = []  # kind/name, type, reason, message

    def record(self, obj: dict[str, Any], type: str, reason: str, message: str) -> None:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        self.recorded.append((name, type, reason, message))
        self.order.append("event")


class Harness:
    def __init__(self, *, strict: bool = False, exists: bool = True) -> None:
        self.order: list[str] = []  # "state" written, "event" recorded
        self.api, self.events = FakeApi(self.order, exists=exists), FakeEvents(self.order)
        self.reporter = ConfigReporter(self.api, self.events, NS, clock=lambda: "now")
        self.state, self.allocator = ConfigState(NS, strict=strict), Allocator()

    def reload(self, *objects: dict[str, Any]) -> bool:
        """True: the ConfigurationState is settled (see ConfigReporter.write_state)."""
        outcome = self.state.apply(list(objects), self.allocator)
        return self.reporter.report(outcome, list(objects), self.state.config)

    def reasons(self) -> list[tuple[str, str]]:
        return [(subject, reason) for subject, _, reason, _ in self.events.recorded]


def test_each_warning_is_an_event_on_the_object_it_names() -> None:
    h = Harness()
    h.reload(pool("a", HOST_BITS), l2("adv", "a", "later"))
    assert h.reasons() == [
        ("IPAddressPool/a", CONFIGURATION_WARNING),
        ("L2Advertisement/adv", CONFIGURATION_WARNING),
    ]
    assert all(kind == "Warning" for _, kind, _, _ in h.events.recorded)
    assert HOST_BITS in h.events.recorded[0][3] and "later" in h.events.recorded[1][3]
    status = h.api.statuses[-1]
    assert status["result"] == "Valid" and status["errorSummary"] == ""
    state, reason, message = conditions(status)[CONFIGURATION_WARNINGS]
    assert (state, reason) == ("True", "AcceptedWithWarnings")
    assert h.state.config is not None
    assert message.splitlines() == list(h.state.config.warnings) and len(h.state.config.warnings) == 2


def test_warnings_are_told_once_per_configuration_not_per_reload() -> None:
    h = Harness()
    objects = (pool("a", HOST_BITS), pool("b", "198.51.100.0/28"))
    h.reload(*objects)
    h.reload(*objects)
    assert len(h.events.recorded) == 1 and len(h.api.statuses) == 1
    # Another configuration with the same warning: told again, once.
    changed = (pool("a", HOST_BITS), pool("b", "198.51.100.0/29"))
    h.reload(*changed)
    h.reload(*changed)
    assert len(h.events.recorded) == 2 and len(h.api.statuses) == 1  # the status did not change
    # The same pools written without the warning: the condition clears, no Event.
    h.reload(pool("a", "192.0.2.0/28"), changed[1])
    assert len(h.events.recorded) == 2
    assert conditions(h.api.statuses[-1])[CONFIGURATION_WARNINGS] == ("False", "NoWarnings", "")


def test_a_warning_naming_no_object_goes_to_the_configmap_else_the_configuration_state() -> None:
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config", "namespace": NS}}
    named = 'IPAddressPool "a" (cluster, object 2): spec.addresses[0]: ...'
    assert warning_subject(named, [configmap, pool("a")], NS) == pool("a")
    assert warning_subject("a warning about nothing", [configmap, pool("a")], NS) is configmap
    subject = warning_subject("a warning about nothing", [pool("a")], NS)
    assert subject == {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": "controller", "namespace": NS},
    }


def test_a_legacy_configmaps_warning_is_an_event_on_the_configmap() -> None:
    h = Harness()
    text = "address-pools:\n- name: x\n  protocol: layer2\n  addresses: [192.0.2.5/28]\n"
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "config", "namespace": NS}}
    h.reload({**configmap, "data": {"config": text}})
    assert h.reasons() == [("ConfigMap/config", CONFIGURATION_WARNING)]


def test_too_many_warnings_are_capped_in_events_not_in_the_state() -> None:
    h = Harness()
    pools = [pool(f"p{i}", f"10.{i}.0.5/28") for i in range(MAX_WARNING_EVENTS + 5)]
    h.reload(*pools)
    assert len(h.events.recorded) == MAX_WARNING_EVENTS
    assert len(conditions(h.api.statuses[-1])[CONFIGURATION_WARNINGS][2].splitlines()) == len(pools)


def test_strict_refuses_a_warning_and_keeps_the_last_good_configuration() -> None:
    h = Harness(strict=True)
    h.reload(pool("a", "192.0.2.0/28"))
    h.reload(pool("a", HOST_BITS))
    assert h.reasons() == [("IPAddressPool/a", INVALID_CONFIGURATION)]
    assert (
        "strict" in h.events.recorded[0][3] and "the last valid one stays in force" in h.events.recorded[0][3]
    )
    status = h.api.statuses[-1]
    assert status["result"] == "Invalid" and HOST_BITS in status["errorSummary"]
    # The configuration in force is the last good one, which had no warning.
    assert conditions(status)[CONFIGURATION_WARNINGS] == ("False", "NoWarnings", "")
    assert h.state.config is not None and [p.addresses for p in h.state.config.pools] == [["192.0.2.0/28"]]


def test_a_refused_configuration_leaves_the_warnings_of_the_one_in_force() -> None:
    h = Harness()
    h.reload(pool("a", HOST_BITS))
    h.reload(pool("a", HOST_BITS), pool("b", "192.0.2.0/29"))  # overlaps: refused
    status = h.api.statuses[-1]
    assert status["result"] == "Invalid"
    assert conditions(status)[POOL_RECONCILER_VALID][:2] == ("False", "ConfigurationError")
    assert conditions(status)[CONFIGURATION_WARNINGS][:2] == ("True", "AcceptedWithWarnings")
    assert h.reasons() == [
        ("IPAddressPool/a", CONFIGURATION_WARNING),
        ("IPAddressPool/a", INVALID_CONFIGURATION),
    ]


def test_the_configuration_state_is_created_with_metallbs_label() -> None:
    h = Harness(exists=False)
    h.reload(pool("a", "192.0.2.0/28"))
    assert [c["metadata"]["labels"] for c in h.api.created] == [{"metallb.io/component-type": "controller"}]
    assert h.api.statuses[-1]["result"] == "Valid"
    # A new term as leader writes it again, even unchanged.
    h.reporter.reset()
    h.reload(pool("a", "192.0.2.0/28"))
    assert len(h.api.statuses) == 2 and len(h.api.created) == 1


def test_the_state_is_written_before_the_events_are_sent() -> None:
    """Whoever sees the Event finds the ConfigurationState saying the same (the Events go out from another
    thread at once)."""
    h = Harness()
    h.reload(pool("a", "192.0.2.0/28"))
    h.reload(pool("a", "192.0.2.0/28"), pool("b", "192.0.2.0/29"))  # refused
    h.reload(pool("a", HOST_BITS))  # warned
    assert h.order == ["state", "state", "event", "state", "event"]


# -- a ConfigurationState write that fails -----------------------------------------------------------------

OVERLAP = (pool("a", "192.0.2.0/28"), pool("b", "192.0.2.0/29"))  # refused


@pytest.mark.parametrize(
    "failure",
    [
        ApiUnavailableError(503, "ServiceUnavailable", "the API server is shutting down"),
        ApiUnavailableError(429, "TooManyRequests", "try again later"),
        ApiUnavailableError(0, "", "timed out"),
        ConflictError(409, "AlreadyExists", "configurationstates controller already exists"),
    ],
    ids=["503", "429", "timeout", "409"],
)
def test_a_state_write_that_fails_for_now_is_written_when_tried_again(failure: ApiError) -> None:
    """The configuration fixed while the API server did not answer: the state must not stay Invalid."""
    h = Harness()
    assert h.reload(*OVERLAP)
    assert h.api.statuses[-1]["result"] == "Invalid"
    h.api.failures = [failure]
    assert not h.reload(pool("a", "192.0.2.0/28"))  # fixed; the write fails
    assert h.api.statuses[-1]["result"] == "Invalid"
    assert h.reporter.write_state()
    assert h.api.statuses[-1]["result"] == "Valid"
    # Settled: neither another try nor the same outcome again writes it twice.
    writes = len(h.api.statuses)
    assert h.reporter.write_state() and h.reload(pool("a", "192.0.2.0/28"))
    assert len(h.api.statuses) == writes


def test_a_reload_after_a_failed_write_writes_the_state() -> None:
    h = Harness()
    h.reload(*OVERLAP)
    h.api.failures = [ApiUnavailableError(503, "ServiceUnavailable", "etcd leader changed")]
    h.reload(pool("a", "192.0.2.0/28"))
    assert h.reload(pool("a", "192.0.2.0/28"))  # the same outcome: it was never written
    assert h.api.statuses[-1]["result"] == "Valid"


def test_a_failed_write_still_sends_the_events_once() -> None:
    h = Harness()
    h.api.failures = [ApiUnavailableError(503, "ServiceUnavailable", "overloaded")]
    assert not h.reload(pool("a", HOST_BITS))
    assert h.reasons() == [("IPAddressPool/a", CONFIGURATION_WARNING)]
    assert h.reporter.write_state()
    assert len(h.events.recorded) == 1 and h.api.statuses[-1]["result"] == "Valid"


@pytest.mark.parametrize(
    "failure",
    [
        ForbiddenError(403, "Forbidden", "cannot patch configurationstates/status"),
        NotFoundError(404, "NotFound", "the server could not find the requested resource"),  # no CRD
    ],
    ids=["403", "404"],
)
def test_a_state_write_refused_for_good_is_not_tried_again_until_the_outcome_changes(
    failure: ApiError,
) -> None:
    h = Harness(exists=False)  # a 404 on the status patch is followed by a create
    h.api.failures = [failure, failure]
    assert h.reload(pool("a", "192.0.2.0/28"))
    tried = h.api.requests
    assert h.reload(pool("a", "192.0.2.0/28")) and h.reporter.write_state()
    assert h.api.requests == tried and h.api.statuses == []
    h.api.failures = []
    assert h.reload(*OVERLAP)  # another outcome: tried again
    assert h.api.statuses[-1]["result"] == "Invalid"


# -- objects numbered differently --------------------------------------------------------------------------

# A ConfigMap `config` left empty (after a move to the CRDs): no pool, but listed before every other object.
EMPTY_CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "config", "namespace": NS},
    "data": {"config": ""},
}


def test_warnings_are_not_told_again_when_only_the_objects_numbers_change() -> None:
    h = Harness()
    objects = (pool("a", HOST_BITS), l2("adv", "a", "later"))
    h.reload(*objects)
    told = h.reasons()
    assert told == [
        ("IPAddressPool/a", CONFIGURATION_WARNING),
        ("L2Advertisement/adv", CONFIGURATION_WARNING),
    ]
    h.reload(EMPTY_CONFIGMAP, *objects)  # the same configuration; each warning names another object number
    h.reload(*objects)
    assert h.reasons() == told
    # What a warning says changes: told again, on the objects they name (looked up by their numbers).
    h.reload(EMPTY_CONFIGMAP, pool("a", "192.0.2.6/28"), l2("adv", "a", "later"))
    assert h.reasons()[len(told) :] == told


def test_the_object_at_fault_is_found_whatever_its_number() -> None:
    h = Harness()
    bad = pool("b", "not an address")
    h.reload(EMPTY_CONFIGMAP, pool("a", "192.0.2.0/28"), bad)  # b is object 3
    h.reload(pool("a", "192.0.2.0/28"), bad)  # b is object 2
    assert h.reasons() == [("IPAddressPool/b", INVALID_CONFIGURATION)] * 2


def test_a_late_write_of_a_previous_leader_does_not_replace_the_current_leaders_state() -> None:
    """Regression: the ConfigurationState was patched without a resourceVersion precondition, so a write of a
    leader whose term had ended (sent late, or its worker paused) replaced what the new leader wrote."""
    old = Harness()
    assert old.reload(pool("a", "192.0.2.0/28"))  # the old leader's term: Valid
    new = ConfigReporter(old.api, FakeEvents([]), NS, clock=lambda: "now")  # the new leader, same object
    state = ConfigState(NS)
    outcome = state.apply(list(OVERLAP), Allocator())
    assert new.report(outcome, list(OVERLAP), state.config)
    assert old.api.statuses[-1]["result"] == "Invalid"
    assert not old.reload(pool("a", HOST_BITS))  # the old leader, late: refused (409), not written
    assert old.api.statuses[-1]["result"] == "Invalid"
