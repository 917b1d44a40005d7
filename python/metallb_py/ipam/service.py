"""A Kubernetes Service object (a dict, as from YAML or the API) read as the allocator's arguments.

Pure: no I/O, no allocator. Owns MetalLB's Service annotations and how they combine with the spec:

- `metallb.io/address-pool`, `metallb.io/loadBalancerIPs` (comma separated), `metallb.io/allow-shared-ip`,
  each also accepted as the deprecated `metallb.universe.tf/...`; as in MetalLB, the metallb.io form wins
  whenever it is present (even empty), and an empty value means "not set".
- `spec.loadBalancerIP` (deprecated by Kubernetes) and the loadBalancerIPs annotation together are an error,
  as in MetalLB; so are two requested addresses of one family.
- backend key: "" for externalTrafficPolicy Cluster; for Local, the selector as `k=v,k2=v2` (sorted), so
  services sharing an IP under Local must select the same pods (a "," or "=" in the selector, which the
  API server refuses, is an error: it would make two selectors one key).
"""

from __future__ import annotations

import datetime as _dt
import functools
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from metallb_py._core import Allocator, Port
from metallb_py.config.reader import Reader, Where, describe, quote
from metallb_py.errors import (
    AllocationError,
    ConfigError,
    FamilyError,
    IPInUseError,
    NoPoolError,
    UnknownPoolError,
)
from metallb_py.ipam import fields
from metallb_py.ipam.fields import EXPECTED_IP, canonical_ip

__all__ = [
    "ANNOTATION_ADDRESS_POOL",
    "ANNOTATION_ALLOW_SHARED_IP",
    "ANNOTATION_LOAD_BALANCER_IPS",
    "AnnotationError",
    "ServiceError",
    "ServiceRequest",
    "creation_timestamp",
    "ingress_ips",
    "is_load_balancer",
    "service_key",
    "service_request",
]

ANNOTATION_ADDRESS_POOL = "metallb.io/address-pool"
ANNOTATION_LOAD_BALANCER_IPS = "metallb.io/loadBalancerIPs"
ANNOTATION_ALLOW_SHARED_IP = "metallb.io/allow-shared-ip"
_DEPRECATED_PREFIX = "metallb.universe.tf/"

_T = TypeVar("_T")
_PROTOCOLS = ("TCP", "UDP", "SCTP")
_FAMILIES = ("IPv4", "IPv6")
_FAMILY_POLICIES = ("SingleStack", "PreferDualStack", "RequireDualStack")


class ServiceError(ConfigError):
    """A Service object cannot be read (wrong types, bad ports...); the message names Service and field."""


class AnnotationError(ServiceError):
    """A MetalLB annotation on a Service is invalid; the message names the annotation."""


