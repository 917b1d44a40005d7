"""IP address management around the allocator: Services in, allocation arguments and plans out.

`service_request` reads a Service object (annotations and spec) into the arguments of the Rust
`Allocator`; `plan` runs the allocator over a set of Services the way MetalLB's controller would.
`metallb_py.ipam.fields` holds the lenient readers of the fields every package reads (ingress addresses,
loadBalancerClass, the pool annotation); `ingress_ips` here is the strict one, that names what is wrong.
"""

from __future__ import annotations

from metallb_py.ipam.plan import PlanRow, load_services, plan
from metallb_py.ipam.service import (
    ANNOTATION_ADDRESS_POOL,
    ANNOTATION_ALLOW_SHARED_IP,
    ANNOTATION_LOAD_BALANCER_IPS,
    AnnotationError,
    ServiceError,
    ServiceRequest,
    creation_timestamp,
    ingress_ips,
    is_load_balancer,
    service_key,
    service_request,
)

__all__ = [
    "ANNOTATION_ADDRESS_POOL",
    "ANNOTATION_ALLOW_SHARED_IP",
    "ANNOTATION_LOAD_BALANCER_IPS",
    "AnnotationError",
    "PlanRow",
    "ServiceError",
    "ServiceRequest",
    "creation_timestamp",
    "ingress_ips",
    "is_load_balancer",
    "load_services",
    "plan",
    "service_key",
    "service_request",
]
