"""metallb_py.controller.poolstatus: MetalLB's IPAddressPool status counters; only what changed is written."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from metallb_py import Allocator, Pool
from metallb_py.controller.poolstatus import MAX_INT64, PoolStatus, PoolStatusWriter, pool_status
from metallb_py.k8s.errors import (
    ApiUnavailableError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    NotLeaderError,
)
from metallb_py.k8s.resources import IP_ADDRESS_POOLS, Resource

NS = "metallb-system"


def status_of(pool: Pool, *holders: tuple[str, list[str]]) -> PoolStatus:
    allocator = Allocator([pool])
    for key, ips in holders:
        allocator.assign(key, ips, sharing_key="s")
    return pool_status(allocator, pool.name)


# -- the counts --------------------------------------------------------------------------------------------


def test_counts_per_family_of_a_dual_stack_pool() -> None:
    pool = Pool("dual", ["192.0.2.0/29", "2001:db8::/125"])
    assert status_of(pool) == PoolStatus(0, 0, 8, 8)
    got = status_of(pool, ("ns/a", ["192.0.2.0", "2001:db8::"]), ("ns/b", ["192.0.2.1"]))
    assert got == PoolStatus(assigned_ipv4=2, assigned_ipv6=1, available_ipv4=6, available_ipv6=7)


def test_a_shared_address_is_assigned_once() -> None:
    pool = Pool("p", ["192.0.2.0/30"])
    assert status_of(pool, ("ns/a", ["192.0.2.1"]), ("ns/b", ["192.0.2.1"])) == PoolStatus(1, 0, 3, 0)


def test_buggy_addresses_are_not_available() -> None:
    # MetalLB's TestPoolCount: a /24 and a /25 without the buggy .0 and .255 (one pair per /24, and the /25's
    # .255) leave 381 addresses.
    pool = Pool("p", ["198.51.100.0/24", "203.0.113.128/25"], avoid_buggy_ips=True)
    assert status_of(pool) == PoolStatus(0, 0, 381, 0)


@pytest.mark.parametrize(
    ("addresses", "available_ipv6"),
    [
        # MetalLB's TestPoolCount: a /64 never runs out.
        (["192.0.2.0/24", "2001:db8::/64"], MAX_INT64 - 1),
        (["2001:db8::/66"], MAX_INT64 - 1),  # 2^62 addresses: never runs out
        (["2001:db8::/67"], 2**61 - 1),  # one bit less: counted
        # A range is counted as the prefixes covering it (MetalLB converts it): one of them is a /65.
        (["2001:db8::1-2001:db8::ffff:ffff:ffff:ffff"], MAX_INT64 - 1),
        # 2^62 addresses not aligned on a /66: its largest prefix is a /67.
        (["2001:db8::1-2001:db8::4000:0:0:0"], 2**62 - 1),
    ],
)
def test_a_huge_ipv6_range_never_runs_out(addresses: list[str], available_ipv6: int) -> None:
    pool = Pool("big", addresses)
    first_v6 = next(first for first, _ in pool.ranges() if first.version == 6)
    got = status_of(pool, ("ns/a", [str(first_v6)]))
    assert got.assigned_ipv6 == 1
    assert got.available_ipv6 == available_ipv6


def test_api_field_names_are_metallbs() -> None:
    status = PoolStatus(1, 2, 3, 4)
    api = status.to_api()
    assert api == {"assignedIPv4": 1, "assignedIPv6": 2, "availableIPv4": 3, "availableIPv6": 4}
    assert PoolStatus.from_api({"status": api}) == status
    assert PoolStatus.from_api({"status": {"assignedIPv4": 1}}) is None
    assert PoolStatus.from_api({}) is None


# -- the writer --------------------------------------------------------------------------------------------


def pool_object(
    name: str, version: int = 1, status: PoolStatus | None = None, uid: str = "u1"
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "metallb.io/v1beta1",
        "kind": "IPAddressPool",
        "metadata": {"name": name, "namespace": NS, "resourceVersion": str(version), "uid": uid},
        "spec": {"addresses": ["192.0.2.0/28"]},
    }
    if status is not None:
        obj["status"] = status.to_api()
    return obj


class FakeApi:
    """The API server's objects, with the answers a test scripts (an error per request, in order)."""

    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {o["metadata"]["name"]: o for o in objects}
        self.failures: list[Exception] = []
        self.patches: list[tuple[str, Mapping[str, Any]]] = []
        self.gets = 0
        self.patched = threading.Event()

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.gets += 1
        if name not in self.objects:
            raise NotFoundError(404, "NotFound", name)
        return self.objects[name]

    def patch(
        self,
        resource: Resource,
        name: str,
        body: Mapping[str, Any],
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        assert (resource, namespace, subresource) == (IP_ADDRESS_POOLS, NS, "status")
        self.patches.append((name, body))
        if self.failures:
            raise self.failures.pop(0)
        obj = self.objects.get(name)
        if obj is None:
            raise NotFoundError(404, "NotFound", name)
        if body["metadata"]["resourceVersion"] != obj["metadata"]["resourceVersion"]:
            raise ConflictError(409, "Conflict", "changed")
        version = int(obj["metadata"]["resourceVersion"]) + 1
        obj = {
            **obj,
            "metadata": {**obj["metadata"], "resourceVersion": str(version)},
            "status": body["status"],
        }
        self.objects[name] = obj
        self.patched.set()
        return obj


class FakeStore:
    def __init__(self, *objects: dict[str, Any]) -> None:
        self.objects = {f"{NS}/{o['metadata']['name']}": o for o in objects}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.objects.get(key)

    def observe(self, obj: dict[str, Any]) -> None:
        self.objects[f"{NS}/{obj['metadata']['name']}"] = obj


def writer_for(*objects: dict[str, Any]) -> tuple[PoolStatusWriter, FakeApi, FakeStore]:
    api, store = FakeApi(*objects), FakeStore(*objects)
    return PoolStatusWriter(api, store, NS), api, store


def test_a_burst_of_statuses_is_one_write_per_pool_with_the_latest() -> None:
    writer, api, store = writer_for(pool_object("a"), pool_object("b"))
    for n in range(50):
        writer.publish({"a": PoolStatus(n, 0, 50 - n, 0), "b": PoolStatus(0, 0, 8, 0)})
    assert writer.write_pending() is False
    assert [name for name, _ in api.patches] == ["a", "b"]
    assert PoolStatus.from_api(store.get(f"{NS}/a")) == PoolStatus(49, 0, 1, 0)
    assert PoolStatus.from_api(api.objects["b"]) == PoolStatus(0, 0, 8, 0)
    assert api.patches[0][1]["metadata"] == {"resourceVersion": "1"}  # on the version compared with
    # The same statuses again: nothing to write.
    writer.publish({"a": PoolStatus(49, 0, 1, 0), "b": PoolStatus(0, 0, 8, 0)})
    writer.write_pending()
    assert len(api.patches) == 2 and writer.writes == 2


def test_only_a_status_that_differs_from_the_objects_is_written() -> None:
    shown = PoolStatus(1, 0, 7, 0)
    writer, api, _ = writer_for(pool_object("a", status=shown), pool_object("b"))
    writer.publish({"a": shown, "b": PoolStatus(0, 0, 8, 0)})
    writer.write_pending()
    assert [name for name, _ in api.patches] == ["b"]


def test_pools_without_an_object_or_left_out_get_no_write() -> None:
    writer, api, _ = writer_for(pool_object("a"))
    writer.publish({"a": PoolStatus(1, 0, 7, 0), "legacy": PoolStatus(1, 0, 7, 0)})
    writer.publish({"legacy": PoolStatus(2, 0, 6, 0)})  # "a" removed from the configuration
    writer.write_pending()
    assert api.patches == [] and api.gets == 0


def test_a_conflict_reads_again_and_writes_on_the_new_version() -> None:
    writer, api, _ = writer_for(pool_object("a"))
    api.objects["a"] = pool_object("a", version=7)  # changed since the watched copy
    writer.publish({"a": PoolStatus(1, 0, 7, 0)})
    assert writer.write_pending() is False
    assert [body["metadata"]["resourceVersion"] for _, body in api.patches] == ["1", "7"]
    assert PoolStatus.from_api(api.objects["a"]) == PoolStatus(1, 0, 7, 0)


def test_an_object_deleted_meanwhile_is_not_written_again() -> None:
    writer, api, _ = writer_for(pool_object("a"))
    del api.objects["a"]
    writer.publish({"a": PoolStatus(1, 0, 7, 0)})
    assert writer.write_pending() is False
    assert len(api.patches) == 1


def test_a_missing_status_subresource_is_refused_for_good() -> None:
    writer, api, _ = writer_for(pool_object("a"))
    api.failures = [NotFoundError(404, "NotFound", "no status")]
    writer.publish({"a": PoolStatus(1, 0, 7, 0)})
    assert writer.write_pending() is False
    assert len(api.patches) == 1


def test_a_refused_write_is_not_retried_until_the_counters_change() -> None:
    writer, api, _ = writer_for(pool_object("a"))
    api.failures = [ForbiddenError(403, "Forbidden", "no ipaddresspools/status")]
    writer.publish({"a": PoolStatus(1, 0, 7, 0)})
    assert writer.write_pending() is False  # nothing to try again
    writer.publish({"a": PoolStatus(1, 0, 7, 0)})
    writer.write_pending()
    assert len(api.patches) == 1
    writer.publish({"a": PoolStatus(2, 0, 6, 0)})
    writer.write_pending()
    assert len(api.patches) == 2 and PoolStatus.from_api(api.objects["a"]) == PoolStatus(2, 0, 6, 0)


def test_an_unavailable_api_server_is_tried_again() -> None:
    writer, api, _ = writer_for(pool_object("a"))
    api.failures = [ApiUnavailableError(503, "ServiceUnavailable", "starting")]
    writer.publish({"a": PoolStatus(1, 0, 7, 0)})
    assert writer.write_pending() is True
    assert writer.write_pending() is False
    assert PoolStatus.from_api(api.objects["a"]) == PoolStatus(1, 0, 7, 0)


def test_losing_leadership_forgets_everything() -> None:
    writer, api, _ = writer_for(pool_object("a"), pool_object("b"))
    api.failures = [NotLeaderError("not the leader")]
    writer.publish({"a": PoolStatus(1, 0, 7, 0), "b": PoolStatus(1, 0, 7, 0)})
    assert writer.write_pending() is False
    assert writer.wanted() == {}
    writer.write_pending()
    assert len(api.patches) == 1


def test_an_object_changed_by_someone_else_is_compared_again() -> None:
    wanted = PoolStatus(1, 0, 7, 0)
    writer, api, store = writer_for(pool_object("a"))
    writer.publish({"a": wanted})
    writer.write_pending()
    # Created again (or its status edited): the watch shows it without our status.
    store.objects[f"{NS}/a"] = api.objects["a"] = pool_object("a", version=9, uid="u2")
    writer.pool_changed("a")
    writer.pool_changed("unknown")
    writer.write_pending()
    assert [name for name, _ in api.patches] == ["a", "a"]
    assert PoolStatus.from_api(api.objects["a"]) == wanted


def test_the_thread_writes_what_is_published() -> None:
    writer, api, _ = writer_for(pool_object("a"))
    writer.start()
    try:
        writer.publish({"a": PoolStatus(1, 0, 7, 0)})
        api.patched.wait()  # the per-test timeout guards a hang
    finally:
        writer.stop()
    assert PoolStatus.from_api(api.objects["a"]) == PoolStatus(1, 0, 7, 0)


def test_the_end_of_a_term_mid_pass_keeps_what_the_next_term_published() -> None:
    # A pass of term 1 is writing when that term ends and term 2 (its resync done) publishes its counters;
    # the fenced client then refuses term 1's write. What term 2 published is still written.
    writer, api, _ = writer_for(pool_object("a"), pool_object("b"))
    writer.publish({"a": PoolStatus(1, 0, 7, 0), "b": PoolStatus(1, 0, 7, 0)}, term=1)
    refuse = api.patch

    def patch_as_the_term_ends(*args: Any, **kwargs: Any) -> dict[str, Any]:
        api.patch = refuse  # type: ignore[method-assign]
        writer.publish({"a": PoolStatus(2, 0, 6, 0), "b": PoolStatus(2, 0, 6, 0)}, term=2)
        raise NotLeaderError("not leading in the term this write was decided in")

    api.patch = patch_as_the_term_ends  # type: ignore[method-assign]
    writer.write_pending()
    assert writer.wanted() == {"a": PoolStatus(2, 0, 6, 0), "b": PoolStatus(2, 0, 6, 0)}
    assert writer.write_pending() is False
    assert PoolStatus.from_api(api.objects["a"]) == PoolStatus(2, 0, 6, 0)
    assert PoolStatus.from_api(api.objects["b"]) == PoolStatus(2, 0, 6, 0)
