"""MetalLB configuration: legacy ConfigMaps and metallb.io CRDs in, one validated `Config` out.

`load_config` and friends parse and validate; `convert_legacy` rewrites a legacy ConfigMap as CRDs. Every
mistake is a `metallb_py.errors.ConfigError` whose message names the object, the source and the field; each
object is checked on its own, and several mistakes are raised together as `ConfigErrors` (a ConfigError
whose `errors` holds each). What
MetalLB accepts but is likely a mistake (a CIDR with host bits, a reference to a pool or peer that does not
exist yet) loads as MetalLB loads it, with a warning in `Config.warnings` worded the same way; every loader
takes `strict=True` to refuse it instead.

Public modules other packages build on: `reader` (typed reading of untrusted YAML, with paths in every error:
the Service reader in `ipam` uses it too) and `resources` (the parsed records before validation, which the
CLI summarises per file). Modules whose names start with `_` are this package's own.
"""

from __future__ import annotations

from metallb_py.config.convert import convert_legacy, dump_crds
from metallb_py.config.loader import load_config, load_config_files, load_objects, parse_legacy_configmap
from metallb_py.config.model import (
    BFDProfile,
    BGPAdvertisement,
    BGPCommunity,
    BGPPeer,
    Community,
    CommunityAlias,
    Config,
    L2Advertisement,
    SecretReference,
)
from metallb_py.config.problems import ConfigErrors

__all__ = [
    "BFDProfile",
    "BGPAdvertisement",
    "BGPCommunity",
    "BGPPeer",
    "Community",
    "CommunityAlias",
    "Config",
    "ConfigErrors",
    "L2Advertisement",
    "SecretReference",
    "convert_legacy",
    "dump_crds",
    "load_config",
    "load_config_files",
    "load_objects",
    "parse_legacy_configmap",
]
