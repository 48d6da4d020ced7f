"""The cold start's fast path: read the log's tail while the newest snapshot image loads.

A cold start used to do two things one after the other: load the snapshot (download, CRC-32,
``deserialize``: C code that releases the GIL), then read the log's tail from its positions (network
and kafka-python's record parsing: Python). The positions are in the image's first pages, so this
reads them first (a 64 KiB ranged read), then loads the image in a thread while this one captures
the log's bounds, checks the snapshot against the log (:mod:`streamcache.replay.identity`: a probe
consumer of its own, tens of ms) and reads and decodes the tail. Measured at 1M keys and a 10k-record
tail: the three overlap most of the image's ~0.15 s.

Only the plain case takes this path: a big enough image (:data:`FAST_MIN_BYTES`; for a delta, its
chain's base), the newest snapshot (with its chain) verifies, its header is the one read ahead, and the plan needs no special handling (no data loss, the snapshot not ahead of the log).
Anything else returns ``None`` and the cold start takes its ordinary path from the beginning, so the
fallbacks (older snapshots, data-loss reports) stay where they are. Bounds are captured after the
listing, so the snapshot picked cannot be ahead of them (see compaction.py, step 1).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from streamcache.core.restore import RestorePlan, plan_restore
from streamcache.core.snapshot import SnapshotError, parse_name
from streamcache.core.snapshot_chain import chain_of
from streamcache.core.errors import RecordError
from streamcache.core.records import Mutation, Position
from streamcache.replay.fold import decode_records
from streamcache.replay.identity import check_header
from streamcache.ports import MutationLog
from streamcache.replay.catalog import Catalog, LoadedSnapshot, list_catalog, read_header
from streamcache.replay.chain import ChainLoad, Unusable, load_snapshot
from streamcache.ports import SnapshotNotFound, SnapshotStore

log = logging.getLogger("streamcache.restore")

#: Images smaller than this (the size is in the name) take the ordinary path: reading the header
#: ahead costs one more request to the object store (tens of ms on OCI), more than overlapping the
#: load of a small image saves (a 19 MB image loads in ~15 ms).
FAST_MIN_BYTES = 16 << 20
#: Tails longer than this are not read ahead: they would sit in memory whole (the ordinary path
#: reads in chunks), and the image's load time is small next to replaying them anyway.
PREFETCH_MAX_RECORDS = 200_000


@dataclass
class FastRestore:
    """A snapshot loaded with its tail already read and decoded (not yet applied)."""

    loaded: LoadedSnapshot
    catalog: Catalog
    plan: RestorePlan
    began_at: float
    records: list[tuple[Position, Mutation | RecordError]]  # decoded (fold.decode_records)


def load_with_tail(store: SnapshotStore, stream: str, mutation_log: MutationLog,
                   monotonic: Callable[[], float]) -> FastRestore | None:
    """The newest snapshot and its tail, read concurrently; ``None`` if this is not the plain case."""
    catalog = list_catalog(store, stream)
    if not catalog.snapshots:
        return None
    name = catalog.snapshots[0]
    chain = chain_of(name, catalog.snapshots)  # a delta: its base decides, it is what downloads long
    checksum = None if chain is None else parse_name(chain[0]).checksum
    if checksum is None or checksum.size_bytes < FAST_MIN_BYTES:
        return None
    try:
        header, _ = read_header(store, name)
    except (SnapshotError, SnapshotNotFound):
        return None
    # The image (the long part) starts loading now, while the log's bounds are read, the snapshot is
    # checked against the log (a probe consumer of its own: connections, a fetch per partition) and
    # the tail is read. Should the plan not be the plain case after all, the image loaded meanwhile
    # is closed and the ordinary path starts over (one download more, in a rare case).
    loader = _ImageLoader(store, name, catalog.snapshots)
    loader.start()
    try:
        began_at = monotonic()  # before the bounds: writes acknowledged earlier are in them
        bounds = mutation_log.bounds()
        plan = plan_restore(header, bounds, check_header(mutation_log, header, bounds))
        if plan.snapshot is None or plan.degraded or plan.refused or plan.records_to_replay > PREFETCH_MAX_RECORDS:
            loader.discard()
            return None
        start = {p: s for p, s in plan.start.items() if p in plan.end and s < plan.end[p]}
        # decoded here too: the image's load leaves this thread the GIL most of the time
        records = decode_records(mutation_log.read(start, plan.end), mutation_log.partition_for) if start else []
    except BaseException:
        loader.discard()  # the log is unreachable: the ordinary path would fail alike
        raise
    snapshot = loader.join()
    if snapshot is None:
        return None
    if snapshot.header != header:
        snapshot.table.close()
        return None
    size, load_ms = snapshot.size_bytes, loader.load_ms
    loaded = LoadedSnapshot(name, snapshot.header, snapshot.table, size, load_ms, snapshot.chain)
    return FastRestore(loaded, catalog, plan, began_at, records)


class _ImageLoader(threading.Thread):
    """Loads the snapshot (with its chain) in a thread; :meth:`join` returns it, or ``None`` when it
    is not usable (the ordinary path decides what to do about it)."""

    def __init__(self, store: SnapshotStore, name: str, names: list[str]) -> None:
        super().__init__(name="streamcache-image", daemon=True)
        self._args = (store, name, names)
        self._snapshot: ChainLoad | None = None
        self._error: BaseException | None = None
        self.load_ms = 0.0

    def run(self) -> None:
        started = time.perf_counter()
        try:
            self._snapshot = load_snapshot(*self._args)  # with its chain's deltas, if any
        except BaseException as exc:  # reported by join()
            self._error = exc
        finally:
            self.load_ms = (time.perf_counter() - started) * 1000

    def join(self, timeout: float | None = None) -> ChainLoad | None:  # type: ignore[override]
        super().join(timeout)
        if isinstance(self._error, (SnapshotError, SnapshotNotFound, Unusable)):
            log.info("fast restore not possible (%s); taking the ordinary path", self._error)
            return None
        if self._error is not None:
            raise self._error  # the store is unreachable: the ordinary path would fail alike
        return self._snapshot

    def discard(self) -> None:
        """Wait for the load and close what it loaded: nothing is left behind, nothing raised."""
        super().join()
        if self._snapshot is not None:
            self._snapshot.table.close()
