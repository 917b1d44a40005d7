"""Hostile Services through the Service reader and the controller's decisions, without an API server.

Hypothesis builds Service objects the way a careless or hostile user could write them: MetalLB's annotations
(current and deprecated forms, both at once, empty) with addresses in and out of the pools, garbage, huge and
non-ASCII values and wrong types; spec fields (type, ports, ipFamilies, ipFamilyPolicy, loadBalancerIP,
loadBalancerClass, externalTrafficPolicy, selector) likewise; odd metadata; statuses showing addresses.
Sequences of them (a name seen again is an update; some are deleted) go through `reconcile_service` against
one Allocator, their status written back as the controller would write it. Properties:

- `service_request` returns or raises ServiceError, nothing else; its message names the Service and a
  field of the object (an annotation key, a metadata or spec path that is there, or a required one missing).
- `reconcile_service` never raises; every Warning Event names the field at fault in the same way.
- No address is held by two Services, in the allocator or in what their statuses show, unless MetalLB's
  sharing rules allow it: the same non-empty sharing key, no port (number and protocol) in common, and the
  same backend (selector, under externalTrafficPolicy Local): the rule as tests/_hostile.py reads it, from
  MetalLB's documentation rather than the code under test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _hostile import PREFIX_CHOICES, Terms, field_paths, may_share, mostly, one_in, terms
from metallb_py._core import Allocator, Pool, ServiceAllocation
from metallb_py.controller.reconcile import ALLOCATION_FAILED, WARNING, Decision, Outcome, reconcile_service
from metallb_py.errors import AllocationError, ConfigError
from metallb_py.ipam import ServiceError, service_key, service_request

# METALLB_FUZZ_EXAMPLES raises the count for long sessions (the default keeps the suite quick).
HOSTILE = settings(
    max_examples=int(os.environ.get("METALLB_FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

LB_CLASS = None  # the controller's class: unset, as MetalLB's default
# How reconcile_service words the Warning Events of a rejection (each followed by the error's message).
CANNOT_READ = "Cannot read the Service: "
FAILED_TO_ALLOCATE = "Failed to allocate an IP: "


def pools() -> list[Pool]:
    return [
        Pool("auto", ["10.1.0.0/29", "fd00:1::/125"]),
        Pool("manual", ["10.2.0.0/30"], auto_assign=False),
        Pool("v6", ["fd00:2::/126"]),
        Pool("one", ["10.3.0.7/32"], auto_assign=False),
        Pool("picky", ["10.4.0.0/30"], service_allocation=ServiceAllocation(namespaces=["blue"])),
    ]


POOL_NAMES = ["auto", "manual", "v6", "one", "picky", "nope"]
IPS = [
    "10.1.0.0",
    "10.1.0.1",
    "10.1.0.7",
    "10.2.0.1",
    "10.3.0.7",
    "10.4.0.2",
    "fd00:1::1",
    "fd00:2::3",
    "FD00:1::0001",
    "192.0.2.1",
    "2001:db8::1",
]
GARBAGE = [
    "",
    " ",
    ",",
    "10.1.0.1,",
    "10.1.0.1/32",
    "fe80::1%eth0",
    "10.1.0.256",
    "1e1",
    "None",
    "null",
    "\x00",
    "\ud800",
    "ü",
    "10.1.0.1;fd00:1::2",
    "x" * 5000,
]
TEXT = st.sampled_from(GARBAGE) | st.text(max_size=12)
# What a JSON or YAML value may be, where a string belongs.
WRONG = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.lists(st.integers(), max_size=2)
)


IP_LIST = st.lists(st.sampled_from(IPS), min_size=1, max_size=3).map(",".join)
ANNOTATION_SUFFIXES = ["loadBalancerIPs", "address-pool", "allow-shared-ip"]
ANNOTATION_VALUES = {
    "loadBalancerIPs": mostly(st.sampled_from(IPS) | IP_LIST, TEXT, 4),
    "address-pool": mostly(st.sampled_from(POOL_NAMES), TEXT, 4),
    "allow-shared-ip": mostly(st.sampled_from(["k", "k", "j", ""]), TEXT, 4),
}


@st.composite
def annotation_maps(draw: st.DrawFn) -> object:
    out: dict[Any, Any] = {}
    for suffix in draw(st.lists(st.sampled_from(ANNOTATION_SUFFIXES), max_size=3, unique=True)):
        for prefix in draw(PREFIX_CHOICES):
            out[prefix + suffix] = draw(ANNOTATION_VALUES[suffix])
    if draw(one_in(10)):
        out[
            draw(
                st.sampled_from(
                    ["other/x", "metallb.io/address-pool", "\ud800", "metallb.io/ip-allocated-from-pool"]
                )
            )
        ] = draw(WRONG | TEXT)
    if draw(one_in(20)):
        out[draw(st.integers())] = "non-string key"
    return draw(mostly(st.just(out), st.sampled_from([None, "garbage", []])))


@st.composite
def ports(draw: st.DrawFn) -> object:
    items = []
    for _ in range(draw(st.integers(0, 3))):
        port: dict[str, Any] = {}
        if not draw(one_in(10)):
            port["port"] = draw(
                mostly(st.sampled_from([80, 80, 443, 53]), st.integers(-5, 70000) | WRONG | TEXT)
            )
        if draw(st.booleans()):
            port["protocol"] = draw(mostly(st.sampled_from(["TCP", "UDP", "SCTP"]), st.just("tcp") | WRONG))
        if draw(one_in(5)):
            port["name"] = draw(TEXT)
        items.append(port if not draw(one_in(20)) else draw(WRONG | TEXT))
    return draw(mostly(st.just(items), st.sampled_from([None, "80"])))


FAMILIES = st.lists(st.sampled_from(["IPv4", "IPv6"]), min_size=1, max_size=2)
# "a,tier=b" and "b=c" are no label values (the API server refuses them), but a file may hold them.
SELECTOR = st.dictionaries(
    st.sampled_from(["app", "tier"]), st.sampled_from(["a", "b", "a,tier=b", "b=c"]), max_size=2
)
SPEC_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "type": mostly(
        st.just("LoadBalancer"), st.sampled_from(["ClusterIP", "NodePort", "loadbalancer"]) | WRONG, 5
    ),
    "ports": ports(),
    "ipFamilies": mostly(
        FAMILIES, st.lists(st.sampled_from(["IPv4", "IPv6", "ipv4", "IPv5"]), max_size=3) | WRONG
    ),
    "ipFamilyPolicy": mostly(
        st.sampled_from(["SingleStack", "PreferDualStack", "RequireDualStack"]), st.just("Dual") | WRONG
    ),
    "loadBalancerIP": mostly(st.sampled_from(IPS), TEXT | WRONG, 4),
    "loadBalancerClass": mostly(st.just(""), st.just("other.io/lb") | WRONG, 3),
    "externalTrafficPolicy": mostly(st.sampled_from(["Cluster", "Local"]), st.just("local") | WRONG),
    "selector": mostly(
        SELECTOR, st.dictionaries(st.sampled_from(["app", "\ud800"]), WRONG, max_size=1) | WRONG
    ),
    "clusterIP": mostly(st.sampled_from(["10.96.0.10", "fd00:96::10", "None", ""]), WRONG),
    "clusterIPs": mostly(
        st.lists(st.sampled_from(["10.96.0.10", "fd00:96::10"]), max_size=2), st.just(["x"]) | WRONG
    ),
}
NAMES = ["a", "b", "c", "d", "e", "f"]


@st.composite
def service(draw: st.DrawFn) -> object:
    metadata: dict[Any, Any] = {}
    metadata["name"] = draw(mostly(st.sampled_from(NAMES), WRONG | TEXT, 30))
    namespace = draw(
        mostly(st.sampled_from(["default", "blue", None]), st.sampled_from(["", "a/b"]) | WRONG, 20)
    )
    if namespace is not None:
        metadata["namespace"] = namespace
    notes = draw(annotation_maps())
    if notes is not None:
        metadata["annotations"] = notes
    if draw(one_in(10)):
        metadata["labels"] = draw(
            st.dictionaries(
                st.sampled_from(["app", "x"]), mostly(st.sampled_from(["a", "b"]), TEXT | WRONG), max_size=2
            )
        )
    spec = {k: draw(SPEC_VALUES[k]) for k in sorted(draw(st.sets(st.sampled_from(sorted(SPEC_VALUES)))))}
    if not draw(one_in(3)):
        spec["type"] = "LoadBalancer"
    svc: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}
    if draw(one_in(5)):
        ips = draw(st.lists(st.sampled_from(IPS) | TEXT, max_size=2))
        svc["status"] = {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}}
    choice = draw(mostly(st.just(""), st.sampled_from(["garbage", "no metadata", "bad spec"]), 30))
    if choice == "garbage":
        return draw(WRONG | TEXT)  # not even a mapping
    if choice == "no metadata":
        svc.pop("metadata")
    if choice == "bad spec":
        svc["spec"] = draw(WRONG | TEXT)
    return svc


# -- fields named by messages -------------------------------------------------------------------------------


def named_field(message: str, svc: object) -> str:
    """The field a message names (after "Service ns/name: "), checked to be one of `svc`: a path that is
    there, or whose last step is a required field that is missing. Fails the test otherwise."""
    try:
        prefix = f"Service {service_key(svc)}: "
    except ServiceError:
        prefix = "Service: "  # no key to name
    assert message.startswith(prefix), f"message does not start with the Service: {message!r}"
    rest = message.removeprefix(prefix)
    for path in candidate_paths(svc):
        if rest.startswith(path + ": "):
            return path
    if rest.startswith("expected a Service object"):
        assert not isinstance(svc, dict)
        return ""
    raise AssertionError(f"message names no field of the Service: {message!r}\nService: {svc!r}")


def candidate_paths(svc: object) -> list[str]:
    """Every path of `svc` a message could name (longest first), plus the required fields that may be
    missing and the fields an allocation is decided by."""
    paths = field_paths(svc)
    spec = svc.get("spec") if isinstance(svc, dict) else None
    required = ["metadata", "metadata.name"]
    port_items = spec.get("ports") if isinstance(spec, dict) else None
    if isinstance(port_items, list):
        required += [f"spec.ports[{i}].port" for i in range(len(port_items))]
    # Fields an allocation is decided by even when absent (the defaults: IPv4, SingleStack, any labels).
    decided = ["spec.ipFamilies", "spec.ipFamilyPolicy", "metadata.labels"]
    return sorted({p for p in paths + required + decided if p}, key=len, reverse=True)


# -- the sharing rule, as an unreadable object counts ----------------------------------------------------


def safe_terms(svc: Mapping[str, Any]) -> Terms:
    """`terms`, or no sharing at all for an object too broken to read them from."""
    try:
        found = terms(svc)
        hash(found)
    except (KeyError, TypeError, AttributeError):
        return Terms("", frozenset(), frozenset())
    return found if isinstance(found.sharing_key, str) else Terms("", frozenset(), frozenset())


# -- the properties -----------------------------------------------------------------------------------------


@HOSTILE
@given(service())
def test_service_request_returns_or_names_the_field(svc: object) -> None:
    try:
        request = service_request(svc)
    except ServiceError as exc:
        named_field(str(exc), svc)
        return
    assert isinstance(svc, dict)
    assert request.key == service_key(svc)


def key_of(svc: object, i: int) -> str:
    """The key the controller would process it under (the API server's names are always valid)."""
    try:
        return service_key(svc)
    except ServiceError:
        return f"default/unnamed-{i}"


def shown(decision: Decision) -> tuple[str, ...]:
    """What the controller says the Service holds after the decision's writes (its status shows it)."""
    if decision.status_ips is not None:
        return decision.status_ips
    return decision.ips if decision.outcome in (Outcome.UNCHANGED, Outcome.UPDATED, Outcome.INVALID) else ()


def run(steps: list[tuple[object, bool]]) -> list[tuple[str, dict[str, Any]]]:
    """The steps through `reconcile_service`, as the controller's worker would take them, checking after
    each that no address is held twice against the sharing rules, and that an address given to a Service
    is one every other holder allows it to share as that holder reads now. Returns each Warning Event's
    message about a rejection, with the Service it is about."""
    allocator = Allocator(pools())
    cluster: dict[str, dict[str, Any]] = {}  # key -> the Service as the API would show it now
    held: dict[str, tuple[str, ...]] = {}  # key -> what the controller says it holds
    rejections = []
    for i, (svc, delete) in enumerate(steps):
        if not isinstance(svc, dict):
            continue  # the API server only ever gives mappings
        key = key_of(svc, i)
        if delete and key in cluster:
            reconcile_service(key, None, allocator, lb_class=LB_CLASS)
            del cluster[key]
            held.pop(key, None)
        else:
            namespace = key.split("/", 1)[0]
            labels = {"kubernetes.io/metadata.name": namespace}
            decision = reconcile_service(key, svc, allocator, lb_class=LB_CLASS, namespace_labels=labels)
            rejections += [
                (event.message, svc)
                for event in decision.events
                if event.type == WARNING and event.reason == ALLOCATION_FAILED
            ]
            if decision.status_ips is not None:
                ingress = [{"ip": ip} for ip in decision.status_ips]
                svc = {**svc, "status": {"loadBalancer": {"ingress": ingress}}}  # noqa: PLW2901 (as written)
            cluster[key] = svc
            before = set(held.get(key, ()))
            held[key] = shown(decision)
            for ip in set(held[key]) - before:
                others = [k for k, ips in held.items() if k != key and ip in ips]
                for other in others:
                    assert may_share([safe_terms(svc), safe_terms(cluster[other])]), (
                        f"{ip} given to {key} on {safe_terms(svc)}, though {other} holds it and reads "
                        f"{safe_terms(cluster[other])} now"
                    )
        assert_no_address_twice(allocator, cluster, held)
    return rejections


STEPS = st.lists(st.tuples(service(), one_in(8)), max_size=25)


@HOSTILE
@given(STEPS)
def test_reconcile_never_raises_never_gives_an_address_twice_and_names_unreadable_fields(
    steps: list[tuple[object, bool]],
) -> None:
    for message, svc in run(steps):
        if message.startswith(CANNOT_READ):
            named_field(message.removeprefix(CANNOT_READ), svc)


@HOSTILE
@given(STEPS)
def test_every_allocation_failure_event_names_the_field(steps: list[tuple[object, bool]]) -> None:
    for message, svc in run(steps):
        if message.startswith(FAILED_TO_ALLOCATE):
            named_field(message.removeprefix(FAILED_TO_ALLOCATE), svc)


@HOSTILE
@given(st.lists(service(), max_size=12))
def test_allocation_errors_name_the_field(services: list[object]) -> None:
    allocator = Allocator(pools())
    for svc in services:
        try:
            request = service_request(svc)
        except ServiceError:
            continue
        try:
            request.allocate(allocator, namespace_labels={"kubernetes.io/metadata.name": request.namespace})
        except (AllocationError, ConfigError) as exc:
            named_field(str(exc), svc)


def assert_no_address_twice(
    allocator: Allocator, cluster: Mapping[str, dict[str, Any]], held: Mapping[str, tuple[str, ...]]
) -> None:
    for key, ips in held.items():
        assert sorted(str(ip) for ip in allocator.ips(key)) == sorted(ips), key
    holders: dict[str, list[str]] = {}
    for key, ips in held.items():
        for ip in ips:
            holders.setdefault(ip, []).append(key)
    for ip, keys in holders.items():
        if len(keys) < 2:
            continue
        readable = []
        for key in keys:
            try:
                service_request(cluster[key])
            except ServiceError:
                # Unreadable now: it keeps what it had, as on any error; the others joined it when it
                # allowed them (checked as they joined, above), or joined it since: also checked there.
                continue
            readable.append(terms(cluster[key]))
        assert may_share(readable), f"{ip} held by {keys} on terms {readable}"


@HOSTILE
@given(SELECTOR, SELECTOR)
def test_local_services_share_an_address_only_with_the_same_selector(
    first: dict[str, str], second: dict[str, str]
) -> None:
    allocator = Allocator(pools())
    results = []
    for name, selector, port in (("a", first, 80), ("b", second, 443)):
        svc = {
            "metadata": {
                "name": name,
                "namespace": "default",
                "annotations": {"metallb.io/allow-shared-ip": "k"},
            },
            "spec": {
                "type": "LoadBalancer",
                "ports": [{"port": port}],
                "loadBalancerIP": "10.1.0.1",
                "externalTrafficPolicy": "Local",
                "selector": selector,
            },
        }
        try:
            results.append(service_request(svc).allocate(allocator))
        except ServiceError as exc:
            named_field(str(exc), svc)  # refused as unreadable: names the selector
            return
        except AllocationError:
            results.append([])
    assert results[0] == ["10.1.0.1"]
    assert (results[1] == ["10.1.0.1"]) == (first == second), (first, second, results)


def small_pool_service(name: str, port: int, **annotations: str) -> dict[str, Any]:
    notes = {
        "metallb.io/address-pool": "one",
        **{f"metallb.io/{k.replace('_', '-')}": v for k, v in annotations.items()},
    }
    return {
        "metadata": {"name": name, "namespace": "default", "annotations": notes},
        "spec": {"type": "LoadBalancer", "ports": [{"port": port}]},
    }


def test_no_service_joins_the_address_of_one_that_cannot_be_read() -> None:
    run(
        [
            (small_pool_service("a", 80, allow_shared_ip="k"), False),
            # Its key changed, and its object broken at once: it keeps 10.3.0.7, as on any error.
            (small_pool_service("a", 80, allow_shared_ip="other", loadBalancerIPs="junk"), False),
            # Its old key: it must not get 10.3.0.7, which `a` no longer shares with "k".
            (small_pool_service("b", 443, allow_shared_ip="k"), False),
        ]
    )
