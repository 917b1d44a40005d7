"""Every core error variant reaches Python as its own class from metallb_py.errors, mapped in one place."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from metallb_py import (
    AllocationError,
    Allocator,
    ConfigError,
    FamilyError,
    IPInUseError,
    IPNotAllowedError,
    LabelSelector,
    NoPoolError,
    Pool,
    PoolExhaustedError,
    ServiceAllocation,
    UnknownPoolError,
    validate_pools,
)
from metallb_py import errors as errors_module


def seeded() -> Allocator:
    team = ServiceAllocation(namespaces=["team"])
    return Allocator(
        [
            Pool("one", ["192.0.2.1/32"]),
            Pool("team", ["198.51.100.0/30"], service_allocation=team),
            Pool("manual", ["203.0.113.0/30"], auto_assign=False),
        ]
    )


CASES: list[tuple[str, Callable[[Allocator], object], type[Exception], str]] = [
    ("exhausted", lambda a: [a.allocate("x/a"), a.allocate("x/b")], PoolExhaustedError, 'pool "one"'),
    ("in use", lambda a: [a.allocate("x/a"), a.assign("x/b", ["192.0.2.1"])], IPInUseError, '"x/a"'),
    ("unknown pool", lambda a: a.allocate("x/a", pool="nope"), UnknownPoolError, '"nope"'),
    ("not in a pool", lambda a: a.allocate("x/a", requested=["192.0.2.99"]), IPNotAllowedError, "no pool"),
    ("bad family", lambda a: a.allocate("x/a", ip_families=["IPv5"]), FamilyError, "IPv5"),
    ("bad policy", lambda a: a.allocate("x/a", ip_family_policy="Both"), FamilyError, "Both"),
    ("no ipv6", lambda a: a.allocate("x/a", ip_families=["IPv6"]), NoPoolError, "IPv6"),
    ("not served", lambda a: a.allocate("x/a", pool="team"), NoPoolError, "serviceAllocation"),
]


@pytest.mark.parametrize(("name", "action", "cls", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_each_allocation_error_maps_to_its_class(
    name: str, action: Callable[[Allocator], object], cls: type[Exception], fragment: str
) -> None:
    allocator = seeded()
    with pytest.raises(cls) as info:
        action(allocator)
    assert type(info.value) is cls, name
    assert isinstance(info.value, AllocationError)
    assert fragment in str(info.value)


def test_config_errors_carry_path_and_reason() -> None:
    with pytest.raises(ConfigError) as info:
        Pool("blue", ["192.0.2.0/24", "192.0.2.1/24"])
    assert info.value.path == 'pool "blue": addresses[1]'
    assert "did you mean 192.0.2.0/24" in (info.value.reason or "")
    assert isinstance(info.value, ValueError)

    with pytest.raises(ConfigError, match=r'pools "a" and "b"'):
        validate_pools([Pool("a", ["192.0.2.0/25"]), Pool("b", ["192.0.2.100-192.0.2.110"])])
    with pytest.raises(ConfigError, match=r"spec.serviceSelectors\[0\].matchExpressions\[0\].operator"):
        LabelSelector(match_expressions=[("k", "Equal", ["v"])], path="spec.serviceSelectors[0]")
    with pytest.raises(ConfigError, match="duplicate pool name"):
        Allocator([Pool("a", ["192.0.2.0/25"]), Pool("a", ["192.0.2.128/25"])])


def test_every_allocation_error_is_raised_somewhere() -> None:
    """Each AllocationError subclass in metallb_py.errors has a case above: none is unreachable."""
    covered = {cls for _, _, cls, _ in CASES}
    declared = {
        cls
        for cls in vars(errors_module).values()
        if isinstance(cls, type) and issubclass(cls, AllocationError) and cls is not AllocationError
    }
    assert declared == covered


def test_failed_allocation_leaves_state_unchanged() -> None:
    allocator = seeded()
    allocator.allocate("x/a")
    before = (allocator.keys(), allocator.ips("x/a"), allocator.counters("one"))
    for action in (lambda: allocator.allocate("x/b"), lambda: allocator.assign("x/b", ["192.0.2.1"])):
        with pytest.raises(AllocationError):
            action()
        assert (allocator.keys(), allocator.ips("x/a"), allocator.counters("one")) == before
