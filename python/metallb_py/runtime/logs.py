"""Structured logs: one JSON object per line, as log collectors in a cluster expect.

Fields passed with `extra={...}` become top-level keys next to `ts`, `level`, `logger` and `msg`:

    log.info("allocated", extra={"service": "default/web", "ips": ["192.0.2.1"], "pool": "public"})
    {"ts": "2026-01-02T03:04:05.678Z", "level": "info", "logger": "metallb_py.controller", "msg": "allocated",
     "service": "default/web", "ips": ["192.0.2.1"], "pool": "public"}
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
from typing import IO, Any

__all__ = ["JSONFormatter", "configure_logging"]

# Attributes every LogRecord has; anything else on a record came from `extra`.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime", "taskName"}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
            + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(level: str = "info", stream: IO[str] | None = None) -> None:
    """JSON lines on `stream` (default stderr): metallb_py's loggers at `level`, every other library's
    (the API client, urllib3) at warning and above, so that every line of the output is JSON."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JSONFormatter())
    logger = logging.getLogger("metallb_py")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
