"""Stateful property test of the allocator against MetalLB's rules, checked from the outside.

Random small pools (IPv4 across a .255/.0 boundary and IPv6) and random allocate / assign / release /
set_pools sequences, against a model of the allocations kept by the test. After every step: the allocator
holds what the model holds, no address is held by two services unless the sharing rules allow it, every
address lies in its service's pool, each pool's counters count the model's addresses, and a failed call
changed nothing. After every fresh automatic allocation, the address is the lowest free-or-shareable one in
pool order; every allocation has the families the Service lists (PreferDualStack: some of them), and
requested addresses are refused unless they are one of each of those families, as MetalLB's controller
refuses them. A pool may serve only namespace "ns": assign given the Service's labels refuses it to others,
as MetalLB's Assign. The counters of a pool no longer configured read zero, and pool_status (MetalLB's int64
status) agrees with them.
"""

from __future__ import annotations

import ipaddress
import itertools
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from metallb_py import (
    AllocationError,
    Allocator,
    ConfigError,
    FamilyError,
    IPInUseError,
    NoPoolError,
    Pool,
    PoolExhaustedError,
    Port,
    ServiceAllocation,
)

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
V4_START = int(ipaddress.IPv4Address("192.0.2.240"))  # 32 addresses crossing 192.0.2.255 / 192.0.3.0
V6_START = int(ipaddress.IPv6Address("2001:db8::"))
KEYS = ["ns/a", "ns/b", "ns/c", "ns/d", "ns/e", "other/f", "other/g"]
POOL_NAMES = ["p0", "p1", "p2"]


@dataclass(frozen=True)
class Terms:
    ports: frozenset[tuple[int, str]]
    sharing_key: str | None
    backend_key: str


def render(first: IP, last: IP, spaced: bool) -> str:
    if first == last:
        return f"{first}/{first.max_prefixlen}"
    nets = list(ipaddress.summarize_address_range(first, last))
    if len(nets) == 1 and not spaced:
        return str(nets[0])
    return f"{first} - {last}" if spaced else f"{first}-{last}"


@st.composite
def pool_sets(draw: st.DrawFn) -> list[Pool]:
    """Carves the two small universes into segments and deals them to up to three pools."""
    pools: dict[str, list[str]] = {}
    for start, size, cls in ((V4_START, 32, ipaddress.IPv4Address), (V6_START, 16, ipaddress.IPv6Address)):
        cuts = sorted(draw(st.sets(st.integers(1, size - 1), max_size=4)))
        bounds = [0, *cuts, size]
        for lo, hi in itertools.pairwise(bounds):
            owner = draw(st.sampled_from([*POOL_NAMES, None]))
            if owner is not None:
                text = render(cls(start + lo), cls(start + hi - 1), draw(st.booleans()))
                pools.setdefault(owner, []).append(text)
    result = []
    for name, addresses in pools.items():
        order = draw(st.permutations(addresses))
        only_ns = ServiceAllocation(namespaces=["ns"]) if draw(st.integers(0, 3)) == 0 else None
        result.append(
            Pool(
                name,
                order,
                auto_assign=draw(st.booleans()),
                avoid_buggy_ips=draw(st.booleans()),
                service_allocation=only_ns,
            )
        )
    return result


def serves(pool: Pool, key: str) -> bool:
    sa = pool.service_allocation
    return sa is None or key.split("/", maxsplit=1)[0] in sa.namespaces


def allowed(pool: Pool, ip: IP) -> bool:
    buggy = ip.version == 4 and int(ip) % 256 in (0, 255)
    return pool.contains(ip) and not (pool.avoid_buggy_ips and buggy)


def pool_order(pool: Pool, version: int) -> list[IP]:
    out: list[IP] = []
    for first, last in pool.ranges():
        if first.version == version:
            out.extend(ipaddress.ip_address(x) for x in range(int(first), int(last) + 1))
    return out


