"""From YAML text, files or objects to a validated `Config`; owns every rule that spans objects.

Per document: a metallb.io resource, a v1 ConfigMap with `data.config` (the legacy format), a v1 `List` of
those, or a bare legacy config mapping (no kind; `address-pools` etc. at the top, as in `data.config`). Empty
documents are skipped. Anything else is an error naming its kind: a file handed to the loader is meant to be
configuration, and skipping a mistyped kind silently would hide it.

Across objects (`build_config`): one namespace, unique names per kind, addresses (the core's Pool and
validate_pools), references (communities and BFD profiles must exist), aggregation lengths against every pool
an advertisement selects, identical peers, one session per neighbor on a node, BFD echo mode towards IPv6
pools, and clashing localPrefs of advertisements that share a pool.

Where MetalLB accepts what this package would not write that way, loading goes on as MetalLB does and says
so in `Config.warnings` (or, with `strict=True`, fails on the first): a CIDR with host bits is masked to its
network; an advertisement's pool or peer that does not exist is skipped until it does (objects applied
with `kubectl apply -f dir/` arrive in any order).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol, TypeVar

from metallb_py._core import LabelSelector, Pool, validate_pools
from metallb_py.config.crds import GROUP, parse_crd
from metallb_py.config.legacy import DEFAULT_NAMESPACE, LEGACY_KEYS, read_legacy_config, read_legacy_configmap
from metallb_py.config.model import (
    BFDProfile,
    BGPAdvertisement,
    BGPCommunity,
    BGPPeer,
    Community,
    Config,
    L2Advertisement,
)
from metallb_py.config.problems import ConfigErrors, Problems
from metallb_py.config.reader import Reader, Where, describe, load_yaml_documents, quote
from metallb_py.config.resources import Entry, PoolSpec, Resources, Warnings
from metallb_py.errors import ConfigError

__all__ = [
    "build_config",
    "load_config",
    "load_config_files",
    "load_objects",
    "parse_legacy_configmap",
    "read_object",
    "read_text",
]


def load_config(text: str, *, source: str = "<config>", strict: bool = False) -> Config:
    """Parse and validate YAML text holding MetalLB configuration (one or more documents).

    What MetalLB accepts but this package would not write that way is in `Config.warnings`; with `strict`,
    the first such thing is a ConfigError instead (as is every other mistake, in either mode).
    """
    problems = Problems()
    resources = Resources()
    with problems.each():
        resources = read_text(text, source=source, problems=problems)
    return _build_or_raise(resources, problems, strict=strict)


def load_config_files(paths: Iterable[str | os.PathLike[str]], *, strict: bool = False) -> Config:
    """Parse and validate several files as one configuration (references may cross files).

    OSError propagates for a file that cannot be read; undecodable text is a ConfigError naming the file.
    `strict` as for `load_config`.
    """
    problems = Problems()
    resources = Resources()
    for path in paths:
        with problems.each():
            resources.extend(read_file(path, problems))
    return _build_or_raise(resources, problems, strict=strict)


def load_objects(objects: Iterable[object], *, source: str = "<objects>", strict: bool = False) -> Config:
    """Validate already parsed objects (dicts as from YAML or the Kubernetes API); `strict` as for
    `load_config`."""
    problems = Problems()
    resources = Resources()
    for i, obj in enumerate(objects, start=1):
        resources.extend(_read_or_note(obj, f"{source}, object {i}", problems))
    return _build_or_raise(resources, problems, strict=strict)


def parse_legacy_configmap(obj: object, *, source: str = "<configmap>", strict: bool = False) -> Config:
    """Validate one legacy MetalLB ConfigMap object (a dict with `data.config`); `strict` as for
    `load_config`."""
    if not isinstance(obj, dict) or obj.get("kind") != "ConfigMap":
        raise ConfigError(f"{source}: expected a v1 ConfigMap, got {describe(obj)}")
    problems = Problems()
    resources = Resources()
    with problems.each():
        resources, _ = read_legacy_configmap(obj, source, problems)
    return _build_or_raise(resources, problems, strict=strict)


def _build_or_raise(resources: Resources, problems: Problems, *, strict: bool) -> Config:
    """`build_config` over what could be read, so that the mistakes across objects are reported with those
    of reading; raises them all together (`Problems.raise_any`)."""
    config: Config | None = None
    with problems.each():
        config = build_config(resources, strict=strict)
    problems.raise_any()
    assert config is not None
    return config


def read_file(path: str | os.PathLike[str], problems: Problems | None = None) -> Resources:
    """`read_text` of a file's contents. OSError propagates; undecodable text is a ConfigError naming it."""
    source = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    return read_text(text, source=source, problems=problems)


