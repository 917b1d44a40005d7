"""Fast takeover (issue 13) end to end: the node next in an address's election order takes it over from a
dead announcer before the gossip declares that announcer down, hands it back once the announcer returns, and
never takes anything over when its own cable is cut; a cut owner is muted before it withdraws. How fast is
the bench's business (benches/test_bench_failover.py); here only the order of events and who answers are
checked."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from metallb_py.speaker.election import election_order
from metallb_py.testing import LabCluster

from .conftest import WORKERS, create_web_service, seeded_cluster

WAIT = 60.0
CUT_OFF = "cut off from every peer: withdrawing every address until one is heard again"
TAKEOVERS = "metallb_py_speaker_gossip_takeovers_total"
UNCONFIRMED = "metallb_py_speaker_gossip_takeovers_unconfirmed_total"
RECLAIMS = "metallb_py_speaker_gossip_reclaims_total"
UNHEARD = "no peer's heartbeat heard: answering nothing until one is"


@pytest.fixture(scope="module")
def cluster(kubernetes_binaries: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    with seeded_cluster("mlbfast", tmp_path_factory.mktemp("e2e-fast-logs")) as the_cluster:
        yield the_cluster


@pytest.fixture(scope="module")
def vip(cluster: LabCluster) -> str:
    return create_web_service(cluster, WAIT)


def records(log: Path, msg: str, **fields: str) -> list[dict[str, Any]]:
    found = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("msg") == msg and all(record.get(k) == v for k, v in fields.items()):
            found.append(record)
    return found


def order_of(cluster: LabCluster, vip: str) -> list[str]:
    """The election order every speaker computes for `vip` (the workers; the control plane is excluded),
    checked against the announcer the cluster names."""
    order = election_order(vip, WORKERS)
    owner = cluster.wait_for(lambda: cluster.announcer("default", "web"), WAIT, "an announcer of web")
    assert owner == order[0], f"announcer {owner}, election order {order}"
    return order


def counter(cluster: LabCluster, node: str, name: str) -> float:
    scrape = cluster.speaker_metrics(node)
    assert scrape is not None, f"{node}'s speaker does not answer"
    return scrape.value(name) or 0.0


def test_the_next_node_takes_over_before_the_gossip_declares_the_owner_down(
    cluster: LabCluster, vip: str
) -> None:
    owner, standby, _ = order_of(cluster, vip)
    log = cluster.speaker_log(standby)
    cluster.lab.kill_link(owner)
    cluster.kill_speaker(owner)
    try:
        cluster.wait_for(
            lambda: cluster.announcer("default", "web") == standby, WAIT, f"{standby} to announce"
        )
        held = cluster.wait_for(lambda: records(log, "member held", member=owner), WAIT, "member held")
        down = cluster.wait_for(lambda: records(log, "member down", member=owner), WAIT, "member down")
        assert held[0]["ts"] < down[0]["ts"], (held, down)
        assert counter(cluster, standby, TAKEOVERS) >= 1
    finally:
        cluster.lab.restore_link(owner)
        cluster.start_speaker(owner)
    # Back: the owner wins its address again, once it says it is ready.
    cluster.wait_for(lambda: cluster.announcer("default", "web") == owner, WAIT, f"{owner} to announce again")
    assert records(log, "member released", member=owner)


def test_a_standby_whose_cable_is_cut_takes_nothing_over(cluster: LabCluster, vip: str) -> None:
    owner, standby, _ = order_of(cluster, vip)
    before = counter(cluster, standby, TAKEOVERS)
    unconfirmed = counter(cluster, standby, UNCONFIRMED)
    log = cluster.speaker_log(standby)
    cuts = len(records(log, CUT_OFF))
    cluster.lab.kill_link(standby)
    try:
        # It sees itself cut off (the gossip's isolation, about 0.4 s): by then a takeover would have fired.
        cluster.wait_for(lambda: len(records(log, CUT_OFF)) > cuts, WAIT, f"{standby} to see itself cut off")
        assert counter(cluster, standby, TAKEOVERS) == before
        assert counter(cluster, standby, UNCONFIRMED) > unconfirmed
        scrape = cluster.speaker_metrics(standby)
        assert scrape is not None and scrape.series("metallb_speaker_announced") == []
        assert cluster.announcer("default", "web") == owner
    finally:
        cluster.lab.restore_link(standby)
    cluster.wait_for(
        lambda: counter(cluster, standby, "metallb_py_speaker_isolated_bool") == 0, WAIT, "the merge"
    )


def test_an_owner_whose_cable_is_cut_answers_nothing_long_before_it_withdraws(
    cluster: LabCluster, vip: str
) -> None:
    """The two sides of a cut do not both answer while the gossip decides: the cut owner's responder is muted
    the moment it hears no peer's heartbeat, before its gossip isolation withdraws its addresses (about
    0.4 s), while the standby takes them over."""
    owner, standby, _ = order_of(cluster, vip)
    log = cluster.speaker_log(owner)
    cuts, unheard = len(records(log, CUT_OFF)), len(records(log, UNHEARD))
    cluster.lab.kill_link(owner)
    try:
        cluster.wait_for(lambda: cluster.announcer("default", "web") == standby, WAIT, f"{standby} takes it")
        cluster.wait_for(lambda: len(records(log, CUT_OFF)) > cuts, WAIT, f"{owner} to see itself cut off")
        muted = records(log, UNHEARD)[unheard:]
        assert muted, f"{owner} never said it heard no peer"
        assert muted[0]["ts"] <= records(log, CUT_OFF)[cuts]["ts"]
        assert counter(cluster, owner, "metallb_py_speaker_gossip_unheard_total") >= 1
    finally:
        cluster.lab.restore_link(owner)
    cluster.wait_for(lambda: cluster.announcer("default", "web") == owner, WAIT, f"{owner} to announce again")


def client_sends_to(cluster: LabCluster, vip: str) -> str | None:
    """The MAC the client's neighbour table has for `vip`."""
    return next((n.lladdr for n in cluster.lab.neighbours() if n.ip == vip), None)


