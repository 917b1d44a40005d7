"""metallb_py.speaker.status: ServiceL2Status and ServiceBGPStatus objects and what to write."""

from __future__ import annotations

from typing import Any

import pytest

from metallb_py.speaker.status import (
    StatusPlan,
    StatusWrite,
    bgp_status,
    decide_status,
    l2_status,
    merged_owners,
    pod_owner,
    service_selector,
    status_node,
    status_service,
)

LABELS = {
    "metallb.io/node": "node1",
    "metallb.io/service-name": "web",
    "metallb.io/service-namespace": "default",
}


def test_l2_status_has_metallbs_generated_name_prefix_and_labels() -> None:
    obj = l2_status("default/web", "node1", ["eth1", "eth0", "eth0"], "metallb-system")
    assert obj["metadata"] == {"generateName": "l2-", "namespace": "metallb-system", "labels": LABELS}
    assert obj["status"] == {
        "node": "node1",
        "serviceName": "web",
        "serviceNamespace": "default",
        "interfaces": [{"name": "eth0"}, {"name": "eth1"}],
    }
    assert (
        service_selector("default/web") == "metallb.io/service-name=web,metallb.io/service-namespace=default"
    )


def test_bgp_status_is_labelled_alike_and_names_its_peers() -> None:
    obj = bgp_status("default/web", "node1", ["tor-b", "tor-a", "tor-a"], "metallb-system")
    assert obj["kind"] == "ServiceBGPStatus"
    assert obj["metadata"] == {"generateName": "bgp-", "namespace": "metallb-system", "labels": LABELS}
    assert obj["status"] == {
        "node": "node1",
        "serviceName": "web",
        "serviceNamespace": "default",
        "peers": ["tor-a", "tor-b"],
    }


def test_an_object_is_read_by_its_labels_first() -> None:
    # MetalLB finds a Service's objects, and a node's, by these labels.
    obj: dict[str, Any] = {"metadata": {"labels": dict(LABELS)}, "status": {}}
    assert (status_node(obj), status_service(obj)) == ("node1", "default/web")
    # An object written before its labels (none here): its status says the same.
    bare = l2_status("ns/svc", "node2", [], "metallb-system")
    bare["metadata"]["labels"] = {}
    assert (status_node(bare), status_service(bare)) == ("node2", "ns/svc")
    assert status_node(None) is None


ME = "a"


def claim(node: str, name: str, interfaces: tuple[str, ...] = ("eth0",)) -> dict[str, Any]:
    obj = l2_status("default/web", node, interfaces, "metallb-system")
    obj["metadata"]["name"] = name
    return obj


WANTED = l2_status("default/web", ME, ["eth0"], "metallb-system")
MINE = claim(ME, "l2-mine")
STALE = claim(ME, "l2-mine", ("eth1",))
UNWRITTEN = {**claim(ME, "l2-mine"), "status": {}}  # created, status not written yet
SECOND = claim(ME, "l2-second")
OTHERS = claim("b", "l2-others")


@pytest.mark.parametrize(
    ("wanted", "objects", "now", "plan"),
    [
        (WANTED, [], 0.0, StatusPlan(StatusWrite.CREATE)),
        (WANTED, [MINE], 0.0, StatusPlan(StatusWrite.KEEP, MINE)),
        (WANTED, [STALE], 0.0, StatusPlan(StatusWrite.UPDATE, STALE)),
        (WANTED, [UNWRITTEN], 0.0, StatusPlan(StatusWrite.UPDATE, UNWRITTEN)),
        # Several of this node's (a create whose echo was missed): the first by name stays.
        (WANTED, [SECOND, MINE], 0.0, StatusPlan(StatusWrite.KEEP, MINE, ("l2-second",))),
        # Another node's claim goes first (MetalLB's announcer deletes it), once the backoff allows.
        (WANTED, [OTHERS], 5.0, StatusPlan(StatusWrite.CREATE, None, ("l2-others",), takes_over=True)),
        (WANTED, [MINE, OTHERS], 5.0, StatusPlan(StatusWrite.KEEP, MINE, ("l2-others",), takes_over=True)),
        (WANTED, [OTHERS], 4.9, StatusPlan(StatusWrite.WAIT)),
        # Not announced: this node's objects go, another node's are not ours to touch.
        (None, [MINE, SECOND, OTHERS], 0.0, StatusPlan(StatusWrite.DELETE, None, ("l2-mine", "l2-second"))),
        (None, [OTHERS], 0.0, StatusPlan(StatusWrite.KEEP)),
        (None, [], 0.0, StatusPlan(StatusWrite.KEEP)),
    ],
)
def test_what_to_write(
    wanted: dict[str, Any] | None, objects: list[dict[str, Any]], now: float, plan: StatusPlan
) -> None:
    assert decide_status(wanted, objects, ME, exclusive=True, now=now, not_before=5.0) == plan


def test_bgp_statuses_of_other_nodes_are_left_alone() -> None:
    current = bgp_status("default/web", ME, ["tor-a"], "metallb-system")
    current["metadata"]["name"] = "bgp-x"
    other = bgp_status("default/web", "b", ["tor-a"], "metallb-system")
    other["metadata"]["name"] = "bgp-y"
    wanted = bgp_status("default/web", ME, ["tor-a", "tor-b"], "metallb-system")

    def decide(wanted: dict[str, Any] | None) -> StatusPlan:
        return decide_status(wanted, [current, other], ME, exclusive=False, now=0, not_before=0)

    assert decide(wanted) == StatusPlan(StatusWrite.UPDATE, current)
    assert decide(None) == StatusPlan(StatusWrite.DELETE, None, ("bgp-x",))


POD = {"metadata": {"name": "speaker-x1", "namespace": "metallb-system", "uid": "uid-1"}}
OWNER = {"apiVersion": "v1", "kind": "Pod", "name": "speaker-x1", "uid": "uid-1"}
EARLIER = {"apiVersion": "v1", "kind": "Pod", "name": "speaker-x0", "uid": "uid-0"}


def owned(*owners: dict[str, Any]) -> dict[str, Any]:
    obj = claim(ME, "l2-mine")
    obj["metadata"]["ownerReferences"] = list(owners)
    return obj


def test_the_pods_owner_reference_is_metallbs_plain_one() -> None:
    assert pod_owner(POD) == OWNER  # no controller, no blockOwnerDeletion (it needs delete on Pods)


@pytest.mark.parametrize(
    ("current", "merged"),
    [
        (MINE, [OWNER]),
        (owned(OWNER), None),
        (owned(EARLIER), [EARLIER, OWNER]),  # a Pod of an earlier DaemonSet: the collector drops it
        (owned({**OWNER, "uid": "uid-old"}), [OWNER]),  # the same name, recreated: replaced
        (owned(EARLIER, OWNER), None),
    ],
)
def test_owners_added_keeping_the_others(
    current: dict[str, Any], merged: list[dict[str, Any]] | None
) -> None:
    assert merged_owners(current, owned(OWNER)) == merged


def test_an_object_without_this_speakers_pod_as_owner_is_updated() -> None:
    wanted = owned(OWNER)
    del wanted["metadata"]["name"]
    plan = decide_status(wanted, [MINE], ME, exclusive=True, now=0, not_before=0)
    assert plan == StatusPlan(StatusWrite.UPDATE, MINE)
    current = owned(EARLIER, OWNER)
    plan = decide_status(wanted, [current], ME, exclusive=True, now=0, not_before=0)
    assert plan == StatusPlan(StatusWrite.KEEP, current)
