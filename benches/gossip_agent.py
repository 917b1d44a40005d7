"""One gossip member in its own process, for the gossip benchmarks: killable with SIGKILL like a speaker.

    python benches/gossip_agent.py NAME NETNS BIND SECRET_HEX PEER[,PEER...] [OPTIONS_JSON]

Prints one JSON line per membership event ({"kind", "name", "address", "at"}, `at` on the machine-wide
monotonic clock, comparable across processes) and, on SIGTERM, one line {"stats": {...}} before it leaves
and exits. The first line, {"ready": ADDRESS, "generation": INT}, says the socket is bound and which identity
generation the member started with (from the wall clock, which a test may have stepped with libfaketime).
"""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType

from metallb_py._core import Membership


def main(argv: list[str]) -> int:
    name, netns, bind, secret_hex, peers = argv[:5]
    options = json.loads(argv[5]) if len(argv) > 5 else {}
    member = Membership(name, bind, bytes.fromhex(secret_hex), netns=netns, **options)

    def terminate(_signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, terminate)
    member.start()
    try:
        print(json.dumps({"ready": member.address, "generation": member.generation}), flush=True)
        member.set_peers(peers.split(","))
        while True:
            event = member.next_event(timeout=None)
            if event is None:
                return 1
            line = {"kind": event.kind, "name": event.name, "address": event.address, "at": event.at}
            print(json.dumps(line), flush=True)
    finally:
        if member.running:
            print(json.dumps({"stats": member.stats()}), flush=True)
            member.leave()
        member.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
