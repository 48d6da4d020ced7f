"""What streamcache logs while a test runs: the JSON lines of the ``streamcache`` logger, formatted as
a function writes them (``streamcache.logs.JsonFormatter``)."""

from __future__ import annotations

import io
import logging
from contextlib import contextmanager
from typing import Iterator

from streamcache.logs import JsonFormatter


@contextmanager
def captured_json_logs(level: int = logging.DEBUG) -> Iterator[io.StringIO]:
    """The lines logged inside the ``with`` block (the logger's level set to ``level`` meanwhile)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("streamcache")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
