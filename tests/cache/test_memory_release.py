"""After a restore the instance gives the allocator's free pages back (cache/memory_release.py):
once per restore, after the table is installed, and nothing where the C library cannot."""

from __future__ import annotations

import platform
import uuid

import pytest

from streamcache.adapters.memory_log import MemoryLog
from streamcache.adapters.memory_store import MemoryStore
from streamcache.cache import memory_release
from streamcache.cache.app import CacheApp
from streamcache.cache.health import Phase
from streamcache.cache.http_api import HttpRequest
from streamcache.compactor.compaction import compact
from streamcache.settings import Settings
from support.log_history import START_MS, fill


@pytest.fixture
def name():
    made = f"trim-{uuid.uuid4().hex}"
    yield made
    MemoryLog.forget(made)
    MemoryStore.forget(made)


def _app(name: str) -> CacheApp:
    return CacheApp(Settings.from_env({"STREAMCACHE_LOG_URL": f"memory://{name}",
                                       "STREAMCACHE_SNAPSHOT_URL": f"memory://{name}",
                                       "STREAMCACHE_INSTANCE_ID": "trim-test"}))


def test_a_restore_trims_the_allocator_once_its_table_is_installed(name, monkeypatch):
    log, store = MemoryLog.named(name, 3), MemoryStore.named(name)
    fill(log, 120, keys=40)
    compact(log, store, name, 3)
    latest = fill(log, 15, keys=40, ts_ms=START_MS + 5_000, prefix="t")  # a tail after the snapshot
    app = _app(name)
    seen = []

    def trim(pad: int) -> int:  # what the restore had done when it asked
        seen.append((pad, app.cold_start.phase, dict(app.replica.table.next_offsets())))
        return 1

    monkeypatch.setattr(memory_release, "MALLOC_TRIM", trim)
    app.ensure_started(10)
    assert seen == [(0, Phase.SERVING, log.bounds().next)]
    # the tail is applied and served as before
    answer = app.handle(HttpRequest("GET", "/cache/t3", {}, b""), 10)
    assert (answer.status, answer.body) == (200, latest["t3"])
    app.handle(HttpRequest("GET", "/cache/t4", {}, b""), 10)
    assert len(seen) == 1  # once per restore, not per request


def test_trim_malloc_does_nothing_where_the_c_library_has_no_malloc_trim(monkeypatch):
    monkeypatch.setattr(memory_release, "MALLOC_TRIM", None)
    assert memory_release.trim_malloc() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_on_glibc_the_real_malloc_trim_is_found_and_called():
    assert memory_release.MALLOC_TRIM is not None
    assert memory_release.trim_malloc() is True


def test_limiting_arenas_does_nothing_where_the_c_library_has_no_mallopt(monkeypatch):
    monkeypatch.setattr(memory_release, "MALLOPT", None)
    assert memory_release.limit_malloc_arenas() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="M_ARENA_MAX is glibc's")
def test_on_glibc_the_arena_limit_is_taken(monkeypatch):
    seen = []
    real = memory_release.MALLOPT
    assert real is not None

    def mallopt(param: int, value: int) -> int:
        seen.append((param, value))
        return real(param, value)

    monkeypatch.setattr(memory_release, "MALLOPT", mallopt)
    assert memory_release.limit_malloc_arenas() is True
    assert seen == [(memory_release.M_ARENA_MAX, 1)]
