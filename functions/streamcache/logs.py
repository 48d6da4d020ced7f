"""Structured logs: one JSON object per line on stderr, which OCI Logging ingests from a function.

The FDK sets the root logger to DEBUG with a stderr handler, and kafka-python then writes many
lines per request; :func:`configure` quiets library loggers and gives ``streamcache`` its own
JSON handler that does not propagate to the root.
"""

from __future__ import annotations

import logging
import sys

import orjson

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
