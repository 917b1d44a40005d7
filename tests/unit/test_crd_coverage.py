"""docs/crd-coverage.yaml, the field coverage table, kept in step with deploy/crds, the code and the README.

- Every field of every CRD in deploy/crds (the openAPIV3Schema below spec and status, recursively) is in
  the table, and the table has no field the CRDs lack; deploy/crds has every field MetalLB's CRDs have (the
  table's `metallb.fields`, facts from MetalLB's config/crd/bases).
- A spec field with `lands` changes that attribute of the Config `metallb_py.config.load_config` returns
  when it is set (to `sample`, or to each kind of label selector), against the same configuration without
  it: a field the loader ignores fails here.
- A status field names the module that writes it, and that module has the field's name; where the kind has
  a `builder`, the object it builds has the field (and has none of the fields listed as not-yet).
- README.md's section between the coverage markers is `render_section(table)`.

Regenerate the README section after editing the table: `.venv/bin/python tests/unit/test_crd_coverage.py`.
Print MetalLB's field list for `metallb.fields` from a MetalLB checkout:
`.venv/bin/python tests/unit/test_crd_coverage.py --metallb-fields PATH/TO/metallb/config/crd/bases`.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib
import inspect
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml

from metallb_py.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]
CRDS = REPO / "deploy" / "crds"
TABLE = REPO / "docs" / "crd-coverage.yaml"
README = REPO / "README.md"
BEGIN = (
    "<!-- crd-coverage:begin: generated from docs/crd-coverage.yaml, see tests/unit/test_crd_coverage.py -->"
)
END = "<!-- crd-coverage:end -->"

STATUSES = ("supported", "differs", "not-yet")
ENTRY_KEYS = {
    "status",
    "reason",
    "note",
    "lands",
    "sample",
    "baseline",
    "with",
    "selector",
    "writer",
    "written",
}
# The fields of a Kubernetes LabelSelector, as one `selector: true` entry covers them.
SELECTOR_FIELDS = (
    "matchLabels",
    "matchExpressions",
    "matchExpressions[].key",
    "matchExpressions[].operator",
    "matchExpressions[].values",
)
SELECTOR_SAMPLES = {
    "matchLabels": {"matchLabels": {"zone": "a"}},
    "matchExpressions In": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
    "matchExpressions Exists": {"matchExpressions": [{"key": "zone", "operator": "Exists"}]},
}
# Where each record kind of `lands` lives in a Config.
CONFIG_LISTS = {
    "Pool": "pools",
    "L2Advertisement": "l2_advertisements",
    "BGPAdvertisement": "bgp_advertisements",
    "BGPPeer": "bgp_peers",
    "Community": "communities",
    "BFDProfile": "bfd_profiles",
}
NAMESPACE = "metallb-system"


# -- the CRDs and the table ----------------------------------------------------------------------------------


def load_table(path: Path = TABLE) -> dict[str, Any]:
    table: dict[str, Any] = yaml.safe_load(path.read_text())
    return table


def walk_schema(schema: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every property path below `schema` with its schema: `a`, `a.b`, `a[].c` (`[]`: a list's items)."""
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        yield path, sub
        yield from walk_schema(sub, path)
    if "items" in schema:
        yield from walk_schema(schema["items"], prefix + "[]")


