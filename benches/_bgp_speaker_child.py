"""One node's BgpSpeaker in a process of its own, driven over stdin/stdout by benches/test_bench_bgp.py, so
that each node's resident memory and CPU time can be read from /proc like a speaker's.

    python benches/_bgp_speaker_child.py --netns NS

One JSON object a line each way. Requests (`op`):

- `add_peer`: `name`, `address` and `options` (BgpSpeaker.add_peer's keyword arguments); answers `started`.
- `wait_established`: until every peer is established (`within` seconds); answers the peers' states.
- `set_routes`: `peer`, `prefixes` (a list) and `at` (a time.monotonic() value): builds the routes, answers
  `{"armed": true}` at once, calls set_routes at `at` (late if `at` has passed: `late` says by how much),
  then answers `called` and `returned` (time.monotonic() values).
- `status`: every peer's state, counters and prefix counts.
- `stop`: stops the speaker (a Cease to every peer) and exits.

Errors answer `{"error": "..."}` and the process goes on; end of input stops it as `stop` does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from metallb_py import BgpRoute, BgpSpeaker


def emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def peers(speaker: BgpSpeaker) -> list[dict[str, Any]]:
    return [
        {
            "name": p.name,
            "state": p.state,
            "counters": dict(p.counters),
            "prefixes_configured": p.prefixes_configured,
            "prefixes_advertised": p.prefixes_advertised,
            "prefixes_pending": p.prefixes_pending,
            "last_error": p.last_error,
        }
        for p in speaker.peers()
    ]


def wait_established(speaker: BgpSpeaker, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        states = {p.name: p.state for p in speaker.peers()}
        if states and all(s == "established" for s in states.values()):
            return {"states": states}
        if time.monotonic() > deadline:
            return {"error": f"peers not established within {timeout:g} s: {states}", "peers": peers(speaker)}
        time.sleep(0.01)


def set_routes(speaker: BgpSpeaker, request: dict[str, Any]) -> None:
    route = BgpRoute()  # one attribute set shared by every prefix, as one Service pool's would be
    routes = dict.fromkeys(request["prefixes"], route)
    emit({"armed": True})
    at = float(request["at"])
    late = time.monotonic() - at
    if late < 0:
        time.sleep(-late)
    called = time.monotonic()
    speaker.set_routes(request["peer"], routes)
    emit({"called": called, "returned": time.monotonic(), "late": max(0.0, late)})


def main() -> None:
    parser = argparse.ArgumentParser(prog="_bgp_speaker_child")
    parser.add_argument("--netns", required=True)
    args = parser.parse_args()
    speaker = BgpSpeaker(netns=args.netns)
    emit({"ready": True})
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            request = json.loads(line)
            op = request.get("op")
            try:
                if op == "add_peer":
                    started = speaker.add_peer(request["name"], request["address"], **request["options"])
                    emit({"started": started})
                elif op == "wait_established":
                    emit(wait_established(speaker, float(request.get("within", 30))))
                elif op == "set_routes":
                    set_routes(speaker, request)
                elif op == "status":
                    emit({"peers": peers(speaker)})
                elif op == "stop":
                    break
                else:
                    emit(
                        {"error": f"unknown op {op!r}: add_peer, wait_established, set_routes, status, stop"}
                    )
            except (ValueError, KeyError, TypeError, RuntimeError, OSError) as exc:
                emit({"error": f"{op}: {type(exc).__name__}: {exc}"})
    finally:
        speaker.stop()
        emit({"stopped": True})


if __name__ == "__main__":
    main()
