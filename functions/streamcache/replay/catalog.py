"""The snapshots a store holds for one stream, and loading the newest one that verifies.

Shared by the compactor, the cold start of a cache instance and ``streamcache snapshots``:

- :func:`list_catalog` lists the stream's prefix once: snapshot names (newest first, by name, which
  is log order) and data-loss records (:mod:`streamcache.core.data_loss`).
- :func:`load_newest_valid` downloads the newest snapshot and verifies it; a corrupt one, one in a
  format this version does not read, or one made from another stream is skipped (and reported) in
  favour of the next older one. A snapshot pruned between the listing and the download (a compactor
  wrote a newer one meanwhile) makes it list again, so a restore never falls back to an old snapshot,
  or to none, only because it lost a race with a compactor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable

from streamcache.core.data_loss import DataLossRecord, decode_loss, is_loss_name
from streamcache.core.snapshot import (
    HEADER_PROBE_BYTES,
    SnapshotCorrupt,
    SnapshotHeader,
    UnsupportedSnapshotVersion,
    decode_header,
    newest_first,
    parse_name,
    stream_prefix,
)
from streamcache.core.table import Table
from streamcache.ports import SnapshotNotFound, SnapshotStore, SnapshotStoreUnavailable
from streamcache.replay.progress import Progress
from streamcache.replay.snapshot_image import fetch_image

log = logging.getLogger("streamcache.snapshots")

#: Listing again after a snapshot vanished under us: how many times before giving up on the race.
MAX_RELISTS = 5


class SkipReason(StrEnum):
    CORRUPT = "corrupt"  # truncated, damaged, or not a snapshot at all
    UNSUPPORTED_VERSION = "unsupported_version"  # intact, in a format a newer version wrote
    OTHER_STREAM = "other_stream"  # intact, but made from another stream


@dataclass(frozen=True)
class Skipped:
    """A snapshot that was not used, and why."""

    name: str
    reason: SkipReason
    detail: str

    def to_json(self) -> dict:
        return {"name": self.name, "reason": self.reason.value, "detail": self.detail}


@dataclass(frozen=True)
class Catalog:
    stream: str
    snapshots: list[str]  # newest first
    losses: list[str]  # data-loss record names


@dataclass
class LoadedSnapshot:
    name: str
    header: SnapshotHeader
    table: Table
    size_bytes: int
    load_ms: float

    def describe(self, now_ms: int | None = None) -> dict:
        """The snapshot as /health and the compactor's summary show it."""
        info = {
            "name": self.name,
            "positions": {str(p): o for p, o in sorted(self.header.next_offsets.items())},
            "as_of_ms": self.header.as_of_ms,
            "entries": self.header.entries,
            "bytes": self.size_bytes,
            "load_ms": round(self.load_ms, 1),
        }
        if now_ms is not None:
            info["age_s"] = round(max(0, now_ms - self.header.as_of_ms) / 1000, 3)
        return info


@dataclass
class LoadResult:
    snapshot: LoadedSnapshot | None
    catalog: Catalog
    skipped: list[Skipped] = field(default_factory=list)


def list_catalog(store: SnapshotStore, stream: str) -> Catalog:
    names = store.list(stream_prefix(stream))
    losses = [name for name in names if is_loss_name(name, stream)]
    return Catalog(stream, newest_first(names, stream), losses)


