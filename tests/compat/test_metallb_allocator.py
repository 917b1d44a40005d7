# ruff: noqa: E501
# (The step tables keep one row per MetalLB step, with its desc verbatim: rows are long on purpose.)
"""MetalLB's allocator tests (internal/allocator/allocator_test.go), replayed step by step against ours.

One row per step of MetalLB's tables, its `desc` verbatim (steps without one are numbered `#n`, as MetalLB's
own failure messages number them). Each row holds MetalLB's outcome: the addresses its allocator returns, or
that it fails (MetalLB's tests only say `wantErr`; the row also names the error class we raise, so a step
cannot pass by failing for another reason). After a failed step the service holds what it held before, as
MetalLB checks. A deliberate difference is a row with `why` and our own outcome: it is checked to give ours,
so a difference cannot appear or disappear unnoticed (`DIFFERENCES` lists them for the README).

How MetalLB's calls are translated:
- `Assign(svcKey, svc, ips, ports, sharingKey, backendKey)` -> `Allocator.assign(key, ips, ports=...,
  sharing_key=..., backend_key=..., labels=..., namespace_labels=...)`; the labels make assign check the
  pool's serviceAllocation as MetalLB's Assign does. `Unassign` -> `release`.
- `Allocate` / `AllocateFromPool(svcKey, svc, family, pool, ports, sharingKey, "")` -> a Service manifest
  (ipFamilies = MetalLB's family argument, ipFamilyPolicy of MetalLB's svc, spec.ports = the ports argument,
  the allow-shared-ip and address-pool annotations) read by `metallb_py.ipam.service_request`, then
  `Allocator.allocate(key, **request.allocate_kwargs())`.
- Keys are `namespace/name`: MetalLB's svcKey "s1" for its namespace-less `svc` is "default/s1". MetalLB's
  TestAssignment reuses svcKey "s1" for Services of several namespaces; ours identifies a Service by
  namespace and name, so those rows use `<namespace>/s1`, and when one succeeds the previous key is
  released, so that the allocator holds exactly what MetalLB's holds after every step.
- Pool choice among equally eligible auto-assign pools is Go's map order in MetalLB (random); ours is by
  name. Where MetalLB's answer depends on that order (TestAllocation, TestBuggyIPs) the row holds our
  answer, and it is also checked against MetalLB's own assertion (the set of valid addresses).

Not expressible as written (translated as said, and counted):
- TestPoolAllocation's pools test-v4, test-v6 and test-dualstack overlap pool test (the same CIDRs).
  Overlapping pools are refused by our allocator, as by MetalLB's configuration loader (MetalLB's allocator,
  handed them directly, files each address under a random one of them). Rows naming them are replayed
  against test, which holds the same addresses (`POOL_ALIASES`).
- TestAutoAssign's dual-stack rows pass a SingleStack Service with two families, which Kubernetes refuses
  (and `service_request` too). They are replayed with RequireDualStack, the policy under which a Service
  has two families and no fallback.
- TestPoolMetrics counts calls of a change callback; ours has none by design (decisions are pure: the
  controller reads `counters`/`pool_status` after each change). The gauges and counters it checks are.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from metallb_py import (
    AllocationError,
    Allocator,
    FamilyError,
    IPInUseError,
    IPNotAllowedError,
    LabelSelector,
    NoPoolError,
    Pool,
    PoolExhaustedError,
    Port,
    ServiceAllocation,
    UnknownPoolError,
)
from metallb_py.ipam import (
    ANNOTATION_ADDRESS_POOL,
    ANNOTATION_ALLOW_SHARED_IP,
    ANNOTATION_LOAD_BALANCER_IPS,
    ServiceError,
    service_request,
)

Outcome = tuple[str, ...] | type[AllocationError]
INT64_MAX = 2**63 - 1

IPV4: tuple[str, ...] = ("IPv4",)
IPV6: tuple[str, ...] = ("IPv6",)
DUAL: tuple[str, ...] = ("IPv4", "IPv6")
# MetalLB's three test Services, by their ipFamilyPolicy.
SVC = "SingleStack"
SVC_REQUIRE_DUAL = "RequireDualStack"
SVC_PREFER_DUAL = "PreferDualStack"


def ports(*specs: str) -> tuple[Port, ...]:
    """MetalLB's `ports("tcp/80")`."""
    out = []
    for spec in specs:
        proto, number = spec.split("/")
        out.append(Port(int(number), proto.upper()))
    return tuple(out)


def selector(labels: str) -> LabelSelector:
    """MetalLB's `selector("team=metallb")` (equality only, all the tests use)."""
    return LabelSelector(dict(part.split("=", 1) for part in labels.split(",")))


def service(
    key: str,
    *,
    policy: str = SVC,
    families: Sequence[str] = IPV4,
    ports: Sequence[Port] = (),
    sharing_key: str = "",
    pool: str = "",
    labels: dict[str, str] | None = None,
    requested: Sequence[str] = (),
) -> dict[str, Any]:
    """The Service manifest whose reading gives MetalLB's Allocate arguments (`requested`: the
    loadBalancerIPs annotation, for the controller's allocateIPs)."""
    namespace, name = key.split("/")
    annotations = {}
    if sharing_key:
        annotations[ANNOTATION_ALLOW_SHARED_IP] = sharing_key
    if pool:
        annotations[ANNOTATION_ADDRESS_POOL] = pool
    if requested:
        annotations[ANNOTATION_LOAD_BALANCER_IPS] = ",".join(requested)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": annotations,
            "labels": labels or {},
        },
        "spec": {
            "type": "LoadBalancer",
            "ipFamilyPolicy": policy,
            "ipFamilies": list(families),
            "ports": [{"port": p.port, "protocol": p.protocol} for p in ports],
        },
    }


@dataclass(frozen=True)
class Step:
    """One row of a MetalLB table. `want`: MetalLB's outcome (addresses in the order returned, or the error
    class we raise where MetalLB errs; None for Unassign). `ours`/`why`: a deliberate difference."""

    desc: str
    key: str
    run: Callable[[Allocator], Sequence[object]] | None  # None: Unassign
    want: Outcome | None
    ours: Outcome | None = None
    why: str = ""
    valid: frozenset[str] = field(default=frozenset())  # MetalLB's own check: every address in this set


