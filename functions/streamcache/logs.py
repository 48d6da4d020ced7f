"""Structured logs: one JSON object per line on stderr, which OCI Logging ingests from a function.

The FDK sets the root logger to DEBUG with a stderr handler, and kafka-python then writes many
lines per request; :func:`configure` quiets library loggers and gives ``streamcache`` its own
JSON handler that does not propagate to the root.
"""

from __future__ import annotations

import enum
import logging
import sys

import orjson

#: An answer that takes this long is a problem whatever its status.
SLOW_MS = 1000.0

_NOISY = ("kafka", "oci", "urllib3", "fdk", "asyncio", "httptools")


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON line; ``extra={"fields": {...}}`` adds structured fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode("utf-8")


def configure(stream=None) -> logging.Logger:
    """Set up streamcache's logging once per process; returns the ``streamcache`` logger."""
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    logger = logging.getLogger("streamcache")
    if not any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


class AccessLog(enum.Enum):
    """Which requests get a log line (``STREAMCACHE_ACCESS_LOG``).

    ``problems`` (the default) logs an answer that is an error or slow: every 5xx, a 4xx other than a
    miss (404) or a failed precondition (412), both of which are how a cache answers normally, and
    any answer that took :data:`SLOW_MS` or more. ``all`` logs every request, ``off`` none (errors
    inside the instance are still logged). A line per request costs a PUT 0.05-0.07 ms through the
    FDK here, and OCI Logging bills what it ingests; API Gateway keeps its own access log."""

    ALL = "all"
    PROBLEMS = "problems"
    OFF = "off"

    def wants(self, status: int, duration_ms: float) -> bool:
        """Whether an answer with ``status`` after ``duration_ms`` gets a line."""
        if self is AccessLog.ALL:
            return True
        if self is AccessLog.OFF:
            return False
        return status >= 500 or (status >= 400 and status not in (404, 412)) or duration_ms >= SLOW_MS
