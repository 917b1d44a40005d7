"""The small building blocks: the typed Reader, YAML loading, durations, communities, names."""

from __future__ import annotations

import datetime as dt

import pytest

from metallb_py._core import Pool
from metallb_py.config import BGPCommunity
from metallb_py.config._values import dns_label, format_duration, parse_duration, unique_dns_labels
from metallb_py.config.model import address_count
from metallb_py.config.reader import Reader, Where, load_yaml_documents
from metallb_py.errors import ConfigError

HERE = Where('Thing "t" (test)')


def test_reader_tracks_paths_and_rejects_unknown_fields() -> None:
    r = Reader({"spec": {"items": [{"port": 80, "nmae": "x"}]}}, HERE)
    spec = r.mapping("spec")
    assert spec is not None
    [item] = spec.mappings("items")
    assert item.number("port", minimum=1, maximum=65535) == 80
    item.text("name")
    with pytest.raises(
        ConfigError, match=r'^Thing "t" \(test\): spec.items\[0\].nmae: unknown field; did you mean "name"\?$'
    ):
        item.finish()


def test_reader_named_paths_read_like_legacy_messages() -> None:
    r = Reader({"protocol": 3}, HERE, "address-pools[0]").named("web")
    with pytest.raises(
        ConfigError, match=r'address-pools\[0\] "web": protocol: expected a string, got an integer \(3\)'
    ):
        r.text("protocol")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ({1: "x"}, "field names must be strings, got an integer (1)"),
        ("text", "expected a mapping, got a string"),
        ({"a": "\ud800"}, "a: text is not valid Unicode"),
    ],
)
def test_reader_rejects_malformed_mappings(value: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Reader(value, HERE).text("a")
    assert fragment in str(info.value)


def test_null_counts_as_absent() -> None:
    r = Reader({"a": None}, HERE)
    assert r.text("a") is None and r.flag("a") is None and r.texts("a") == []
    with pytest.raises(ConfigError, match="a: required field is missing"):
        r.required_text("a")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: &x [*x]\n", None),  # a self-referencing list loads; nothing here walks it blindly
        ("[" * 5000, "nested too deeply"),
        ("!!python/object:os.system {}\n", "could not determine a constructor"),
        ("a: !!binary 'a'\n", "invalid YAML"),
        ("\ud800", "not valid Unicode"),
    ],
)
def test_yaml_loading_turns_every_failure_into_config_error(text: str, fragment: str | None) -> None:
    if fragment is None:
        assert load_yaml_documents(text, HERE)
        return
    with pytest.raises(ConfigError) as info:
        load_yaml_documents(text, HERE)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("1m30s", 90), ("1.5h", 5400), ("300ms", 0.3), ("0", 0), ("2h0m0s", 7200), ("1us", 1e-6)],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_duration(HERE, "d", text) == dt.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "90", "s", "1x", "1m 30s", "--1s", "-5s", "1e3s"])
def test_bad_go_durations(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^Thing \"t\" \(test\): d: "):
        parse_duration(HERE, "d", text)


@pytest.mark.parametrize("seconds", [0, 0.25, 3, 90, 120, 3600, 3661, 7322.5])
def test_duration_format_round_trips(seconds: float) -> None:
    value = dt.timedelta(seconds=seconds)
    assert parse_duration(HERE, "d", format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "parts", "shown"),
    [
        ("65535:65282", (65535, 65282), "65535:65282"),
        ("0:0", (0, 0), "0:0"),
        ("large:4294967295:0:1", (4294967295, 0, 1), "large:4294967295:0:1"),
        ("007:1", (7, 1), "7:1"),
    ],
)
def test_communities(text: str, parts: tuple[int, ...], shown: str) -> None:
    community = BGPCommunity.parse(text)
    assert community.parts == parts and str(community) == shown
    assert community.is_large == (len(parts) == 3)


@pytest.mark.parametrize(
    "text", ["1", "1:2:3", "65536:0", "-1:5", "+1:5", "1:٣", "large:1:2:4294967296", "a:b:c:d", "1 :2"]
)
def test_bad_communities(text: str) -> None:
    with pytest.raises(ValueError):
        BGPCommunity.parse(text)


def test_dns_labels() -> None:
    assert dns_label("Office LAN") == "office-lan"
    assert dns_label("__a..b__") == "a-b"
    assert dns_label("ü") == "unnamed"
    assert len(dns_label("-" + "a" * 80)) == 63
    assert unique_dns_labels(["A", "a", "a", "b"]) == ["a", "a-2", "a-3", "b"]
    long = "y" * 63
    assert unique_dns_labels([long, long]) == [long, "y" * 61 + "-2"]


def test_address_count_reads_well() -> None:
    assert address_count([Pool("a", ["10.0.0.1/32"])]) == "1 address"
    assert address_count([Pool("a", ["10.0.0.0/30", "2001:db8::/64"])]) == "4 IPv4 + 2^64 IPv6 addresses"
    assert address_count([]) == "0 addresses"