def check_steps(alloc: Allocator, steps: Sequence[Step], source: str) -> None:
    """Runs the steps in order; asserts every outcome. Collects all mismatches before failing."""
    mismatches: list[str] = []
    for step in steps:
        before = [str(ip) for ip in alloc.ips(step.key)]
        if step.run is None:
            alloc.release(step.key)
            continue
        expected = step.ours if step.why else step.want
        try:
            got: Outcome = tuple(str(ip) for ip in step.run(alloc))
        except AllocationError as err:
            got = type(err)
            if [str(ip) for ip in alloc.ips(step.key)] != before:
                mismatches.append(f"{source} {step.desc!r}: failed but changed what {step.key} holds")
        if got != expected:
            mismatches.append(f"{source} {step.desc!r}: got {got}, want {expected}")
        if step.valid and isinstance(got, tuple) and not set(got) <= step.valid:
            mismatches.append(f"{source} {step.desc!r}: {got} outside MetalLB's valid set")
    assert not mismatches, "\n".join(mismatches)


# -- TestAssignment -----------------------------------------------------------------------------------------


def assignment_pools() -> list[Pool]:
    def sa(
        priority: int | None = None, namespaces: Sequence[str] = (), selectors: Sequence[str] = ()
    ) -> ServiceAllocation:
        return ServiceAllocation(
            priority=priority,
            namespaces=list(namespaces),
            service_selectors=[selector(s) for s in selectors],
        )

    # fmt: off
    return [
        Pool("test", ["1.2.3.4/31", "1000::4/127"]),
        Pool("test2", ["1.2.4.0/24", "1000::4:0/120"], avoid_buggy_ips=True),
        Pool("test3", ["1.2.5.0/24", "1000::5:0/120"], avoid_buggy_ips=True, service_allocation=sa(namespaces=["test-ns1"])),
        Pool("test4", ["1.2.6.0/24", "1000::6:0/120"], avoid_buggy_ips=True, service_allocation=sa(selectors=["team=metallb"])),
        Pool(
            "test5",
            ["1.2.7.0/24", "1000::7:0/120"],
            avoid_buggy_ips=True,
            service_allocation=sa(20, ["test-ns1"], ["team=metallb"]),
        ),
        Pool(
            "test6",
            ["1.2.8.0/24", "1000::9:0/120"],
            avoid_buggy_ips=True,
            service_allocation=sa(20, ["test-ns2"], ["foo=bar"]),
        ),
    ]
    # fmt: on


def assign(  # noqa: PLR0917  (a row reads like MetalLB's: ips, ports, sharing key, backend key)
    desc: str,
    key: str,
    ips: Sequence[str],
    ports: Sequence[Port] = (),
    sharing_key: str = "",
    backend_key: str = "",
    *,
    labels: dict[str, str] | None = None,
    err: type[AllocationError] | None = None,
) -> Step:
    """MetalLB's Assign row: `ips` empty means Unassign."""
    if "/" not in key:
        key = f"default/{key}"
    if not ips:
        return Step(desc, key, None, None)

    def run(alloc: Allocator) -> Sequence[object]:
        alloc.assign(
            key,
            list(ips),
            ports=list(ports),
            sharing_key=sharing_key,
            backend_key=backend_key,
            labels=labels or {},
            namespace_labels={},
        )
        return alloc.ips(key)

    return Step(desc, key, run, err or tuple(ips))


# fmt: off
ASSIGNMENT = [
    assign("assign s1", "s1", ["1.2.3.4"]),
    assign("s1 idempotent reassign", "s1", ["1.2.3.4"]),
    assign("s2 can't grab s1's IP", "s2", ["1.2.3.4"], err=IPInUseError),
    assign("s2 can get the other IP", "s2", ["1.2.3.5"]),
    assign("s1 now can't grab s2's IP", "s1", ["1.2.3.5"], err=IPInUseError),
    assign("s1 frees its IP", "s1", []),
    assign("s2 can grab s1's former IP", "s2", ["1.2.3.4"]),
    assign("s1 can now grab s2's former IP", "s1", ["1.2.3.5"]),
    assign("s3 cannot grab a 0 buggy IP", "s3", ["1.2.4.0"], err=IPNotAllowedError),
    assign("s3 cannot grab a 255 buggy IP", "s3", ["1.2.4.255"], err=IPNotAllowedError),
    assign("s3 can grab another IP in that pool", "s3", ["1.2.4.254"]),
    assign("s4 takes an IP, with sharing", "s4", ["1.2.4.3"], ports("tcp/80"), "sharing", "backend"),
    assign("s4 changes its sharing key in place", "s4", ["1.2.4.3"], ports("tcp/80"), "share", "backend"),
    assign("s3 can't share with s4 (port conflict)", "s3", ["1.2.4.3"], ports("tcp/80"), "share", "backend", err=IPInUseError),
    assign("s3 can't share with s4 (wrong sharing key)", "s3", ["1.2.4.3"], ports("tcp/443"), "othershare", "backend", err=IPInUseError),
    assign("s3 can't share with s4 (wrong backend key)", "s3", ["1.2.4.3"], ports("tcp/443"), "share", "otherbackend", err=IPInUseError),
    assign("s3 takes the same IP as s4", "s3", ["1.2.4.3"], ports("tcp/443"), "share", "backend"),
    assign("s3 can change its ports while keeping the same IP", "s3", ["1.2.4.3"], ports("udp/53"), "share", "backend"),
    assign("s3 can't change its sharing key while keeping the same IP", "s3", ["1.2.4.3"], ports("tcp/443"), "othershare", "backend", err=IPInUseError),
    assign("s3 can't change its backend key while keeping the same IP", "s3", ["1.2.4.3"], ports("tcp/443"), "share", "otherbackend", err=IPInUseError),
    assign("s4 takes s3's former IP", "s4", ["1.2.4.254"]),
    # IPv6 tests (same as ipv4 but with ipv6 addresses)
    assign("ipv6 assign s1", "s1", ["1000::4"]),
    assign("s1 idempotent reassign", "s1", ["1000::4"]),
    assign("s2 can't grab s1's IP", "s2", ["1000::4"], err=IPInUseError),
    assign("s2 can get the other IP", "s2", ["1000::4:5"]),
    assign("s1 now can't grab s2's IP", "s1", ["1000::4:5"], err=IPInUseError),
    assign("s1 frees its IP", "s1", []),
    assign("s2 can grab s1's former IP", "s2", ["1000::4"]),
    assign("s1 can now grab s2's former IP", "s1", ["1000::4:5"]),
    # (buggy-IP N/A for ipv6)
    assign("s3 can grab another IP in that pool", "s3", ["1000::4:ff"]),
    assign("s4 takes an IP, with sharing", "s4", ["1000::4:3"], ports("tcp/80"), "sharing", "backend"),
    assign("s4 changes its sharing key in place", "s4", ["1000::4:3"], ports("tcp/80"), "share", "backend"),
    assign("s3 can't share with s4 (port conflict)", "s3", ["1000::4:3"], ports("tcp/80"), "share", "backend", err=IPInUseError),
    assign("s3 can't share with s4 (wrong sharing key)", "s3", ["1000::4:3"], ports("tcp/443"), "othershare", "backend", err=IPInUseError),
    assign("s3 can't share with s4 (wrong backend key)", "s3", ["1000::4:3"], ports("tcp/443"), "share", "otherbackend", err=IPInUseError),
    assign("s3 takes the same IP as s4", "s3", ["1000::4:3"], ports("tcp/443"), "share", "backend"),
    assign("s3 can change its ports while keeping the same IP", "s3", ["1000::4:3"], ports("udp/53"), "share", "backend"),
    assign("s3 can't change its sharing key while keeping the same IP", "s3", ["1000::4:3"], ports("tcp/443"), "othershare", "backend", err=IPInUseError),
    assign("s3 can't change its backend key while keeping the same IP", "s3", ["1000::4:3"], ports("tcp/443"), "share", "otherbackend", err=IPInUseError),
    assign("s4 takes s3's former IP", "s4", ["1000::4:ff"]),
    # IP dual-stack test
    assign("s2 frees its IP", "s2", []),
    assign("ip dual-stack assign s1", "s1", ["1.2.3.4", "1000::4"]),
    assign("ip dual-stack assign s1 from different pools", "s1", ["1.2.4.5", "1000::4"], err=IPNotAllowedError),
    # IP Pool compatibility tests
    assign("attempt to assign ip from pool pinned on same namespace", "test-ns1/s1", ["1.2.5.10"]),
    assign("attempt to assign ip from pool pinned on different namespace", "testns-not-exist/s1", ["1.2.5.10"], err=NoPoolError),
    assign("attempt to assign ip from pool pinned with same service label", "testns-not-exist/s1", ["1.2.6.10"], labels={"team": "metallb"}),
    assign("attempt to assign ip from pool pinned with different service label", "testns-not-exist/s1", ["1.2.6.10"], labels={"team": "red"}, err=NoPoolError),
    assign("attempt to assign ip from pool pinned with namespace and service label", "test-ns1/s1", ["1.2.7.10"], labels={"team": "metallb"}),
    assign("attempt to assign ip from pool pinned with namespace and incompatible service label", "test-ns2/s1", ["1.2.8.10"], labels={"team": "metallb"}, err=NoPoolError),
    assign("attempt to assign ip from pool pinned with service label and incompatible namespace", "testns-not-exist/s1", ["1.2.8.10"], labels={"foo": "bar"}, err=NoPoolError),
]
# fmt: on