def load_newest_valid(
    store: SnapshotStore,
    stream: str,
    progress: Progress | None = None,
    monotonic: Callable[[], float] = time.perf_counter,
    as_of_ms: int | None = None,
) -> LoadResult:
    """The newest snapshot of ``stream`` that verifies, or ``None`` if there is none; with
    ``as_of_ms``, the newest whose as-of time is not after it (going back in time).

    Raises :class:`~streamcache.ports.SnapshotStoreUnavailable` when the store cannot be
    read: a restore must not go on without the snapshots it cannot see."""
    bad: dict[str, Skipped] = {}
    for _ in range(MAX_RELISTS):
        catalog = list_catalog(store, stream)
        vanished = False
        for name in catalog.snapshots:
            if name in bad or (as_of_ms is not None and parse_name(name).as_of_ms > as_of_ms):
                continue
            started = monotonic()
            if progress is not None:
                progress.phase(f"downloading, verifying and loading {name}")
            try:
                snapshot, size = fetch_image(store, name)  # downloaded, verified and opened in one go
            except SnapshotNotFound:
                vanished = True  # pruned since the listing: a newer one exists, list again
                break
            except UnsupportedSnapshotVersion as exc:
                bad[name] = Skipped(name, SkipReason.UNSUPPORTED_VERSION, str(exc))
            except SnapshotCorrupt as exc:
                bad[name] = Skipped(name, SkipReason.CORRUPT, str(exc))
            else:
                if snapshot.header.stream != stream:
                    bad[name] = Skipped(name, SkipReason.OTHER_STREAM,
                                        f"the snapshot says it is of stream {snapshot.header.stream!r}")
                else:
                    loaded = LoadedSnapshot(name, snapshot.header, snapshot.table, size,
                                            (monotonic() - started) * 1000)
                    return _done(loaded, catalog, bad)
            log.error("snapshot %s skipped (%s): %s; trying an older one", name, bad[name].reason, bad[name].detail,
                      extra={"fields": {"kind": "snapshot_skipped", **bad[name].to_json()}})
        if not vanished:
            return _done(None, catalog, bad)
    raise _race_lost(stream)


def _done(loaded: LoadedSnapshot | None, catalog: Catalog, bad: dict[str, Skipped]) -> LoadResult:
    skipped = [bad[name] for name in catalog.snapshots if name in bad]
    return LoadResult(loaded, catalog, skipped)


def _race_lost(stream: str) -> Exception:
    return SnapshotStoreUnavailable(
        f"snapshots of {stream!r} kept disappearing while being read ({MAX_RELISTS} listings); is a "
        "compactor pruning with STREAMCACHE_SNAPSHOTS_KEEP=1? Retry later."
    )


def read_header(store: SnapshotStore, name: str) -> tuple[SnapshotHeader, int]:
    """The header of snapshot ``name`` and the object's size (from the name), reading only the image's
    first pages where the store can stream (a listing must not download every snapshot whole). Raises SnapshotError for an
    object whose header does not verify, SnapshotNotFound if it is gone."""
    opener = getattr(store, "open_stream", None)
    if opener is None:
        data = store.get(name)
    else:
        chunks = opener(name, HEADER_PROBE_BYTES)
        data = bytearray()
        try:
            for chunk in chunks:
                data += chunk
                if len(data) >= HEADER_PROBE_BYTES:
                    break
        finally:
            chunks.close()
        data = bytes(data)
    try:
        header = decode_header(data)
    except SnapshotCorrupt:
        if len(data) < HEADER_PROBE_BYTES:
            raise  # that was the whole object
        data = store.get(name)  # a header beyond the probe (thousands of partitions, or format 1)
        header = decode_header(data)
    checksum = parse_name(name).checksum
    if checksum is not None:
        return header, checksum.size_bytes
    if len(data) < HEADER_PROBE_BYTES:
        return header, len(data)
    return header, len(store.get(name))  # format 1 (being converted): its size is not in the name


def read_losses(store: SnapshotStore, catalog: Catalog) -> dict[str, DataLossRecord]:
    """The data-loss records of the catalog, by name. One that cannot be read still means a loss."""
    records = {}
    for name in catalog.losses:
        try:
            records[name] = decode_loss(store.get(name))
        except SnapshotNotFound:
            continue  # acknowledged (deleted) since the listing
        except ValueError as exc:
            log.error("data-loss record %s is unreadable: %s", name, exc)
            records[name] = DataLossRecord(catalog.stream, {}, 0, None, f"(unreadable record {name})")
    return records
