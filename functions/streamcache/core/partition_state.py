"""What the table keeps per partition in Python, and how a request is named in the ``requests`` rows.

Split from :mod:`.table` (which uses both on every record) to keep that module readable; nothing here
touches the database.
"""

from __future__ import annotations

from hashlib import blake2b


def request_hash(partition: int, request_id: str) -> int:
    """The ``requests`` row id of a request: a 64-bit BLAKE2b of (partition, request id), signed.
    Two different ids of one partition colliding within the window (p ~ n²/2^65: 3e-8 for a million
    rows) would make the second look like a retry of the first, identically on every replica."""
    digest = blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=8, salt=partition.to_bytes(8, "little", signed=True)).digest()
    return int.from_bytes(digest, "little", signed=True)


class PartitionState:
    """Where one partition stands. Mirrored into the ``partitions`` table by ``Table.flush``."""

    __slots__ = ("next_offset", "clock_ms", "used_bytes", "min_expiry", "vouched_ms", "previous_ts", "last_request",
                 "last_ts")

    def __init__(self, next_offset: int = 0, clock_ms: int = 0, used_bytes: int = 0) -> None:
        self.next_offset = next_offset
        self.clock_ms = clock_ms
        self.used_bytes = used_bytes
        self.min_expiry: int | None = None  # a lower bound of the partition's earliest expiry
        self.vouched_ms = self.previous_ts = clock_ms  # the rest of its LogClock (see log_time)
        # The fingerprint of the record at next_offset - 1 (core/identity.py); None: not known.
        self.last_request: int | None = None
        self.last_ts = 0
