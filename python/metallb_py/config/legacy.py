"""The legacy configuration of MetalLB <= 0.12: a ConfigMap whose `data.config` holds YAML text.

Owns the legacy layout (`peers`, `bgp-communities`, `address-pools`, `bfd-profiles`) and its translation into
the same records the CRDs give: every pool becomes an IPAddressPool plus an L2Advertisement (protocol
layer2) or its BGPAdvertisements (protocol bgp; one default advertisement when it lists none, as MetalLB
did), every peer a BGPPeer, the communities one Community named `communities`. Field rules shared with the
CRDs are read by the `crds` readers in legacy spelling. The generated names are what `convert_legacy` writes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from metallb_py.config._values import check_dns_subdomain, dns_label, unique_dns_labels
from metallb_py.config.crds import (
    STANDARD_METADATA,
    read_bfd_profile,
    read_bgp_advertisement,
    read_community_value,
    read_peer,
)
from metallb_py.config.model import BGPAdvertisement, BGPPeer, Community, CommunityAlias, L2Advertisement
from metallb_py.config.problems import Problems
from metallb_py.config.reader import Reader, Where, load_yaml_documents, quote
from metallb_py.config.resources import Entry, PoolSpec, Resources
from metallb_py.errors import ConfigError

__all__ = ["DEFAULT_NAMESPACE", "LEGACY_KEYS", "PROTOCOLS", "read_legacy_config", "read_legacy_configmap"]

DEFAULT_NAMESPACE = "metallb-system"
LEGACY_KEYS = ("peers", "bgp-communities", "address-pools", "bfd-profiles")
PROTOCOLS = ("layer2", "bgp")
COMMUNITY_OBJECT_NAME = "communities"


def read_legacy_configmap(
    obj: object, context: str, problems: Problems | None = None
) -> tuple[Resources, str | None]:
    """A v1 ConfigMap holding MetalLB's legacy configuration; also returns its namespace. `problems` as for
    `read_legacy_config`."""
    where = Where(f"ConfigMap ({context})")
    r = Reader(obj, where)
    r.ignore("apiVersion", "kind")  # checked by the caller, which dispatched on them
    metadata = r.mapping("metadata", required=True)
    assert metadata is not None
    name = metadata.required_text("name")
    check_dns_subdomain(where, metadata.path_of("name"), name)
    namespace = metadata.text("namespace", allow_empty=False)
    if namespace is not None:
        check_dns_subdomain(where, metadata.path_of("namespace"), namespace)
    metadata.ignore("labels", *STANDARD_METADATA)
    metadata.finish()
    where.text = f"ConfigMap {namespace}/{name} ({context})" if namespace else f"ConfigMap {name} ({context})"
    data = r.mapping("data", required=True)
    assert data is not None
    if not data.has("config"):
        data.missing("config")
    text = data.text("config") or ""  # empty is a valid, empty configuration (no pools)
    data.finish()
    r.finish()
    documents = [d for d in load_yaml_documents(text, where, data.path_of("config")) if d is not None]
    if len(documents) > 1:
        where.fail(data.path_of("config"), "holds several YAML documents; MetalLB reads one")
    config = documents[0] if documents else {}
    # No namespace means "wherever it is applied": it constrains nothing (Config defaults to metallb-system).
    return read_legacy_config(config, where, namespace, problems), namespace


def read_legacy_config(
    config: object, where: Where, namespace: str | None, problems: Problems | None = None
) -> Resources:
    """The parsed `data.config` mapping (also accepted alone, as a document with no kind).

    Each community, BFD profile, peer and pool is read on its own: the mistakes of all of them go to
    `problems` and the others are returned; without `problems`, they are raised together at the end.
    """
    if problems is not None:
        return _read_legacy_config(config, where, namespace, problems)
    own = Problems()
    with own.each():
        resources = _read_legacy_config(config, where, namespace, own)
    own.raise_any()
    return resources


def _read_legacy_config(config: object, where: Where, namespace: str | None, own: Problems) -> Resources:
    r = Reader(config, where)
    resources = Resources()
    communities = r.text_map("bgp-communities")
    if communities:
        aliases: list[CommunityAlias] = []
        for alias, value in sorted(communities.items()):
            with own.each():
                aliases.append(
                    CommunityAlias(alias, read_community_value(where, f"bgp-communities.{alias}", value))
                )
        if len(aliases) < len(communities):
            resources.unread.add(("Community", COMMUNITY_OBJECT_NAME))
        paths = {"": "bgp-communities", "communities": "bgp-communities"}
        community = Community(COMMUNITY_OBJECT_NAME, tuple(aliases))
        resources.communities.append(Entry(community, where, paths, namespace, "Community"))

    for item in r.mappings("bfd-profiles"):
        with own.each():
            _read_bfd_profile(item, where, namespace, resources)

    peers: list[tuple[Reader, BGPPeer, dict[str, str]]] = []
    for item in r.mappings("peers"):
        with own.each():
            peers.append((item, *read_peer(item, "", legacy=True)))
            item.finish()
    for (_, peer, paths), name in zip(
        peers, unique_dns_labels(f"peer-{p.peer_address}" for _, p, _ in peers), strict=True
    ):
        resources.bgp_peers.append(Entry(replace(peer, name=name), where, paths, namespace, "BGPPeer"))

    _read_pools(r, where, namespace, resources, own)
    with own.each():
        r.finish()
    return resources


def _read_bfd_profile(item: Reader, where: Where, namespace: str | None, resources: Resources) -> None:
    name = item.required_text("name")
    try:
        named = item.named(name)
        profile, paths = read_bfd_profile(named, name, legacy=True)
        paths["name"] = item.path_of("name")
        named.finish()
    except ConfigError:
        resources.unread.add(("BFDProfile", name))
        raise
    resources.bfd_profiles.append(Entry(profile, where, paths, namespace, "BFDProfile"))


def _read_pools(
    r: Reader, where: Where, namespace: str | None, resources: Resources, problems: Problems
) -> None:
    # First the names, and how many advertisements each pool implies: they name the advertisements, unique
    # within their kind. A pool whose name or advertisement list cannot be read is reported here, once.
    pools: list[tuple[Reader, str, int]] = []
    for item in r.mappings("address-pools"):
        with problems.each():
            name = item.required_text("name")
            count = (len(item.items("bgp-advertisements")) or 1) if item.raw("protocol") == "bgp" else 0
            pools.append((item, name, count))
    l2_labels = iter(unique_dns_labels(name for item, name, _ in pools if _is_layer2(item)))
    l2_names = {i: next(l2_labels) for i, (item, _, _) in enumerate(pools) if _is_layer2(item)}
    bgp_bases: list[str] = []
    owners: list[int] = []
    for i, (_, name, count) in enumerate(pools):
        bases = [name] if count == 1 else [f"{dns_label(name)}-{n + 1}" for n in range(count)]
        bgp_bases += bases
        owners += [i] * len(bases)
    bgp_names: dict[int, list[str]] = {}
    for i, label in zip(owners, unique_dns_labels(bgp_bases), strict=True):
        bgp_names.setdefault(i, []).append(label)

    for i, (item, name, _) in enumerate(pools):
        pool = Resources()
        with problems.each():
            _read_pool(
                item,
                name,
                pool,
                where=where,
                namespace=namespace,
                l2_name=l2_names.get(i),
                bgp_names=iter(bgp_names.get(i, ())),
            )
            resources.extend(pool)
            continue
        resources.unread.add(("IPAddressPool", name))


def _read_pool(
    item: Reader,
    name: str,
    resources: Resources,
    *,
    where: Where,
    namespace: str | None,
    l2_name: str | None,
    bgp_names: Iterator[str],
) -> None:
    pool = item.named(name)
    protocol = pool.required_text("protocol")
    if protocol not in PROTOCOLS:
        pool.fail("protocol", f"unknown protocol {quote(protocol)}; expected layer2 or bgp")
    if not pool.has("addresses"):
        pool.missing("addresses")
    addresses = pool.texts("addresses")
    if not addresses:
        pool.fail("addresses", "a pool needs at least one CIDR or range")
    auto_assign = pool.flag("auto-assign")
    avoid_buggy_ips = pool.flag("avoid-buggy-ips")
    spec = PoolSpec(
        name=name,
        addresses=tuple(addresses),
        auto_assign=True if auto_assign is None else auto_assign,
        avoid_buggy_ips=bool(avoid_buggy_ips),
        protocol=protocol,
    )
    own = pool.path
    paths = {"": own, "name": pool.path_of("name"), "addresses": pool.path_of("addresses")}
    resources.pools.append(Entry(spec, where, paths, namespace, "IPAddressPool"))

    advertisements = pool.mappings("bgp-advertisements")
    if protocol == "layer2":
        if advertisements:
            pool.fail("bgp-advertisements", "only a bgp pool has BGP advertisements; this pool is layer2")
        assert l2_name is not None
        l2 = L2Advertisement(l2_name, ip_address_pools=(name,))
        resources.l2_advertisements.append(Entry(l2, where, {"": own}, namespace, "L2Advertisement"))
    else:
        for adv in advertisements:
            bgp, adv_paths = read_bgp_advertisement(adv, "", legacy=True)
            adv.finish()
            bgp = replace(bgp, name=next(bgp_names), ip_address_pools=(name,))
            resources.bgp_advertisements.append(Entry(bgp, where, adv_paths, namespace, "BGPAdvertisement"))
        if not advertisements:
            bgp = BGPAdvertisement(next(bgp_names), ip_address_pools=(name,))
            resources.bgp_advertisements.append(Entry(bgp, where, {"": own}, namespace, "BGPAdvertisement"))
    pool.finish()


def _is_layer2(item: Reader) -> bool:
    return item.raw("protocol") == "layer2"
