"""Checks and conversions of single values that Kubernetes and MetalLB give a meaning to.

Label keys and values, DNS-1123 names, Go durations (`90s`, `1m30s`), IP addresses, label selectors (in
both the CRD spelling `matchLabels` and the legacy `match-labels`), and the deterministic DNS-label naming
used when legacy names become Kubernetes object names.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import re
from collections.abc import Iterable, Sequence

from metallb_py._core import LabelSelector
from metallb_py.config.reader import Reader, Where, quote
from metallb_py.errors import ConfigError

__all__ = [
    "IP",
    "check_dns_subdomain",
    "check_label_key",
    "check_label_value",
    "check_labels",
    "check_no_duplicates",
    "dns_label",
    "dns_subdomain_problem",
    "format_duration",
    "no_newlines",
    "parse_duration",
    "parse_ip",
    "read_duration",
    "read_selector",
    "read_selectors",
    "unique_dns_labels",
]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def dns_subdomain_problem(name: str) -> str | None:
    """Why `name` is no DNS-1123 subdomain (what Kubernetes requires of most object names), or None."""
    if len(name) > 253:
        return f"{quote(name[:20] + '...')} is longer than 253 characters"
    if not all(_DNS_LABEL.fullmatch(part) for part in name.split(".")):
        return (
            f"{quote(name)} is not a valid DNS-1123 name: use lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit"
        )
    return None


def check_dns_subdomain(where: Where, path: str, name: str) -> None:
    problem = dns_subdomain_problem(name)
    if problem:
        where.fail(path, problem)


def check_label_key(where: Where, path: str, key: str) -> None:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or dns_subdomain_problem(prefix)):
        where.fail(path, f"label key {quote(key)} has an invalid prefix; it must be a DNS-1123 subdomain")
    if not name or len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        where.fail(
            path,
            f"invalid label key {quote(key)}: the name part must be 1-63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit",
        )


def check_label_value(where: Where, path: str, value: str) -> None:
    if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
        where.fail(
            path,
            f"invalid label value {quote(value)}: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit",
        )


def check_labels(where: Where, path: str, labels: dict[str, str]) -> None:
    for key, value in labels.items():
        check_label_key(where, f"{path}.{key}", key)
        check_label_value(where, f"{path}.{key}", value)


def check_no_duplicates(where: Where, path: str, values: Sequence[object], what: str = "entry") -> None:
    """MetalLB refuses repeated list entries (pool names, peers, communities...); so do we."""
    seen: dict[object, int] = {}
    for i, value in enumerate(values):
        key = repr(value)
        if key in seen:
            where.fail(f"{path}[{i}]", f"duplicate {what}; same as {path}[{seen[key]}]")
        seen[key] = i


def read_selector(r: Reader, *, legacy: bool = False, repeats: bool = False) -> LabelSelector:
    """A label selector from a mapping with matchLabels/matchExpressions (match-labels/... when legacy).

    A repeated value or expression is refused (MetalLB refuses them in the selectors it checks for repeats)
    unless `repeats` (MetalLB's preferredNodeSelectors, which it reads without that check: a repeat changes
    nothing there).
    """
    labels_key, exprs_key = (
        ("match-labels", "match-expressions") if legacy else ("matchLabels", "matchExpressions")
    )
    labels = r.text_map(labels_key)
    check_labels(r.where, r.path_of(labels_key), labels)
    expressions: list[tuple[str, str, list[str]]] = []
    for expr in r.mappings(exprs_key):
        key = expr.required_text("key")
        check_label_key(expr.where, expr.path_of("key"), key)
        operator = expr.required_text("operator")
        if operator not in _OPERATORS:
            expr.fail(
                "operator", f"unknown operator {quote(operator)}; expected In, NotIn, Exists or DoesNotExist"
            )
        values = expr.texts("values", allow_empty_items=True)
        for i, value in enumerate(values):
            check_label_value(expr.where, f"{expr.path_of('values')}[{i}]", value)
        if not repeats:
            check_no_duplicates(expr.where, expr.path_of("values"), values, "value")
        if operator in ("In", "NotIn") and not values:
            expr.fail("values", f"operator {operator} needs at least one value")
        if operator in ("Exists", "DoesNotExist") and values:
            expr.fail("values", f"operator {operator} takes no values")
        expr.finish()
        expressions.append((key, operator, values))
    # As MetalLB: expressions are compared with their values sorted (`In [a, b]` repeats `In [b, a]`).
    if not repeats:
        check_no_duplicates(
            r.where, r.path_of(exprs_key), [(k, op, sorted(vs)) for k, op, vs in expressions], "expression"
        )
    r.finish()
    try:
        return LabelSelector(labels, expressions, path=r.path)
    except ConfigError as exc:
        # The checks above mirror the core's; this only fires if the core grows a rule they lack.
        raise r.where.error("", str(exc)) from None


def read_selectors(r: Reader, key: str, *, legacy: bool = False) -> tuple[LabelSelector, ...]:
    selectors = tuple(read_selector(item, legacy=legacy) for item in r.mappings(key))
    check_no_duplicates(r.where, r.path_of(key), [_selector_key(s) for s in selectors], "selector")
    return selectors


def _selector_key(selector: LabelSelector) -> tuple[object, ...]:
    # What MetalLB compares: the labels as a set, the expressions in their order with their values sorted.
    # The same expressions in another order are not a repeat to it, so they are accepted here too.
    labels = tuple(sorted(selector.match_labels.items()))
    exprs = tuple((k, op, tuple(sorted(vs))) for k, op, vs in selector.match_expressions)
    return labels, exprs


def parse_ip(where: Where, path: str, text: str) -> IP:
    """One IP address, as MetalLB accepts it (no zone, no prefix)."""
    try:
        if "%" in text:
            raise ValueError(text)
        return ipaddress.ip_address(text.strip())
    except ValueError:
        where.fail(path, f"{quote(text)} is not an IP address")


# Go's time.ParseDuration syntax, which Kubernetes uses for every duration field: 90s, 1m30s, 1.5h, 300ms.
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_GO_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(where: Where, path: str, text: str) -> _dt.timedelta:
    body = text.strip()
    if body == "0":
        return _dt.timedelta(0)
    if body.startswith("-"):
        where.fail(path, f"{quote(text)} is negative; durations here must be zero or more")
    body = body.removeprefix("+")
    seconds = 0.0
    pos = 0
    while pos < len(body):
        match = _GO_PART.match(body, pos)
        if not match:
            break
        seconds += float(match.group(1)) * _GO_UNITS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(body):
        where.fail(path, f"{quote(text)} is not a duration; write it like 90s, 1m30s or 500ms")
    if seconds > 10**9:
        where.fail(path, f"{quote(text)} is too long")
    return _dt.timedelta(seconds=seconds)


def format_duration(value: _dt.timedelta) -> str:
    """A timedelta in Go's spelling (`1m30s`, `500ms`), so it parses back to the same value."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    seconds, ms = divmod(millis, 1000)
    if ms:
        return f"{millis}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{secs}s" if secs else "")
    return text


