"""The speaker: makes assigned addresses reachable from the node elected for each of them.

`election` holds the pure decisions: which node announces an IP (MetalLB's per-IP order, so mixed fleets
agree; weighed by L2Advertisements' preferredNodeSelectors, limited by their serviceSelectors) and on which
interfaces.
"""

from __future__ import annotations

from metallb_py.speaker.election import (
    EXCLUDE_FROM_LB_LABEL,
    SHARED_IP_ANNOTATIONS,
    Election,
    Endpoint,
    EndpointSlice,
    Exclusion,
    InterfaceChoice,
    InterfaceExclusion,
    L2Service,
    Link,
    Node,
    ServiceSkip,
    advertisements_for,
    announcer_for,
    announcers,
    can_serve,
    elect,
    election_key,
    election_order,
    eligible_interfaces,
    interface_exclusion,
    interfaces_for,
    parse_ip_link,
    preference_scores,
    read_links,
    ready_nodes,
    selects_node,
    selects_service,
)
from metallb_py.speaker.leases import GOSSIP_LABEL
from metallb_py.speaker.objects import SERVICE_NAME_LABEL
from metallb_py.speaker.speaker import SECRET_ENV, SECRET_KEY, SECRET_NAME

__all__ = [
    "EXCLUDE_FROM_LB_LABEL",
    "GOSSIP_LABEL",
    "SECRET_ENV",
    "SECRET_KEY",
    "SECRET_NAME",
    "SERVICE_NAME_LABEL",
    "SHARED_IP_ANNOTATIONS",
    "Election",
    "Endpoint",
    "EndpointSlice",
    "Exclusion",
    "InterfaceChoice",
    "InterfaceExclusion",
    "L2Service",
    "Link",
    "Node",
    "ServiceSkip",
    "advertisements_for",
    "announcer_for",
    "announcers",
    "can_serve",
    "elect",
    "election_key",
    "election_order",
    "eligible_interfaces",
    "interface_exclusion",
    "interfaces_for",
    "parse_ip_link",
    "preference_scores",
    "read_links",
    "ready_nodes",
    "selects_node",
    "selects_service",
]