def test_assignment() -> None:
    pools = assignment_pools()
    alloc = Allocator(pools)
    # MetalLB's svcKey "s1" is one service whatever its namespace: when a row of another namespace succeeds,
    # the key it had before is released, as MetalLB's Assign replaces the service's allocation.
    current: dict[str, str] = {}
    mismatches = []
    for step in ASSIGNMENT:
        try:
            check_steps(alloc, [step], "TestAssignment")
        except AssertionError as err:
            mismatches.append(str(err))
            continue
        name = step.key.split("/")[1]
        if step.run is not None and isinstance(step.want, tuple):
            previous = current.get(name, step.key)
            if previous != step.key:
                alloc.release(previous)
            current[name] = step.key
    assert not mismatches, "\n".join(mismatches)
    # MetalLB also checks that no call mutated the configuration it was given.
    assert alloc.pools() == pools
    # One s1, as in MetalLB: it ends in test-ns1 on 1.2.7.10; s2 freed its address; s3 and s4 as last set.
    held = {key: [str(ip) for ip in alloc.ips(key)] for key in alloc.keys()}
    assert held == {"default/s3": ["1000::4:3"], "default/s4": ["1000::4:ff"], "test-ns1/s1": ["1.2.7.10"]}


# -- TestPoolAllocation -------------------------------------------------------------------------------------

# Pools that overlap "test" in MetalLB's test, replayed against "test" (see the module docstring).
POOL_ALIASES = {"test-v4": "test", "test-v6": "test", "test-dualstack": "test"}


def allocate(
    desc: str,
    key: str,
    families: Sequence[str],
    want: Outcome | None = None,
    *,
    svc: str = SVC,
    ports: Sequence[Port] = (),
    sharing_key: str = "",
    pool: str = "",
    requested: Sequence[str] = (),
    unassign: bool = False,
    ours: Outcome | None = None,
    why: str = "",
    valid: frozenset[str] = frozenset(),
) -> Step:
    """MetalLB's Allocate (no pool) or AllocateFromPool row, through a Service manifest; with `requested`,
    its controller's allocateIPs for a Service carrying the loadBalancerIPs annotation."""
    if "/" not in key:
        key = f"default/{key}"
    if unassign:
        return Step(desc, key, None, None)
    manifest = service(
        key,
        policy=svc,
        families=families,
        ports=ports,
        sharing_key=sharing_key,
        pool=POOL_ALIASES.get(pool, pool),
        requested=requested,
    )

    def run(alloc: Allocator) -> Sequence[object]:
        request = service_request(manifest)
        return alloc.allocate(request.key, **request.allocate_kwargs())

    assert want is not None
    return Step(desc, key, run, want, ours, why, valid)


def from_test(*args: Any, pool: str = "test", **kwargs: Any) -> Step:
    """AllocateFromPool: MetalLB's loop uses pool "test" when a row names none."""
    return allocate(*args, pool=pool, **kwargs)


def unassign(desc: str, key: str, families: Sequence[str] = IPV4, *, svc: str = SVC) -> Step:
    return allocate(desc, key, families, unassign=True, svc=svc)


KEEPS_ITS_ADDRESS_AND_GAINS_A_FAMILY = (
    "MetalLB's AllocateFromPool returns the one address a PreferDualStack Service holds, and its controller "
    "then calls AllocateFromPoolForAdditionalFamily to add the other family from the same pool; ours does "
    "both in one call: the Service keeps its address and gains the missing family, in ipFamilies order"
)

