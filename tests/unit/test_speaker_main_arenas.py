"""metallb_py.speaker.main.limit_malloc_arenas: the speaker caps glibc's malloc arenas unless the user did."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CHILD = "from metallb_py.speaker.main import limit_malloc_arenas; print(limit_malloc_arenas())"


def run_child(env: dict[str, str]) -> str:
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="arenas are glibc's")
def test_the_cap_applies_unless_malloc_arena_max_is_set() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert run_child(env) == "True"
    assert run_child({**env, "MALLOC_ARENA_MAX": "4"}) == "False", "the user's setting stays"
