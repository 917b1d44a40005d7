"""The API resources the controller and the speaker read and write, and how their URLs are built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

__all__ = [
    "BFD_PROFILES",
    "BGP_ADVERTISEMENTS",
    "BGP_PEERS",
    "COMMUNITIES",
    "CONFIGMAPS",
    "CONFIGURATION_STATES",
    "CONFIG_CRDS",
    "ENDPOINT_SLICES",
    "EVENTS",
    "IP_ADDRESS_POOLS",
    "L2_ADVERTISEMENTS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "SECRETS",
    "SERVICES",
    "SERVICE_BGP_STATUSES",
    "SERVICE_L2_STATUSES",
    "Resource",
    "meta",
    "object_key",
]


@dataclass(frozen=True)
class Resource:
    """One resource type of the API: `group` "" is the core group (/api/v1)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(
        self, namespace: str | None = None, name: str | None = None, subresource: str | None = None
    ) -> str:
        """The URL path: a collection (name None), an object, or an object's subresource.

        A namespaced resource without a namespace is the collection across all namespaces.
        """
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace is not None:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
            if subresource is not None:
                base += f"/{subresource}"
        return base

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


SERVICES = Resource("", "v1", "services", "Service")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
PODS = Resource("", "v1", "pods", "Pod")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
EVENTS = Resource("", "v1", "events", "Event")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
SECRETS = Resource("", "v1", "secrets", "Secret")
ENDPOINT_SLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")

IP_ADDRESS_POOLS = Resource("metallb.io", "v1beta1", "ipaddresspools", "IPAddressPool")
L2_ADVERTISEMENTS = Resource("metallb.io", "v1beta1", "l2advertisements", "L2Advertisement")
BGP_ADVERTISEMENTS = Resource("metallb.io", "v1beta1", "bgpadvertisements", "BGPAdvertisement")
BGP_PEERS = Resource("metallb.io", "v1beta2", "bgppeers", "BGPPeer")
COMMUNITIES = Resource("metallb.io", "v1beta1", "communities", "Community")
BFD_PROFILES = Resource("metallb.io", "v1beta1", "bfdprofiles", "BFDProfile")
SERVICE_L2_STATUSES = Resource("metallb.io", "v1beta1", "servicel2statuses", "ServiceL2Status")
SERVICE_BGP_STATUSES = Resource("metallb.io", "v1beta1", "servicebgpstatuses", "ServiceBGPStatus")
CONFIGURATION_STATES = Resource("metallb.io", "v1beta1", "configurationstates", "ConfigurationState")

# The metallb.io kinds that make up the configuration, in the order the loader reads them.
CONFIG_CRDS = (IP_ADDRESS_POOLS, L2_ADVERTISEMENTS, BGP_ADVERTISEMENTS, BGP_PEERS, COMMUNITIES, BFD_PROFILES)


def meta(obj: Mapping[str, Any] | None, field: str) -> str:
    """One string field of an API object's metadata (`name`, `uid`, `resourceVersion`...); "" when absent
    (or null: an empty resourceVersion makes a write unconditional, so callers test for "")."""
    metadata = (obj or {}).get("metadata")
    return str((metadata.get(field) if isinstance(metadata, dict) else None) or "")


def object_key(obj: object) -> str:
    """`namespace/name` of an API object (`name` for cluster-scoped ones); "" when it has no name."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict):
        return ""
    name = metadata.get("name")
    namespace = metadata.get("namespace")
    if not isinstance(name, str):
        return ""
    return f"{namespace}/{name}" if isinstance(namespace, str) and namespace else name