# fmt: off
POOL_ALLOCATION = [
    from_test("s1 gets an IPv4", "s1", IPV4, ("1.2.3.4",)),
    from_test("s2 gets an IPv4", "s2", IPV4, ("1.2.3.5",)),
    from_test("s3 gets an IPv4", "s3", IPV4, ("1.2.3.10",)),
    from_test("s4 gets an IPv4", "s4", IPV4, ("1.2.3.11",)),
    from_test("s5 can't get an IPv4", "s5", IPV4, PoolExhaustedError),
    from_test("s6 can't get an IPv4", "s6", IPV4, PoolExhaustedError),
    unassign("s1 releases its IPv4", "s1"),
    from_test("s5 can now grab s1's former IPv4", "s5", IPV4, ("1.2.3.4",)),
    from_test("s6 still can't get an IPv4", "s6", IPV4, PoolExhaustedError),
    unassign("s5 unassigns in prep for enabling IPv4 sharing", "s5"),
    from_test("s5 enables IPv4 sharing", "s5", IPV4, ("1.2.3.4",), ports=ports("tcp/80"), sharing_key="share"),
    from_test("s6 can get an IPv4 now, with sharing", "s6", IPV4, ("1.2.3.4",), ports=ports("tcp/443"), sharing_key="share"),
    # Clear old ipv4 addresses
    unassign("s1 clear old ipv4 address", "s1"),
    unassign("s2 clear old ipv4 address", "s2"),
    unassign("s3 clear old ipv4 address", "s3"),
    unassign("s4 clear old ipv4 address", "s4"),
    unassign("s5 clear old ipv4 address", "s5"),
    unassign("s6 clear old ipv4 address", "s6"),
    # IPv6 tests.
    from_test("s1 gets an IP6", "s1", IPV6, ("1000::",)),
    from_test("s2 gets an IP6", "s2", IPV6, ("1000::1",)),
    from_test("s3 gets an IP6", "s3", IPV6, ("2000::",)),
    from_test("s4 gets an IP6", "s4", IPV6, ("2000::1",)),
    from_test("s5 can't get an IP6", "s5", IPV6, PoolExhaustedError),
    from_test("s6 can't get an IP6", "s6", IPV6, PoolExhaustedError),
    unassign("s1 releases its IP6", "s1"),
    from_test("s5 can now grab s1's former IP6", "s5", IPV6, ("1000::",)),
    from_test("s6 still can't get an IP6", "s6", IPV6, PoolExhaustedError),
    unassign("s5 unassigns in prep for enabling IP6 sharing", "s5"),
    from_test("s5 enables IP6 sharing", "s5", IPV6, ("1000::",), ports=ports("tcp/80"), sharing_key="share"),
    from_test("s6 can get an IP6 now, with sharing", "s6", IPV6, ("1000::",), ports=ports("tcp/443"), sharing_key="share"),
    # Test the "should-not-happen" case where an svc already has a IP from the wrong family
    unassign("s1 clear", "s1"),
    from_test("s1 get an IPv4", "s1", IPV4, ("1.2.3.4",)),
    # MetalLB refuses the family change; ours would move s1 to IPv6 (as MetalLB's controller does after
    # serviceFamilyChanged), but the pool has no IPv6 left: an error either way, and s1 keeps its IPv4.
    from_test("s1 get an IPv6", "s1", IPV6, PoolExhaustedError),
    # Clear old ipv6 addresses
    unassign("s1 clear old ipv6 address", "s1", IPV6),
    unassign("s2 clear old ipv6 address", "s2", IPV6),
    unassign("s3 clear old ipv6 address", "s3", IPV6),
    unassign("s4 clear old ipv6 address", "s4", IPV6),
    unassign("s5 clear old ipv6 address", "s5", IPV6),
    unassign("s6 clear old ipv6 address", "s6", IPV6),
    # Dual-stack tests.
    from_test("s1 gets dual-stack IPs", "s1", DUAL, ("1.2.3.4", "1000::"), svc=SVC_REQUIRE_DUAL),
    from_test("s2 gets dual-stack IPs", "s2", DUAL, ("1.2.3.5", "1000::1"), svc=SVC_REQUIRE_DUAL),
    from_test("s3 gets dual-stack IPs", "s3", DUAL, ("1.2.3.10", "2000::"), svc=SVC_REQUIRE_DUAL),
    from_test("s4 gets dual-stack IPs", "s4", DUAL, ("1.2.3.11", "2000::1"), svc=SVC_REQUIRE_DUAL),
    from_test("s5 can't get dual-stack IPs", "s5", DUAL, PoolExhaustedError, svc=SVC_REQUIRE_DUAL),
    from_test("s6 can't get dual-stack IPs", "s6", DUAL, PoolExhaustedError, svc=SVC_REQUIRE_DUAL),
    unassign("s1 releases its dual-stack IPs", "s1", DUAL, svc=SVC_REQUIRE_DUAL),
    from_test("s5 can now grab s1's former dual-stack IPs", "s5", DUAL, ("1.2.3.4", "1000::"), svc=SVC_REQUIRE_DUAL),
    from_test("s6 still can't get dual-stack IPs", "s6", DUAL, PoolExhaustedError, svc=SVC_REQUIRE_DUAL),
    unassign("s5 unassigns in prep for enabling dual-stack IPs sharing", "s5", DUAL, svc=SVC_REQUIRE_DUAL),
    from_test("s5 enables dual-stack IP sharing", "s5", DUAL, ("1.2.3.4", "1000::"), svc=SVC_REQUIRE_DUAL, ports=ports("tcp/80"), sharing_key="share"),
    from_test("s6 can get an dual-stack IPs now, with sharing", "s6", DUAL, ("1.2.3.4", "1000::"), svc=SVC_REQUIRE_DUAL, ports=ports("tcp/443"), sharing_key="share"),
    # Clear old dual-stack addresses
    unassign("s1 clear old dual-stack address", "s1", DUAL, svc=SVC_REQUIRE_DUAL),
    unassign("s2 clear old dual-stack address", "s2", DUAL, svc=SVC_REQUIRE_DUAL),
    unassign("s3 clear old dual-stack address", "s3", DUAL, svc=SVC_REQUIRE_DUAL),
    unassign("s4 clear old ipv6 address", "s4", DUAL),
    unassign("s5 clear old dual-stack address", "s5", DUAL, svc=SVC_REQUIRE_DUAL),
    unassign("s6 clear old dual-stack address", "s6", DUAL, svc=SVC_REQUIRE_DUAL),
    # PreferDualStack tests.
    from_test("s1 gets dual-stack IPs", "s1", DUAL, ("1.2.3.4", "1000::"), svc=SVC_PREFER_DUAL),
    from_test("s2 gets ipv4 IP", "s2", IPV4, ("1.2.3.5",), svc=SVC_PREFER_DUAL, pool="test-v4"),
    from_test("s3 gets ipv6 IP", "s3", IPV6, ("1000::1",), svc=SVC_PREFER_DUAL, pool="test-v6"),
    unassign("s2 clear old ipv4 address", "s2", IPV4, svc=SVC_PREFER_DUAL),
    from_test(
        "s3 gets dualstack", "s3", DUAL, ("1000::1",), svc=SVC_PREFER_DUAL, pool="test-dualstack",
        ours=("1.2.3.5", "1000::1"), why=KEEPS_ITS_ADDRESS_AND_GAINS_A_FAMILY,
    ),
    # After the table: AllocateFromPool("s5", svc, IPv4, "nonexistentpool") must fail.
    unassign("(after the table) s5 unassigned", "s5"),
    from_test("(after the table) Allocating from non-existent pool", "s5", IPV4, UnknownPoolError, pool="nonexistentpool"),
]
# fmt: on