def read_text(text: str, *, source: str = "<config>", problems: Problems | None = None) -> Resources:
    """Every document of a YAML stream, parsed and checked on its own (no cross-object rules yet).

    The mistakes of every document (and of every item of a List or legacy ConfigMap) go to `problems`, and
    what could be read is returned; without `problems`, they are raised together at the end.
    """
    own = Problems() if problems is None else problems
    resources = Resources()
    for n, document in enumerate(load_yaml_documents(text, Where(source)), start=1):
        resources.extend(_read_or_note(document, f"{source}, document {n}", own))
    if problems is None:
        own.raise_any()
    return resources


def _read_or_note(obj: object, context: str, problems: Problems) -> Resources:
    """`read_object`, its mistakes gathered in `problems`; an object that could not be read is named in
    `Resources.unread` when its kind and name can be told."""
    with problems.each():
        return read_object(obj, context, problems)
    unread = Resources()
    if isinstance(obj, dict):
        kind, metadata = obj.get("kind"), obj.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if isinstance(kind, str) and isinstance(name, str):
            unread.unread.add((kind, name))
    return unread


def read_object(obj: object, context: str, problems: Problems | None = None) -> Resources:
    """One document or List item; `context` says where it is (`pools.yaml, document 2`). The items of a List
    and of a legacy ConfigMap are read one by one, their mistakes gathered in `problems` (without it,
    raised together)."""
    if problems is None:
        own = Problems()
        with own.each():
            resources = read_object(obj, context, own)
        own.raise_any()
        return resources
    if obj is None:
        return Resources()
    if not isinstance(obj, dict):
        Where(f"document ({context})").fail(
            "", f"expected a Kubernetes object (a mapping), got {describe(obj)}"
        )
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if kind == "List" and api_version == "v1":
        r = Reader(obj, Where(f"List ({context})"))
        r.ignore("apiVersion", "kind", "metadata")
        resources = Resources()
        for path, item in r.items("items"):
            resources.extend(_read_or_note(item, f"{context}, {path}", problems))
        r.finish()
        return resources
    if isinstance(api_version, str) and api_version.split("/")[0] == GROUP:
        return parse_crd(obj, context)
    if kind == "ConfigMap" and api_version == "v1":
        resources, _ = read_legacy_configmap(obj, context, problems)
        return resources
    if kind is None and api_version is None and any(key in obj for key in LEGACY_KEYS):
        return read_legacy_config(obj, Where(f"legacy config ({context})"), None, problems)
    where = Where(f"document ({context})")
    if kind is None or api_version is None:
        where.fail("", "not a Kubernetes object (no apiVersion or kind) and no legacy MetalLB config keys")
    where.fail(
        "kind",
        f"{describe(kind)} ({describe(api_version)}) is not MetalLB configuration; "
        f"expected a {GROUP} resource, a v1 ConfigMap with data.config, or a v1 List of them",
    )


# -- rules across objects ----------------------------------------------------------------------------------


