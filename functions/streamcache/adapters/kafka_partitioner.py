"""Kafka's default partitioner: which partition a record with a given key goes to.

``partition = (murmur2(UTF-8 key) & 0x7fffffff) % partitions``, as the Java client and kafka-python
compute it, so that every writer (ours, kcat, a Java producer) puts a key where the instances look for
it and where a replay checks it is (replay/fold.py checks every replayed record).

Why not kafka-python's ``murmur2``: it costs ~2.5 µs for a 14-byte key, byte by byte, and was
cached (``lru_cache`` of 65,536 keys) to make replays affordable. That cache held ~13 MB once full,
and during a cold start it kept a string per replayed key alive among the replay's short-lived
objects, so that none of the allocator's arenas they shared was ever given back (issue 24: ~10 MB
at 1M keys with a 1 % tail). This one reads the key four bytes at a time (~1.3 µs) and keeps nothing;
tests/adapters/test_kafka_partitioner.py proves it equal to kafka-python's for any bytes.
"""

from __future__ import annotations

import struct

_WORDS = struct.Struct("<I").iter_unpack
_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """MurmurHash2 of ``data`` as Kafka computes it (unsigned 32-bit, kafka-python's convention)."""
    length = len(data)
    h = _SEED ^ length
    whole = length & ~3
    for (k,) in _WORDS(data[:whole]):
        k = (k * _M) & _MASK
        k = ((k ^ (k >> 24)) * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= data[whole + 2] << 16
        if extra >= 2:
            h ^= data[whole + 1] << 8
        h = ((h ^ data[whole]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def key_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for ``key`` among ``partitions``."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions
