"""metallb_py.runtime.logs: JSON lines with the extra fields, other libraries at warning and above."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from metallb_py.runtime import configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, ours = logging.getLogger(), logging.getLogger("metallb_py")
    saved = (root.handlers[:], root.level, ours.handlers[:], ours.level, ours.propagate)
    yield
    root.handlers[:], root.level, ours.handlers[:], ours.level, ours.propagate = saved


@pytest.mark.usefixtures("restore_logging")
def test_logs_are_json_lines_with_the_extra_fields() -> None:
    out = io.StringIO()
    configure_logging("info", out)
    log = logging.getLogger("metallb_py.controller")
    log.info("allocated", extra={"service": "default/web", "ips": ["192.0.2.1"]})
    log.debug("hidden")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed", extra={"service": "default/x"})
    logging.getLogger("urllib3.connectionpool").warning("Connection pool is full")
    logging.getLogger("urllib3.connectionpool").info("not shown")
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [entry["msg"] for entry in lines] == ["allocated", "failed", "Connection pool is full"]
    first = lines[0]
    assert first["level"] == "info" and first["logger"] == "metallb_py.controller"
    assert first["service"] == "default/web" and first["ips"] == ["192.0.2.1"]
    assert first["ts"].endswith("Z")
    assert "ValueError: boom" in lines[1]["exception"]