def test_an_owner_paused_for_a_moment_wins_its_address_back_at_once(cluster: LabCluster, vip: str) -> None:
    """A pause longer than the heartbeat timeout (a stalled process, a frozen VM) lets the standby take the
    address over, and its gratuitous ARP moves the client. Once the owner runs again the standby gives the
    address back, and the owner announces it again at once: the client comes back to it. The client's entries
    never go stale here, so nothing but an announcement can bring it back."""
    owner, standby, _ = order_of(cluster, vip)
    owner_mac, standby_mac = cluster.lab.node_mac(owner), cluster.lab.node_mac(standby)
    client = cluster.lab.client_ns
    for key, value in (("base_reachable_time_ms", "3600000"), ("gc_stale_time", "3600")):
        subprocess.run(
            ["ip", "netns", "exec", client, "sysctl", "-qw", f"net.ipv4.neigh.eth0.{key}={value}"], check=True
        )
    log = cluster.speaker_log(standby)
    held = len(records(log, "member held", member=owner))
    reclaims = counter(cluster, owner, RECLAIMS)
    prober = cluster.lab.prober(vip, interval=0.05)
    try:
        cluster.wait_for(
            lambda: client_sends_to(cluster, vip) == owner_mac, WAIT, f"the client to use {owner}"
        )
        # An owner is armed only by a heartbeat sent after it was named (the previous test's restart named it
        # just now): give it a few beats first, so the fast path, not the gossip, takes the address over.
        time.sleep(0.5)
        cluster.pause_speaker(owner)
        try:
            cluster.wait_for(
                lambda: len(records(log, "member held", member=owner)) > held, WAIT, f"{standby} to take over"
            )
            cluster.wait_for(
                lambda: client_sends_to(cluster, vip) == standby_mac, WAIT, f"the client to move to {standby}"
            )
        finally:
            cluster.resume_speaker(owner)
        cluster.wait_for(
            lambda: client_sends_to(cluster, vip) == owner_mac, WAIT, f"the client to come back to {owner}"
        )
        assert counter(cluster, owner, RECLAIMS) > reclaims, "no announcement on the way back"
    finally:
        prober.stop()
    cluster.wait_for(lambda: cluster.announcer("default", "web") == owner, WAIT, f"{owner} to announce")
