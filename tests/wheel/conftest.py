"""Tests of an installed wheel: `.ci/wheel-test` builds the release wheel, installs it into a fresh virtualenv
and runs this directory with that virtualenv's Python, from a directory outside the checkout, on a PATH
without cargo or rustc, with METALLB_PY_WHEEL_VENV naming the virtualenv.

Without that variable (a `make test` run in the development virtualenv, where metallb_py is this checkout's
python/) every test here is skipped: what they prove is only worth anything against the wheel.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent
WHEEL_VENV_ENV = "METALLB_PY_WHEEL_VENV"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get(WHEEL_VENV_ENV):
        return
    skip = pytest.mark.skip(
        reason=f"tests an installed wheel: run by .ci/wheel-test ({WHEEL_VENV_ENV} unset)"
    )
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def wheel_venv() -> Path:
    """The virtualenv the wheel is installed in."""
    return Path(os.environ[WHEEL_VENV_ENV]).resolve()
