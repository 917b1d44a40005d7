"""What the hostile-Service tests share: Hypothesis helpers, MetalLB's annotation prefixes, the sharing
rule read independently of the code under test, and the field paths a rejection message may name.

Used by tests/property/test_service_hostile.py (the Service reader and the controller's decisions, no API
server) and tests/integration/test_controller_hostile.py (the same through the real API server).

The sharing rule is written out here from MetalLB's documentation, with its own reading of the annotations,
not taken from the code under test: Services may hold one address when they have the same non-empty
sharing key, no port (number and protocol) in common, and the same backend (selector, under
externalTrafficPolicy Local).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

# MetalLB's annotations exist in a current and a deprecated form.
ANNOTATION_PREFIXES = ("metallb.io/", "metallb.universe.tf/")
# Which forms a hostile Service writes an annotation in: either, or both at once.
PREFIX_CHOICES = st.sampled_from([["metallb.io/"], ["metallb.universe.tf/"], list(ANNOTATION_PREFIXES)])


def one_in(n: int) -> st.SearchStrategy[bool]:
    """True about once in `n` (Hypothesis draws the ends of a range more often: the middle is True)."""
    return st.integers(0, n - 1).map(lambda k: k == (n - 1) // 2)


def mostly(
    good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], odds: int = 12
) -> st.SearchStrategy[Any]:
    """`good` about `odds` times in `odds + 1`, else `bad`: a Service with every field wrong says little."""
    return one_in(odds + 1).flatmap(lambda wrong: bad if wrong else good)


# -- the sharing rule, read independently -------------------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    sharing_key: str
    ports: frozenset[tuple[int, str]]
    backend: frozenset[tuple[str, str]]  # the selector under Local (Cluster: none, as an empty one)


def annotation(svc: Mapping[str, Any], suffix: str) -> str:
    """MetalLB's annotation `suffix` as MetalLB reads it: the current form, else the deprecated one."""
    notes = svc["metadata"].get("annotations") or {}
    current = notes.get(ANNOTATION_PREFIXES[0] + suffix)
    return str(current if current is not None else notes.get(ANNOTATION_PREFIXES[1] + suffix) or "")


def terms(svc: Mapping[str, Any]) -> Terms:
    spec = svc["spec"]
    ports = frozenset((p["port"], p.get("protocol") or "TCP") for p in spec.get("ports") or [])
    local = spec.get("externalTrafficPolicy") == "Local"
    backend = frozenset((spec.get("selector") or {}).items()) if local else frozenset()
    return Terms(annotation(svc, "allow-shared-ip"), ports, backend)


def may_share(holders: list[Terms]) -> bool:
    for i, a in enumerate(holders):
        for b in holders[i + 1 :]:
            if not a.sharing_key or a.sharing_key != b.sharing_key or a.backend != b.backend:
                return False
            if a.ports & b.ports:
                return False
    return True


# -- fields named by messages -------------------------------------------------------------------------------


def field_paths(value: object, root: str = "") -> list[str]:
    """`root` and the path of everything below it in `value` ("spec.ports[0].port"), in walking order."""
    paths: list[str] = []

    def walk(item: object, path: str) -> None:
        paths.append(path)
        if isinstance(item, dict):
            for key, child in item.items():
                walk(child, f"{path}.{key}" if path else str(key))
        elif isinstance(item, list):
            for i, child in enumerate(item):
                walk(child, f"{path}[{i}]")

    walk(value, root)
    return paths