def test_pool_allocation() -> None:
    alloc = Allocator(
        [
            Pool("not_this_one", ["192.168.0.0/16", "fc00::1:0/112"]),
            Pool("test", ["1.2.3.4/31", "1.2.3.10/31", "1000::/127", "2000::/127"]),
            Pool("test2", ["10.20.30.0/24", "fc00::2:0/120"]),
        ]
    )
    check_steps(alloc, POOL_ALLOCATION, "TestPoolAllocation")


def test_family_change_with_a_free_address_is_a_move_not_an_error() -> None:
    """Beyond MetalLB's table: in "s1 get an IPv6" MetalLB's AllocateFromPool refuses the family change of a
    held allocation, and ours fails only because the pool has no IPv6 left. With one left, ours moves the
    Service to it, which is what MetalLB's controller does (serviceFamilyChanged: clear, allocate again)."""
    alloc = Allocator([Pool("test", ["1.2.3.4/31", "1000::/127"])])
    for step in (
        from_test("s1 get an IPv4", "s1", IPV4, ("1.2.3.4",)),
        from_test("s1 get an IPv6", "s1", IPV6, FamilyError, ours=("1000::",), why=FAMILY_CHANGE),
    ):
        check_steps(alloc, [step], "family change")
    assert alloc.counters("test")["in_use_ipv4"] == 0


# -- TestAllocation -----------------------------------------------------------------------------------------

ALLOCATION_V4 = frozenset({"1.2.3.4", "1.2.3.5", "1.2.3.10", "1.2.3.11"})
ALLOCATION_V6 = frozenset({"1000::4", "1000::5", "1000::10", "1000::11"})


def auto(desc: str, key: str, families: Sequence[str], want: Outcome, **kwargs: Any) -> Step:
    valid = {IPV4: ALLOCATION_V4, IPV6: ALLOCATION_V6}.get(tuple(families), ALLOCATION_V4 | ALLOCATION_V6)
    return allocate(desc, key, families, want, valid=valid, **kwargs)


# fmt: off
ALLOCATION = [
    auto("s1 gets an IPv4", "s1", IPV4, ("1.2.3.4",)),
    auto("s2 gets an IPv4", "s2", IPV4, ("1.2.3.5",)),
    auto("s3 gets an IPv4", "s3", IPV4, ("1.2.3.10",)),
    auto("s4 gets an IPv4", "s4", IPV4, ("1.2.3.11",)),
    auto("s5 can't get an IPv4", "s5", IPV4, PoolExhaustedError),
    auto("s6 can't get an IPv4", "s6", IPV4, PoolExhaustedError),
    unassign("s1 gives up its IPv4", "s1"),
    auto("s5 can now get an IPv4", "s5", IPV4, ("1.2.3.4",), ports=ports("tcp/80"), sharing_key="share"),
    auto("s6 still can't get an IPv4", "s6", IPV4, PoolExhaustedError),
    auto("s6 can get an IPv4 with sharing", "s6", IPV4, ("1.2.3.4",), ports=ports("tcp/443"), sharing_key="share"),
    # Clear old ipv4 addresses
    unassign("s1 clear old ipv4 address", "s1"),
    unassign("s2 clear old ipv4 address", "s2"),
    unassign("s3 clear old ipv4 address", "s3"),
    unassign("s4 clear old ipv4 address", "s4"),
    unassign("s5 clear old ipv4 address", "s5"),
    unassign("s6 clear old ipv4 address", "s6"),
    # IPv6 tests
    auto("s1 gets an IPv6", "s1", IPV6, ("1000::4",)),
    auto("s2 gets an IPv6", "s2", IPV6, ("1000::5",)),
    auto("s3 gets an IPv6", "s3", IPV6, ("1000::10",)),
    auto("s4 gets an IPv6", "s4", IPV6, ("1000::11",)),
    auto("s5 can't get an IPv6", "s5", IPV6, PoolExhaustedError),
    auto("s6 can't get an IPv6", "s6", IPV6, PoolExhaustedError),
    unassign("s1 gives up its IPv6", "s1"),
    auto("s5 can now get an IPv6", "s5", IPV6, ("1000::4",), ports=ports("tcp/80"), sharing_key="share"),
    auto("s6 still can't get an IPv6", "s6", IPV6, PoolExhaustedError),
    auto("s6 can get an IPv6 with sharing", "s6", IPV6, ("1000::4",), ports=ports("tcp/443"), sharing_key="share"),
    # Clear old ipv6 addresses
    unassign("s1 clear old ipv6 address", "s1", IPV6),
    unassign("s2 clear old ipv6 address", "s2", IPV6),
    unassign("s3 clear old ipv6 address", "s3", IPV6),
    unassign("s4 clear old ipv6 address", "s4", IPV6),
    unassign("s5 clear old ipv6 address", "s5", IPV6),
    unassign("s6 clear old ipv6 address", "s6", IPV6),
    # Dual-stack test cases
    auto("s1 gets dual-stack IPs", "s1", DUAL, ("1.2.3.4", "1000::4"), svc=SVC_REQUIRE_DUAL),
    auto("s2 gets dual-stack IPs", "s2", DUAL, ("1.2.3.5", "1000::5"), svc=SVC_REQUIRE_DUAL),
    auto("s3 gets dual-stack IPs", "s3", DUAL, ("1.2.3.10", "1000::10"), svc=SVC_REQUIRE_DUAL),
    auto("s4 gets dual-stack IPs", "s4", DUAL, ("1.2.3.11", "1000::11"), svc=SVC_REQUIRE_DUAL),
    auto("s5 can't get dual-stack IPs", "s5", DUAL, PoolExhaustedError, svc=SVC_REQUIRE_DUAL),
    auto("s6 can't get dual-stack IPs", "s6", DUAL, PoolExhaustedError, svc=SVC_REQUIRE_DUAL),
    unassign("s1 gives up its IPs", "s1", DUAL, svc=SVC_REQUIRE_DUAL),
    auto("s5 can now get dual-stack IPs", "s5", DUAL, ("1.2.3.4", "1000::4"), svc=SVC_REQUIRE_DUAL, ports=ports("tcp/80"), sharing_key="share"),
    auto("s6 still can't get dual-stack IPs", "s6", DUAL, PoolExhaustedError, svc=SVC_REQUIRE_DUAL),
    auto("s6 can get dual-stack IPs with sharing", "s6", DUAL, ("1.2.3.4", "1000::4"), svc=SVC_REQUIRE_DUAL, ports=ports("tcp/443"), sharing_key="share"),
]
# fmt: on


