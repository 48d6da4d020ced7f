"""The memory quota: a bound on the table's *accounted* size that every replica decides alike.

Accounted size of an entry = UTF-8 bytes of its key + bytes of its value + :data:`ENTRY_OVERHEAD_BYTES`.
It is computed from records only (never from SQLite pages, which depend on a replica's history), so
a fresh instance, a long-running one and the compactor agree on it to the byte.

The quota is split evenly between partitions (``max_bytes // partitions`` each), and a put is judged
against its own partition's share and accounted bytes. A global count would not be deterministic:
replicas apply partitions in different interleavings (a catch-up reads them in chunks, a write
applies only its own partition), so a global total at the moment a put is decided differs between
replicas, and so would the outcome. Keys hash evenly over partitions, so the shares fill evenly.
(This relies on a key's records all landing in one partition, which the log adapters guarantee.)

A put is refused only if it *grows* its partition past the share (a replace by a value of the same
size or smaller always succeeds, even over quota: lowering the quota must not freeze existing keys).
Expired entries are purged by the partition's log time before the decision, as on every apply.
Deletes are never refused.
"""

from __future__ import annotations

from typing import NamedTuple

#: Fixed bytes added per entry to key + value: what an entry costs beyond its key and value (B-tree
#: cell, version, expiry, content type; ~40 B measured in the image) plus its share of the dedup window.
ENTRY_OVERHEAD_BYTES = 64


class Quota(NamedTuple):
    """``max_bytes`` of accounted size for the whole table, spread over ``partitions``."""

    max_bytes: int
    partitions: int = 1

    def partition_limit(self, partition: int) -> int:
        return self.max_bytes // max(1, self.partitions)


class QuotaState(NamedTuple):
    """How full one partition is: ``used_bytes`` of ``limit_bytes`` (its share; ``None`` without a
    quota); ``needed_bytes`` what the refused put would have added (0 when not a refusal)."""

    used_bytes: int
    limit_bytes: int | None
    needed_bytes: int = 0

    def to_json(self) -> dict:
        return {"used_bytes": self.used_bytes, "limit_bytes": self.limit_bytes, "needed_bytes": self.needed_bytes}
