"""The cold start's fast path: read the log's tail while the newest snapshot image loads.

A cold start used to do two things one after the other: load the snapshot (download, CRC-32,
``deserialize``: C code that releases the GIL), then read the log's tail from its positions (network
and kafka-python's record parsing: Python). The positions are in the image's first pages, so this
reads them first (a 64 KiB ranged read), captures the log's bounds, and reads the tail in a thread
while the image downloads and loads. Measured at 1M keys and a 10k-record tail: the two overlap
for most of the image's ~0.15 s.

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
from streamcache.replay.chain import Unusable, load_snapshot
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
    began_at = monotonic()  # before the bounds: writes acknowledged earlier are in them
    bounds = mutation_log.bounds()
    plan = plan_restore(header, bounds, check_header(mutation_log, header, bounds))
    if plan.snapshot is None or plan.degraded or plan.refused or plan.records_to_replay > PREFETCH_MAX_RECORDS:
        return None
    records: list[tuple[Position, Mutation | RecordError]] = []
    failed: list[BaseException] = []

    start = {p: s for p, s in plan.start.items() if p in plan.end and s < plan.end[p]}

    def read_tail() -> None:
        try:
            if start:  # decoded here too: the image's load leaves this thread the GIL most of the time
                records.extend(decode_records(mutation_log.read(start, plan.end), mutation_log.partition_for))
        except BaseException as exc:  # reported to the caller, which takes the ordinary path
            failed.append(exc)

    reader = threading.Thread(target=read_tail, name="streamcache-tail", daemon=True)
    reader.start()
    started = time.perf_counter()
    try:
        snapshot = load_snapshot(store, name, catalog.snapshots)  # with its chain's deltas, if any
        size = snapshot.size_bytes
    except (SnapshotError, SnapshotNotFound, Unusable) as exc:
        log.info("fast restore not possible (%s); taking the ordinary path", exc)
        return None
    finally:
        load_ms = (time.perf_counter() - started) * 1000
        reader.join()  # always: the log must not be read by two threads (a retry would start another)
    if failed or snapshot.header != header:
        snapshot.table.close()
        if failed:
            raise failed[0]  # the log is unreachable: the ordinary path would fail alike
        return None
    loaded = LoadedSnapshot(name, snapshot.header, snapshot.table, size, load_ms, snapshot.chain)
    return FastRestore(loaded, catalog, plan, began_at, records)