def test_allocation() -> None:
    alloc = Allocator(
        [Pool("test1", ["1.2.3.4/31", "1000::4/127"]), Pool("test2", ["1.2.3.10/31", "1000::10/127"])]
    )
    check_steps(alloc, ALLOCATION, "TestAllocation")


# -- TestBuggyIPs -------------------------------------------------------------------------------------------

BUGGY_VALID = frozenset({"1.2.3.0", "1.2.3.1", "1.2.3.254", "1.2.3.255", "1.2.4.1", "1.2.4.254"})
BUGGY = [
    allocate("#1", "s1", IPV4, ("1.2.3.0",), valid=BUGGY_VALID),
    allocate("#2", "s2", IPV4, ("1.2.3.1",), valid=BUGGY_VALID),
    allocate("#3", "s3", IPV4, ("1.2.3.254",), valid=BUGGY_VALID),
    allocate("#4", "s4", IPV4, ("1.2.3.255",), valid=BUGGY_VALID),
    allocate("#5", "s5", IPV4, ("1.2.4.1",), valid=BUGGY_VALID),
    allocate("#6", "s6", IPV4, ("1.2.4.254",), valid=BUGGY_VALID),
    allocate("#7", "s7", IPV4, PoolExhaustedError),
]


def test_buggy_ips() -> None:
    alloc = Allocator(
        [
            Pool("test", ["1.2.3.0/31"]),
            Pool("test2", ["1.2.3.254/31"]),
            Pool("test3", ["1.2.4.0/31"], avoid_buggy_ips=True),
            Pool("test4", ["1.2.4.254/31"], avoid_buggy_ips=True),
        ]
    )
    check_steps(alloc, BUGGY, "TestBuggyIPs")


# -- TestConfigReload ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reload:
    desc: str
    pools: tuple[Pool, ...]
    pool_s1: str  # pool that 1.2.3.0 should be in ("" for none)
    pool_s2: str


# fmt: off
CONFIG_RELOAD = [
    Reload("set same config is no-op", (Pool("test", ["1.2.3.0/30", "1000::/126"]),), "test", "test"),
    Reload("expand pool", (Pool("test", ["1.2.3.0/24", "1000::/120"]),), "test", "test"),
    Reload("shrink pool", (Pool("test", ["1.2.3.0/30", "1000::/126"]),), "test", "test"),
    Reload("can't shrink further, removing the service allocation", (Pool("test", ["1.2.3.2/31", "1000::0/126"]),), "", "test"),
    Reload("can't shrink further ipv6, removing the service allocation", (Pool("test", ["1.2.3.0/30", "1000::2/127"]),), "test", ""),
    Reload("rename the pool", (Pool("test2", ["1.2.3.0/30", "1000::0/126"]),), "test2", "test2"),
    Reload("split pool", (Pool("test", ["1.2.3.0/31", "1000::2/127"]), Pool("test2", ["1.2.3.2/31", "1000::/127"])), "test", "test2"),
    Reload("enable buggy IPs not allowed", (Pool("test2", ["1.2.3.0/31", "1000::/127"], avoid_buggy_ips=True),), "", "test2"),
]
# fmt: on


@pytest.mark.parametrize("case", CONFIG_RELOAD, ids=[f"TestConfigReload: {c.desc}" for c in CONFIG_RELOAD])
def test_config_reload(case: Reload) -> None:
    # MetalLB's map key "testunused" names a pool whose Name is "unused"; the Name is what counts.
    alloc = Allocator(
        [Pool("test", ["1.2.3.0/30", "1000::/126"]), Pool("unused", ["1.2.4.0/30", "1001::/126"])]
    )
    alloc.assign("default/s1", ["1.2.3.0"])
    alloc.assign("default/s2", ["1000::"])
    evicted = alloc.set_pools(list(case.pools))
    assert (alloc.pool_of("default/s1") or "", alloc.pool_of("default/s2") or "") == (
        case.pool_s1,
        case.pool_s2,
    )
    assert evicted == [
        key for key, pool in (("default/s1", case.pool_s1), ("default/s2", case.pool_s2)) if not pool
    ]


# -- TestAutoAssign -----------------------------------------------------------------------------------------

AUTO_V4 = frozenset({"1.2.3.10", "1.2.3.11"})  # MetalLB's valid sets: test1 (autoAssign false) never
AUTO_V6 = frozenset({"1000::10", "1000::11"})
FAMILY_CHANGE = (
    "MetalLB's Allocate returns the allocation a Service already holds without looking at the family asked; "
    "its controller first clears an allocation whose family changed (serviceFamilyChanged) and allocates "
    "again, which our one call does, keeping the address of the family the Service had"
)


def auto_assign(n: int, key: str, families: Sequence[str], want: Outcome, **kwargs: Any) -> Step:
    valid = {IPV4: AUTO_V4, IPV6: AUTO_V6}.get(tuple(families), AUTO_V4 | AUTO_V6)
    return allocate(f"#{n}", key, families, want, valid=valid, **kwargs)


# MetalLB's dual-stack rows use its SingleStack `svc` with two families, which Kubernetes refuses: replayed
# with RequireDualStack (see the module docstring).
AUTO_DUAL = SVC_REQUIRE_DUAL

