"""The snapshots a store holds for one stream, and loading the newest one that verifies.

Shared by the compactor, the cold start of a cache instance and ``streamcache snapshots``:

- :func:`list_catalog` lists the stream's prefix once: snapshot names (newest first, by name, which
  is log order) and data-loss records (:mod:`streamcache.core.data_loss`).
- :func:`load_newest_valid` downloads the newest snapshot and verifies it; a corrupt one, one in a
  format this version does not read, or one made from another stream is skipped (and reported) in
  favour of the next older one. A delta is loaded with its chain (:mod:`.chain`): a bad link skips
  it and every later link, and the next candidate is the longest valid prefix of the chain. A
  snapshot pruned between the listing and the download (a compactor wrote a newer one meanwhile)
  makes it list again, so a restore never falls back to an old snapshot, or to none, only because it
  lost a race with a compactor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from streamcache.core.data_loss import DataLossRecord, decode_loss, is_loss_name
from streamcache.core.snapshot import (
    HEADER_PROBE_BYTES,
    SnapshotCorrupt,
    SnapshotHeader,
    decode_header,
    newest_first,
    parse_name,
    stream_prefix,
)
from streamcache.core.table import Table
from streamcache.ports import SnapshotNotFound, SnapshotStore, SnapshotStoreUnavailable
from streamcache.replay.progress import Progress
from streamcache.replay.chain import SkipReason, Unusable, load_snapshot

__all__ = ["Catalog", "LoadResult", "LoadedSnapshot", "SkipReason", "Skipped", "list_catalog", "load_newest_valid",
           "read_header", "read_losses"]

log = logging.getLogger("streamcache.snapshots")

#: Listing again after a snapshot vanished under us: how many times before giving up on the race.
MAX_RELISTS = 5


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
    #: The links loaded, base first (``[name]`` for a full image): see core/snapshot_chain.py.
    chain: list[str] = field(default_factory=list)

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
        if len(self.chain) > 1:
            info["chain"] = self.chain
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
    deltas: dict = {}  # verified deltas, by name: the next candidate shares most of its chain's
    for _ in range(MAX_RELISTS):
        catalog = list_catalog(store, stream)
        vanished = False
        for name in catalog.snapshots:
            if name in bad or (as_of_ms is not None and parse_name(name).as_of_ms > as_of_ms):
                continue
            try:
                got = load_snapshot(store, name, catalog.snapshots, unusable=set(bad), cache=deltas,
                                    progress=progress, monotonic=monotonic)
            except SnapshotNotFound:
                vanished = True  # pruned since the listing: a newer one exists, list again
                break
            except Unusable as exc:
                bad[exc.culprit] = Skipped(exc.culprit, exc.reason, exc.detail)
                if exc.culprit != name:  # and so is every later link of its chain
                    bad[name] = Skipped(name, SkipReason.MISSING_LINK,
                                        f"a link of its chain is unusable: {exc.culprit} ({exc.detail})")
            else:
                if got.header.stream != stream:
                    got.table.close()
                    bad[name] = Skipped(name, SkipReason.OTHER_STREAM,
                                        f"the snapshot says it is of stream {got.header.stream!r}")
                else:
                    loaded = LoadedSnapshot(name, got.header, got.table, got.size_bytes, got.load_ms, got.chain)
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
    """The header of snapshot ``name`` and the object's size, reading only the image's first 64 KiB
    where the store can (a listing must not download every snapshot whole). Raises SnapshotError for
    an object whose header does not verify, SnapshotNotFound if it is gone."""
    reader = getattr(store, "read_into", None)
    if reader is None:
        data = store.get(name)
        size = len(data)
    else:
        # One ranged read of the probe: over the network a whole-object GET cut short would drop its
        # connection (and, on OCI, the TLS session the image's ranged GETs could have reused).
        probe = bytearray(HEADER_PROBE_BYTES)
        size = reader(name, memoryview(probe))
        data = bytes(probe[: min(size, HEADER_PROBE_BYTES)])
    try:
        header = decode_header(data)
    except SnapshotCorrupt:
        if len(data) < HEADER_PROBE_BYTES:
            raise  # that was the whole object
        data = store.get(name)  # a header beyond the probe (thousands of partitions, or format 1)
        header = decode_header(data)
    checksum = parse_name(name).checksum
    return header, size if checksum is None else checksum.size_bytes  # format 1's size is not in its name


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
