"""Open a snapshot store from one URL string, dispatching on the scheme (config at the edge).

- ``oci://BUCKET@NAMESPACE/PREFIX``: OCI Object Storage through the SDK (resource principal inside
  OCI Functions, else ``~/.oci/config``; ``oci_endpoint`` points it at a local server).
- ``file:///ABSOLUTE/PATH``, ``file:RELATIVE/PATH`` or a plain path: a local directory.
- ``memory://NAME``: an in-process store shared by name (tests, one-process demos).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping
from urllib.parse import unquote, urlsplit

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from ..snapshot_store import SnapshotStore


def check_store_url(url: str) -> str | None:
    """Return a problem with ``url`` as a snapshot-store URL, or ``None`` if it looks usable."""
    scheme = urlsplit(url).scheme if "://" in url or url.startswith("file:") else ""
    if not url:
        return "snapshot store URL is empty"
    if scheme == "memory":
        return None if urlsplit(url).netloc else f"snapshot store URL {url!r}: memory:// needs a name"
    if scheme == "oci":
        from .oci_object_store import parse_oci_url

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
    environ: Mapping[str, str] | None = None,
    **oci_options: object,
) -> "SnapshotStore":
    """Open the snapshot store named by ``url``. ``oci_*`` settings only matter for ``oci://``;
    ``oci_options`` (``signer``, ``retry_strategy``, ``timeout``, ``page_size``) go to
    :meth:`OciObjectStore.from_url`."""
    problem = check_store_url(url)
    if problem:
        raise ConfigError([problem])
    parts = urlsplit(url)
    if parts.scheme == "memory":
        from .memory_store import MemoryStore

        return MemoryStore.named(parts.netloc)
    if parts.scheme == "oci":
        from .oci_object_store import OciObjectStore

        return OciObjectStore.from_url(
            url,
            profile=oci_profile,
            config_file=oci_config_file,
            endpoint=oci_endpoint,
            environ=environ,
            **oci_options,  # type: ignore[arg-type]
        )
    from .directory_store import DirectoryStore

    if url.startswith("file:"):
        if parts.netloc not in ("", "localhost"):
            raise ConfigError([f"snapshot store URL {url!r}: file:// URLs name a local path (file:///PATH)"])
        return DirectoryStore(Path(unquote(parts.path)))
    return DirectoryStore(Path(url))