def build_config(resources: Resources, *, strict: bool = False) -> Config:
    """Check the rules that span objects and build the Config (lists sorted by name). What MetalLB accepts
    but we would not write that way becomes `Config.warnings`, or with `strict` a ConfigError.

    Each object is checked on its own, so every mistake is found in one load: one is raised as itself,
    several together as `ConfigErrors`. A duplicate name or a pool whose addresses are wrong leaves the
    later checks without that object; a reference to an object in `resources.unread` is not reported again.
    """
    problems = Problems()
    unread = set(resources.unread)
    warnings = Warnings(strict=strict)
    # What reading found acceptable but worth a warning, object by object (a legacy ConfigMap's records
    # share one Where).
    seen: set[int] = set()
    for entry in resources.entries():
        if id(entry.where) not in seen:
            seen.add(id(entry.where))
            for problem, done in entry.where.notes:
                with problems.each():
                    warnings.add(problem, done)
    namespace = _one_namespace(resources, problems)
    pool_list = _unique_names("IPAddressPool", resources.pools, problems)
    l2_list = _unique_names("L2Advertisement", resources.l2_advertisements, problems)
    bgp_list = _unique_names("BGPAdvertisement", resources.bgp_advertisements, problems)
    peer_list = _unique_names("BGPPeer", resources.bgp_peers, problems)
    community_list = _unique_names("Community", resources.communities, problems)
    bfd_list = _unique_names("BFDProfile", resources.bfd_profiles, problems)

    made: list[tuple[Entry[PoolSpec], Pool]] = []
    for entry in pool_list:
        with problems.each():
            made.append((entry, _make_pool(entry, warnings)))
            continue
        unread.add(("IPAddressPool", entry.record.name))
    try:
        validate_pools([pool for _, pool in made])
    except ConfigError as exc:
        for error in _overlap_errors([e for e, _ in made], [pool for _, pool in made], exc):
            problems.add(error)
    pools = [pool for _, pool in made]
    pool_entries = {e.record.name: (e, p) for e, p in made}

    aliases = _community_aliases(community_list, problems)
    aliases_complete = not any(kind == "Community" for kind, _ in unread)
    profiles = {e.record.name: e.record for e in bfd_list}
    peers: list[tuple[Entry[BGPPeer], BGPPeer]] = []
    for entry in peer_list:
        with problems.each():
            peers.append((entry, _check_peer(entry, profiles, unread)))
    _no_identical_peers(peer_list, problems)
    _one_session_per_neighbor(peer_list, problems)
    peer_names = [e.record.name for e in peer_list]

    l2_advertisements: list[L2Advertisement] = []
    for e in l2_list:
        with problems.each():
            selected = _selected_pools(e, e.record, pool_entries, warnings, unread)
            l2_advertisements.append(_origin(replace(e.record, pools=selected), e))
    bgp_advertisements: list[BGPAdvertisement] = []
    for b in bgp_list:
        with problems.each():
            advertisement = _bgp_advertisement(
                b,
                pool_entries=pool_entries,
                warnings=warnings,
                unread=unread,
                aliases=aliases if aliases_complete else None,
                peer_names=peer_names,
            )
            _check_bfd_echo(b, advertisement, pool_entries, [p for _, p in peers], profiles)
            _check_local_pref(b, advertisement, bgp_advertisements, pool_entries)
            bgp_advertisements.append(advertisement)

    problems.raise_any()
    return Config(
        pools=sorted(pools, key=lambda p: p.name),
        l2_advertisements=sorted(l2_advertisements, key=lambda a: a.name),
        bgp_advertisements=sorted(bgp_advertisements, key=lambda a: a.name),
        bgp_peers=sorted((_origin(p, e) for e, p in peers), key=lambda p: p.name),
        communities=sorted((_origin(e.record, e) for e in community_list), key=lambda c: c.name),
        bfd_profiles=sorted((_origin(e.record, e) for e in bfd_list), key=lambda b: b.name),
        legacy_protocols={
            e.record.name: e.record.protocol for e in pool_list if e.record.protocol is not None
        },
        pool_labels={e.record.name: dict(e.record.labels) for e in pool_list},
        namespace=namespace,
        warnings=tuple(warnings.messages),
    )


def _bgp_advertisement(
    e: Entry[BGPAdvertisement],
    *,
    pool_entries: dict[str, tuple[Entry[PoolSpec], Pool]],
    warnings: Warnings,
    unread: set[tuple[str, str]],
    aliases: dict[str, BGPCommunity] | None,
    peer_names: Sequence[str],
) -> BGPAdvertisement:
    """One BGPAdvertisement with its pools and community values resolved. `aliases` None: a Community could
    not be read, so an alias not found is not reported (it may be that one's)."""
    selected = _selected_pools(e, e.record, pool_entries, warnings, unread)
    for i, peer in enumerate(e.record.peers):
        # MetalLB does not look the names up: an advertisement reaches the peers that exist by a name.
        if peer not in peer_names and ("BGPPeer", peer) not in unread:
            e.warn(
                warnings,
                "peers",
                f"unknown BGPPeer {quote(peer)}{_known(peer_names, sep=' (')}",
                "nothing is advertised to it until it exists, as in MetalLB",
                i,
            )
    values: list[BGPCommunity] = []
    for i, text in enumerate(e.record.communities):
        if aliases is None and ":" not in text:
            continue
        values.append(_community_value(e, i, text, aliases or {}))
    for pool_name in selected:
        _check_aggregation(e, *pool_entries[pool_name])
    advertisement: BGPAdvertisement = _origin(
        replace(e.record, pools=selected, community_values=tuple(values)), e
    )
    return advertisement


