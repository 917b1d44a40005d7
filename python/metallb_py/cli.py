"""The `metallb-py` command: thin wiring from arguments and files to the packages that do the work.

    metallb-py config validate [--strict] FILE...   check files (together, as one configuration)
    metallb-py config convert FILE [-o OUT]         legacy ConfigMap -> metallb.io CRDs
    metallb-py ipam plan --config FILE... --services FILE [--output table|json]
    metallb-py controller [--kubeconfig PATH] [--namespace NS] [--lb-class CLASS] ...
    metallb-py speaker [--node-name NAME] [--kubeconfig PATH] [--namespace NS] ...
    metallb-py status ...                           the cluster as MetalLB sees it (metallb_py.status)
    metallb-py demo [--mode layer2|bgp]             root: the seed scenario on this machine

Exit status: 0 success; 1 invalid input (`config validate` reports every mistake it finds, one `error: `
line each), an unreadable file, warnings under `validate --strict`, or (plan) a Service left pending; 2 usage
errors (argparse). Warnings (what MetalLB accepts but is likely a mistake: a CIDR with host bits, a reference
to a pool that does not exist) go to standard error as `warning: ...` lines. Each command group registers
itself in `_COMMAND_GROUPS` with one function; the modules behind the in-cluster commands are imported only
when they run, so `--help` and the offline commands stay quick.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TextIO

from metallb_py.config import Config, convert_legacy
from metallb_py.config.loader import build_config, read_file
from metallb_py.config.model import address_count
from metallb_py.config.problems import Problems, each_error
from metallb_py.config.resources import Resources
from metallb_py.errors import ConfigError
from metallb_py.ipam import PlanRow, load_services, plan
from metallb_py.status import register as register_status

__all__ = ["build_parser", "main"]

_Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: _Handler | None = getattr(args, "handler", None)
    if handler is None:
        # A group without its subcommand (`metallb-py config`): show what it offers.
        (args.group_parser if hasattr(args, "group_parser") else parser).print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except ConfigError as exc:
        for error in each_error(exc):
            print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metallb-py",
        description="MetalLB's job (addresses for LoadBalancer Services on bare-metal Kubernetes) as a "
        "Python library and its programs. Offline: `config` checks and converts MetalLB configuration, "
        "`ipam` plans the addresses it would give Services. In a cluster: the `controller` assigns "
        "addresses to LoadBalancer Services; the `speaker`, on each node, announces them (layer 2: ARP/NDP; "
        "BGP: routes to routers, with BFD); `status` shows pools, Services, who announces them and the "
        "speakers. On this machine, as root: `demo` replays the seed scenario end to end. "
        "`metallb-py COMMAND --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    groups = parser.add_subparsers(title="commands", metavar="COMMAND")
    for register in _COMMAND_GROUPS:
        register(groups)
    return parser


def _version() -> str:
    try:
        return metadata.version("metallb-py")
    except metadata.PackageNotFoundError:
        return "unknown"


# -- config ------------------------------------------------------------------------------------------


def _register_config(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser("config", help="validate and convert MetalLB configuration")
    group.set_defaults(group_parser=group)
    commands = group.add_subparsers(title="config commands", metavar="COMMAND")

    validate = commands.add_parser(
        "validate",
        help="check configuration files",
        description="Check legacy ConfigMaps and metallb.io resources. The files are one configuration "
        "together: references may cross files, and names must be unique across them. What MetalLB accepts "
        "but is likely a mistake (a CIDR with host bits, a reference to a pool that does not exist yet) is "
        "printed as a warning on standard error; the configuration is still valid (exit status 0).",
    )
    validate.add_argument(
        "--strict",
        action="store_true",
        help="treat warnings as errors (exit status 1 when there is any), for CI pipelines",
    )
    validate.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="YAML files: legacy ConfigMaps, metallb.io resources, Lists of them (every mistake of every "
        "file is reported, each with its object and field)",
    )
    validate.set_defaults(handler=_config_validate)

    convert = commands.add_parser(
        "convert",
        help="convert a legacy ConfigMap to metallb.io resources",
        description="Rewrite a MetalLB <= 0.12 ConfigMap as the equivalent custom resources.",
    )
    convert.add_argument("file", metavar="FILE", help="a legacy ConfigMap (or its data.config) in YAML")
    convert.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output")
    convert.set_defaults(handler=_config_convert)


def _config_validate(args: argparse.Namespace) -> int:
    per_file: list[tuple[str, Resources]] = []
    problems = Problems()
    failures = 0
    # Every object of every file on its own, then the rules across objects over all that could be read: every
    # mistake is reported in one run, each naming its object, file and field, in the order found.
    for path in args.files:
        with problems.each():
            try:
                per_file.append((path, read_file(path, problems)))
            except OSError as exc:
                problems.add(ConfigError(f"{path}: {exc.strerror or exc}"))
        failures += _print_errors(problems.errors[failures:])
    combined = Resources()
    for _, resources in per_file:
        combined.extend(resources)
    config: Config | None = None
    with problems.each():
        config = build_config(combined)
    failures += _print_errors(problems.errors[failures:])
    if failures > 1:
        print(f"{failures} errors", file=sys.stderr)
    if config is not None:
        _print_warnings(config)
    if config is None or failures:
        return 1
    if args.strict and config.warnings:
        count = len(config.warnings)
        print(f"error: {count} warning{'' if count == 1 else 's'}, refused by --strict", file=sys.stderr)
        return 1
    for path, resources in per_file:
        print(f"{path}: OK: {_file_summary(resources, config)}")
    if len(per_file) > 1:
        print(f"configuration OK: {config.summary()}")
    return 0


def _print_errors(errors: Sequence[ConfigError]) -> int:
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return len(errors)


def _print_warnings(config: Config) -> None:
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)


def _file_summary(resources: Resources, config: Config) -> str:
    names = {entry.record.name for entry in resources.pools}
    counts = resources.counts()
    pools = counts.pop("IPAddressPool")
    size = address_count(p for p in config.pools if p.name in names)
    parts = [f"{pools} pool{'' if pools == 1 else 's'} ({size})"]
    plural = {"Community": "Communities"}
    parts += [f"{n} {kind if n == 1 else plural.get(kind, kind + 's')}" for kind, n in counts.items() if n]
    return ", ".join(parts)


def _config_convert(args: argparse.Namespace) -> int:
    with open(args.file, encoding="utf-8") as f:
        text = f.read()
    output = convert_legacy(text, source=args.file)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(output)
    else:
        sys.stdout.write(output)
    return 0


# -- ipam --------------------------------------------------------------------------------------------


def _register_ipam(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = groups.add_parser("ipam", help="plan the addresses MetalLB would give Services (offline)")
    group.set_defaults(group_parser=group)
    commands = group.add_subparsers(title="ipam commands", metavar="COMMAND")
    plan_parser = commands.add_parser(
        "plan",
        help="show the addresses MetalLB would give a set of Services",
        description="Allocate addresses to the LoadBalancer Services of a file (YAML documents or a List, "
        "as `kubectl get services -A -o yaml` prints; Namespace objects there provide namespace labels) "
        "under a configuration, as MetalLB's controller would. Exit status 1 when a Service stays pending.",
    )
    plan_parser.add_argument(
        "--config", action="append", required=True, metavar="FILE", help="configuration file (repeatable)"
    )
    plan_parser.add_argument("--services", required=True, metavar="FILE", help="Services to plan")
    plan_parser.add_argument("--output", choices=("table", "json"), default="table", help="output format")
    plan_parser.set_defaults(handler=_ipam_plan)


def _ipam_plan(args: argparse.Namespace) -> int:
    combined = Resources()
    for path in args.config:
        combined.extend(read_file(path))
    config = build_config(combined)
    _print_warnings(config)
    with open(args.services, encoding="utf-8") as f:
        services, namespaces = load_services(f.read(), source=args.services)
    rows = plan(config, services, namespaces=namespaces)
    if args.output == "json":
        json.dump([row.to_dict() for row in rows], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        write_table(rows, sys.stdout)
    return 0 if all(row.ok for row in rows) else 1


def write_table(rows: Sequence[PlanRow], out: TextIO) -> None:
    """Rows as `kubectl get services` shows them: aligned columns, `<pending>` while unallocated."""
    header = ["NAMESPACE", "NAME", "EXTERNAL-IP", "POOL"]
    with_reason = any(not row.ok for row in rows)
    if with_reason:
        header.append("REASON")
    table = [header]
    for row in rows:
        line = [row.namespace, row.name, ",".join(row.ips) or "<pending>", row.pool or "<none>"]
        if with_reason:
            line.append(row.error or "")
        table.append(line)
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        out.write(
            "   ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip() + "\n"
        )


# -- controller --------------------------------------------------------------------------------------


def _add_cluster_flags(parser: argparse.ArgumentParser, lives: str, *, metrics_port: int) -> None:
    """The flags every in-cluster command shares: API access, its namespace, metrics, logs."""
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file (default: in-cluster config)")
    parser.add_argument("--context", help="kubeconfig context (default: its current context)")
    parser.add_argument(
        "--namespace",
        help=f"where {lives} live (default: $METALLB_NAMESPACE, else the pod's namespace, else "
        "metallb-system)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=metrics_port,
        metavar="N",
        help=f"0 disables (default {metrics_port})",
    )
    parser.add_argument("--metrics-address", default="0.0.0.0", metavar="ADDR", help="default 0.0.0.0")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="the least severe log lines written (default: info)",
    )


def _register_controller(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "controller",
        help="assign addresses to LoadBalancer Services in a cluster",
        description="Watch Services and MetalLB's configuration and write each LoadBalancer Service's "
        "external IP. Runs until SIGTERM or SIGINT. Logs are JSON lines on standard error.",
    )
    parser.add_argument(
        "--lb-class", metavar="CLASS", help="serve Services with this spec.loadBalancerClass (default: none)"
    )
    parser.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="elect one active replica through a Lease (default: on)",
    )
    parser.add_argument(
        "--lease-name",
        default="metallb-controller",
        metavar="NAME",
        help="the coordination.k8s.io Lease in --namespace the replicas elect their leader through "
        "(default: metallb-controller)",
    )
    parser.add_argument("--identity", help="this replica's name in the Lease (default: $POD_NAME, else host)")
    parser.add_argument(
        "--lease-duration",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="how long a Lease nobody renews still belongs to its holder: the longest a standby waits for a "
        "dead leader before taking over (default: 15)",
    )
    parser.add_argument(
        "--renew-deadline",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="the leader stops writing when it has not renewed the Lease for this long, before a standby may "
        "take it over; less than --lease-duration (default: 10)",
    )
    parser.add_argument(
        "--retry-period",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how often the leader renews the Lease and the standbys check it; less than --renew-deadline "
        "(default: 2)",
    )
    parser.add_argument("--watch-timeout", type=int, default=300, metavar="SECONDS", help=argparse.SUPPRESS)
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse a configuration with warnings (as config validate --strict); the last good one stays",
    )
    _add_cluster_flags(parser, "the configuration, Lease and ConfigurationState", metrics_port=7472)
    parser.set_defaults(handler=_controller)


def _controller(args: argparse.Namespace) -> int:
    if args.leader_elect and not 0 < args.retry_period < args.renew_deadline < args.lease_duration:
        print(
            "error: leader election needs 0 < --retry-period < --renew-deadline < --lease-duration; got "
            f"{args.retry_period:g}, {args.renew_deadline:g}, {args.lease_duration:g}",
            file=sys.stderr,
        )
        return 2
    # Imported here: the Kubernetes client takes a while to import and only this command needs it.
    from metallb_py.controller.main import run  # noqa: PLC0415

    return run(args)


# -- speaker -----------------------------------------------------------------------------------------


def _register_speaker(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "speaker",
        help="announce assigned addresses from this node (layer 2: ARP and NDP; BGP, with BFD)",
        description="Layer 2: elect, per address, the node that announces it (live speakers by gossip, "
        "MetalLB's order) and answer ARP/NDP for the addresses this node wins. BGP: hold a session to each "
        "BGPPeer that selects this node (with BFD and graceful restart where the BGPPeer asks for them) and "
        "advertise the addresses of the Services this node serves. Needs CAP_NET_RAW (and "
        "CAP_SYS_ADMIN with --netns). The gossip secret comes from $METALLB_ML_SECRET_KEY, else from the "
        "Secret memberlist (key secretkey) in --namespace. Runs until SIGTERM or SIGINT, then hands over "
        "at once. Logs are JSON lines on standard error.",
    )
    parser.add_argument("--node-name", metavar="NAME", help="this node's name (default: $NODE_NAME)")
    parser.add_argument(
        "--pod-name",
        metavar="NAME",
        help="this speaker's Pod, which owns its status objects so they go with it (default: $POD_NAME)",
    )
    parser.add_argument(
        "--netns",
        metavar="NAME",
        help="open the packet and gossip sockets in this network namespace (/var/run/netns/NAME); API "
        "traffic stays in the caller's",
    )
    parser.add_argument(
        "--gossip-address",
        metavar="IP[:PORT]",
        help="where peers reach this speaker (default: the Node's InternalIP, else this node's own global "
        "address on an up interface other than lo, a dummy or kube-ipvs0; never an address inside a pool "
        "or a Service's address; port 7946)",
    )
    parser.add_argument(
        "--gossip",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="detect failures by gossip (default: on); --no-gossip uses the Nodes' Ready condition",
    )
    parser.add_argument(
        "--ignore-exclude-lb",
        action="store_true",
        help="announce from nodes labelled node.kubernetes.io/exclude-from-external-load-balancers too",
    )
    parser.add_argument(
        "--lb-class",
        metavar="CLASS",
        help="announce Services with this spec.loadBalancerClass (default: none)",
    )
    parser.add_argument("--busy-poll", type=float, default=0.0, metavar="SECONDS", help=argparse.SUPPRESS)
    parser.add_argument(
        "--fast-takeover",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="beside the gossip, heartbeat the other speakers and take a silent announcer's addresses over "
        "at once, when another speaker misses it too (default: on; needs --gossip)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=0.01,
        metavar="SECONDS",
        help="fast takeover: seconds between heartbeats (default: 0.01)",
    )
    parser.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=0.03,
        metavar="SECONDS",
        help="fast takeover: seconds of silence before an announcer's addresses are taken over, once another "
        "speaker misses it for half as long (default: 0.03; at least three intervals)",
    )
    parser.add_argument(
        "--gossip-probe-interval",
        type=float,
        default=0.1,
        metavar="SECONDS",
        help="gossip: seconds between probes of one peer; a peer that misses a probe (0.4 intervals) is "
        "suspected and counted down 2.5 intervals later, times log10(speakers) past ten (default: 0.1; "
        "raise it where speakers starve for CPU, e.g. many speakers on few cores)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse a configuration with warnings (as controller --strict); the last good one stays",
    )
    _add_cluster_flags(parser, "the configuration and the speakers' Leases", metrics_port=7473)
    parser.set_defaults(handler=_speaker)


# The range --gossip-probe-interval accepts, in seconds.
_PROBE_INTERVALS = (0.02, 10.0)


def _speaker(args: argparse.Namespace) -> int:
    low, high = _PROBE_INTERVALS
    if not low <= args.gossip_probe_interval <= high:
        print(
            f"error: --gossip-probe-interval {args.gossip_probe_interval:g}: expected {low:g} to {high:g} s",
            file=sys.stderr,
        )
        return 2
    from metallb_py.speaker.main import run  # noqa: PLC0415

    return run(args)


# -- demo --------------------------------------------------------------------------------------------


def _register_demo(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser(
        "demo",
        help="the seed scenario end to end on this machine (root)",
        description="Starts a local control plane, a lab of network namespaces (three workers and a "
        "control-plane node), the controller and a speaker per node; replays the seed's kubectl steps, "
        "fetches both addresses from a client, kills the announcing node and shows the failover. With "
        "--mode bgp the client sits behind an FRR router peering with every node: the addresses reach it "
        "over BGP, spread over the nodes (ECMP), and the failover is the router dropping the dead node. "
        "Removes everything it made.",
    )
    # The flags live here, not in metallb_py.demo: importing it (and the API client) would slow every command.
    parser.add_argument(
        "--mode",
        choices=("layer2", "bgp"),
        default="layer2",
        help="how the addresses reach the client: layer2 (ARP from one node, as in the seed; the default) or "
        "bgp (routes to an FRR router in the lab)",
    )
    parser.add_argument(
        "--keep-logs",
        metavar="DIR",
        help="write the logs of the controller, the speakers and the control plane here (default: "
        "demo-logs/PREFIX-MODE under $METALLB_PY_CACHE or ~/.cache/metallb-py, emptied by the next run); "
        "they are kept either way, and the demo names the folder when it ends",
    )
    parser.add_argument(
        "--prefix",
        default="mlbdemo",
        help="name prefix of the lab's network namespaces: lowercase letters and digits (default mlbdemo)",
    )
    parser.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    from metallb_py.demo import run  # noqa: PLC0415

    return run(args)


_COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    _register_config,
    _register_ipam,
    _register_controller,
    _register_speaker,
    register_status,  # metallb_py.status registers its own command and flags (and imports nothing heavy)
    _register_demo,
]


if __name__ == "__main__":
    sys.exit(main())
