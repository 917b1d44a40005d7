"""metallb_py.speaker.layer2: from the elections to this node's to-do list."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from metallb_py.speaker.election import Election
from metallb_py.speaker.layer2 import todo

IPS = st.sampled_from(["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1", "2001:db8::2"])
NODES = st.sampled_from(["a", "b", "c", None])


@given(
    st.dictionaries(IPS, NODES),
    st.dictionaries(IPS, st.sampled_from([(), ("eth0",), ("eth0", "eth1")])),
    st.sets(IPS),
)
def test_the_todo_list_announces_exactly_what_it_won(
    winners: dict[str, str | None], interfaces: dict[str, tuple[str, ...]], before: set[str]
) -> None:
    elections = {ip: Election(ip, node, "", services=(f"ns/{ip}",)) for ip, node in winners.items()}
    todo_list = todo(elections, "a", interfaces, before)
    won = {ip for ip, node in winners.items() if node == "a" and interfaces.get(ip)}
    assert set(todo_list.announce) == won
    assert todo_list.withdraw == before - won
    for ip, (ifaces, services) in todo_list.announce.items():
        assert ifaces == interfaces[ip] and services == (f"ns/{ip}",)
