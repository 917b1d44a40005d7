"""NetnsLab's checks and naming, which need no root: nothing here creates a namespace."""

from __future__ import annotations

import pytest

from metallb_py.errors import MetalLBError
from metallb_py.testing import FetchError, NetnsLab, NetnsLabError
from metallb_py.testing import netlab as netlab_module


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nodes": ["Node1"]}, "not a usable node name"),
        ({"nodes": ["client"]}, "not a usable node name"),
        ({"nodes": ["node1"], "extra_nodes": ["node1"]}, "repeat"),
        ({"nodes": []}, "1 to 199 nodes"),
        ({"nodes": [f"n{i}" for i in range(200)]}, "1 to 199 nodes"),
        ({"prefix": "bad-prefix"}, "prefix"),
    ],
)
def test_refuses_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(NetnsLabError, match=message):
        NetnsLab(**kwargs)  # type: ignore[arg-type]


def test_names_and_addresses() -> None:
    lab = NetnsLab(nodes=["node1", "node2"], extra_nodes=["control-plane"], prefix="mlbt")
    assert lab.name.startswith("mlbt") and len(lab.name) == len("mlbt") + 6
    assert lab.node_ns("control-plane") == f"{lab.name}-control-plane"
    assert lab.client_ns == f"{lab.name}-client" and lab.bridge_ns == f"{lab.name}-switch"
    assert lab.all_nodes == ("node1", "node2", "control-plane")
    assert [lab.node_address(n) for n in lab.all_nodes] == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
    assert lab.node_address("node2", family=6) == "2001:db8:100::2"
    assert lab.client_address(4) == "198.51.100.200" and lab.client_address(6) == "2001:db8:100::200"
    assert lab.node_interface("node1") == "eth0"
    assert lab.vip_routes == ("192.168.1.0/24", "2001:db8:1::/64")
    with pytest.raises(NetnsLabError, match="no node 'node9'"):
        lab.node_ns("node9")
    assert NetnsLab().name != NetnsLab().name


def test_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netlab_module.os, "geteuid", lambda: 1000)
    with pytest.raises(NetnsLabError, match="needs root"), NetnsLab():
        pass
    with pytest.raises(NetnsLabError, match="needs root"):
        netlab_module.cleanup_stale()


def test_using_a_lab_that_is_not_started_says_so() -> None:
    lab = NetnsLab()
    for call in (
        lambda: lab.fetch("192.168.1.11"),
        lambda: lab.serve("192.168.1.11"),
        lambda: lab.kill_link("node1"),
    ):
        with pytest.raises(NetnsLabError, match="not running"):
            call()
    lab.close()  # closing a lab that never started is fine


def test_errors_are_metallb_errors() -> None:
    assert issubclass(FetchError, NetnsLabError) and issubclass(NetnsLabError, MetalLBError)
    assert FetchError("GET http://192.168.1.11:80/: timeout", "timeout").reason == "timeout"
