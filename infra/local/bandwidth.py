"""A per-connection bandwidth cap for the local Object Storage server, so that what parallel ranged
GETs gain is measured against a link shaped like OCI's (one object stream moves tens of MB/s), not
against loopback, where one connection is as fast as the copy.

Each connection gets its own :class:`Pacer`: it sends a response in slices and, after each, waits
until the bytes of that response sent so far are within ``bytes_per_s`` of the time since its first
byte (per response: time a keep-alive connection spent idle is no credit for a burst later). Connections do not
share a budget (Object Storage limits per stream, and that is what several connections work around).
The clock and the sleep are injectable: a test counts the bytes and the waits asked for, not time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

#: The largest slice written between two waits (smaller for slow caps: 1/20 s worth).
SLICE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Bandwidth:
    """A cap of ``bytes_per_s`` for every connection of a server."""

    bytes_per_s: int
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def pacer(self) -> "Pacer":
        return Pacer(self)


class Pacer:
    """One connection's cap."""

    def __init__(self, bandwidth: Bandwidth) -> None:
        if bandwidth.bytes_per_s <= 0:
            raise ValueError("a bandwidth cap must be a positive number of bytes per second")
        self.bandwidth = bandwidth
        self.sent = 0
        self.waited_s = 0.0

    def write(self, write: Callable[[bytes], object], data: bytes | memoryview) -> None:
        """``write(data)`` in slices, no faster than the cap."""
        rate = self.bandwidth.bytes_per_s
        step = max(1, min(SLICE_BYTES, rate // 20))
        view = memoryview(data)
        started, sent = self.bandwidth.clock(), 0
        for at in range(0, len(view), step):
            piece = view[at : at + step]
            write(piece)
            sent += len(piece)
            self.sent += len(piece)
            wait = started + sent / rate - self.bandwidth.clock()
            if wait > 0:
                self.waited_s += wait
                self.bandwidth.sleep(wait)


__all__ = ["Bandwidth", "Pacer", "SLICE_BYTES"]
