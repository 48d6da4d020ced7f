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
        if not parts.netloc:
            return f"log URL {url!r}: memory:// needs a name (memory://NAME)"
        partitions = parse_qs(parts.query).get("partitions", ["1"])[0]
        if not (partitions.isascii() and partitions.isdigit() and int(partitions) >= 1):
            return f"log URL {url!r}: partitions must be a whole number of at least 1"
        return None
    if parts.scheme == "kafka":
        servers = parts.netloc.split(",") if parts.netloc else []
        if not servers or not parts.path.strip("/") or not all(_host_port(s) for s in servers):
            return f"log URL {url!r}: expected kafka://HOST:PORT[,HOST:PORT...]/TOPIC"
        return None
    return f"log URL {url!r}: the scheme must be memory:// or kafka://"


def _host_port(server: str) -> bool:
    host, sep, port = server.rpartition(":")
    return bool(host) and bool(sep) and port.isascii() and port.isdigit() and 0 < int(port) < 65536


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
