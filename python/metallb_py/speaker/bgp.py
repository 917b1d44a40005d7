"""BGP mode: which sessions this node opens and which routes it sends each peer; the BgpSpeaker does the rest.

The decisions are bgpplan's (pure). `Bgp` keeps what it last gave the speaker (the `BgpSessions` protocol: the
Rust BgpSpeaker in production, a fake in tests) and gives it only what changed: a session whose parameters
are unchanged is never touched, so a configuration edit that only changes routes (a community, a new pool)
sends UPDATEs and never resets a session; a removed BGPPeer gets a Cease. A sibling of layer2.py with the same
shape: `elect_and_apply` per round, `withdraw_all` when the speaker is isolated or stops, `announced` and
`wanted_statuses` for the metrics and the status reporter.

A peer that cannot be used as configured (bgpplan's `problems`: vrf, interface, a missing BFDProfile or
password Secret) is left out with an error log line and a Warning Event on the BGPPeer, once per distinct
message; the other peers are unaffected.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from metallb_py._core import BfdSettings, BgpRoute
from metallb_py.config.model import Config
from metallb_py.speaker.bgpplan import (
    BgpService,
    PeerSession,
    Route,
    RoutePlan,
    Secrets,
    SessionPlan,
    bgp_service_from_api,
    routes,
    serving,
    sessions,
)
from metallb_py.speaker.election import EndpointSlice
from metallb_py.speaker.objects import (
    ParseCache,
    endpoint_slice_from_api,
    internal_ip,
    node_from_api,
    pools_key,
)
from metallb_py.speaker.ports import BgpSessions, ClusterView

__all__ = ["PROTOCOL", "Bgp"]

log = logging.getLogger("metallb_py.speaker")

PROTOCOL = "bgp"


class Bgp:
    """Advertises this node's Service addresses to its BGP peers through `speaker`.

    `secrets()`: the Secrets of the speaker's namespace, (namespace, name) -> data (BGPPeer passwordSecret);
    `on_change()` is called after a round that changed what is advertised or to whom; `on_problem(peer,
    message)` once per distinct problem of a peer that is left out (None: the problem is gone);
    `on_note(peer, notes)` once per distinct set of notes of a peer that is kept but used differently than
    configured (echoMode, disableMP...).
    """

    def __init__(
        self,
        me: str,
        speaker: BgpSessions,
        *,
        secrets: Callable[[], Secrets],
        on_change: Callable[[], None],
        on_problem: Callable[[str, str | None], None],
        on_note: Callable[[str, tuple[str, ...]], None] | None = None,
        ignore_exclude_label: bool = False,
        lb_class: str | None = None,
    ) -> None:
        self.me = me
        self.speaker = speaker
        self._secrets = secrets
        self._on_change = on_change
        self._on_problem = on_problem
        self._on_note = on_note
        self._ignore_exclude_label = ignore_exclude_label
        self.lb_class = lb_class
        self._lock = threading.Lock()  # the reporter and the metrics read what the worker writes
        self._sessions: dict[str, PeerSession] = {}  # as given to the speaker
        self._routes: dict[str, dict[str, Route]] = {}  # peer -> prefix -> attributes, as given
        self._problems: dict[str, str] = {}
        self._notes: dict[str, tuple[str, ...]] = {}
        self._conflicts: set[str] = set()
        self._announced: dict[str, tuple[str, ...]] = {}  # address -> Services
        self._service_peers: dict[str, tuple[str, ...]] = {}
        # Parsed once per resourceVersion (and configuration): a round re-reads only what changed.
        self._services: ParseCache[BgpService] = ParseCache(
            lambda obj: bgp_service_from_api(obj, self._config_for_parse, self.lb_class)
        )
        self._slices: ParseCache[EndpointSlice] = ParseCache(endpoint_slice_from_api)
        self._config_for_parse: Config = Config()
        self._idle = False  # the last round had no BGP configuration and left nothing open

    # -- a round ---------------------------------------------------------------------------------------------

    def elect_and_apply(self, config: Config, view: ClusterView, live: set[str] | None) -> None:
        """Opens, reconfigures and closes sessions as the BGPPeers say, then sends each peer its routes.
        `live` plays no part: every selected node advertises in BGP mode (the routers pick by ECMP).

        A configuration without BGPPeers and BGPAdvertisements (layer 2 alone) closes what was open, once;
        the rounds after it (one per membership change) read nothing: no Service is parsed for BGP."""
        if not config.bgp_peers and not config.bgp_advertisements:
            if not self._idle:
                self._apply(SessionPlan(), RoutePlan(), {})
                self._idle = True
            return
        self._idle = False
        node_obj = view.nodes().get(self.me)
        if node_obj is None:
            # No Node object: nothing can select this node, and MetalLB announces nothing from it.
            self._apply(SessionPlan(), RoutePlan(), {})
            return
        node = node_from_api(node_obj)
        self._config_for_parse = config
        addresses = [ip for family in (4, 6) if (ip := internal_ip(node_obj, family))]
        session_plan = sessions(config, node, addresses, self._secrets())
        services = self._services.parse_all(view.service_objects(), pools_key(config))
        slices = self._slices.parse_all(view.endpoint_slices())
        route_plan = routes(
            config,
            node,
            services,
            serving(slices, self.me),
            session_plan.sessions,
            ignore_exclude_label=self._ignore_exclude_label,
        )
        ips = {s.key: s.ips for s in services}
        self._apply(session_plan, route_plan, ips)

    def withdraw_all(self) -> None:
        """Withdraws every route; the sessions stay up (a router keeps its peers, just not our routes)."""
        with self._lock:
            peers = list(self._sessions)
        for peer in peers:
            self._set_routes(peer, {})
        self._publish({}, {})

    def stop(self) -> None:
        """Ends every session with a Cease (the routers drop our routes at once), except those that negotiated
        graceful restart: they close without one, and their routers keep our routes until we are back."""
        self.speaker.stop()

    # -- what is advertised ----------------------------------------------------------------------------------

    def announced(self) -> dict[str, tuple[str, ...]]:
        """Address -> the Services this node advertises it for, now."""
        with self._lock:
            return dict(self._announced)

    def wanted_statuses(self) -> dict[str, tuple[str, ...]]:
        """Service -> the BGPPeers this node advertises it to (what its ServiceBGPStatus says)."""
        with self._lock:
            return dict(self._service_peers)

    # -- applying --------------------------------------------------------------------------------------------

    def _apply(self, plan: SessionPlan, route_plan: RoutePlan, ips: Mapping[str, Iterable[str]]) -> None:
        for peer, notes in sorted(plan.notes.items()):
            if self._notes.get(peer) != notes:
                log.warning(
                    "BGP peer used differently", extra={"peer": peer, "node": self.me, "notes": notes}
                )
                if self._on_note is not None:
                    self._on_note(peer, notes)
        self._notes = dict(plan.notes)
        for conflict in route_plan.conflicts:
            if conflict not in self._conflicts:
                log.warning("BGP advertisements conflict", extra={"node": self.me, "conflict": conflict})
        self._conflicts = set(route_plan.conflicts)
        wanted = {s.name: s for s in plan.sessions}
        with self._lock:
            current = dict(self._sessions)
        for name in sorted(current.keys() - wanted.keys()):
            self.speaker.remove_peer(name)
            log.info("BGP peer removed", extra={"peer": name, "node": self.me})
            with self._lock:
                del self._sessions[name]
                self._routes.pop(name, None)
        refused: dict[str, str] = {}
        for name, session in sorted(wanted.items()):
            if current.get(name) == session:
                continue
            args: dict[str, Any] = session.kwargs()
            if session.bfd is not None:
                args["bfd"] = BfdSettings(**session.bfd.settings_kwargs())
            try:
                restarted = self.speaker.add_peer(name, session.address, **args)
            except ValueError as exc:
                # What the plan let through and the speaker refuses: this peer is left out, as a problem.
                refused[name] = f"BGPPeer {name!r} is not used: {exc}"
                if name in current:
                    self.speaker.remove_peer(name)
                    with self._lock:
                        del self._sessions[name]
                        self._routes.pop(name, None)
                continue
            with self._lock:
                self._sessions[name] = session
            log.info(
                "BGP peer configured" if name not in current else "BGP peer reconfigured",
                extra={
                    "peer": name,
                    "address": f"{session.address}:{session.port}",
                    "node": self.me,
                    "session_restarted": restarted,
                },
            )
        self._report_problems({**plan.problems, **refused})
        for name in sorted(wanted.keys() - refused.keys()):
            self._set_routes(name, route_plan.routes.get(name, {}))
        announced: dict[str, set[str]] = {}
        for key in route_plan.service_peers:
            for ip in ips.get(key, ()):
                announced.setdefault(ip, set()).add(key)
        self._publish(
            {ip: tuple(sorted(keys)) for ip, keys in announced.items()},
            {key: tuple(peers) for key, peers in route_plan.service_peers.items()},
        )

    def _set_routes(self, peer: str, table: Mapping[str, Route]) -> None:
        with self._lock:
            if self._routes.get(peer) == table:
                return
            before = self._routes.get(peer, {})
        self.speaker.set_routes(
            peer,
            {
                prefix: BgpRoute(route.local_pref, route.communities, route.large_communities)
                for prefix, route in table.items()
            },
        )
        added, removed = table.keys() - before.keys(), before.keys() - table.keys()
        changed = [p for p in table.keys() & before.keys() if table[p] != before[p]]
        log.info(
            "BGP routes set",
            extra={
                "peer": peer,
                "node": self.me,
                "prefixes": len(table),
                "advertised": sorted(added)[:20],
                "withdrawn": sorted(removed)[:20],
                "attributes_changed": sorted(changed)[:20],
            },
        )
        with self._lock:
            self._routes[peer] = dict(table)

    def _publish(
        self, announced: dict[str, tuple[str, ...]], service_peers: dict[str, tuple[str, ...]]
    ) -> None:
        with self._lock:
            changed = announced != self._announced or service_peers != self._service_peers
            self._announced, self._service_peers = announced, service_peers
        if changed:
            self._on_change()

    def _report_problems(self, problems: Mapping[str, str]) -> None:
        for peer, message in sorted(problems.items()):
            if self._problems.get(peer) != message:
                log.error("BGP peer left out", extra={"peer": peer, "node": self.me, "error": message})
                self._on_problem(peer, message)
        for peer in sorted(self._problems.keys() - problems.keys()):
            self._on_problem(peer, None)
        self._problems = dict(problems)