@dataclass(frozen=True)
class ServiceRequest:
    """What the allocator needs to know about one Service."""

    key: str  # "namespace/name", the allocator's key
    namespace: str
    name: str
    ports: tuple[Port, ...] = ()
    pool: str | None = None
    requested: tuple[str, ...] = ()
    sharing_key: str | None = None
    backend_key: str = ""
    ip_families: tuple[str, ...] = ("IPv4",)
    ip_family_policy: str = "SingleStack"
    labels: dict[str, str] = field(default_factory=dict)
    lb_class: str | None = None
    # Where `pool`, `requested` and `sharing_key` were read from (the annotation as written, current or
    # deprecated; spec.loadBalancerIP), so an allocation error can name the field at fault.
    pool_field: str = "metadata.annotations." + ANNOTATION_ADDRESS_POOL
    requested_field: str = "metadata.annotations." + ANNOTATION_LOAD_BALANCER_IPS
    sharing_field: str = "metadata.annotations." + ANNOTATION_ALLOW_SHARED_IP

    def allocate(
        self, allocator: Allocator, *, namespace_labels: Mapping[str, str] | None = None
    ) -> list[str]:
        """`Allocator.allocate` for this Service, addresses as text. Its AllocationError (or ConfigError) is
        raised again as the same class, its message starting with the Service and the field at fault
        (`field_at_fault`), as a Warning Event about the Service should read."""
        labels = dict(namespace_labels or {})
        try:
            return [
                str(ip)
                for ip in allocator.allocate(self.key, **self.allocate_kwargs(), namespace_labels=labels)
            ]
        except (AllocationError, ConfigError) as exc:
            raise type(exc)(f"Service {self.key}: {self.field_at_fault(exc)}: {exc}") from None

    def field_at_fault(self, exc: Exception) -> str:
        """The field of this Service an allocation error is about (an annotation as written, or a spec path).

        Unknown pool: the pool annotation. Families: the policy or the list (or the requested addresses, of
        other families). Otherwise what chose the candidates: requested addresses (taken, in no pool or
        another, not served), else a named pool (full, or not serving the Service), else the families (no
        pool has them, or those that do are full), or the labels when no pool serves them.
        """
        if isinstance(exc, UnknownPoolError):
            return self.pool_field
        if isinstance(exc, FamilyError):
            if str(exc).startswith("ipFamilyPolicy"):
                return "spec.ipFamilyPolicy"
            return self.requested_field if self.requested else "spec.ipFamilies"
        if self.requested:
            return self.requested_field
        if self.pool is not None:
            return self.pool_field
        if isinstance(exc, IPInUseError):
            return self.sharing_field  # only when restoring shown addresses another holds on other terms
        if isinstance(exc, NoPoolError) and "namespace" in str(exc):
            # No auto-assign pool's serviceAllocation selects it: by its labels, or (none) its namespace.
            return "metadata.labels" if self.labels else "metadata.namespace"
        return "spec.ipFamilies"

    def allocate_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `Allocator.allocate(key, **...)` (without namespace_labels)."""
        return {
            "ports": list(self.ports),
            "pool": self.pool,
            "requested": list(self.requested),
            "sharing_key": self.sharing_key,
            "backend_key": self.backend_key,
            "ip_families": list(self.ip_families),
            "ip_family_policy": self.ip_family_policy,
            "labels": dict(self.labels),
        }


def is_load_balancer(svc: object) -> bool:
    """Whether the object is a Service of type LoadBalancer (False for anything else, garbage included)."""
    if not isinstance(svc, dict) or svc.get("kind", "Service") != "Service":
        return False
    spec = svc.get("spec")
    return isinstance(spec, dict) and spec.get("type") == "LoadBalancer"


def _as_service_error(read: Callable[[object], _T]) -> Callable[[object], _T]:
    """Every reading mistake is a ServiceError (a ConfigError), whatever helper found it."""

    @functools.wraps(read)
    def wrapper(svc: object) -> _T:
        try:
            return read(svc)
        except ServiceError:
            raise
        except ConfigError as exc:
            raise ServiceError(str(exc)) from None

    return wrapper


@_as_service_error
def service_key(svc: object) -> str:
    """`namespace/name` (namespace "default" when unset), or ServiceError."""
    metadata = _metadata(svc, Where("Service"))
    namespace = metadata.text("namespace", allow_empty=False) or "default"
    return f"{namespace}/{metadata.required_text('name')}"


@_as_service_error
def service_request(svc: object) -> ServiceRequest:
    """Read a Service's annotations and spec; ServiceError/AnnotationError name the field at fault."""
    key = service_key(svc)
    where = Where(f"Service {key}")
    metadata = _metadata(svc, where)
    # From the metadata, not the key: a namespace with a "/" (refused by the API server, not by a file)
    # would split wrongly, and pools select namespaces by name.
    namespace = metadata.text("namespace", allow_empty=False) or "default"
    name = metadata.required_text("name")
    labels = metadata.text_map("labels")
    annotations = _annotations(metadata)
    assert isinstance(svc, dict)
    spec = Reader(svc.get("spec") or {}, where, "spec")

    pool = _annotation(annotations, "address-pool")
    sharing_key = _annotation(annotations, "allow-shared-ip")
    requested = _requested_ips(annotations, spec, where)
    requested_name = _annotation_name(annotations, "loadBalancerIPs")

    ports = []
    for port in spec.mappings("ports"):
        number = port.number("port", minimum=1, maximum=65535)
        if number is None:
            port.missing("port")
        protocol = port.text("protocol") or "TCP"
        if protocol not in _PROTOCOLS:
            port.fail("protocol", f"unknown protocol {quote(protocol)}; expected TCP, UDP or SCTP")
        ports.append(Port(number, protocol))

    families = spec.texts("ipFamilies")
    for i, family in enumerate(families):
        if family not in _FAMILIES:
            where.fail(f"spec.ipFamilies[{i}]", f"unknown family {quote(family)}; expected IPv4 or IPv6")
    if len(set(families)) != len(families):
        spec.fail("ipFamilies", "lists a family twice")
    policy = spec.text("ipFamilyPolicy") or "SingleStack"
    if policy not in _FAMILY_POLICIES:
        spec.fail("ipFamilyPolicy", f"unknown policy {quote(policy)}; expected {', '.join(_FAMILY_POLICIES)}")
    if not families:
        # The API server fills ipFamilies from the cluster IPs; hand-written manifests often lack both. Then
        # the requested addresses' families, when the policy allows that many (the allocator refuses
        # addresses of other families than the Service's, naming them), else a dual-stack policy gets both
        # families (IPv4 first), as a dual-stack cluster would give it.
        asked = _families_of(requested)
        fits = {"SingleStack": len(asked) == 1, "RequireDualStack": len(asked) == 2}.get(policy, bool(asked))
        default = ["IPv4"] if policy == "SingleStack" else list(_FAMILIES)
        cluster = _families_of(spec.texts("clusterIPs") or [spec.text("clusterIP") or ""])
        families = cluster or (asked if fits else default)
    if policy == "SingleStack" and len(families) > 1:
        spec.fail("ipFamilies", "a SingleStack service has exactly one family")

    traffic_policy = spec.text("externalTrafficPolicy") or "Cluster"
    if traffic_policy not in ("Cluster", "Local"):
        spec.fail(
            "externalTrafficPolicy", f"unknown policy {quote(traffic_policy)}; expected Cluster or Local"
        )
    backend_key = ""
    if traffic_policy == "Local":
        selector = spec.text_map("selector")
        for label, value in selector.items():
            # The API server refuses both in labels; here they would make two selectors one backend key
            # ({"app": "a,tier=b"} and {"app": "a", "tier": "b"}), letting them share an address.
            if any(c in label + value for c in ",="):
                where.fail(
                    f"spec.selector.{label}",
                    f"{quote(value)}: a selector's keys and values cannot hold ',' or '=' (nor do labels)",
                )
        backend_key = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))

    return ServiceRequest(
        key=key,
        namespace=namespace,
        name=name,
        ports=tuple(ports),
        pool=pool,
        requested=tuple(requested),
        sharing_key=sharing_key,
        backend_key=backend_key,
        ip_families=tuple(families),
        ip_family_policy=policy,
        labels=labels,
        lb_class=spec.text("loadBalancerClass")
        or None,  # empty is unset, as fields.load_balancer_class reads it
        pool_field="metadata.annotations." + _annotation_name(annotations, "address-pool"),
        requested_field=(
            "spec.loadBalancerIP" if spec.text("loadBalancerIP") else f"metadata.annotations.{requested_name}"
        ),
        sharing_field="metadata.annotations." + _annotation_name(annotations, "allow-shared-ip"),
    )


