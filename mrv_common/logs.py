"""Structured logs: one JSON object per line, e.g. {"event": "appended", "device_id": "inv-1", "seq": 7}.

Callers pass identifiers and counts as fields; keys, passwords and raw payloads are never logged.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any

_FIELDS = "mrv_fields"


def log_event(logger: logging.Logger, level: int, event: str, *, exc_info: bool = False,
              **fields: Any) -> None:
    """Log `event` (a short snake_case name) with its fields, e.g. device_id=..., seq=...
    `exc_info=True` inside an except block adds the traceback."""
    if logger.isEnabledFor(level):
        logger.log(level, event, exc_info=exc_info, extra={_FIELDS: fields})


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line: time, level, logger, event, then the event's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        line.update(getattr(record, _FIELDS, {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def configure_logging(level: str | int = "INFO") -> None:
    """Send every log record to stderr as JSON lines (journald and docker capture stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