# fmt: off
AUTO_ASSIGN = [
    auto_assign(1, "s1", IPV4, ("1.2.3.10",)),
    auto_assign(2, "s2", IPV4, ("1.2.3.11",)),
    auto_assign(3, "s3", IPV4, PoolExhaustedError),
    auto_assign(4, "s4", IPV4, PoolExhaustedError),
    auto_assign(5, "s5", IPV4, PoolExhaustedError),
    # Clear old ipv4 addresses
    unassign("#6", "s1"),
    unassign("#7", "s2"),
    unassign("#8", "s3"),
    unassign("#9", "s4"),
    unassign("#10", "s5"),
    unassign("#11", "s6"),
    # IPv6 tests;
    auto_assign(12, "s1", IPV6, ("1000::10",)),
    auto_assign(13, "s2", IPV6, ("1000::11",)),
    auto_assign(14, "s3", IPV6, PoolExhaustedError),
    auto_assign(15, "s4", IPV6, PoolExhaustedError),
    auto_assign(16, "s5", IPV6, PoolExhaustedError),
    # Dual-stack tests;
    auto_assign(17, "s1", DUAL, ("1000::10",), svc=AUTO_DUAL, ours=("1.2.3.10", "1000::10"), why=FAMILY_CHANGE),
    auto_assign(18, "s2", DUAL, ("1000::11",), svc=AUTO_DUAL, ours=("1.2.3.11", "1000::11"), why=FAMILY_CHANGE),
    auto_assign(19, "s3", DUAL, PoolExhaustedError, svc=AUTO_DUAL),
    auto_assign(20, "s4", DUAL, PoolExhaustedError, svc=AUTO_DUAL),
    auto_assign(21, "s5", DUAL, PoolExhaustedError, svc=AUTO_DUAL),
]
# fmt: on


def test_auto_assign() -> None:
    alloc = Allocator(
        [
            Pool("test1", ["1.2.3.4/31", "1000::4/127"], auto_assign=False),
            Pool("test2", ["1.2.3.10/31", "1000::10/127"]),
        ]
    )
    check_steps(alloc, AUTO_ASSIGN, "TestAutoAssign")


def test_auto_assign_dual_stack_rows_are_not_expressible_as_written() -> None:
    """MetalLB's input for rows #17-#21 (SingleStack, two families) is refused by our Service reader."""
    with pytest.raises(ServiceError, match="SingleStack"):
        service_request(service("default/s1", policy=SVC, families=DUAL))
    with pytest.raises(FamilyError, match="SingleStack"):
        Allocator([]).allocate("default/s1", ip_families=list(DUAL), ip_family_policy=SVC)


# -- Beyond the tables: MetalLB's rules outside allocator_test.go ------------------------------------------

# controller/service.go, allocateIPs: "requested loadBalancer IP(s) %q does not match the ipFamily of the
# service" when the family of the requested addresses (ipv4, ipv6 or dual, ipfamily.ForAddressesIPs) is not
# the Service's (ipfamily.ForService, from its cluster IPs, which ipFamilies lists), before any pool is
# looked at; the address-pool annotation changes nothing. Ours: FamilyError, the Service keeps nothing new.
# fmt: off
REQUESTED_FAMILY = [
    allocate("IPv4 Service requests an IPv6 address", "s1", IPV4, FamilyError, requested=("1000::4",)),
    allocate("IPv6 Service requests an IPv4 address", "s2", IPV6, FamilyError, requested=("1.2.3.4",)),
    allocate("IPv6 Service requests an IPv4 address from the pool it names", "s2", IPV6, FamilyError, pool="test", requested=("1.2.3.4",)),
    allocate("PreferDualStack dual-stack Service requests one IPv4", "s3", DUAL, FamilyError, svc=SVC_PREFER_DUAL, requested=("1.2.3.4",)),
    allocate("RequireDualStack Service requests one IPv6", "s4", DUAL, FamilyError, svc=SVC_REQUIRE_DUAL, requested=("1000::4",)),
    allocate("PreferDualStack IPv4 Service requests both families", "s5", IPV4, FamilyError, svc=SVC_PREFER_DUAL, requested=("1.2.3.4", "1000::4")),
    allocate("IPv4 Service gets the IPv4 it requests", "s1", IPV4, ("1.2.3.4",), requested=("1.2.3.4",)),
    allocate("IPv6 Service gets the IPv6 it requests from the pool it names", "s2", IPV6, ("1000::5",), pool="test", requested=("1000::5",)),
    allocate("dual-stack Service gets the pair it requests", "s3", DUAL, ("1.2.3.5", "1000::4"), svc=SVC_PREFER_DUAL, requested=("1.2.3.5", "1000::4")),
]
# fmt: on


def test_requested_addresses_of_another_family_are_refused() -> None:
    alloc = Allocator([Pool("test", ["1.2.3.4/31", "1000::4/127"])])
    check_steps(alloc, REQUESTED_FAMILY, "controller allocateIPs")
    request = service_request(service("default/s9", requested=("1000::4",)))
    with pytest.raises(
        FamilyError, match=r"requested address 1000::4 \(IPv6\) does not match .* ipFamilies IPv4"
    ):
        alloc.allocate(request.key, **request.allocate_kwargs())


# internal/config/config.go, addressPoolServiceAllocationsFromCR (MetalLB v0.15.0 on): a serviceAllocation
# with a priority and no namespaces, namespaceSelectors or serviceSelectors selects every Service
# (labels.Everything()), so the pool is in ByServiceSelector and allocator.go's pinnedPoolsForService gives it
# to Allocate before the auto-assign pools without a serviceAllocation; an autoAssign false one only when
# asked for (AllocateFromPool, or Assign of a requested address).
# fmt: off
PRIORITY_ONLY = [
    allocate("any Service gets the priority-only pool first", "s1", IPV4, ("1.2.4.0",)),
    allocate("then the other address of it", "other-ns/s2", IPV4, ("1.2.4.1",)),
    allocate("then the pool with no serviceAllocation", "s3", IPV4, ("1.2.3.4",)),
    allocate("the autoAssign false priority-only pool when named", "s4", IPV4, ("1.2.5.0",), pool="manual"),
    allocate("and when its address is requested", "s5", IPV4, ("1.2.5.1",), requested=("1.2.5.1",)),
]
# fmt: on