def compatible(holders: list[Terms], terms: Terms) -> bool:
    return all(
        h.sharing_key is not None
        and h.sharing_key == terms.sharing_key
        and h.backend_key == terms.backend_key
        and not (h.ports & terms.ports)
        for h in holders
    )


ports_st = st.frozensets(
    st.tuples(st.sampled_from([53, 80, 443]), st.sampled_from(["TCP", "UDP"])), max_size=2
)
terms_st = st.builds(
    Terms,
    ports=ports_st,
    sharing_key=st.sampled_from([None, "k1", "k2"]),
    backend_key=st.sampled_from(["", "", "app=x"]),
)
families_st = st.sampled_from(
    [
        (("IPv4",), "SingleStack"),
        (("IPv6",), "SingleStack"),
        (("IPv4", "IPv6"), "RequireDualStack"),
        (("IPv6", "IPv4"), "PreferDualStack"),
        (("IPv4",), "PreferDualStack"),
    ]
)

ZERO_COUNTERS = dict.fromkeys(
    ["total", "in_use", "available", "total_ipv4", "in_use_ipv4", "total_ipv6", "in_use_ipv6"], 0
)
ZERO_STATUS = dict.fromkeys(["assignedIPv4", "assignedIPv6", "availableIPv4", "availableIPv6"], 0)


