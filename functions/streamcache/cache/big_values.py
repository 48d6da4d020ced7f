"""Big values on the cache's side: written to the object store before their record, read back through
a bounded in-memory cache. The reference format and names are :mod:`streamcache.core.value_refs`.

Write: ``put_new`` of the content-addressed object (create-only; the same value again is the same
object, so a retried or repeated PUT is harmless), then the record with the reference is appended.
A PUT whose append fails leaves an object no record names: the compactor collects such orphans after
a grace period (``compactor/value_gc.py``).

Read: the table holds the reference; a GET fetches the object, checks its size and digest, and keeps
it in an LRU bounded by bytes (``STREAMCACHE_VALUE_CACHE_BYTES``), so a hot big value costs one
download per instance, and memory stays bounded however many big values the table names. Objects
are immutable (a name is its content), so a cached value never goes stale.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable

from streamcache.core.errors import ValueUnavailable
from streamcache.core.outcome import Entry
from streamcache.core.value_refs import REF_CONTENT_TYPE, decode_ref, matches, ref_for
from streamcache.ports import SnapshotExists, SnapshotNotFound, SnapshotStore


class ValueCache:
    """Least recently used values, bounded by their total bytes. A value bigger than the bound is
    never kept (it would evict everything else and then itself)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str) -> bytes | None:
        with self._lock:
            data = self._items.get(name)
            if data is not None:
                self._items.move_to_end(name)
            return data

    def put(self, name: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            if name in self._items:
                self._items.move_to_end(name)
                return
            self._items[name] = data
            self.bytes += len(data)
            while self.bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self.bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)


class BigValues:
    """Stores values over ``inline_max_bytes`` as objects of the stream ``stream`` in the store that
    ``store_factory`` opens (on first use: most instances never see a big value)."""

    def __init__(self, store_factory: Callable[[], SnapshotStore], stream: str, inline_max_bytes: int,
                 cache_bytes: int) -> None:
        self.stream = stream
        self.inline_max_bytes = inline_max_bytes
        self.cache = ValueCache(cache_bytes)
        self._factory = store_factory
        self._store: SnapshotStore | None = None
        self._lock = threading.Lock()
        self.fetches = 0  # objects downloaded (cache misses), for tests and /health-like probes

    def store(self) -> SnapshotStore:
        with self._lock:
            if self._store is None:
                self._store = self._factory()
            return self._store

    def by_reference(self, value: bytes, content_type: str) -> tuple[bytes, str]:
        """Write ``value`` to its object and return what the record and the table carry instead:
        the reference's bytes and :data:`REF_CONTENT_TYPE`. Raises
        :class:`~streamcache.ports.SnapshotStoreUnavailable` when the store cannot take it (then
        nothing is appended: the write did not happen)."""
        ref = ref_for(self.stream, value, content_type)
        try:
            self.store().put_new(ref.name, value)
        except SnapshotExists:
            # The name is the digest of these bytes: other bytes under it mean a damaged object.
            raise ValueUnavailable(f"the object {ref.name} holds other bytes than its name says") from None
        self.cache.put(ref.name, value)  # a value just written is the likeliest to be read next
        return ref.encode(), REF_CONTENT_TYPE

    def resolve(self, entry: Entry) -> Entry:
        """``entry`` with the value's bytes and content type, fetched if it holds a reference."""
        if entry.content_type != REF_CONTENT_TYPE:
            return entry
        ref = decode_ref(entry.value)
        data = self.cache.get(ref.name)
        if data is None:
            try:
                data = self.store().get(ref.name)
            except SnapshotNotFound:
                raise ValueUnavailable(f"the object {ref.name} is missing from the object store "
                                       "(deleted outside streamcache?)") from None
            self.fetches += 1
            if not matches(ref, data):
                raise ValueUnavailable(f"the object {ref.name} does not hold the {ref.size} bytes of digest "
                                       f"{ref.digest} its reference names")
            self.cache.put(ref.name, data)
        return entry._replace(value=data, content_type=ref.content_type)


def unresolvable(entry: Entry) -> Entry:
    """What an instance without an object store answers for a referenced value."""
    if entry.content_type != REF_CONTENT_TYPE:
        return entry
    raise ValueUnavailable(f"the value is stored by reference ({decode_ref(entry.value).name}) and this instance "
                           "has no object store (STREAMCACHE_SNAPSHOT_URL)")
