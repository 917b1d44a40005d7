"""Fixtures for the responder tests: each test gets its own namespaces, removed even when it fails.

Whether they can run at all (root, the clients) is decided for every `netns` test in tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ._lab import Lab, Pair, lab, make_pair


@pytest.fixture
def netlab() -> Iterator[Lab]:
    with lab() as the_lab:
        yield the_lab


@pytest.fixture
def pair(netlab: Lab) -> Pair:
    return make_pair(netlab)
