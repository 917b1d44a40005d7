"""metallb_py.speaker.status: ServiceL2Status objects and what to write."""

from __future__ import annotations

import pytest

from metallb_py.speaker.status import (
    StatusWrite,
    bgp_status,
    bgp_status_name,
    decide_status,
    l2_status,
    l2_status_name,
)


def test_l2_status_one_object_per_service() -> None:
    obj = l2_status("default/web", "node1", ["eth1", "eth0", "eth0"], "metallb-system")
    assert obj["metadata"]["name"] == l2_status_name("default/web") != l2_status_name("default/web2")
    assert obj["metadata"]["labels"] == {
        "metallb.io/node": "node1",
        "metallb.io/service-name": "web",
        "metallb.io/service-namespace": "default",
    }
    assert obj["status"]["interfaces"] == [{"name": "eth0"}, {"name": "eth1"}]


ME = "a"
WANTED = l2_status("default/web", ME, ["eth0"], "metallb-system")


def claim(node: str, interfaces: list[str] | None = None) -> dict[str, object]:
    return l2_status("default/web", node, interfaces or ["eth0"], "metallb-system")


@pytest.mark.parametrize(
    ("wanted", "current", "now", "not_before", "write"),
    [
        (WANTED, None, 0.0, 0.0, StatusWrite.CREATE),
        (WANTED, claim(ME), 0.0, 0.0, StatusWrite.KEEP),
        (WANTED, claim(ME, ["eth1"]), 0.0, 0.0, StatusWrite.UPDATE),
        (WANTED, {**claim(ME), "status": {}}, 0.0, 0.0, StatusWrite.UPDATE),  # created, status not written
        (WANTED, claim("b"), 5.0, 5.0, StatusWrite.TAKE_OVER),
        (WANTED, claim("b"), 4.9, 5.0, StatusWrite.WAIT),
        (None, claim(ME), 0.0, 0.0, StatusWrite.DELETE),
        (None, claim("b"), 0.0, 0.0, StatusWrite.KEEP),  # not ours to touch
        (None, None, 0.0, 0.0, StatusWrite.KEEP),
    ],
)
def test_what_to_write(
    wanted: dict[str, object] | None,
    current: dict[str, object] | None,
    now: float,
    not_before: float,
    write: StatusWrite,
) -> None:
    assert decide_status(wanted, current, ME, now=now, not_before=not_before) is write


def test_bgp_status_is_one_object_per_service_and_node_naming_its_peers() -> None:
    obj = bgp_status("default/web", "node1", ["tor-b", "tor-a", "tor-a"], "metallb-system")
    assert obj["kind"] == "ServiceBGPStatus"
    assert obj["metadata"]["name"] == bgp_status_name("default/web", "node1")
    assert len({bgp_status_name("default/web", n) for n in ("node1", "node2")}) == 2
    assert bgp_status_name("default/web", "node1") != bgp_status_name("default/web2", "node1")
    assert obj["status"] == {
        "node": "node1",
        "serviceName": "web",
        "serviceNamespace": "default",
        "peers": ["tor-a", "tor-b"],
    }
    assert obj["metadata"]["labels"]["metallb.io/node"] == "node1"


def test_a_bgp_status_of_this_node_is_updated_when_its_peers_change_and_deleted_when_not_advertised() -> None:
    current = bgp_status("default/web", ME, ["tor-a"], "metallb-system")
    wanted = bgp_status("default/web", ME, ["tor-a", "tor-b"], "metallb-system")
    assert decide_status(wanted, current, ME, now=0, not_before=0) is StatusWrite.UPDATE
    assert decide_status(current, current, ME, now=0, not_before=0) is StatusWrite.KEEP
    assert decide_status(None, current, ME, now=0, not_before=0) is StatusWrite.DELETE