class AllocatorMachine(RuleBasedStateMachine):
    """Drives one Allocator and keeps a model of its allocations: each key's addresses as the calls that
    succeeded gave or asked for them, and the sharing terms of each. Expectations come from the model and
    the pools, never from the allocator's answers to other questions."""

    def __init__(self) -> None:
        super().__init__()
        self.alloc = Allocator()
        self.pools: list[Pool] = []
        self.model: dict[str, frozenset[IP]] = {}
        self.terms: dict[str, Terms] = {}

    # ---- the model ----

    def model_pool(self, key: str) -> Pool:
        """The one pool that holds every address of `key` (pools never overlap)."""
        ips = self.model[key]
        owners = [p for p in self.pools if all(p.contains(ip) for ip in ips)]
        assert len(owners) == 1, f"{key}'s {sorted(map(str, ips))} lie in pools {[p.name for p in owners]}"
        return owners[0]

    def holders_of(self, ip: IP, exclude: str) -> list[Terms]:
        return [self.terms[k] for k, ips in self.model.items() if ip in ips and k != exclude]

    # ---- observation ----

    def snapshot(self) -> dict[str, Any]:
        return {
            "keys": {k: (self.alloc.ips(k), self.alloc.pool_of(k)) for k in self.alloc.keys()},
            "counters": {p.name: self.alloc.counters(p.name) for p in self.pools},
            "pools": self.alloc.pools(),
        }

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Runs one allocator call; on an error, checks that nothing changed and returns the error."""
        before = self.snapshot()
        try:
            return fn(*args, **kwargs)
        except (AllocationError, ConfigError) as err:
            assert self.snapshot() == before, f"state changed by failed {fn.__name__}: {err}"
            return err

    # ---- rules ----

    @initialize(pools=pool_sets())
    def start(self, pools: list[Pool]) -> None:
        self.alloc = Allocator(pools)
        self.pools = pools

    @rule(
        key=st.sampled_from(KEYS), terms=terms_st, fam=families_st, named=st.sampled_from([None, *POOL_NAMES])
    )
    def allocate(self, key: str, terms: Terms, fam: tuple[tuple[str, ...], str], named: str | None) -> None:
        had = key in self.model
        before = {ip: self.holders_of(ip, key) for p in self.pools for v in (4, 6) for ip in pool_order(p, v)}
        result = self.call(
            self.alloc.allocate,
            key,
            ports=[Port(p, proto) for p, proto in sorted(terms.ports)],
            pool=named,
            sharing_key=terms.sharing_key,
            backend_key=terms.backend_key,
            ip_families=fam[0],
            ip_family_policy=fam[1],
        )
        if isinstance(result, Exception):
            if isinstance(result, PoolExhaustedError) and named is not None and fam[1] == "SingleStack":
                pool = next(p for p in self.pools if p.name == named)
                version = 4 if fam[0] == ("IPv4",) else 6
                eligible = [
                    ip
                    for ip in pool_order(pool, version)
                    if allowed(pool, ip) and compatible(before[ip], terms)
                ]
                assert not eligible, f"{named} reported exhausted but {eligible[:3]} are eligible"
            return
        versions = [f"IPv{ip.version}" for ip in result]
        if fam[1] == "PreferDualStack":
            assert versions and set(versions) <= set(fam[0]), (key, fam, versions)
        else:
            assert versions == list(fam[0]), (key, fam, versions)
        self.model[key] = frozenset(result)
        self.terms[key] = terms
        if had:
            return  # a key keeping its previous addresses is not a fresh choice
        pool = self.model_pool(key)
        for ip in result:
            candidates = [
                c for c in pool_order(pool, ip.version) if allowed(pool, c) and compatible(before[c], terms)
            ]
            assert candidates and candidates[0] == ip, f"{key} got {ip}, lowest eligible is {candidates[:1]}"

    @rule(
        key=st.sampled_from(KEYS),
        terms=terms_st,
        offsets=st.lists(st.integers(0, 47), min_size=1, max_size=2),
        known=st.booleans(),
    )
    def assign(self, key: str, terms: Terms, offsets: list[int], known: bool) -> None:
        ips = [
            ipaddress.ip_address(V4_START + o) if o < 32 else ipaddress.ip_address(V6_START + o - 32)
            for o in offsets
        ]
        conflict = any(not compatible(self.holders_of(ip, key), terms) for ip in ips)
        # With the Service known (its labels given), a pool that serves only "ns" refuses other namespaces.
        owners = [p for p in self.pools if all(p.contains(ip) for ip in ips)]
        refused = known and len(owners) == 1 and not serves(owners[0], key)
        result = self.call(
            self.alloc.assign,
            key,
            ips,
            ports=[Port(p, proto) for p, proto in sorted(terms.ports)],
            sharing_key=terms.sharing_key,
            backend_key=terms.backend_key,
            **({"labels": {}, "namespace_labels": {}} if known else {}),
        )
        if conflict or refused:
            assert isinstance(result, AllocationError), f"{key} took {ips} against the sharing or pool rules"
        if isinstance(result, NoPoolError):
            assert refused
        if isinstance(result, IPInUseError):
            assert conflict
        if not isinstance(result, Exception):
            self.model[key] = frozenset(ips)
            self.terms[key] = terms

    @rule(
        key=st.sampled_from(KEYS),
        terms=terms_st,
        fam=families_st,
        offsets=st.lists(st.integers(0, 47), min_size=1, max_size=2),
    )
    def allocate_requested(
        self, key: str, terms: Terms, fam: tuple[tuple[str, ...], str], offsets: list[int]
    ) -> None:
        ips = [
            ipaddress.ip_address(V4_START + o) if o < 32 else ipaddress.ip_address(V6_START + o - 32)
            for o in offsets
        ]
        versions = [f"IPv{ip.version}" for ip in ips]
        # MetalLB's controller (allocateIPs): one requested address of each of the Service's families, no
        # other, whatever the policy; anything else is refused before any pool is looked at.
        fits = len(set(versions)) == len(versions) and set(versions) == set(fam[0])
        result = self.call(
            self.alloc.allocate,
            key,
            ports=[Port(p, proto) for p, proto in sorted(terms.ports)],
            requested=ips,
            sharing_key=terms.sharing_key,
            backend_key=terms.backend_key,
            ip_families=fam[0],
            ip_family_policy=fam[1],
        )
        if not fits:
            assert isinstance(result, FamilyError), f"{key} ({fam}) requesting {versions}: {result!r}"
            return
        if isinstance(result, Exception):
            return
        assert set(result) == set(ips), (key, ips, result)
        assert compatible([t for ip in ips for t in self.holders_of(ip, key)], terms), (
            f"{key} took {ips} against the sharing rules"
        )
        self.model[key] = frozenset(ips)
        self.terms[key] = terms

    @rule(key=st.sampled_from(KEYS))
    def release(self, key: str) -> None:
        assert self.alloc.release(key) == (key in self.model)
        self.model.pop(key, None)
        self.terms.pop(key, None)

    @rule(pools=pool_sets())
    def set_pools(self, pools: list[Pool]) -> None:
        # A key keeps its addresses when some new pool allows them all (MetalLB re-homes it), else it goes.
        expected = {
            k for k, ips in self.model.items() if not any(all(allowed(p, ip) for ip in ips) for p in pools)
        }
        evicted = self.alloc.set_pools(pools)
        removed = {p.name for p in self.pools} - {p.name for p in pools}
        self.pools = pools
        assert set(evicted) == expected
        for name in removed:  # counters of a removed pool read zero, as in MetalLB
            assert (self.alloc.counters(name), self.alloc.pool_status(name)) == (ZERO_COUNTERS, ZERO_STATUS)
        for key in expected:
            del self.model[key], self.terms[key]

    # ---- invariants ----

    @invariant()
    def the_allocator_holds_what_the_model_holds(self) -> None:
        assert sorted(self.alloc.keys()) == sorted(self.model)
        for key, ips in self.model.items():
            assert set(self.alloc.ips(key)) == ips, key
            assert self.alloc.pool_of(key) == self.model_pool(key).name, key

    @invariant()
    def sharing_rules_hold(self) -> None:
        by_ip: dict[IP, list[str]] = {}
        for key, ips in self.model.items():
            for ip in ips:
                by_ip.setdefault(ip, []).append(key)
        for ip, keys in by_ip.items():
            assert sorted(self.alloc.holders(ip)) == sorted(keys)
            for i, a in enumerate(keys):
                for b in keys[i + 1 :]:
                    assert compatible([self.terms[a]], self.terms[b]), f"{ip} held by {a} and {b}"

    @invariant()
    def addresses_lie_in_the_services_pool(self) -> None:
        for key, ips in self.model.items():
            pool = self.model_pool(key)
            assert ips and all(allowed(pool, ip) for ip in ips), (key, ips, pool.name)
            assert len({ip.version for ip in ips}) == len(ips)

    @invariant()
    def counters_count_the_models_addresses(self) -> None:
        for pool in self.pools:
            # Addresses the pool may hand out (MetalLB's rules), and those the model says are held from it:
            # an address shared by several Services counts once.
            total = {v: sum(allowed(pool, ip) for ip in pool_order(pool, v)) for v in (4, 6)}
            held = {ip for key, ips in self.model.items() if self.model_pool(key) is pool for ip in ips}
            in_use = {v: sum(ip.version == v for ip in held) for v in (4, 6)}
            expected = {
                "total": total[4] + total[6],
                "in_use": len(held),
                "available": total[4] + total[6] - len(held),
                "total_ipv4": total[4],
                "in_use_ipv4": in_use[4],
                "total_ipv6": total[6],
                "in_use_ipv6": in_use[6],
            }
            assert self.alloc.counters(pool.name) == expected, pool.name
            # MetalLB's status counters: the same numbers, these pools being far below 2^62 addresses.
            assert self.alloc.pool_status(pool.name) == {
                "assignedIPv4": in_use[4],
                "assignedIPv6": in_use[6],
                "availableIPv4": total[4] - in_use[4],
                "availableIPv6": total[6] - in_use[6],
            }, pool.name


AllocatorMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
TestAllocatorMachine = AllocatorMachine.TestCase
