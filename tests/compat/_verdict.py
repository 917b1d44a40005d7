"""MetalLB's own test cases, replayed: one `Case` per case of MetalLB's Go test tables, checked by `check`.

Each case is written here as the YAML a user would apply (MetalLB's Go structs, as manifests in namespace
metallb-system), with MetalLB's verdict. `check` loads it twice: leniently (the default, MetalLB's verdict
must hold; an accepted case may carry warnings, and exactly the ones it lists) and strictly (`strict=True`:
every warning is an error, today's behaviour for pipelines that ask for it).

A deliberate difference is a case with `differs` saying why: it is checked to give the opposite verdict, so a
difference cannot appear or disappear unnoticed, and `differences` lists them (the README shows the list).

A case MetalLB's test gives no name to gets one here: the API server requires names, and no verdict depends
on them. A case that cannot be expressed (it needs Nodes, Secrets, or calls a MetalLB-internal function) is
not dropped silently: it is a `Case` with `skip` saying why, reported as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from metallb_py.config import Config, load_config
from metallb_py.errors import ConfigError

__all__ = ["Case", "check", "differences", "params"]


@dataclass(frozen=True)
class Case:
    """`desc`: MetalLB's case name, verbatim (the test id). `objects`: a YAML stream. `accepted`: MetalLB's
    verdict. `warns`: fragments, one per warning we must print for an accepted case (no others may appear).
    `error`: a fragment of our error for a rejected one. `skip`: why the case cannot be replayed, if so.
    `differs`: why our verdict is deliberately the opposite of MetalLB's (then `accepted` stays MetalLB's)."""

    desc: str
    objects: str
    accepted: bool
    warns: tuple[str, ...] = ()
    error: str = ""
    skip: str = ""
    differs: str = ""


def params(cases: list[Case], source: str) -> list[object]:
    """pytest params with MetalLB's case names as ids (`source` prefixes them: the Go test function)."""
    seen: set[str] = set()
    out: list[object] = []
    for case in cases:
        ident = f"{source}: {case.desc}"
        assert ident not in seen, f"two cases named {ident!r}"
        seen.add(ident)
        marks = [pytest.mark.skip(reason=case.skip)] if case.skip else []
        out.append(pytest.param(case, id=ident, marks=marks))
    return out


def check(case: Case) -> Config | None:
    """Assert our verdict is MetalLB's (or, for a deliberate difference, the opposite); return the lenient
    Config of a case we accept (for further checks)."""
    source = f"metallb case {case.desc!r}"
    we_accept = case.accepted != bool(case.differs)
    if not we_accept:
        with pytest.raises(ConfigError) as info:
            load_config(case.objects, source=source)
        assert case.error in str(info.value), f"expected {case.error!r} in: {info.value}"
        return None
    try:
        config = load_config(case.objects, source=source)
    except ConfigError as exc:
        pytest.fail(f"we should accept this ({case.differs or 'as MetalLB does'}); we rejected it: {exc}")
    unexplained = [w for w in config.warnings if not any(f in w for f in case.warns)]
    assert not unexplained, f"warnings the case does not list: {unexplained}"
    for fragment in case.warns:
        assert any(fragment in w for w in config.warnings), f"no warning with {fragment!r}: {config.warnings}"
    if case.warns:
        with pytest.raises(ConfigError):
            load_config(case.objects, source=source, strict=True)
    else:
        assert load_config(case.objects, source=source, strict=True) == config
    return config


def differences(cases: list[Case]) -> list[tuple[str, str]]:
    """(case name, reason) of every deliberate difference."""
    return [(c.desc, c.differs) for c in cases if c.differs]