def _origin(record: Any, entry: Entry[Any]) -> Any:
    return replace(record, origin=entry.describe())


def _one_namespace(resources: Resources, problems: Problems) -> str:
    # MetalLB watches one namespace; an object elsewhere would be silently ignored by it.
    first: Entry[Any] | None = None
    for entry in resources.entries():
        if entry.namespace is None:
            continue
        if first is None:
            first = entry
        elif entry.namespace != first.namespace:
            problems.add(
                entry.error(
                    "",
                    f"is in namespace {quote(entry.namespace)} but {first.describe()} is in "
                    f"{quote(first.namespace or '')}; MetalLB reads its configuration from one namespace",
                )
            )
    return first.namespace if first is not None and first.namespace else DEFAULT_NAMESPACE


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_N = TypeVar("_N", bound=_Named)


def _unique_names(kind: str, entries: Sequence[Entry[_N]], problems: Problems) -> list[Entry[_N]]:
    """The entries of `kind` whose names no earlier entry took; each later one is a mistake."""
    seen: dict[str, Entry[_N]] = {}
    for entry in entries:
        name = entry.record.name
        if name in seen:
            problems.add(
                entry.error(
                    "name", f"duplicate {kind} name {quote(name)}; also defined by {seen[name].describe()}"
                )
            )
        else:
            seen[name] = entry
    return list(seen.values())


_CORE_POOL_PATH = re.compile(r'pool ".*?": addresses(?:\[(\d+)\])?: (.*)', re.DOTALL)
_CORE_INDEX = re.compile(r": addresses\[(\d+)\]$")


def _make_pool(entry: Entry[PoolSpec], warnings: Warnings) -> Pool:
    """The core's Pool of `entry`. When its addresses are wrong, each is tried alone, so that every wrong one
    is named (as ConfigErrors); one that is wrong only beside the others (an overlap) is named by the core."""
    spec = entry.record
    addresses = list(spec.addresses)
    wrong: dict[int, ConfigError] = {}
    for i, text in enumerate(addresses):
        if "-" not in text and text != text.strip():
            # MetalLB trims the two ends of a range but hands a CIDR to Go's net.ParseCIDR as written.
            wrong[i] = entry.error(
                "addresses",
                f"{quote(text)} has spaces around the CIDR, which MetalLB refuses; "
                f"write {quote(text.strip())}",
                i,
            )
            continue
        masked = _masked_cidr(text)
        if masked is not None:
            done = f"using {masked} as MetalLB does"
            try:
                entry.warn(warnings, "addresses", f"{quote(text)} has host bits set", done, i)
            except ConfigError as exc:  # strict
                wrong[i] = exc
            addresses[i] = masked
    together: ConfigError | None = None
    if not wrong:
        try:
            return _core_pool(spec, addresses)
        except ConfigError as exc:
            together = _pool_error(entry, exc)
    for i, text in enumerate(addresses):
        if i not in wrong and len(addresses) > 1:
            try:
                _core_pool(spec, [text])
            except ConfigError as exc:
                wrong[i] = _pool_error(entry, exc, i)
    if not wrong:
        assert together is not None
        raise together
    raise ConfigErrors([wrong[i] for i in sorted(wrong)])


def _core_pool(spec: PoolSpec, addresses: list[str]) -> Pool:
    return Pool(
        spec.name,
        addresses,
        auto_assign=spec.auto_assign,
        avoid_buggy_ips=spec.avoid_buggy_ips,
        service_allocation=spec.service_allocation,
    )


