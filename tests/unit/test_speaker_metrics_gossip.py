"""speaker.metrics: the gossip member's counters (hostile datagrams among them) exported at scrape time."""

from __future__ import annotations

from prometheus_client import generate_latest

from metallb_py.speaker.metrics import SpeakerMetrics


def test_every_counter_of_the_member_is_exported_under_its_own_name() -> None:
    # The keys of Membership.stats() (rust/metallb-py/src/gossip.rs).
    stats = {
        "datagrams_received": 10,
        "bad_tag": 3,
        "replayed": 2,
        "malformed": 1,
        "self": 4,
        "stale_life": 5,
    }
    metrics = SpeakerMetrics()
    metrics.count_gossip(lambda: stats)
    value = metrics.registry.get_sample_value
    assert value("metallb_py_speaker_gossip_bad_tag_total") == 3
    assert value("metallb_py_speaker_gossip_replayed_total") == 2
    assert value("metallb_py_speaker_gossip_stale_life_total") == 5
    assert value("metallb_py_speaker_gossip_malformed_total") == 1
    assert value("metallb_py_speaker_gossip_self_total") == 4
    assert value("metallb_py_speaker_gossip_datagrams_received_total") == 10
    stats["replayed"] = 7  # read at each scrape
    assert value("metallb_py_speaker_gossip_replayed_total") == 7


def test_a_stopped_member_or_an_odd_key_exports_nothing_and_breaks_no_scrape() -> None:
    metrics = SpeakerMetrics()

    def stopped() -> dict[str, int]:
        raise RuntimeError("the gossip member is not running")

    metrics.count_gossip(stopped)
    assert b"metallb_py_speaker_gossip" not in generate_latest(metrics.registry)
    odd = SpeakerMetrics()
    odd.count_gossip(lambda: {"Bad-Key": 1, "ok": 2})
    text = generate_latest(odd.registry).decode()
    assert "metallb_py_speaker_gossip_ok_total 2.0" in text and "Bad" not in text