def read_duration(r: Reader, key: str) -> _dt.timedelta | None:
    text = r.text(key)
    if text is None:
        return None
    return parse_duration(r.where, r.path_of(key), text)


def no_newlines(r: Reader, key: str, value: str | None) -> None:
    # These strings end up in routing daemon configuration lines; a newline would inject configuration.
    if value is not None and ("\n" in value or "\r" in value):
        r.fail(key, "must not contain line breaks")


def dns_label(text: str) -> str:
    """A valid DNS-1123 label made from `text`: lowercase, other characters to '-', trimmed, at most 63."""
    label = re.sub(r"[^a-z0-9-]", "-", text.lower())
    label = re.sub(r"-{2,}", "-", label).strip("-")[:63].strip("-")
    return label or "unnamed"


def unique_dns_labels(texts: Iterable[str], used: set[str] | None = None) -> list[str]:
    """`dns_label` of each text, not clashing with `used` (updated) nor each other: repeats get -2, -3...
    (cut to stay within 63), in input order."""
    used = set() if used is None else used
    result = []
    for text in texts:
        base = dns_label(text)
        name, n = base, 1
        while name in used:
            n += 1
            suffix = f"-{n}"
            name = base[: 63 - len(suffix)].rstrip("-") + suffix
        used.add(name)
        result.append(name)
    return result
