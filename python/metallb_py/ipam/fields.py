"""The one reader of each Service field more than one package reads: lenient, never raising.

The controller, the speaker, `plan` and the test lab all read a Service's ingress addresses, its
loadBalancerClass and the pool annotation the controller writes; each reads them here, so they cannot
disagree on an edge case (an empty class, a malformed address, the deprecated annotation). Input is a
Service as a mapping (from the API or YAML); anything malformed reads as "not set" or is skipped.

`ipam.service` keeps the typed readers that must say what is wrong and where (`service_request`, and its
`ingress_ips` for `plan`); the latter walks the ingress list through `ingress_ips` here (with `on_invalid`),
so there is one definition of which entries count.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "ALLOCATED_FROM_POOL",
    "DEPRECATED_ALLOCATED_FROM_POOL",
    "EXPECTED_IP",
    "allocated_pool",
    "canonical_ip",
    "ingress_ips",
    "load_balancer_class",
]

# Written by the controller with the pool a Service's addresses came from; read by the speaker.
ALLOCATED_FROM_POOL = "metallb.io/ip-allocated-from-pool"
# MetalLB's older name for it: still read, removed by the controller when it writes the current one.
DEPRECATED_ALLOCATED_FROM_POOL = "metallb.universe.tf/ip-allocated-from-pool"

# Called with (path, value, what was expected) for each malformed part `ingress_ips` skips.
OnInvalid = Callable[[str, object, str], None]


# What `on_invalid` is told an ip that is a string but no address should have been.
EXPECTED_IP = "an IP address"


def _ignore(path: str, value: object, expected: str) -> None:
    pass


def canonical_ip(text: str) -> str | None:
    """The canonical text of an IPv4 or IPv6 address ("2001:db8::1"), None if `text` is not one.

    Surrounding spaces are tolerated; a zone ("fe80::1%eth0") or a prefix length ("10.0.0.1/32") is not.
    """
    if "%" in text or "/" in text:
        return None
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def ingress_ips(svc: object, on_invalid: OnInvalid = _ignore, *, keep_malformed: bool = False) -> list[str]:
    """Canonical text of each valid `status.loadBalancer.ingress[].ip`, in order.

    Entries without an ip (hostname-only) or with an empty one are not addresses and are passed over; each
    malformed part (a status that is not a mapping, an ip that is not an address...) is reported to
    `on_invalid` with its path and skipped. With `keep_malformed`, an ip that is a string but no address
    stays in place as written: what the status shows, for a writer that must see it is wrong and replace it.
    """
    status = svc.get("status") if isinstance(svc, Mapping) else None
    if status is None:
        return []
    if not isinstance(status, Mapping):
        on_invalid("status", status, "a mapping")
        return []
    balancer = status.get("loadBalancer")
    if balancer is None:
        return []
    if not isinstance(balancer, Mapping):
        on_invalid("status.loadBalancer", balancer, "a mapping")
        return []
    ingress = balancer.get("ingress")
    if ingress is None:
        return []
    if not isinstance(ingress, list):
        on_invalid("status.loadBalancer.ingress", ingress, "a list")
        return []
    ips = []
    for i, entry in enumerate(ingress):
        path = f"status.loadBalancer.ingress[{i}]"
        if not isinstance(entry, Mapping):
            on_invalid(path, entry, "a mapping")
            continue
        ip = entry.get("ip")
        if ip is None or ip == "":
            continue
        if not isinstance(ip, str):
            on_invalid(f"{path}.ip", ip, "a string")
            continue
        text = canonical_ip(ip)
        if text is None:
            on_invalid(f"{path}.ip", ip, EXPECTED_IP)
            if keep_malformed:
                ips.append(ip)
            continue
        ips.append(text)
    return ips


def load_balancer_class(svc: Mapping[str, Any]) -> str | None:
    """`spec.loadBalancerClass`; None when unset, empty or not a string (MetalLB's own Services)."""
    spec = svc.get("spec") if isinstance(svc, Mapping) else None
    value = spec.get("loadBalancerClass") if isinstance(spec, Mapping) else None
    return value if isinstance(value, str) and value else None


def allocated_pool(svc: Mapping[str, Any]) -> str | None:
    """The pool the controller recorded in the Service's annotation; None when there is none.

    The current annotation wins whenever it is present, even empty (then: none), as the controller treats
    it; the deprecated one counts only in its absence. Non-string values read as absent.
    """
    metadata = svc.get("metadata") if isinstance(svc, Mapping) else None
    annotations = metadata.get("annotations") if isinstance(metadata, Mapping) else None
    if not isinstance(annotations, Mapping):
        return None
    value = annotations.get(ALLOCATED_FROM_POOL)
    if not isinstance(value, str):
        value = annotations.get(DEPRECATED_ALLOCATED_FROM_POOL)
    return value if isinstance(value, str) and value else None