@_as_service_error
def ingress_ips(svc: object) -> list[str]:
    """The addresses in `status.loadBalancer.ingress` (what a previous run assigned), in order.

    The entries `fields.ingress_ips` reads, but a malformed one is a ServiceError naming its path.
    """
    where = Where(f"Service {service_key(svc)}")

    def invalid(path: str, value: object, expected: str) -> None:
        if expected == EXPECTED_IP:
            where.fail(path, f"{quote(str(value))} is not an IP address")
        where.fail(path, f"expected {expected}, got {describe(value)}")

    return fields.ingress_ips(svc, invalid)


@_as_service_error
def creation_timestamp(svc: object) -> _dt.datetime | None:
    """metadata.creationTimestamp as an aware datetime (UTC when no zone is given), or None when unset."""
    metadata = _metadata(svc, Where(f"Service {service_key(svc)}"))
    value = metadata.raw("creationTimestamp")
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = _dt.datetime.fromisoformat(value)
        except ValueError:
            metadata.fail("creationTimestamp", f"{describe(value)} is not an RFC 3339 timestamp")
    # YAML reads an unquoted timestamp as a datetime already, naive when it was UTC.
    if not isinstance(value, _dt.datetime):
        metadata.fail("creationTimestamp", f"expected a timestamp, got {describe(value)}")
    return value if value.tzinfo is not None else value.replace(tzinfo=_dt.UTC)


