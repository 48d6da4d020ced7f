"""The one place that opens a backend from a URL string, dispatching on the scheme.

Configuration is one string per port, parsed at the edge (:mod:`streamcache.settings`); what an
adapter needs besides the URL comes as plain keyword values, never as the settings object. Checking a
URL imports no SDK: settings are validated on every cold start, and the ``oci`` SDK costs seconds.

Mutation logs:

- ``memory://NAME[?partitions=N]``: an in-process log shared by name (fast tests, one-process demos).
- ``kafka://HOST:PORT[,HOST:PORT]/TOPIC``: Apache Kafka, OCI Streaming or the local Tansu broker.

Snapshot stores:

- ``oci://BUCKET@NAMESPACE/PREFIX``: OCI Object Storage through the SDK (resource principal inside
  OCI Functions, else ``~/.oci/config``; ``oci_endpoint`` points it at a local server).
- ``file:///ABSOLUTE/PATH``, ``file:RELATIVE/PATH`` or a plain path: a local directory.
- ``memory://NAME``: an in-process store shared by name (tests, one-process demos).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

from streamcache.adapters.oci_auth import parse_oci_url
from streamcache.core.errors import ConfigError

if TYPE_CHECKING:
    from streamcache.ports import MutationLog, SnapshotStore


# ---- mutation logs --------------------------------------------------------------------------------


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


def open_log(url: str, *, timeout_ms: int = 5000, client_id: str = "streamcache",
             security: Mapping[str, object] | None = None) -> "MutationLog":
    """Open the mutation log named by ``url``. ``timeout_ms`` bounds an append's wait for the broker;
    ``security`` holds kafka-python's security options (``security_protocol``, ``sasl_*``)."""
    problem = check_log_url(url)
    if problem:
        raise ConfigError([problem])
    parts = urlsplit(url)
    if parts.scheme == "memory":
        from streamcache.adapters.memory_log import MemoryLog

        partitions = int(parse_qs(parts.query).get("partitions", ["1"])[0])
        return MemoryLog.named(parts.netloc, partitions)
    from streamcache.adapters.kafka_log import KafkaLog

    return KafkaLog(parts.netloc, parts.path.strip("/"), timeout_ms=timeout_ms, client_id=client_id,
                    security=security)


# ---- snapshot stores ------------------------------------------------------------------------------


def check_store_url(url: str) -> str | None:
    """Return a problem with ``url`` as a snapshot-store URL, or ``None`` if it looks usable."""
    scheme = urlsplit(url).scheme if "://" in url or url.startswith("file:") else ""
    if not url:
        return "snapshot store URL is empty"
    if scheme == "memory":
        return None if urlsplit(url).netloc else f"snapshot store URL {url!r}: memory:// needs a name"
    if scheme == "oci":
        try:
            parse_oci_url(url)
        except ConfigError as exc:
            return exc.problems[0]
        return None
    if scheme in ("", "file"):
        return None
    return f"snapshot store URL {url!r}: the scheme must be oci://, file:// or memory:// (or a plain path)"


def open_snapshot_store(
    url: str,
    *,
    oci_profile: str | None = None,
    oci_config_file: str | None = None,
    oci_endpoint: str | None = None,
    oci_connections: int | None = None,
    environ: Mapping[str, str] | None = None,
    **oci_options: object,
) -> "SnapshotStore":
    """Open the snapshot store named by ``url``. ``oci_*`` settings only matter for ``oci://``;
    ``oci_options`` (``signer``, ``retry_strategy``, ``timeout``, ``page_size``, ``range_bytes``)
    go to :meth:`OciObjectStore.from_url`."""
    problem = check_store_url(url)
    if problem:
        raise ConfigError([problem])
    parts = urlsplit(url)
    if parts.scheme == "memory":
        from streamcache.adapters.memory_store import MemoryStore

        return MemoryStore.named(parts.netloc)
    if parts.scheme == "oci":
        from streamcache.adapters.oci_object_store import OciObjectStore

        return OciObjectStore.from_url(
            url,
            profile=oci_profile,
            config_file=oci_config_file,
            endpoint=oci_endpoint,
            environ=environ,
            **({} if oci_connections is None else {"connections": oci_connections}),  # type: ignore[arg-type]
            **oci_options,  # type: ignore[arg-type]
        )
    from streamcache.adapters.directory_store import DirectoryStore

    if url.startswith("file:"):
        if parts.netloc not in ("", "localhost"):
            raise ConfigError([f"snapshot store URL {url!r}: file:// URLs name a local path (file:///PATH)"])
        return DirectoryStore(Path(unquote(parts.path)))
    return DirectoryStore(Path(url))
