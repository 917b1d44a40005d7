"""KubeClient against a real API server (TLS, bearer token, the kubeconfig of LocalControlPlane): every verb,
paging, watches, subresources and the errors the server answers with.

`make test-floor` runs this file with the lowest versions pyproject.toml allows, so a client call that only
newer `kubernetes` releases have fails here.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from metallb_py.k8s import (
    ConflictError,
    InvalidError,
    KubeClient,
    NotFoundError,
    NotLeaderError,
    connect,
)
from metallb_py.k8s.resources import CONFIGMAPS, NAMESPACES, SERVICES
from metallb_py.testing import LocalControlPlane

_names = itertools.count()


@pytest.fixture
def client(control_plane: LocalControlPlane) -> Iterator[KubeClient]:
    kube = connect(control_plane.kubeconfig, user_agent="metallb-py-tests")
    try:
        yield kube
    finally:
        kube.close()


@pytest.fixture
def namespace(client: KubeClient) -> Iterator[str]:
    name = f"k8s-client-{next(_names)}"
    client.create(NAMESPACES, {"metadata": {"name": name}})
    try:
        yield name
    finally:
        client.delete(NAMESPACES, name)


def configmap(name: str, **data: str) -> dict[str, object]:
    return {"metadata": {"name": name}, "data": data}


def test_create_get_patch_replace_delete(client: KubeClient, namespace: str) -> None:
    created = client.create(CONFIGMAPS, configmap("a", k="1"), namespace)
    assert (created["metadata"]["namespace"], created["data"]) == (namespace, {"k": "1"})

    patched = client.patch(CONFIGMAPS, "a", {"data": {"j": "2"}}, namespace)
    assert patched["data"] == {"k": "1", "j": "2"}

    replacement = client.get(CONFIGMAPS, "a", namespace)
    replacement["data"] = {"only": "3"}
    replaced = client.replace(CONFIGMAPS, "a", replacement, namespace)
    assert replaced["data"] == {"only": "3"}
    assert client.get(CONFIGMAPS, "a", namespace)["data"] == {"only": "3"}

    client.delete(CONFIGMAPS, "a", namespace)
    with pytest.raises(NotFoundError) as raised:
        client.get(CONFIGMAPS, "a", namespace)
    assert raised.value.reason == "NotFound"


def test_writes_conditional_on_a_stale_version_conflict(client: KubeClient, namespace: str) -> None:
    stale = client.create(CONFIGMAPS, configmap("a", k="1"), namespace)
    client.patch(CONFIGMAPS, "a", {"data": {"k": "2"}}, namespace)
    version = stale["metadata"]["resourceVersion"]

    with pytest.raises(ConflictError):
        client.replace(CONFIGMAPS, "a", stale, namespace)
    with pytest.raises(ConflictError):
        client.patch(
            CONFIGMAPS, "a", {"metadata": {"resourceVersion": version}, "data": {"k": "3"}}, namespace
        )
    assert client.get(CONFIGMAPS, "a", namespace)["data"] == {"k": "2"}


def test_creating_what_exists_conflicts_and_an_invalid_object_is_invalid(
    client: KubeClient, namespace: str
) -> None:
    client.create(CONFIGMAPS, configmap("a"), namespace)
    with pytest.raises(ConflictError) as conflict:
        client.create(CONFIGMAPS, configmap("a"), namespace)
    assert conflict.value.reason == "AlreadyExists"
    with pytest.raises(InvalidError) as invalid:
        client.create(CONFIGMAPS, configmap("Not_A_DNS_Name"), namespace)
    assert invalid.value.status == 422


def test_a_paged_list_returns_every_item_once(client: KubeClient, namespace: str) -> None:
    names = {f"cm-{i}" for i in range(5)}
    for name in names:
        client.create(CONFIGMAPS, configmap(name), namespace)
    before = client.requests.by_verb().get("list", 0)

    result = client.list(CONFIGMAPS, namespace, page_size=2)

    assert sorted(item["metadata"]["name"] for item in result.items) == sorted(names)
    assert client.requests.by_verb()["list"] - before == 3  # pages of 2, 2 and 1
    assert result.resource_version


def test_a_list_filters_by_label(client: KubeClient, namespace: str) -> None:
    client.create(CONFIGMAPS, {"metadata": {"name": "a", "labels": {"app": "x"}}}, namespace)
    client.create(CONFIGMAPS, {"metadata": {"name": "b", "labels": {"app": "y"}}}, namespace)
    items = client.list(CONFIGMAPS, namespace, label_selector="app in (x,z)").items
    assert [item["metadata"]["name"] for item in items] == ["a"]


def test_a_watch_sees_the_changes_after_its_version(client: KubeClient, namespace: str) -> None:
    client.create(CONFIGMAPS, configmap("before"), namespace)
    start = client.list(CONFIGMAPS, namespace).resource_version
    client.create(CONFIGMAPS, configmap("a", k="1"), namespace)
    client.patch(CONFIGMAPS, "a", {"data": {"k": "2"}}, namespace)
    client.delete(CONFIGMAPS, "a", namespace)

    seen: list[tuple[str, str, dict[str, str] | None]] = []
    stream = client.watch(CONFIGMAPS, namespace, resource_version=start, timeout_seconds=30)
    for kind, obj in stream:
        if kind == "BOOKMARK":
            continue
        seen.append((kind, obj["metadata"]["name"], obj.get("data")))
        if kind == "DELETED":
            stream.close()
    assert seen == [("ADDED", "a", {"k": "1"}), ("MODIFIED", "a", {"k": "2"}), ("DELETED", "a", {"k": "2"})]


def test_a_status_patch_goes_to_the_subresource(client: KubeClient, namespace: str) -> None:
    service = {
        "metadata": {"name": "lb"},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]},
    }
    client.create(SERVICES, service, namespace)
    ingress = [{"ip": "192.0.2.10"}]
    # A patch of the main resource ignores status; one of the status subresource writes it.
    client.patch(SERVICES, "lb", {"status": {"loadBalancer": {"ingress": ingress}}}, namespace)
    assert client.get(SERVICES, "lb", namespace)["status"]["loadBalancer"] == {}
    client.patch(
        SERVICES, "lb", {"status": {"loadBalancer": {"ingress": ingress}}}, namespace, subresource="status"
    )
    written = client.get(SERVICES, "lb", namespace)["status"]["loadBalancer"]["ingress"]
    assert [entry["ip"] for entry in written] == ["192.0.2.10"]


def test_a_guarded_view_sends_no_write_while_the_guard_says_no(client: KubeClient, namespace: str) -> None:
    leader = False
    view = client.guarded(lambda: leader)
    with pytest.raises(NotLeaderError):
        view.create(CONFIGMAPS, configmap("a"), namespace)
    with pytest.raises(NotFoundError):
        view.get(CONFIGMAPS, "a", namespace)  # reads are not gated; nothing was created
    leader = True
    view.create(CONFIGMAPS, configmap("a"), namespace)
    assert client.get(CONFIGMAPS, "a", namespace)["metadata"]["name"] == "a"
    assert client.requests is view.requests
