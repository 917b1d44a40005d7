"""Configuration reloads: the objects in the controller's namespace in, the pools in force out.

A reload reads every configuration object together (the legacy ConfigMap `config` and the metallb.io
resources) with `metallb_py.config.load_objects`. A good configuration replaces the pools
(`Allocator.set_pools`, which releases the addresses the new pools no longer contain and names their
Services, to be allocated again). A bad one changes nothing: the last good configuration stays in force, no
assigned address moves, and the outcome names the object at fault and why, for a Warning event. No
configuration object at all is treated like a bad configuration, not as "no pools": deleting and re-creating
the ConfigMap (as some tools do on apply) must not take every address away in between.

What MetalLB accepts but this package would not write that way (a CIDR with host bits, a reference to an
object that does not exist yet) loads with warnings (`ConfigOutcome.warnings`); with `strict`, each of them
refuses the configuration as an error does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metallb_py._core import Allocator
from metallb_py.config import Config, load_objects
from metallb_py.errors import ConfigError

__all__ = ["ConfigOutcome", "ConfigState", "named_object", "without_object_index"]

_SOURCE = "cluster"
_OBJECT_INDEX = re.compile(re.escape(_SOURCE) + r", object (\d+)")


@dataclass(frozen=True)
class ConfigOutcome:
    """The result of one reload.

    `loaded`: the objects' configuration is in force now. `first`: it is the first good one (the loop restores
    existing assignments before allocating anything). `changed`: the pools changed (pending Services may fit
    now). `evicted`: Services whose addresses the new pools no longer contain (already released).
    `error` and `culprit` (the object at fault, when one is) say why a configuration was refused.
    `warnings`: those of the configuration just loaded (also when it equals the one in force: the same pools
    written another way may warn differently).
    """

    loaded: bool
    first: bool = False
    changed: bool = False
    evicted: tuple[str, ...] = ()
    error: str | None = None
    culprit: Mapping[str, Any] | None = None
    summary: str = ""
    warnings: tuple[str, ...] = ()


class ConfigState:
    """The configuration in force and whether the latest one was refused."""

    def __init__(self, namespace: str, *, strict: bool = False) -> None:
        self.namespace = namespace
        self.strict = strict
        self.config: Config | None = None
        self.stale = False  # the latest reload was refused
        self.error: str | None = None

    @property
    def loaded(self) -> bool:
        """A configuration is in force and it is the latest one."""
        return self.config is not None and not self.stale

    def apply(self, objects: Sequence[Mapping[str, Any]], allocator: Allocator) -> ConfigOutcome:
        """Reload from `objects` (the ConfigMap first, then the metallb.io resources) into `allocator`."""
        if not objects:
            return self._refuse(
                f"no MetalLB configuration in namespace {self.namespace}: neither a ConfigMap named "
                "config nor any metallb.io resource (IPAddressPool, L2Advertisement, ...)",
                None,
            )
        try:
            config = load_objects([dict(obj) for obj in objects], source=_SOURCE, strict=self.strict)
        except ConfigError as exc:
            return self._refuse(str(exc), _culprit(str(exc), objects))
        first = self.config is None
        if not first and config == self.config:
            self.config, self.stale, self.error = config, False, None  # its warnings are the latest
            return ConfigOutcome(loaded=True, summary=config.summary(), warnings=config.warnings)
        try:
            evicted = allocator.set_pools(config.pools)
        except ConfigError as exc:
            return self._refuse(str(exc), None)
        pools_changed = first or self.config is None or self.config.pools != config.pools
        self.config, self.stale, self.error = config, False, None
        return ConfigOutcome(
            loaded=True,
            first=first,
            changed=pools_changed,
            evicted=tuple(evicted),
            summary=config.summary(),
            warnings=config.warnings,
        )

    def _refuse(self, error: str, culprit: Mapping[str, Any] | None) -> ConfigOutcome:
        self.stale, self.error = True, error
        return ConfigOutcome(loaded=False, error=error, culprit=culprit)


def _culprit(message: str, objects: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The object a ConfigError names first, else the first object (the ConfigMap, when there is one)."""
    named = named_object(message, objects)
    if named is None:
        return objects[0] if objects else None
    return named


def named_object(message: str, objects: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The object of `objects` (as given to `ConfigState.apply`) that an error or warning message names
    first: the loader tags each object as `cluster, object N`. None when it names none."""
    match = _OBJECT_INDEX.search(message)
    if match is None:
        return None
    index = int(match.group(1)) - 1
    return objects[index] if 0 <= index < len(objects) else None


def without_object_index(message: str) -> str:
    """`message` without the object's number that the loader puts in it (`(cluster, object 3)` reads
    `(cluster)`; the kind and name before it still say which object): what a warning says, whatever the
    number of configuration objects listed before the one it names. Look the object up (`named_object`)
    with the message as the loader wrote it."""
    return _OBJECT_INDEX.sub(_SOURCE, message)