def test_a_priority_only_pool_serves_every_service_first() -> None:
    alloc = Allocator(
        [
            Pool("a-open", ["1.2.3.4/31"]),
            Pool("prio", ["1.2.4.0/31"], service_allocation=ServiceAllocation(priority=1)),
            Pool(
                "manual", ["1.2.5.0/31"], auto_assign=False, service_allocation=ServiceAllocation(priority=1)
            ),
        ]
    )
    check_steps(alloc, PRIORITY_ONLY, "config addressPoolServiceAllocationsFromCR")


# -- TestPoolCount ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Count:
    desc: str
    addresses: tuple[str, ...]
    avoid_buggy_ips: bool
    want: int  # MetalLB's total (poolCapacity)
    ipv4: int
    ipv6: int
    ours_total: int | None = None
    why: str = ""


EXACT_TOTAL = (
    "MetalLB caps a CIDR of 2^62 addresses or more at int64's maximum in every count; pool_status (the "
    "IPAddressPool status fields, int64) does the same, while counters() stays exact (Python ints): the "
    "capacity gauge of a /64 pool reads 2^64, not 2^63-1"
)

# fmt: off
POOL_COUNT = [
    Count("BGP /24", ("1.2.3.0/24",), False, 256, 256, 0),
    Count("BGP /24 and /25", ("1.2.3.0/24", "2.3.4.128/25"), False, 384, 384, 0),
    Count("BGP /24 and /25, no buggy IPs", ("1.2.3.0/24", "2.3.4.128/25"), True, 381, 381, 0),
    Count("BGP a BIG ipv6 range", ("1.2.3.0/24", "2.3.4.128/25", "1000::/64"), True, INT64_MAX, 381, INT64_MAX, ours_total=381 + 2**64, why=EXACT_TOTAL),
    Count("ipv4 and ipv6 range", ("1.2.3.0/31", "1000::/127"), True, 3, 1, 2),
]
# fmt: on


@pytest.mark.parametrize("case", POOL_COUNT, ids=[f"TestPoolCount: {c.desc}" for c in POOL_COUNT])
def test_pool_count(case: Count) -> None:
    alloc = Allocator([Pool("p", list(case.addresses), avoid_buggy_ips=case.avoid_buggy_ips)])
    status = alloc.pool_status("p")
    assert (status["availableIPv4"], status["availableIPv6"]) == (case.ipv4, case.ipv6)
    assert status["assignedIPv4"] == status["assignedIPv6"] == 0
    assert alloc.counters("p")["total"] == (case.ours_total if case.why else case.want)


# -- TestPoolMetrics ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metric:
    desc: str
    key: str
    ips: tuple[str, ...]  # empty: Unassign
    ips_in_use: int
    ports: tuple[Port, ...] = ()
    sharing_key: str = ""


POOL_METRICS = [
    Metric("assign s1", "s1", ("1.2.3.4",), 1),
    Metric("assign s2", "s2", ("1.2.3.5",), 2),
    Metric("unassign s1", "s1", (), 1),
    Metric("unassign s2", "s2", (), 0),
    Metric("assign s1 shared", "s1", ("1.2.3.4",), 1, ports("tcp/80"), "key"),
    Metric("assign s2 shared", "s2", ("1.2.3.4",), 1, ports("tcp/443"), "key"),
    Metric("assign s3 shared", "s3", ("1.2.3.4",), 1, ports("tcp/23"), "key"),
    Metric("unassign s1 shared", "s1", (), 1, ports("tcp/80")),
    Metric("unassign s2 shared", "s2", (), 1, ports("tcp/443")),
    Metric("unassign s3 shared", "s3", (), 0, ports("tcp/23")),
]


def metallb_counters(
    available_v4: int, available_v6: int, assigned_v4: int, assigned_v6: int
) -> dict[str, int]:
    """MetalLB's `validateCounters(c, avIPv4, avIPv6, asIPv4, asIPv6)` as our pool_status."""
    return {
        "assignedIPv4": assigned_v4,
        "assignedIPv6": assigned_v6,
        "availableIPv4": available_v4,
        "availableIPv6": available_v6,
    }


def test_pool_metrics() -> None:
    alloc = Allocator([Pool("test", ["1.2.3.4/30", "1000::4/126"])])
    # The "test1" pool contains two ranges; 1.2.3.4/30, 1000::4/126: a capacity of 4+4=8.
    assert alloc.counters("test")["total"] == 8
    assert alloc.pool_status("test") == metallb_counters(4, 4, 0, 0)
    mismatches = []
    for step in POOL_METRICS:
        key = f"default/{step.key}"
        if step.ips:
            alloc.assign(key, list(step.ips), ports=list(step.ports), sharing_key=step.sharing_key or None)
            assert sorted(str(ip) for ip in alloc.ips(key)) == sorted(step.ips), step.desc
        else:
            alloc.release(key)
        got = (alloc.counters("test")["in_use"], alloc.pool_status("test"))
        want = (step.ips_in_use, metallb_counters(4 - step.ips_in_use, 4, step.ips_in_use, 0))
        if got != want:
            mismatches.append(f"TestPoolMetrics {step.desc!r}: got {got}, want {want}")
    assert not mismatches, "\n".join(mismatches)
    # After the table: s1 takes 1.2.3.4, then every pool is removed: the counters of "test" read zero.
    alloc.assign("default/s1", ["1.2.3.4"])
    assert alloc.set_pools([]) == ["default/s1"]
    assert alloc.counters("test")["in_use"] == 0
    assert alloc.pool_status("test") == metallb_counters(0, 0, 0, 0)


# -- the differences, for the README --------------------------------------------------------------------------

STEP_TABLES = {
    "TestAssignment": ASSIGNMENT,
    "TestPoolAllocation": POOL_ALLOCATION,
    "TestAllocation": ALLOCATION,
    "TestBuggyIPs": BUGGY,
    "TestAutoAssign": AUTO_ASSIGN,
}
DIFFERENCES = sorted(
    {step.why for steps in STEP_TABLES.values() for step in steps if step.why}
    | {case.why for case in POOL_COUNT if case.why}
)


def test_differences_are_few_and_explained() -> None:
    rows = [(name, s.desc) for name, steps in STEP_TABLES.items() for s in steps if s.why]
    rows += [("TestPoolCount", c.desc) for c in POOL_COUNT if c.why]
    assert rows == [
        ("TestPoolAllocation", "s3 gets dualstack"),
        ("TestAutoAssign", "#17"),
        ("TestAutoAssign", "#18"),
        ("TestPoolCount", "BGP a BIG ipv6 range"),
    ]
    assert len(DIFFERENCES) == 3 and all(len(why) > 80 for why in DIFFERENCES)
