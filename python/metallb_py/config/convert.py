"""Writing a Config as metallb.io CRD manifests; `convert_legacy` turns a legacy ConfigMap into them.

The legacy parser already names the objects a ConfigMap implies (an L2Advertisement per layer2 pool, the
BGPAdvertisements of each bgp pool, a BGPPeer per peer, one Community); here pool and BFD profile names, which
the legacy format allowed to be anything, become DNS-1123 labels and every reference follows. Names that are
already valid are kept; the others are lowercased, invalid characters become '-', and clashes get -2, -3...
in name order, so the output is the same on every run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from metallb_py._core import LabelSelector, Pool
from metallb_py.config._values import dns_label, format_duration, unique_dns_labels
from metallb_py.config.crds import GROUP, VERSIONS
from metallb_py.config.legacy import LEGACY_KEYS
from metallb_py.config.loader import build_config, read_object
from metallb_py.config.model import BFDProfile, BGPAdvertisement, BGPPeer, Community, Config, L2Advertisement
from metallb_py.config.reader import Where, describe, load_yaml_documents, quote
from metallb_py.config.resources import Resources
from metallb_py.errors import ConfigError

__all__ = ["convert_legacy", "dump_crds", "kubernetes_names"]


def convert_legacy(text: str, *, source: str = "<config>") -> str:
    """A legacy MetalLB ConfigMap (YAML text) as equivalent CRD manifests (multi-document YAML).

    The input is validated first; anything but legacy configuration in it is an error.
    """
    resources = Resources()
    found = False
    for n, document in enumerate(load_yaml_documents(text, Where(source)), start=1):
        if document is None:
            continue
        context = f"{source}, document {n}"
        is_configmap = isinstance(document, dict) and document.get("kind") == "ConfigMap"
        is_bare = (
            isinstance(document, dict)
            and "kind" not in document
            and any(key in document for key in LEGACY_KEYS)
        )
        if not (is_configmap or is_bare):
            kind = document.get("kind") if isinstance(document, dict) else document
            raise ConfigError(
                f"document ({context}): {describe(kind)} is not a legacy MetalLB ConfigMap; "
                "only those convert"
            )
        resources.extend(read_object(document, context))
        found = True
    if not found:
        raise ConfigError(f"{source}: no legacy MetalLB ConfigMap found")
    return dump_crds(build_config(resources), source=source)


def kubernetes_names(names: Iterable[str]) -> dict[str, str]:
    """Map each name to a unique DNS-1123 label: valid names stay, the others are cleaned up in name order."""
    names = sorted(set(names))
    result = {name: name for name in names if dns_label(name) == name}
    renamed = [name for name in names if name not in result]
    result.update(zip(renamed, unique_dns_labels(renamed, set(result.values())), strict=True))
    return result


def dump_crds(config: Config, *, source: str | None = None) -> str:
    """The configuration as metallb.io manifests, one YAML document per object."""
    pool_names = kubernetes_names(p.name for p in config.pools)
    bfd_names = kubernetes_names(b.name for b in config.bfd_profiles)
    ns = config.namespace
    objects: list[dict[str, Any]] = []
    objects += [_pool(p, pool_names[p.name], ns, config.pool_labels.get(p.name, {})) for p in config.pools]
    objects += [_l2(a, ns, pool_names) for a in config.l2_advertisements]
    objects += [_bgp(a, ns, pool_names) for a in config.bgp_advertisements]
    objects += [_peer(p, ns, bfd_names) for p in config.bgp_peers]
    objects += [_community(c, ns) for c in config.communities]
    objects += [_bfd(b, bfd_names[b.name], ns) for b in config.bfd_profiles]

    header = [f"# MetalLB configuration as custom resources{f', converted from {source}' if source else ''}."]
    for old, new in sorted(pool_names.items()):
        if old != new:
            header.append(
                f"# Pool {quote(old)} is now IPAddressPool {quote(new)}: update the metallb.io/address-pool "
                "(or metallb.universe.tf/address-pool) annotation of services that name it."
            )
    for old, new in sorted(bfd_names.items()):
        if old != new:
            header.append(f"# BFD profile {quote(old)} is now BFDProfile {quote(new)}.")
    # What loading did as MetalLB does (a masked CIDR) is written out that way; say what changed.
    header += [f"# Warning: {' '.join(w.split())}" for w in config.warnings]
    body = "---\n".join(yaml.safe_dump(o, sort_keys=False, default_flow_style=False) for o in objects)
    return "\n".join(header) + "\n" + ("---\n" + body if body else "")


def _object(
    kind: str, name: str, namespace: str, spec: dict[str, Any], labels: Mapping[str, str] = {}
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": f"{GROUP}/{VERSIONS[kind]}", "kind": kind, "metadata": metadata, "spec": spec}


def _selector(selector: LabelSelector) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if selector.match_labels:
        out["matchLabels"] = dict(sorted(selector.match_labels.items()))
    if selector.match_expressions:
        out["matchExpressions"] = [
            {"key": k, "operator": op, **({"values": list(vs)} if vs else {})}
            for k, op, vs in selector.match_expressions
        ]
    return out


def _put(spec: dict[str, Any], key: str, value: object) -> None:
    """Write only what differs from the CRD's default, as `kubectl` users write manifests."""
    if value not in (None, False, (), [], {}):
        spec[key] = value


