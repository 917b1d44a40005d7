"""`ClusterStatus` as one screen of text, or as JSON: pure."""

from __future__ import annotations

import json
from collections.abc import Sequence

from metallb_py.status.model import ClusterStatus, ServiceStatus, SpeakerStatus

__all__ = ["BAR_WIDTH", "bar", "count", "render_json", "render_text"]

BAR_WIDTH = 20


def bar(used: int, total: int, width: int = BAR_WIDTH) -> str:
    """`[#####---------------]`: `used` of `total` as filled cells, rounded down, except that any use fills at
    least one cell and only a full pool fills them all."""
    if total <= 0:
        return "[" + " " * width + "]"
    used = max(0, min(used, total))
    filled = used * width // total
    if used and not filled:
        filled = 1
    if used < total and filled == width:
        filled = width - 1
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def count(n: int) -> str:
    """A pool size people can read: exact up to a million, 2^k for a power of two beyond, else 3 digits."""
    if n < 10**6:
        return str(n)
    if n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1}"
    return f"{n:.3g}"


def _percent(used: int, total: int) -> str:
    if total <= 0:
        return "-"
    share = 100 * used / total
    return "<1%" if 0 < share < 1 else f"{share:.0f}%"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 0:
        return "in the future (clock skew)"
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def _announced(svc: ServiceStatus) -> str:
    if not svc.addresses:
        return svc.problem
    if not svc.announcers:
        return "<none>" if svc.modes else "<not announced: its pool has no advertisement>"
    parts = []
    for a in svc.announcers:
        detail = a.interfaces or a.peers
        parts.append(f"{a.node} ({', '.join(detail)})" if detail else a.node)
    text = ", ".join(parts)
    if svc.source == "configuration":
        text += " [selected by BGPAdvertisements; no speaker published a ServiceBGPStatus]"
    elif svc.source == "Event":
        text += " [from its nodeAssigned Event]"
    return text


def _speaker_state(s: SpeakerStatus) -> str:
    notes = [s.membership]
    if s.ready is False:
        notes.append("node not Ready")
    if s.excluded:
        notes.append("excluded from load balancers")
    return ", ".join(notes)


def render_text(status: ClusterStatus) -> str:
    lines = [f"MetalLB in namespace {status.namespace}, at {status.taken_at}", ""]
    config = status.config
    origin = (
        "as the controller's ConfigurationState says"
        if config.source == "ConfigurationState"
        else "checked here: the controller published no ConfigurationState"
    )
    lines.append(
        f"Configuration: {config.result} ({origin})" + (f": {config.summary}" if config.summary else "")
    )
    if status.controller is None:
        lines.append("Controller:    no leader Lease (leader election off, or no controller)")
    else:
        c = status.controller
        stale = ", NOT RENEWED" if c.stale else ""
        renewed = _ago(c.renewed_seconds_ago)
        lines.append(f"Controller:    {c.holder or '<nobody>'} leads (Lease renewed {renewed}{stale})")

    lines += ["", "POOLS"]
    if status.pools:
        rows = [
            [
                p.name,
                p.kind,
                "+".join(p.modes) or "-",
                f"{count(p.used)}/{count(p.total)}",
                bar(p.used, p.total),
                _percent(p.used, p.total),
                ", ".join(p.addresses),
            ]
            for p in status.pools
        ]
        lines += _table(["NAME", "KIND", "MODE", "USED", "USAGE", "", "ADDRESSES"], rows)
    else:
        lines.append("(none)")

    lines += ["", "SERVICES"]
    if status.services:
        rows = [
            [
                s.key,
                ", ".join(s.addresses) or "<pending>",
                s.pool or "-",
                "+".join(s.modes) or "-",
                _announced(s),
            ]
            for s in status.services
        ]
        lines += _table(["SERVICE", "ADDRESSES", "POOL", "MODE", "ANNOUNCED BY"], rows)
    else:
        lines.append("(no LoadBalancer Services)")

    lines += ["", "SPEAKERS"]
    if status.speakers:
        rows = [
            [
                s.node,
                s.gossip_address or "-",
                _ago(s.renewed_seconds_ago) if s.lease_duration else "-",
                _speaker_state(s),
            ]
            for s in status.speakers
        ]
        lines += _table(["NODE", "GOSSIP ADDRESS", "LEASE RENEWED", "STATE"], rows)
    else:
        lines.append("(none)")

    if status.warnings:
        lines += ["", "WARNINGS"] + [f"- {w}" for w in status.warnings]
    if status.unavailable:
        lines += ["", "NOT READ"] + [f"- {u}" for u in status.unavailable]
    return "\n".join(lines) + "\n"


def render_json(status: ClusterStatus, *, lines: bool = False) -> str:
    """The status as a JSON document; with `lines`, on one line (for `--watch`: one document per line)."""
    if lines:
        return json.dumps(status.to_json(), sort_keys=True, separators=(",", ":")) + "\n"
    return json.dumps(status.to_json(), indent=2, sort_keys=True) + "\n"