def crd_fields(directory: Path = CRDS) -> dict[tuple[str, str], dict[str, Mapping[str, Any]]]:
    """(kind, version) -> {field path below spec and status: its schema}, for every CRD in `directory`."""
    found: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    for path in sorted(directory.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            kind = doc["spec"]["names"]["kind"]
            for version in doc["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                found[(kind, version["name"])] = {
                    p: s for p, s in walk_schema(schema) if p.startswith(("spec.", "status."))
                }
    return found


def entries(table: Mapping[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(kind, version, path, entry) for every field of the table, in the table's order."""
    for kind, versions in table["kinds"].items():
        for version, spec in versions.items():
            for path, entry in spec["fields"].items():
                yield kind, version, path, entry


def is_selector(schema: Mapping[str, Any]) -> bool:
    """Whether a schema is a LabelSelector, or a list of them: exactly the LabelSelector's fields."""
    if schema.get("type") == "array":
        schema = schema.get("items") or {}
    return schema.get("type") == "object" and set(p for p, _ in walk_schema(schema)) == set(SELECTOR_FIELDS)


def coverage_problems(
    crds: Mapping[tuple[str, str], Mapping[str, Mapping[str, Any]]], table: Mapping[str, Any]
) -> list[str]:
    """What keeps the table and the CRDs from listing the same fields (empty when they agree)."""
    problems: list[str] = []
    listed: set[tuple[str, str, str]] = set()
    for kind, version, path, entry in entries(table):
        listed.add((kind, version, path))
        schema = crds.get((kind, version), {}).get(path)
        if entry.get("selector"):
            if schema is None or not is_selector(schema):
                problems.append(
                    f"{kind} {version} {path}: `selector: true` but the CRD has no label selector there"
                )
                continue
            inner = path + "[]" if schema.get("type") == "array" else path
            listed.update((kind, version, f"{inner}.{sub}") for sub in SELECTOR_FIELDS)
    in_crds = {(kind, version, path) for (kind, version), fields in crds.items() for path in fields}
    problems += [f"{k} {v} {p}: in deploy/crds, not in the table" for k, v, p in sorted(in_crds - listed)]
    problems += [f"{k} {v} {p}: in the table, not in deploy/crds" for k, v, p in sorted(listed - in_crds)]
    return problems


def entry_problems(kind: str, version: str, path: str, entry: Mapping[str, Any]) -> list[str]:
    where = f"{kind} {version} {path}"
    problems = [f"{where}: unknown key {key!r}" for key in sorted(set(entry) - ENTRY_KEYS)]
    status = entry.get("status")
    if status not in STATUSES:
        problems.append(f"{where}: status {status!r} is not one of {', '.join(STATUSES)}")
    if status in ("differs", "not-yet") and not entry.get("reason"):
        problems.append(f"{where}: {status} needs a reason")
    if path.startswith("spec."):
        if status == "supported" and not entry.get("lands"):
            problems.append(f"{where}: a supported spec field needs `lands` (where it ends up in the Config)")
        if entry.get("lands") and "sample" not in entry and not entry.get("selector"):
            problems.append(f"{where}: `lands` needs a `sample` to check it with")
        if "writer" in entry:
            problems.append(f"{where}: `writer` is for status fields")
    elif status in ("supported", "differs") and entry.get("written", True) and not entry.get("writer"):
        problems.append(f"{where}: a written status field needs a `writer` module")
    return problems


# -- the implementation checks -------------------------------------------------------------------------------


def base_objects(kind: str, version: str) -> list[dict[str, Any]]:
    """A small valid configuration with one object of every kind (BGPPeer in `version` when `kind` is
    BGPPeer): each field's check changes the object of its kind."""
    peer_version = version if kind == "BGPPeer" else "v1beta2"
    specs: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = [
        ("IPAddressPool", "v1beta1", "pool-a", {"tier": "gold"}, {"addresses": ["192.0.2.0/28"]}),
        ("L2Advertisement", "v1beta1", "l2", {}, {}),
        ("BGPAdvertisement", "v1beta1", "bgp", {}, {}),
        (
            "BGPPeer",
            peer_version,
            "peer",
            {},
            {"myASN": 64500, "peerASN": 64501, "peerAddress": "198.51.100.1"},
        ),
        (
            "Community",
            "v1beta1",
            "aliases",
            {},
            {"communities": [{"name": "no-advertise", "value": "65535:65282"}]},
        ),
        ("BFDProfile", "v1beta1", "bfd", {}, {}),
    ]
    return [
        {
            "apiVersion": f"metallb.io/{v}",
            "kind": k,
            "metadata": {"name": name, "namespace": NAMESPACE, **({"labels": labels} if labels else {})},
            "spec": spec,
        }
        for k, v, name, labels, spec in specs
    ]


def set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set `path` (`spec.a[].b`; `[]` is the first item, made when missing) to `value`; None removes it."""
    parts = path.split(".")
    node: Any = obj
    for part in parts[:-1]:
        name, is_list = part.removesuffix("[]"), part.endswith("[]")
        node = node.setdefault(name, [{}] if is_list else {})
        if is_list:
            node = node[0]
    last = parts[-1]
    if value is None:
        node.pop(last, None)
    else:
        node[last] = copy.deepcopy(value)


def config_with(kind: str, version: str, changes: Mapping[str, Any]) -> Config:
    """`base_objects` with the object of `kind` changed (field path -> value, None to remove), loaded."""
    objects = base_objects(kind, version)
    target = next(o for o in objects if o["kind"] == kind)
    for path, value in changes.items():
        set_path(target, path, value)
    return load_config(yaml.safe_dump_all(objects), source=f"coverage check of {kind} {version}")


def landed(config: Config, lands: str) -> Any:
    """The value `lands` (`Record.attr.attr`, `attr[]` for each item of a tuple) names in `config`."""
    record, *attrs = lands.split(".")
    items = getattr(config, CONFIG_LISTS[record])
    assert len(items) == 1, f"the check's configuration has {len(items)} {record} records"
    value: Any = items[0]
    for attr in attrs:
        name, each = attr.removesuffix("[]"), attr.endswith("[]")
        value = None if value is None else _get(value, name)
        if each and value is not None:
            value = tuple(value)
    return value


def _get(value: Any, name: str) -> Any:
    # Inside a tuple that `[]` opened, the attribute of each item.
    if isinstance(value, tuple):
        return tuple(getattr(item, name) for item in value)
    return getattr(value, name)


class SpecCheck(NamedTuple):
    """One spec field tried with one value."""

    kind: str
    version: str
    path: str
    entry: Mapping[str, Any]
    value: Any


def samples(path: str, entry: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The values to try a spec field with: its `sample`, or each kind of label selector."""
    if not entry.get("selector"):
        return {"sample": entry["sample"]}
    many = schema.get("type") == "array"
    return {label: [sel] if many else sel for label, sel in SELECTOR_SAMPLES.items()}


def string_constants(module: str) -> set[str]:
    """Every string literal in a module's source (dict keys and values included)."""
    tree = ast.parse(inspect.getsource(importlib.import_module(module)))
    return {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def has_path(obj: Any, path: str) -> bool:
    """Whether `obj` has `path` (`status.a[].b`: every item of a non-empty list has `b`)."""
    node = obj
    parts = path.split(".")
    for i, part in enumerate(parts):
        name, each = part.removesuffix("[]"), part.endswith("[]")
        if not isinstance(node, Mapping) or name not in node:
            return False
        node = node[name]
        if each:
            rest = ".".join(parts[i + 1 :])
            return isinstance(node, list) and bool(node) and all(has_path(item, rest) for item in node)
    return True


def build(builder: Mapping[str, Any]) -> Any:
    """The object a kind's `builder` makes (wrapped as {"status": ...} for `of: status`)."""
    module, _, function = builder["function"].rpartition(".")
    built = getattr(importlib.import_module(module), function)(
        *builder.get("args", ()), **builder.get("kwargs", {})
    )
    return {"status": built} if builder.get("of") == "status" else built


# -- the README ----------------------------------------------------------------------------------------------

_SHOWN = {"supported": "supported", "differs": "differs", "not-yet": "not yet"}


def render_section(table: Mapping[str, Any]) -> str:
    """The README section, markers included: per kind and version, each field with its status and note."""
    counts = {status: 0 for status in STATUSES}
    for *_, entry in entries(table):
        counts[entry["status"]] += 1
    intro = (
        "Every field of every CRD in `deploy/crds`: **supported** (the effect it has in MetalLB), "
        "**differs** (an effect, deliberately not quite MetalLB's) or **not yet** (accepted, or not "
        "written, without MetalLB's effect yet). A label selector is one row (its `matchLabels` and "
        "`matchExpressions`). "
        f"{counts['supported']} supported, {counts['differs']} differ, {counts['not-yet']} not yet. "
        "Generated from `docs/crd-coverage.yaml`, which `tests/unit/test_crd_coverage.py` checks against "
        "the CRDs, MetalLB's CRDs and the code."
    )
    lines = [BEGIN, "### CRD field coverage", "", *textwrap.wrap(intro, 110, break_on_hyphens=False)]
    for kind, versions in table["kinds"].items():
        for version, spec in versions.items():
            lines += [
                "",
                f"#### {kind} `metallb.io/{version}`",
                "",
                "| Field | Status | Note |",
                "| --- | --- | --- |",
            ]
            for path, entry in spec["fields"].items():
                note = entry.get("reason") or entry.get("note") or ""
                if entry.get("selector"):
                    note = "label selector" + (f"; {note}" if note else "")
                cells = [
                    f"`{path}`",
                    _SHOWN[entry["status"]],
                    " ".join(str(note).split()).replace("|", "\\|"),
                ]
                lines.append("| " + " | ".join(cells) + " |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def readme_section(text: str) -> str:
    """The README's section between the markers, markers included ("" when there is none)."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return ""
    return text[start : end + len(END)] + "\n"


def write_readme(table: Mapping[str, Any], readme: Path = README) -> None:
    """Replace the README's section with the rendering of `table` (the markers must be there)."""
    text = readme.read_text()
    old = readme_section(text)
    if not old:
        raise SystemExit(f"{readme}: no {BEGIN} ... {END} section; add the two markers where it belongs")
    readme.write_text(text.replace(old, render_section(table), 1))


# -- the tests -----------------------------------------------------------------------------------------------

CRD_FIELDS = crd_fields()
COVERAGE = load_table()
SPEC_CHECKS = [
    pytest.param(SpecCheck(kind, version, path, entry, value), id=f"{kind}-{version}-{path}-{label}")
    for kind, version, path, entry in entries(COVERAGE)
    if path.startswith("spec.") and entry.get("lands") and (kind, version) in CRD_FIELDS
    for label, value in samples(path, entry, CRD_FIELDS[(kind, version)].get(path, {})).items()
]
STATUS_CHECKS = [
    pytest.param(kind, version, path, entry, id=f"{kind}-{version}-{path}")
    for kind, version, path, entry in entries(COVERAGE)
    if path.startswith("status.")
]


def test_the_table_lists_every_crd_field_and_no_other() -> None:
    assert coverage_problems(CRD_FIELDS, COVERAGE) == []


def test_the_field_check_catches_a_missing_an_extra_and_a_wrong_selector_field() -> None:
    table = copy.deepcopy(COVERAGE)
    fields = table["kinds"]["L2Advertisement"]["v1beta1"]["fields"]
    del fields["spec.interfaces"]
    fields["spec.noSuchField"] = {"status": "supported"}
    table["kinds"]["BGPPeer"]["v1beta2"]["fields"]["spec.routerID"]["selector"] = True
    assert coverage_problems(CRD_FIELDS, table) == [
        "BGPPeer v1beta2 spec.routerID: `selector: true` but the CRD has no label selector there",
        "L2Advertisement v1beta1 spec.interfaces: in deploy/crds, not in the table",
        "L2Advertisement v1beta1 spec.noSuchField: in the table, not in deploy/crds",
    ]


def test_every_entry_is_well_formed() -> None:
    problems = [p for k, v, path, entry in entries(COVERAGE) for p in entry_problems(k, v, path, entry)]
    assert problems == []


def test_deploy_crds_have_every_field_metallb_has() -> None:
    ours = {f"{k} {v} {p}" for (k, v), fields in CRD_FIELDS.items() for p in fields}
    assert sorted(set(COVERAGE["metallb"]["fields"]) - ours) == []


@pytest.mark.parametrize("check", SPEC_CHECKS)
def test_a_spec_field_changes_the_config(check: SpecCheck) -> None:
    kind, version, path, entry, value = check
    context = dict(entry.get("with") or {})
    # Without the field, or with `baseline` for a field the base configuration must have.
    without = config_with(
        kind, version, {**context, **({path: entry["baseline"]} if "baseline" in entry else {})}
    )
    with_field = config_with(kind, version, {**context, path: value})
    assert landed(with_field, entry["lands"]) != landed(without, entry["lands"]), (
        f"{kind} {path} = {value!r} does not reach {entry['lands']}"
    )


def test_the_spec_check_catches_a_field_the_loader_ignores() -> None:
    # metadata.annotations is accepted and ignored: the check must see no difference.
    ignored = config_with("BGPPeer", "v1beta2", {"metadata.annotations": {"note": "x"}})
    assert ignored == config_with("BGPPeer", "v1beta2", {})
    assert landed(ignored, "BGPPeer.name") == landed(config_with("BGPPeer", "v1beta2", {}), "BGPPeer.name")


@pytest.mark.parametrize(("kind", "version", "path", "entry"), STATUS_CHECKS)
def test_a_status_field_is_written_by_its_module(
    kind: str, version: str, path: str, entry: Mapping[str, Any]
) -> None:
    builder = COVERAGE["kinds"][kind][version].get("builder")
    writer = entry.get("writer")
    if writer is None and builder is None:
        pytest.skip(f"{entry['status']}: nothing writes it, and the kind has no builder to check that with")
    if writer is not None:
        field = path.rpartition(".")[2].removesuffix("[]")
        assert field in string_constants(writer), f"{writer} never names {field}"
    if builder is not None:
        expected = entry["status"] != "not-yet" and entry.get("written", True)
        assert has_path(build(builder), path) == expected, (
            f"{builder['function']}: {path} ({entry['status']})"
        )


def test_the_status_check_catches_an_unwritten_field() -> None:
    assert "noSuchStatusField" not in string_constants("metallb_py.speaker.status")
    assert not has_path({"status": {"interfaces": []}}, "status.interfaces[].name")
    assert not has_path({"status": {}}, "status.node")
    assert has_path({"status": {"interfaces": [{"name": "eth0"}]}}, "status.interfaces[].name")


def test_the_readme_section_is_the_rendered_table() -> None:
    assert readme_section(README.read_text()) == render_section(COVERAGE), (
        "README.md's CRD coverage section is out of date: "
        "run .venv/bin/python tests/unit/test_crd_coverage.py"
    )


def metallb_fields(directory: Path) -> list[str]:
    """`Kind version path` for every field of the CRDs in a MetalLB checkout's config/crd/bases."""
    return sorted(f"{k} {v} {p}" for (k, v), fields in crd_fields(directory).items() for p in fields)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description="Rewrite README.md's CRD coverage section from the table.")
    parser.add_argument("--metallb-fields", type=Path, help="print MetalLB's field list from this directory")
    args = parser.parse_args(argv)
    if args.metallb_fields is not None:
        print("\n".join(metallb_fields(args.metallb_fields)))
        return
    write_readme(load_table())


if __name__ == "__main__":
    main(sys.argv[1:])