def _pool(pool: Pool, name: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"addresses": list(pool.addresses)}
    if not pool.auto_assign:
        spec["autoAssign"] = False
    _put(spec, "avoidBuggyIPs", pool.avoid_buggy_ips)
    allocation = pool.service_allocation
    if allocation is not None:
        sa: dict[str, Any] = {}
        _put(sa, "priority", allocation.priority)
        _put(sa, "namespaces", list(allocation.namespaces))
        _put(sa, "namespaceSelectors", [_selector(s) for s in allocation.namespace_selectors])
        _put(sa, "serviceSelectors", [_selector(s) for s in allocation.service_selectors])
        spec["serviceAllocation"] = sa
    return _object("IPAddressPool", name, namespace, spec, labels)


def _l2(adv: L2Advertisement, namespace: str, pool_names: Mapping[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    _put(spec, "ipAddressPools", [pool_names.get(p, p) for p in adv.ip_address_pools])
    _put(spec, "ipAddressPoolSelectors", [_selector(s) for s in adv.ip_address_pool_selectors])
    _put(spec, "nodeSelectors", [_selector(s) for s in adv.node_selectors])
    _put(spec, "interfaces", list(adv.interfaces))
    _put(spec, "serviceSelectors", [_selector(s) for s in adv.service_selectors])
    _put(
        spec,
        "preferredNodeSelectors",
        [{"weight": p.weight, "preference": _selector(p.preference)} for p in adv.preferred_node_selectors],
    )
    return _object("L2Advertisement", adv.name, namespace, spec)


def _bgp(adv: BGPAdvertisement, namespace: str, pool_names: Mapping[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if adv.aggregation_length != 32:
        spec["aggregationLength"] = adv.aggregation_length
    if adv.aggregation_length_v6 != 128:
        spec["aggregationLengthV6"] = adv.aggregation_length_v6
    _put(spec, "localPref", adv.local_pref)
    _put(spec, "communities", list(adv.communities))
    _put(spec, "ipAddressPools", [pool_names.get(p, p) for p in adv.ip_address_pools])
    _put(spec, "ipAddressPoolSelectors", [_selector(s) for s in adv.ip_address_pool_selectors])
    _put(spec, "nodeSelectors", [_selector(s) for s in adv.node_selectors])
    _put(spec, "peers", list(adv.peers))
    _put(spec, "serviceSelectors", [_selector(s) for s in adv.service_selectors])
    return _object("BGPAdvertisement", adv.name, namespace, spec)


def _peer(peer: BGPPeer, namespace: str, bfd_names: Mapping[str, str]) -> dict[str, Any]:
    spec: dict[str, Any] = {"myASN": peer.my_asn}
    _put(spec, "peerASN", peer.peer_asn)
    _put(spec, "dynamicASN", peer.dynamic_asn)
    _put(spec, "localASN", peer.local_asn)
    _put(spec, "peerAddress", peer.peer_address)
    _put(spec, "interface", peer.interface)
    _put(spec, "sourceAddress", peer.source_address)
    if peer.peer_port != 179:
        spec["peerPort"] = peer.peer_port
    for key, value in (
        ("holdTime", peer.hold_time),
        ("keepaliveTime", peer.keepalive_time),
        ("connectTime", peer.connect_time),
    ):
        if value is not None:
            spec[key] = format_duration(value)
    _put(spec, "routerID", peer.router_id)
    _put(spec, "nodeSelectors", [_selector(s) for s in peer.node_selectors])
    _put(spec, "password", peer.password)
    if peer.password_secret is not None:
        secret = {"name": peer.password_secret.name}
        _put(secret, "namespace", peer.password_secret.namespace)
        spec["passwordSecret"] = secret
    _put(spec, "bfdProfile", bfd_names[peer.bfd_profile] if peer.bfd_profile else None)
    _put(spec, "enableGracefulRestart", peer.enable_graceful_restart)
    _put(spec, "ebgpMultiHop", peer.ebgp_multihop)
    _put(spec, "vrf", peer.vrf)
    _put(spec, "disableMP", peer.disable_mp)
    _put(spec, "dualStackAddressFamily", peer.dual_stack_address_family)
    return _object("BGPPeer", peer.name, namespace, spec)


def _community(community: Community, namespace: str) -> dict[str, Any]:
    aliases = [{"name": a.name, "value": str(a.value)} for a in community.communities]
    return _object("Community", community.name, namespace, {"communities": aliases} if aliases else {})


def _bfd(profile: BFDProfile, name: str, namespace: str) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    for key, value in (
        ("receiveInterval", profile.receive_interval),
        ("transmitInterval", profile.transmit_interval),
        ("detectMultiplier", profile.detect_multiplier),
        ("echoInterval", profile.echo_interval),
        ("echoMode", profile.echo_mode),
        ("passiveMode", profile.passive_mode),
        ("minimumTtl", profile.minimum_ttl),
    ):
        _put(spec, key, value)
    return _object("BFDProfile", name, namespace, spec)
