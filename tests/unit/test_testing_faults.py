"""The fault lab's pure parts: reading a Service into an Observation, MetalLB's sharing rule, and the checker.

The checker is tested the way it will be used: histories written by a model of a correct controller (random
creates, deletes, touches and re-asks, addresses handed out by MetalLB's sharing rule) pass; the same
histories with one duplicate, one unasked move or one stuck Service spliced in fail, naming it.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from metallb_py.testing.faults import (
    DEFAULT_TOXIPROXY_VERSION,
    POOL_ANNOTATION,
    Observation,
    Toxic,
    ToxiproxyNotBuiltError,
    addresses,
    check,
    ensure_toxiproxy_binary,
    may_share,
    observe,
)

REPO = Path(__file__).resolve().parents[2]
POOL = addresses("192.0.2.1-192.0.2.6")


def svc(
    name: str,
    *,
    ips: tuple[str, ...] = (),
    rv: int = 1,
    uid: str = "u1",
    sharing: str | None = None,
    ports: tuple[tuple[int, str], ...] = ((80, "TCP"),),
    local: bool = False,
    selector: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    notes = dict(annotations or {})
    if sharing is not None:
        notes["metallb.io/allow-shared-ip"] = sharing
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "ports": [{"port": p, "protocol": proto} for p, proto in ports],
        "selector": selector or {"app": name},
    }
    if local:
        spec["externalTrafficPolicy"] = "Local"
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": uid,
            "resourceVersion": str(rv),
            "labels": labels or {},
            "annotations": notes,
        },
        "spec": spec,
        "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ips]}},
    }


# -- reading -------------------------------------------------------------------------------------------------


def test_the_pinned_version_is_the_one_build_sh_builds() -> None:
    gomod = (REPO / "tools" / "toxiproxy" / "go.mod").read_text()
    assert re.search(rf"github.com/Shopify/toxiproxy/v2 {re.escape(DEFAULT_TOXIPROXY_VERSION)}\b", gomod)


def test_a_missing_binary_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(ToxiproxyNotBuiltError, match=r"tools/toxiproxy/build\.sh"):
        ensure_toxiproxy_binary(tmp_path)


def test_toxics_refuse_what_toxiproxy_would_misread() -> None:
    with pytest.raises(ValueError, match="unknown toxic"):
        Toxic("limit_data", {"bytes": 1})
    with pytest.raises(ValueError, match="negative"):
        Toxic.latency(-1)
    with pytest.raises(ValueError, match="stream"):
        Toxic.bandwidth(1, stream="sideways")
    assert Toxic.timeout().body() == {
        "name": "timeout_downstream",
        "type": "timeout",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"timeout": 0},
    }


def test_observe_reads_what_the_sharing_rule_needs() -> None:
    obs = observe(
        "ADDED",
        svc(
            "a",
            ips=("192.0.2.2", "192.0.2.1"),
            rv=7,
            sharing="k",
            ports=((53, "UDP"), (53, "TCP")),
            local=True,
            selector={"b": "2", "a": "1"},
        ),
    )
    assert (obs.key, obs.uid, obs.resource_version) == ("ns/a", "u1", 7)
    assert obs.ips == ("192.0.2.1", "192.0.2.2")
    assert obs.sharing_key == "k"
    assert obs.ports == frozenset({(53, "UDP"), (53, "TCP")})
    assert obs.backend_key == "a=1,b=2"
    assert observe("ADDED", svc("a")).backend_key == ""  # Cluster: the selector does not matter


def test_the_current_annotation_wins_over_the_deprecated_one_even_empty() -> None:
    both = svc(
        "a", annotations={"metallb.universe.tf/allow-shared-ip": "old", "metallb.io/allow-shared-ip": ""}
    )
    assert observe("ADDED", both).sharing_key is None
    old = svc("a", annotations={"metallb.universe.tf/allow-shared-ip": "old"})
    assert observe("ADDED", old).sharing_key == "old"


def test_intent_is_what_the_user_asked_and_nothing_else() -> None:
    base = observe("ADDED", svc("a")).intent
    # The controller's own writes and unrelated annotations are not a request.
    assert (
        observe("MODIFIED", svc("a", ips=("192.0.2.1",), annotations={POOL_ANNOTATION: "p"})).intent == base
    )
    assert observe("MODIFIED", svc("a", annotations={"example.com/touched": "1"})).intent == base
    # What MetalLB reads is.
    assert observe("MODIFIED", svc("a", labels={"tier": "x"})).intent != base
    assert observe("MODIFIED", svc("a", ports=((81, "TCP"),))).intent != base
    assert observe("MODIFIED", svc("a", annotations={"metallb.io/address-pool": "p"})).intent != base


@pytest.mark.parametrize(
    ("a", "b", "shared"),
    [
        (svc("a", sharing="k"), svc("b", sharing="k", ports=((443, "TCP"),)), True),
        (svc("a", sharing="k"), svc("b", sharing="k", ports=((80, "UDP"),)), True),
        (svc("a", sharing="k"), svc("b", sharing="k"), False),  # port 80/TCP twice
        (svc("a", sharing="k"), svc("b", sharing="j", ports=((443, "TCP"),)), False),
        (svc("a"), svc("b", sharing="k", ports=((443, "TCP"),)), False),
        (svc("a", sharing="k"), svc("b", ports=((443, "TCP"),)), False),
        # Local: the same selector, or no sharing.
        (
            svc("a", sharing="k", local=True, selector={"x": "1"}),
            svc("b", sharing="k", local=True, selector={"x": "1"}, ports=((443, "TCP"),)),
            True,
        ),
        (
            svc("a", sharing="k", local=True),
            svc("b", sharing="k", local=True, ports=((443, "TCP"),)),
            False,
        ),
        (
            svc("a", sharing="k", local=True, selector={"x": "1"}),
            svc("b", sharing="k", ports=((443, "TCP"),)),
            False,
        ),
    ],
)
def test_may_share_is_metallbs_rule(a: dict[str, Any], b: dict[str, Any], shared: bool) -> None:
    oa, ob = observe("ADDED", a), observe("ADDED", b)
    assert may_share(oa, ob) is shared
    assert may_share(ob, oa) is shared


# -- a model of a correct controller -------------------------------------------------------------------------


@dataclass
class ModelService:
    name: str
    uid: str
    shape: int
    ips: tuple[str, ...] = ()
    touched: int = 0
    label: int = 0


# Shapes: (sharing key, ports, Local?) -- the first three may share one address with each other.
SHAPES: list[dict[str, Any]] = [
    {"sharing": "k", "ports": ((80, "TCP"),)},
    {"sharing": "k", "ports": ((443, "TCP"),)},
    {"sharing": "k", "ports": ((53, "UDP"),)},
    {"sharing": "k", "ports": ((80, "TCP"),)},  # clashes with shape 0 on the port
    {"sharing": None, "ports": ((80, "TCP"),)},
    {"sharing": "k", "ports": ((8080, "TCP"),), "local": True},  # backend key differs from shapes 0-2
]


@dataclass
class Model:
    """Plays user and controller; every change is an Observation with an even resourceVersion, so a test can
    splice one in between two of them at an odd one."""

    pool: list[str]
    services: dict[str, ModelService] = field(default_factory=dict)
    history: list[Observation] = field(default_factory=list)
    # Indices in history of the controller's assignments (after which nothing was asked).
    assignments: list[int] = field(default_factory=list)
    rv: int = 0

    def record(self, kind: str, s: ModelService) -> Observation:
        self.rv += 2
        shape = SHAPES[s.shape]
        body = svc(
            s.name,
            ips=s.ips,
            rv=self.rv,
            uid=s.uid,
            sharing=shape["sharing"],
            ports=shape["ports"],
            local=shape.get("local", False),
            labels={"l": str(s.label)},
            annotations={"example.com/touched": str(s.touched)},
        )
        obs = observe(kind, body)
        self.history.append(obs)
        return obs

    def latest(self) -> dict[str, Observation]:
        return {s.name: self.history_of(s.name) for s in self.services.values()}

    def history_of(self, name: str) -> Observation:
        return next(o for o in reversed(self.history) if o.key == f"ns/{name}")

    def free_for(self, s: ModelService, avoid: tuple[str, ...] = ()) -> str | None:
        me = observe("ADDED", self._body(s))
        for ip in [ip for ip in self.pool if ip not in avoid]:
            holders = [o for n, o in self.latest().items() if n != s.name and ip in o.ips]
            if all(may_share(h, me) for h in holders):
                return ip
        return None

    def _body(self, s: ModelService) -> dict[str, Any]:
        shape = SHAPES[s.shape]
        return svc(s.name, sharing=shape["sharing"], ports=shape["ports"], local=shape.get("local", False))

    def assign_all(self) -> None:
        for s in list(self.services.values()):
            if not s.ips and (ip := self.free_for(s)) is not None:
                s.ips = (ip,)
                self.record("MODIFIED", s)
                self.assignments.append(len(self.history) - 1)

    def step(self, op: str, name: str, shape: int) -> None:
        s = self.services.get(name)
        if op == "create" and s is None:
            self.services[name] = s = ModelService(name, uuid.uuid4().hex, shape)
            self.record("ADDED", s)
        elif op == "delete" and s is not None:
            self.record("DELETED", s)
            del self.services[name]
        elif op == "touch" and s is not None:  # not a request: nothing may move
            s.touched += 1
            self.record("MODIFIED", s)
        elif op == "reask" and s is not None and s.ips:
            # The user changes a label; the controller then moves the Service (allowed: it was asked).
            s.label += 1
            self.record("MODIFIED", s)
            held = s.ips
            ip = self.free_for(s, avoid=held)
            s.ips = (ip,) if ip is not None else held
            if s.ips != held:
                self.record("MODIFIED", s)
                self.assignments.append(len(self.history) - 1)
        elif op == "assign":
            self.assign_all()


OP = st.tuples(
    st.sampled_from(["create", "create", "delete", "touch", "reask", "assign", "assign"]),
    st.sampled_from(["a", "b", "c", "d", "e", "f", "g", "h"]),
    st.integers(0, len(SHAPES) - 1),
)
OPS = st.lists(OP, max_size=60)


# Long enough that two Services which may not share are usually assigned at some moment.
BUSY_OPS = st.lists(OP, min_size=12, max_size=60)


def run_model(ops: list[tuple[str, str, int]]) -> Model:
    model = Model(POOL)
    for op in ops:
        model.step(*op)
    model.assign_all()
    return model


def splice(history: list[Observation], obs: Observation) -> list[Observation]:
    return sorted([*history, obs], key=lambda o: o.resource_version)


def with_ips(obs: Observation, ips: tuple[str, ...], rv: int) -> Observation:
    return Observation(**{**obs.__dict__, "ips": ips, "resource_version": rv, "kind": "MODIFIED"})


@settings(max_examples=150, deadline=None)
@given(OPS, st.randoms(use_true_random=False))
def test_a_correct_controllers_history_passes_in_any_order(
    ops: list[tuple[str, str, int]], rng: random.Random
) -> None:
    model = run_model(ops)
    verdict = check(model.history, POOL)
    assert verdict.ok, verdict
    shuffled = list(model.history)
    rng.shuffle(shuffled)
    assert check(shuffled, POOL) == verdict


@settings(max_examples=150, deadline=None)
@given(BUSY_OPS, st.data())
def test_a_duplicate_at_any_moment_fails(ops: list[tuple[str, str, int]], data: st.DataObject) -> None:
    model = run_model(ops)
    # Every (moment, holder, intruder) where the intruder may not share the holder's address.
    state: dict[str, Observation] = {}
    candidates = []
    for moment, obs in enumerate(model.history):
        if obs.kind == "DELETED":
            state.pop(obs.key, None)
        else:
            state[obs.key] = obs
        candidates += [
            (moment, a, b)
            for a in state.values()
            for b in state.values()
            if a.ips and a.key != b.key and not may_share(a, b)
        ]
    assume(candidates)
    moment, holder, intruder = data.draw(st.sampled_from(candidates))
    bad = with_ips(intruder, holder.ips, model.history[moment].resource_version + 1)
    verdict = check(splice(model.history, bad), POOL)
    pair = tuple(sorted((holder.key, intruder.key)))
    assert any(d.keys == pair and d.ip == holder.ips[0] for d in verdict.duplicates), verdict


@settings(max_examples=150, deadline=None)
@given(OPS, st.data())
def test_an_unasked_move_fails(ops: list[tuple[str, str, int]], data: st.DataObject) -> None:
    model = run_model(ops)
    assume(model.assignments)
    given_at = model.history[data.draw(st.sampled_from(model.assignments))]
    elsewhere = data.draw(st.sampled_from([(), *((ip,) for ip in POOL if (ip,) != given_at.ips)]))
    bad = with_ips(given_at, elsewhere, given_at.resource_version + 1)
    verdict = check(splice(model.history, bad), POOL)
    assert any(
        m.key == given_at.key and m.before == given_at.ips and m.after == elsewhere for m in verdict.moves
    ), verdict


@settings(max_examples=150, deadline=None)
@given(OPS, st.data())
def test_a_service_left_unassigned_with_a_free_address_is_stuck(
    ops: list[tuple[str, str, int]], data: st.DataObject
) -> None:
    model = run_model(ops)
    assigned = [o for o in model.latest().values() if o.ips]
    assume(assigned)
    victim = data.draw(st.sampled_from(assigned))
    bad = with_ips(victim, (), model.rv + 1)
    verdict = check([*model.history, bad], POOL)
    # Others waiting for an address may now be stuck too: the address freed is free for them as well.
    assert victim.key in [s.key for s in verdict.stuck], verdict


def test_a_full_pool_leaves_nobody_stuck() -> None:
    history = [observe("ADDED", svc(f"s{i}", ips=(ip,), rv=i + 1, uid=f"u{i}")) for i, ip in enumerate(POOL)]
    history.append(observe("ADDED", svc("late", rv=100, uid="late")))
    assert check(history, POOL).ok
    # ... unless the late one may share a holder's address.
    sharer = svc("late", rv=100, uid="late", sharing="k", ports=((443, "TCP"),))
    history[0] = observe("ADDED", svc("s0", ips=(POOL[0],), rv=1, uid="u0", sharing="k"))
    history[-1] = observe("ADDED", sharer)
    assert [str(s) for s in check(history, POOL).stuck] == [
        f"ns/late is unassigned although {POOL[0]} is free for it"
    ]


def test_a_deleted_and_recreated_service_is_not_a_move() -> None:
    history = [
        observe("ADDED", svc("a", ips=(POOL[0],), rv=1, uid="old")),
        observe("DELETED", svc("a", ips=(POOL[0],), rv=2, uid="old")),
        observe("ADDED", svc("b", ips=(POOL[0],), rv=3, uid="b")),
        observe("ADDED", svc("a", ips=(POOL[1],), rv=4, uid="new")),
    ]
    assert check(history, POOL).ok


def test_a_release_written_after_the_reuse_is_a_duplicate() -> None:
    # The hole issue 12 names: the address is given to b before a's release is written.
    history = [
        observe("ADDED", svc("a", ips=(POOL[0],), rv=1, uid="a")),
        observe("ADDED", svc("b", ips=(POOL[0],), rv=2, uid="b")),
        observe("MODIFIED", svc("a", rv=3, uid="a", labels={"now": "asked"})),
    ]
    verdict = check(history, POOL)
    assert [str(d) for d in verdict.duplicates] == [f"{POOL[0]} held by ns/a and ns/b at resourceVersion 2"]
    assert not verdict.ok


def test_a_request_excuses_one_move_not_the_next() -> None:
    history = [
        observe("ADDED", svc("a", ips=(POOL[0],), rv=1)),
        observe("MODIFIED", svc("a", ips=(POOL[0],), rv=2, labels={"asked": "1"})),
        observe("MODIFIED", svc("a", ips=(POOL[1],), rv=3, labels={"asked": "1"})),  # the move asked for
        observe("MODIFIED", svc("a", ips=(POOL[2],), rv=4, labels={"asked": "1"})),  # nobody asked this one
    ]
    verdict = check(history, POOL)
    assert [str(m) for m in verdict.moves] == [
        f"ns/a moved from {POOL[1]} to {POOL[2]} at resourceVersion 4, unasked"
    ]