# -- helpers ------------------------------------------------------------------------------------------------


def _metadata(svc: object, where: Where) -> Reader:
    if not isinstance(svc, dict):
        where.fail("", f"expected a Service object (a mapping), got {describe(svc)}")
    metadata = Reader(svc, where).mapping("metadata", required=True)
    assert metadata is not None
    return metadata


def _annotations(metadata: Reader) -> dict[str, str]:
    try:
        return metadata.text_map("annotations")
    except ConfigError as exc:
        raise AnnotationError(str(exc)) from None


def _annotation(annotations: Mapping[str, str], suffix: str) -> str | None:
    current = "metallb.io/" + suffix
    value = annotations[current] if current in annotations else annotations.get(_DEPRECATED_PREFIX + suffix)
    return value or None


def _annotation_name(annotations: Mapping[str, str], suffix: str) -> str:
    current = "metallb.io/" + suffix
    return current if current in annotations else _DEPRECATED_PREFIX + suffix


def _requested_ips(annotations: Mapping[str, str], spec: Reader, where: Where) -> list[str]:
    text = _annotation(annotations, "loadBalancerIPs")
    name = _annotation_name(annotations, "loadBalancerIPs")
    legacy = spec.text("loadBalancerIP")
    if text and legacy:
        raise AnnotationError(
            f"{where.text}: metadata.annotations.{name}: cannot be combined with spec.loadBalancerIP; "
            "use the annotation only"
        )
    if legacy:
        return [str(_parse_ip(where, "spec.loadBalancerIP", legacy))]
    if not text:
        return []
    path = f"metadata.annotations.{name}"
    ips = []
    for part in text.split(","):
        try:
            ips.append(_parse_ip(where, path, part.strip()))
        except ConfigError:
            raise AnnotationError(
                f"{where.text}: {path}: {quote(part.strip())} is not an IP address "
                "(expected a comma-separated list of at most one IPv4 and one IPv6 address)"
            ) from None
    if len(ips) > 2 or len({ip.version for ip in ips}) != len(ips):
        raise AnnotationError(
            f"{where.text}: {path}: {quote(text)}: at most one IPv4 and one IPv6 address may be requested"
        )
    return [str(ip) for ip in ips]


def _parse_ip(where: Where, path: str, text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    canonical = canonical_ip(text)
    if canonical is None:
        raise ServiceError(f"{where.text}: {path}: {quote(text)} is not an IP address")
    return ipaddress.ip_address(canonical)


def _families_of(ips: list[str]) -> list[str]:
    families = []
    for ip in ips:
        try:
            families.append(f"IPv{ipaddress.ip_address(ip).version}")
        except ValueError:
            continue  # "None" for headless services, or garbage: no family to learn
    return families
