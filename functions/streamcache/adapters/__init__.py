"""Adapters of the ports, chosen by URL scheme so that configuration is one string.

- ``memory://NAME[?partitions=N]``: an in-process log shared by name (fast tests, one-process demos).
- ``kafka://HOST:PORT[,HOST:PORT]/TOPIC``: Apache Kafka, OCI Streaming or the local Tansu broker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from ..ports import MutationLog
    from ..settings import Settings


def check_log_url(url: str) -> str | None:
    """Return a problem with ``url`` as a log URL, or ``None`` if it is usable."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        return None if parts.netloc else f"log URL {url!r}: memory:// needs a name (memory://NAME)"
    if parts.scheme == "kafka":
        if not parts.netloc or not parts.path.strip("/"):
            return f"log URL {url!r}: expected kafka://HOST:PORT/TOPIC"
        return None
    return f"log URL {url!r}: the scheme must be memory:// or kafka://"


def open_log(settings: "Settings") -> "MutationLog":
    """Open the mutation log named by ``settings.log_url``."""
    problem = check_log_url(settings.log_url)
    if problem:
        raise ConfigError([problem])
    parts = urlsplit(settings.log_url)
    if parts.scheme == "memory":
        from .memory_log import MemoryLog

        query = parse_qs(parts.query)
        partitions = int(query.get("partitions", ["1"])[0])
        return MemoryLog.named(parts.netloc, partitions)
    from .kafka_log import KafkaLog

    return KafkaLog.from_settings(settings)
