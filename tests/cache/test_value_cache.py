"""The bounded cache of big values an instance keeps (cache/big_values.py), and the read path's checks,
over the memory store (the real stack's: tests/cache/test_big_values.py)."""

from __future__ import annotations

import pytest

from streamcache.adapters.memory_store import MemoryStore
from streamcache.cache.big_values import BigValues, ValueCache
from streamcache.core.errors import ValueUnavailable
from streamcache.core.outcome import Entry
from streamcache.core.records import Position
from streamcache.core.value_refs import REF_CONTENT_TYPE


def test_the_cache_keeps_the_most_recently_used_values_within_its_bytes():
    cache = ValueCache(max_bytes=10)
    cache.put("a", b"aaaa")
    cache.put("b", b"bbbb")
    assert cache.get("a") == b"aaaa"  # a is now the most recently used
    cache.put("c", b"cccc")  # 12 bytes: the least recently used (b) goes
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (b"aaaa", None, b"cccc")
    assert cache.bytes == 8 and len(cache) == 2
    cache.put("huge", b"h" * 11)  # bigger than the bound: never kept, evicts nothing
    assert cache.get("huge") is None and len(cache) == 2


def test_a_value_is_downloaded_once_then_served_from_memory_and_checked():
    store = MemoryStore()
    writer = BigValues(lambda: store, "s", inline_max_bytes=4, cache_bytes=0)  # keeps nothing
    reference, content_type = writer.by_reference(b"0123456789", "text/plain")
    entry = Entry(reference, content_type, Position(0, 7), None)
    assert content_type == REF_CONTENT_TYPE
    reader = BigValues(lambda: store, "s", inline_max_bytes=4, cache_bytes=1000)
    for _ in range(3):
        assert reader.resolve(entry) == Entry(b"0123456789", "text/plain", Position(0, 7), None)
    assert reader.fetches == 1
    [name] = store.list("values/s/")
    store.delete(name)
    store.put_new(name, b"other bytes")  # damaged: the digest no longer matches
    with pytest.raises(ValueUnavailable, match="does not hold"):
        writer.resolve(entry)
    store.delete(name)
    with pytest.raises(ValueUnavailable, match="missing"):
        writer.resolve(entry)
    assert reader.resolve(entry).value == b"0123456789"  # objects never change: a cached value stays right