def _pool_error(entry: Entry[PoolSpec], exc: ConfigError, alone: int | None = None) -> ConfigError:
    """The core's error about a pool's addresses in the user's terms: the core names the field its own way
    (`pool "x": addresses[1]`). `alone`: the index of the address the core was given alone."""
    # Its errors carry `path` and `reason`; the message is parsed only if they are missing.
    path, reason = getattr(exc, "path", None), getattr(exc, "reason", None)
    if isinstance(path, str) and isinstance(reason, str):
        index = _CORE_INDEX.search(path)
        return entry.error("addresses", reason, alone if alone is not None else _index(index))
    match = _CORE_POOL_PATH.fullmatch(str(exc))
    if match is None:
        return entry.error("addresses", str(exc), alone)
    index_text = match.group(1)
    if alone is not None:
        return entry.error("addresses", match.group(2), alone)
    return entry.error("addresses", match.group(2), int(index_text) if index_text else None)


def _index(match: re.Match[str] | None) -> int | None:
    return int(match.group(1)) if match else None


def _overlap_errors(
    entries: Sequence[Entry[PoolSpec]], pools: Sequence[Pool], exc: ConfigError
) -> list[ConfigError]:
    """validate_pools said two ranges overlap; find every overlapping pair, to name both objects and both
    fields of each."""
    spans = sorted(
        (first.version, int(first), int(last), pi, ai)
        for pi, pool in enumerate(pools)
        for ai, (first, last) in enumerate(pool.ranges())
    )
    errors: list[ConfigError] = []
    reach: tuple[int, int, int, int, int] | None = None
    for span in spans:
        if reach is not None and reach[0] == span[0] and span[1] <= reach[2]:
            earlier, later = entries[reach[3]], entries[span[3]]
            earlier_text = earlier.record.addresses[reach[4]]
            errors.append(
                later.error(
                    "addresses",
                    f"{quote(later.record.addresses[span[4]])} overlaps {quote(earlier_text)} of "
                    f"{earlier.describe()}, {earlier.path('addresses', reach[4])}; "
                    "an address may belong to only one range of one pool",
                    span[4],
                )
            )
        if reach is None or reach[0] != span[0] or span[2] > reach[2]:
            reach = span
    return errors or [ConfigError(f"address pools: {exc}")]


