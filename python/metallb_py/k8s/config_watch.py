"""MetalLB's configuration as the controller and the speaker watch it: the ConfigMap `config` and the
metallb.io resources of one namespace, each kept by a Reflector."""

from __future__ import annotations

from collections.abc import Callable

from metallb_py.k8s.client import JSON, KubeClient
from metallb_py.k8s.resources import CONFIG_CRDS, CONFIGMAPS, IP_ADDRESS_POOLS, object_key
from metallb_py.k8s.watch import Change, Reflector

__all__ = ["CONFIGMAP_NAME", "ConfigWatch"]

CONFIGMAP_NAME = "config"


class ConfigWatch:
    """The Reflectors of the configuration objects in `namespace`; every change calls `handler`. `pools` is
    the IPAddressPools' (the controller writes their status)."""

    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        handler: Callable[[Change], None],
        *,
        watch_timeout: int = 300,
    ) -> None:
        self.configmaps = Reflector(
            client,
            CONFIGMAPS,
            handler,
            namespace=namespace,
            field_selector=f"metadata.name={CONFIGMAP_NAME}",
            watch_timeout=watch_timeout,
        )
        self.crds = [
            Reflector(client, r, handler, namespace=namespace, watch_timeout=watch_timeout)
            for r in CONFIG_CRDS
        ]
        self.pools = next(r for r in self.crds if r.resource == IP_ADDRESS_POOLS)
        self.reflectors = [self.configmaps, *self.crds]

    def objects(self) -> list[JSON]:
        """Every configuration object: the ConfigMap first, then each kind in the loader's order, by name."""
        objects = list(self.configmaps.items())
        for reflector in self.crds:
            objects += sorted(reflector.items(), key=object_key)
        return objects
