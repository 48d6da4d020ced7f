"""The cold start's fast path: the newest snapshot image loads while the log is read.

A cold start used to do two things one after the other: load the snapshot (download, CRC-32,
``deserialize``: I/O and C code that release the GIL), then ask the log for its bounds, check the
snapshot is this log's and read the tail (network, and kafka-python's record parsing: Python). The
positions are in the image's first pages, so this reads them first (a 64 KiB ranged read), starts the
image's load on a thread, and meanwhile captures the log's bounds, checks the identity and reads and
decodes the tail. Measured at 1M keys and a 10k-record tail on a local directory: the two overlap for
all of the image's ~0.2 s; on OCI, where the download takes longer, the log's round trips hide too.

Only the plain case takes this path: a big enough image (:data:`FAST_MIN_BYTES`; for a delta, its
chain's base), the newest snapshot (with its chain) verifies, its header is the one read ahead, and
the plan needs no special handling (no data loss, the snapshot not ahead of the log). Anything else
returns ``None`` and the cold start takes its ordinary path from the beginning, so the fallbacks
(older snapshots, data-loss reports) stay where they are. A tail too long to hold whole is left to
the caller's chunked replay, on the image loaded here. Bounds are captured after the listing, so the
snapshot picked cannot be ahead of them (see compaction.py, step 1).
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
#: Tails longer than this are not read ahead (they would sit in memory whole): the caller replays
#: them in chunks onto the image loaded here.
PREFETCH_MAX_RECORDS = 200_000


@dataclass
class FastRestore:
    """A snapshot loaded with its tail already read and decoded (not yet applied); ``records`` is
    ``None`` when the tail is too long to hold whole: the caller replays it in chunks."""

    loaded: LoadedSnapshot
    catalog: Catalog
    plan: RestorePlan
    began_at: float
    records: list[tuple[Position, Mutation | RecordError]] | None  # decoded (fold.decode_records)


def load_with_tail(store: SnapshotStore, stream: str, mutation_log: MutationLog,
                   monotonic: Callable[[], float]) -> FastRestore | None:
    """The newest snapshot and its tail, read concurrently; ``None`` if this is not the plain case.

    The image starts loading as soon as its header is read, before the log is asked anything: the
    log's bounds, the identity check and the tail are network round trips and Python work (on OCI,
    TLS handshakes too) that the download and ``deserialize`` (I/O and C code, without the GIL) hide."""
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
    loader = _ImageLoader(store, name, catalog.snapshots)
    try:
        began_at = monotonic()  # before the bounds: writes acknowledged earlier are in them
        bounds = mutation_log.bounds()
        plan = plan_restore(header, bounds, check_header(mutation_log, header, bounds))
        if plan.snapshot is None or plan.degraded or plan.refused:
            loader.discard()
            return None
        records: list[tuple[Position, Mutation | RecordError]] | None = None
        if plan.records_to_replay <= PREFETCH_MAX_RECORDS:
            start = {p: s for p, s in plan.start.items() if p in plan.end and s < plan.end[p]}
            # Decoded here too: the image's load leaves this thread the GIL most of the time.
            records = decode_records(mutation_log.read(start, plan.end), mutation_log.partition_for) if start else []
    except BaseException:
        loader.discard()  # the log is unreachable: the ordinary path would fail alike
        raise
    snapshot, load_ms = loader.result()  # raises what the store raised (unavailable: retried)
    if snapshot is None or snapshot.header != header:
        if snapshot is not None:
            snapshot.table.close()
        return None
    loaded = LoadedSnapshot(name, snapshot.header, snapshot.table, snapshot.size_bytes, load_ms, snapshot.chain)
    return FastRestore(loaded, catalog, plan, began_at, records)


class _ImageLoader:
    """``load_snapshot`` on a thread of its own, started at once; joined by :meth:`result` or
    :meth:`discard`, always (a store must not be read by two restores: a retry would start another)."""

    def __init__(self, store: SnapshotStore, name: str, names: list[str]) -> None:
        self._snapshot: ChainLoad | None = None
        self._failed: BaseException | None = None
        self._ms = 0.0
        self._thread = threading.Thread(target=self._run, args=(store, name, names), name="streamcache-image", daemon=True)
        self._thread.start()

    def _run(self, store: SnapshotStore, name: str, names: list[str]) -> None:
        started = time.perf_counter()
        try:
            self._snapshot = load_snapshot(store, name, names)  # with its chain's deltas, if any
        except (SnapshotError, SnapshotNotFound, Unusable) as exc:
            log.info("fast restore not possible (%s); taking the ordinary path", exc)
        except BaseException as exc:  # handed to the caller
            self._failed = exc
        finally:
            self._ms = (time.perf_counter() - started) * 1000

    def result(self) -> tuple[ChainLoad | None, float]:
        """The loaded snapshot (``None``: not usable, take the ordinary path) and the load's ms."""
        self._thread.join()
        if self._failed is not None:
            raise self._failed
        return self._snapshot, self._ms

    def discard(self) -> None:
        self._thread.join()
        if self._snapshot is not None:
            self._snapshot.table.close()
            self._snapshot = None