def _masked_cidr(text: str) -> str | None:
    """The network of a CIDR written with host bits (`192.0.2.5/24` -> `192.0.2.0/24`), else None.

    MetalLB reads CIDRs with Go's net.ParseCIDR, which keeps only the network; the core's Pool refuses host
    bits (it would be a typo in anything this package writes), so they are masked here, with a warning.
    Anything else (ranges, bad text) goes to the core unchanged, to be accepted or named there.
    """
    if "-" in text or "/" not in text:
        return None
    try:
        ipaddress.ip_network(text.strip())
        return None
    except ValueError:
        pass
    try:
        return str(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        return None


def _known(names: Iterable[str], *, sep: str = "; ") -> str:
    """`; defined: "a", "b"` (with sep=" (": ` (defined: "a", "b")`), for messages about an unknown name."""
    listed = sorted(names)
    close = ")" if sep.endswith("(") else ""
    if not listed:
        return f"{sep}none is defined{close}"
    shown = ", ".join(quote(n) for n in listed[:8])
    return f"{sep}defined: {shown}{', ...' if len(listed) > 8 else ''}{close}"


def _selected_pools(
    entry: Entry[Any],
    adv: L2Advertisement | BGPAdvertisement,
    pools: dict[str, tuple[Entry[PoolSpec], Pool]],
    warnings: Warnings,
    unread: set[tuple[str, str]],
) -> tuple[str, ...]:
    for i, name in enumerate(adv.ip_address_pools):
        # As MetalLB: skipped, the pool may be created later (`kubectl apply -f dir/` applies in any order).
        # In a file it is often a typo, hence the warning.
        if name not in pools and ("IPAddressPool", name) not in unread:
            entry.warn(
                warnings,
                "ipAddressPools",
                f"unknown IPAddressPool {quote(name)}{_known(pools, sep=' (')}",
                "skipped until it exists, as MetalLB does",
                i,
            )
    if not adv.ip_address_pools and not adv.ip_address_pool_selectors:
        return tuple(sorted(pools))
    chosen = {name for name in adv.ip_address_pools if name in pools}
    for name, (pool_entry, _) in pools.items():
        if any(s.matches(pool_entry.record.labels) for s in adv.ip_address_pool_selectors):
            chosen.add(name)
    return tuple(sorted(chosen))


def _community_aliases(entries: Sequence[Entry[Community]], problems: Problems) -> dict[str, BGPCommunity]:
    aliases: dict[str, BGPCommunity] = {}
    owner: dict[str, Entry[Community]] = {}
    for entry in entries:
        for i, alias in enumerate(entry.record.communities):
            if alias.name in aliases:
                problems.add(
                    entry.error(
                        "communities",
                        f"community alias {quote(alias.name)} is also defined by "
                        f"{owner[alias.name].describe()}",
                        i,
                    )
                )
                continue
            aliases[alias.name] = alias.value
            owner[alias.name] = entry
    return aliases


def _community_value(
    entry: Entry[Any], index: int, text: str, aliases: dict[str, BGPCommunity]
) -> BGPCommunity:
    if text in aliases:
        return aliases[text]
    if ":" not in text:
        entry.fail(
            "communities",
            f"unknown community alias {quote(text)}{_known(aliases)}; or write a value like 65000:100 "
            "or large:65000:1:2",
            index,
        )
    try:
        return BGPCommunity.parse(text)
    except ValueError as exc:
        entry.fail("communities", str(exc).replace("'", '"'), index)


def _check_aggregation(entry: Entry[BGPAdvertisement], pool_entry: Entry[PoolSpec], pool: Pool) -> None:
    """An aggregated route must not cover addresses outside the pool: as MetalLB, each address entry is
    summarized to CIDRs and the aggregation length may not be shorter than the shortest of their prefixes."""
    adv = entry.record
    for i, (first, last) in enumerate(pool.ranges()):
        v4 = isinstance(first, ipaddress.IPv4Address)
        length, field = (
            (adv.aggregation_length, "aggregationLength")
            if v4
            else (adv.aggregation_length_v6, "aggregationLengthV6")
        )
        shortest = min(n.prefixlen for n in ipaddress.summarize_address_range(first, last))
        if length < shortest:
            entry.fail(
                field,
                f"{length} is shorter than the /{shortest} prefix of "
                f"{quote(pool_entry.record.addresses[i])} in {pool_entry.describe()}; "
                "the aggregated route would cover addresses outside the pool",
            )


def _check_local_pref(
    entry: Entry[BGPAdvertisement],
    adv: BGPAdvertisement,
    earlier: Sequence[BGPAdvertisement],
    pools: dict[str, tuple[Entry[PoolSpec], Pool]],
) -> None:
    """As MetalLB: two advertisements of a pool may not give the same route two LOCAL_PREFs.

    MetalLB decides with the Nodes each one selects at load time; without Nodes, only the pairs that select
    every node (no nodeSelectors) are certain to clash here. The speaker checks the others per node and
    Service, as MetalLB's does, and leaves a clashing Service unadvertised. Advertisements with
    serviceSelectors are checked only there too, as in MetalLB (which Services they share is not known yet).
    """
    if adv.service_selectors or adv.node_selectors:
        return
    for other in earlier:
        if other.service_selectors or other.node_selectors:
            continue
        for pool_name in sorted(set(adv.pools) & set(other.pools)):
            if not adv.local_pref_compatible(other, pools[pool_name][1].families):
                entry.fail(
                    "localPref",
                    f"{adv.local_pref} conflicts with localPref {other.local_pref} of {other.origin} for "
                    f"pool {quote(pool_name)}: both advertise it from every node to a common peer with the "
                    "same aggregation length; give them one localPref, or different aggregation lengths, "
                    "peers or nodeSelectors",
                )


def _check_peer(
    entry: Entry[BGPPeer], profiles: dict[str, BFDProfile], unread: set[tuple[str, str]]
) -> BGPPeer:
    peer = entry.record
    profile = peer.bfd_profile
    if profile is not None and profile not in profiles and ("BFDProfile", profile) not in unread:
        entry.fail("bfdProfile", f"unknown BFDProfile {quote(profile)}{_known(profiles)}")
    return peer


def _no_identical_peers(entries: Sequence[Entry[BGPPeer]], problems: Problems) -> None:
    # Two peers that differ only in name would open the same session twice.
    seen: list[tuple[BGPPeer, Entry[BGPPeer]]] = []
    for entry in entries:
        unnamed = replace(entry.record, name="")
        twin = next((other_entry for other, other_entry in seen if other == unnamed), None)
        if twin is not None:
            problems.add(entry.error("", f"is identical to {twin.describe()}; remove one of them"))
        seen.append((unnamed, entry))


def _one_session_per_neighbor(entries: Sequence[Entry[BGPPeer]], problems: Problems) -> None:
    """As MetalLB's FRR mode: one node holds one session per neighbor (address or interface, and VRF), so
    two peers of one neighbor must not select a common node.

    MetalLB decides with the Nodes it knows (and, knowing none, refuses every such pair). This loader sees no
    Nodes: it refuses the pairs whose nodeSelectors could both match one node, and accepts those that no
    node can match both of (`kubernetes.io/hostname: a` and `: b`), which MetalLB accepts whatever the Nodes.
    Router IDs and myASN may differ between peers (MetalLB's FRR mode refuses that, its native mode does
    not): each session of this package's speaker is its own, as in native mode.
    """
    for i, entry in enumerate(entries):
        with problems.each():
            _one_session(entry, entries[:i])


def _one_session(entry: Entry[BGPPeer], earlier: Sequence[Entry[BGPPeer]]) -> None:
    """`entry` against the peers before it; the first clash is its mistake."""
    peer = entry.record
    for other_entry in earlier:
        other = other_entry.record
        if _neighbor(peer) != _neighbor(other):
            continue
        if _may_select_one_node(peer.node_selectors, other.node_selectors):
            field = "peerAddress" if peer.peer_address is not None else "interface"
            neighbor, vrf = _neighbor(peer)
            entry.fail(
                field,
                f"{other_entry.describe()} also peers with {quote(neighbor)}"
                f"{f' in VRF {quote(vrf)}' if vrf else ''} and their nodeSelectors can select the same "
                "node, which can hold one session to a neighbor; give them nodeSelectors no node matches "
                "both of",
            )


def _neighbor(peer: BGPPeer) -> tuple[str, str]:
    """MetalLB's PeerIdentifier: the address (or interface) and the VRF."""
    return peer.peer_address or peer.interface or "", peer.vrf or ""


def _may_select_one_node(a: Sequence[LabelSelector], b: Sequence[LabelSelector]) -> bool:
    """Whether some node's labels could match one of `a` and one of `b` (no selectors: every node)."""
    everything: list[LabelSelector | None] = [None]
    return any(_satisfiable(x, y) for x in (a or everything) for y in (b or everything))


def _satisfiable(*selectors: LabelSelector | None) -> bool:
    """Whether one set of labels can match all `selectors` (None matches everything)."""
    required: dict[str, set[str] | None] = {}  # key -> allowed values (None: any value, but present)
    excluded: dict[str, set[str]] = {}
    absent: set[str] = set()
    for selector in selectors:
        if selector is None:
            continue
        terms = [(k, "In", [v]) for k, v in selector.match_labels.items()]
        for key, operator, values in [*terms, *selector.match_expressions]:
            if operator == "In":
                known = required.get(key)
                required[key] = set(values) if known is None else known & set(values)
            elif operator == "Exists":
                required.setdefault(key, None)
            elif operator == "NotIn":
                excluded.setdefault(key, set()).update(values)
            else:
                absent.add(key)
    for key, allowed in required.items():
        if key in absent or (allowed is not None and not allowed - excluded.get(key, set())):
            return False
    return True


def _check_bfd_echo(
    entry: Entry[BGPAdvertisement],
    adv: BGPAdvertisement,
    pools: dict[str, tuple[Entry[PoolSpec], Pool]],
    peers: Sequence[BGPPeer],
    profiles: dict[str, BFDProfile],
) -> None:
    """As MetalLB: BFD echo mode cannot serve IPv6 sessions, so no IPv6 pool may go to such a peer."""
    v6_pools = [name for name in adv.pools if "IPv6" in pools[name][1].families]
    if not v6_pools:
        return
    for peer in peers:
        if adv.peers and peer.name not in adv.peers:
            continue
        profile = profiles.get(peer.bfd_profile or "")
        if profile is not None and profile.echo_mode:
            entry.fail(
                "peers",
                f"advertises IPv6 pool {quote(v6_pools[0])} to BGPPeer {quote(peer.name)}, whose BFDProfile "
                f"{quote(profile.name)} has echo mode on; BFD echo does not work for IPv6",
            )
