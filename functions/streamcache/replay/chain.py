"""Loading one snapshot of a store: a full image, or a chain (its base, then each delta in order).

:func:`load_snapshot` is what :mod:`.catalog` (the newest that verifies), ``as_of`` (the newest
within some positions) and the CLI call for one candidate. A chain's deltas are small, so they are
downloaded and verified (length and CRC-32 from the name, schema, and their ``base`` and ``parent``
rows against the chain the listing gives) **before** the base: a damaged or missing delta costs no
download of the base, and the candidate is refused whole with the link to blame (:class:`Unusable`).
The caller then tries the next older candidate, which is the longest valid prefix of the same chain
(its parent), another branch, or an older full image: never a table with a link left out.
Verified deltas are kept in a small cache for the next candidate, which shares most of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Callable, Collection

from streamcache.core.snapshot import SnapshotCorrupt, SnapshotHeader, UnsupportedSnapshotVersion
from streamcache.core.snapshot_chain import chain_of
from streamcache.core.snapshot_delta import apply_delta, delta_header
from streamcache.core.table import Table
from streamcache.ports import SnapshotStore
from streamcache.replay.progress import Progress
from streamcache.replay.snapshot_image import fetch_image


class SkipReason(StrEnum):
    CORRUPT = "corrupt"  # truncated, damaged, or not a snapshot at all
    UNSUPPORTED_VERSION = "unsupported_version"  # intact, in a format a newer version wrote
    OTHER_STREAM = "other_stream"  # intact, but made from another stream
    MISSING_LINK = "missing_link"  # a delta whose chain lacks a link, or has one that is unusable


class Unusable(Exception):
    """Snapshot ``name`` cannot be loaded because of ``culprit`` (itself, or a link of its chain),
    for ``reason`` and ``detail`` (what is wrong with the culprit)."""

    def __init__(self, name: str, culprit: str, reason: SkipReason, detail: str) -> None:
        super().__init__(detail)
        self.name, self.culprit, self.reason, self.detail = name, culprit, reason, detail


@dataclass
class ChainLoad:
    """A loaded candidate: the table, the header of its newest link, the links (base first)."""

    header: SnapshotHeader
    table: Table
    chain: list[str]
    size_bytes: int
    load_ms: float


def load_snapshot(store: SnapshotStore, name: str, names: list[str], *, unusable: Collection[str] = (),
                  cache: dict[str, tuple[bytes, SnapshotHeader]] | None = None, progress: Progress | None = None,
                  monotonic: Callable[[], float] = time.perf_counter) -> ChainLoad:
    """Load snapshot ``name`` (a full image or a delta; ``names``: the stream's snapshots as listed,
    ``unusable``: links already known bad). Raises :class:`Unusable`, or ``SnapshotNotFound`` when an
    object vanished since the listing (list again)."""
    started = monotonic()
    chain = chain_of(name, names)
    if chain is None:
        raise Unusable(name, name, SkipReason.MISSING_LINK, "a link of its chain (its parent, or further back) "
                       "is not in the store")
    for link in chain:
        if link in unusable and link != name:
            raise Unusable(name, name, SkipReason.MISSING_LINK, f"a link of its chain is unusable: {link}")
    cache = {} if cache is None else cache
    deltas = []
    for parent, link in zip(chain, chain[1:]):
        if link not in cache:
            if progress is not None:
                progress.phase(f"downloading delta {link}")
            data = store.get(link)
            try:
                header = delta_header(data, link)
            except UnsupportedSnapshotVersion as exc:
                raise _blame(name, link, SkipReason.UNSUPPORTED_VERSION, str(exc)) from exc
            except SnapshotCorrupt as exc:
                raise _blame(name, link, SkipReason.CORRUPT, str(exc)) from exc
            if header.parent != parent or header.base != chain[0]:
                raise _blame(name, link, SkipReason.CORRUPT, f"its meta names parent {header.parent} and base "
                             f"{header.base}; its name and the listing say {parent} and {chain[0]}")
            cache[link] = (data, header)
        deltas.append((link, *cache[link]))
    if progress is not None:
        progress.phase(f"downloading, verifying and loading {chain[0]}")
    try:
        snapshot, size = fetch_image(store, chain[0])  # no second copy (replay/snapshot_image.py)
    except UnsupportedSnapshotVersion as exc:
        raise _blame(name, chain[0], SkipReason.UNSUPPORTED_VERSION, str(exc)) from exc
    except SnapshotCorrupt as exc:
        raise _blame(name, chain[0], SkipReason.CORRUPT, str(exc)) from exc
    table, header = snapshot.table, snapshot.header
    for link, delta, delta_head in deltas:
        if progress is not None:
            progress.phase(f"applying delta {link}")
        try:
            table = apply_delta(table, delta)
        except SnapshotCorrupt as exc:
            table.close()
            raise _blame(name, link, SkipReason.CORRUPT, str(exc)) from exc
        header, size = delta_head, size + len(delta)
    return ChainLoad(header, table, chain, size, (monotonic() - started) * 1000)


def _blame(name: str, culprit: str, reason: SkipReason, detail: str) -> Unusable:
    return Unusable(name, culprit, reason, detail)
