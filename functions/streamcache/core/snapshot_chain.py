"""Chains of snapshots: a full image (the *base*) and the deltas folded onto it, from names alone.

A compaction that starts from a snapshot may write a *delta* instead of a full image: only what
changed since the link it started from (:mod:`.snapshot_delta`). A delta's object name carries the
writer id of that link, its *parent* (:mod:`.snapshot_names`), so a listing alone says

- which links a delta needs, back to its base (:func:`chain_of`): a cold start loads the base, then
  each delta in order, then the log's tail;
- which deltas are unusable because a link is missing (:func:`broken`);
- which older objects a kept delta still needs (:func:`needed_by`): retention never deletes them.

A full image is written every so often (:class:`ChainPolicy`): after ``max_deltas`` deltas, or once
the deltas add up to ``max_fraction`` of the base's size, so that a cold start never downloads much
more than one image's worth and never applies a long chain.

Writer ids are random per write (64 bits), so a parent id names one object. Should two objects
share one (tools that pass a fixed id), the newest one older than the delta is taken, and the
delta's own ``parent`` meta row (its parent's whole name) is checked when it is loaded.
Pure: names in, names out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from streamcache.core.snapshot_names import SnapshotName, parse_name

#: The chain's deltas may add up to this fraction of the base (the deployment's default is in
#: settings.py: ``STREAMCACHE_SNAPSHOT_DELTA_PERCENT``, with ``STREAMCACHE_SNAPSHOT_MAX_DELTAS``).
DEFAULT_MAX_FRACTION = 0.25


@dataclass(frozen=True)
class ChainPolicy:
    """When a compaction writes a full image rather than a delta. ``max_deltas`` 0: always full."""

    max_deltas: int = 0
    max_fraction: float = DEFAULT_MAX_FRACTION

    def __post_init__(self) -> None:
        if self.max_deltas < 0 or not 0 < self.max_fraction:
            raise ValueError("max_deltas cannot be negative and the fraction must be positive")

    def full_image_due(self, chain: list[str]) -> str | None:
        """Why the compaction onto ``chain`` (base first) must write a full image whatever the size
        of its delta, or ``None`` (a delta may do)."""
        if self.max_deltas == 0:
            return "deltas are off (STREAMCACHE_SNAPSHOT_MAX_DELTAS=0)"
        if not chain:
            return "no snapshot to fold onto"
        if _parse(chain[0]) is None or _parse(chain[0]).checksum is None:  # type: ignore[union-attr]
            return "the base is in the earlier format"
        if len(chain) - 1 >= self.max_deltas:
            return f"{len(chain) - 1} deltas since the base (STREAMCACHE_SNAPSHOT_MAX_DELTAS={self.max_deltas})"
        return None

    def too_big(self, chain: list[str], delta_bytes: int) -> str | None:
        """Why a delta of ``delta_bytes`` onto ``chain`` is not worth keeping, or ``None``."""
        sizes = [_size(name) for name in chain]
        total = sum(sizes[1:]) + delta_bytes
        if total > self.max_fraction * sizes[0]:
            return (f"the chain's deltas would add up to {total:,} bytes, over {self.max_fraction:g} of the "
                    f"base's {sizes[0]:,} (STREAMCACHE_SNAPSHOT_DELTA_PERCENT)")
        return None


def _parse(name: str) -> SnapshotName | None:
    try:
        return parse_name(name)
    except ValueError:
        return None


def _size(name: str) -> int:
    parsed = _parse(name)
    return 0 if parsed is None or parsed.checksum is None else parsed.checksum.size_bytes


def is_delta(name: str) -> bool:
    parsed = _parse(name)
    return parsed is not None and parsed.is_delta


def chain_of(name: str, names: Iterable[str]) -> list[str] | None:
    """The links ``name`` needs, base first and ``name`` last (``[name]`` for a full image), among
    ``names`` (the stream's snapshots); ``None`` when a parent is not among them."""
    parsed = {n: p for n in names if (p := _parse(n)) is not None}
    target = parsed.get(name) or _parse(name)
    if target is None:
        return None
    chain, current = [name], target
    while current.parent is not None:
        key = current[:4]
        older = [(p[:4], n) for n, p in parsed.items() if p.writer == current.parent and p[:4] < key]
        if not older:
            return None
        parent_name = max(older)[1]
        chain.append(parent_name)
        current = parsed[parent_name]
    chain.reverse()
    return chain


def broken(names: Iterable[str]) -> set[str]:
    """The deltas among ``names`` whose chain lacks a link (useless: they count as damaged)."""
    names = list(names)
    return {n for n in names if is_delta(n) and chain_of(n, names) is None}


def needed_by(kept: Iterable[str], names: Iterable[str]) -> set[str]:
    """The links the snapshots ``kept`` need (their chains' older links), among ``names``."""
    names = list(names)
    needed: set[str] = set()
    for name in kept:
        if is_delta(name):
            needed.update((chain_of(name, names) or [name])[:-1])
    return needed
