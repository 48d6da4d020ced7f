"""The compactor collects big values' objects that nothing refers to, after a grace period: a Kafka log
on Tansu, the oci SDK against the local Object Storage server, the compactor's clock injected."""

from __future__ import annotations

import hashlib
import uuid

import pytest
from support.oci_fakes import api_key, no_retries, object_storage  # noqa: F401  (fixtures)

from streamcache.adapters.memory_log import MemoryLog
from streamcache.adapters.memory_store import MemoryStore
from streamcache.adapters.urls import open_snapshot_store
from streamcache.cache.app import CacheApp
from streamcache.cache.http_api import HttpRequest
from streamcache.compactor.compaction import WRITTEN, compact
from streamcache.compactor.value_gc import GRACE_MS
from streamcache.core import records
from streamcache.settings import Settings

BIG = 300_000  # over the 256 KiB inline threshold
T0 = 1_800_000_000.0
MINUTE = 60.0


@pytest.fixture
def deployment(stream, object_storage, api_key):
    url, log = stream
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    object_storage.create_bucket(bucket)
    env = {"STREAMCACHE_LOG_URL": url, "STREAMCACHE_SNAPSHOT_URL": object_storage.url(bucket, "cache"),
           "STREAMCACHE_OCI_ENDPOINT": object_storage.endpoint, "STREAMCACHE_OCI_CONFIG_FILE": str(api_key.config_file),
           "STREAMCACHE_OCI_PROFILE": api_key.profile, "STREAMCACHE_STALENESS_MS": "0"}
    settings = Settings.from_env(env)
    store = open_snapshot_store(settings.snapshot_url, oci_endpoint=object_storage.endpoint,
                                oci_config_file=str(api_key.config_file), oci_profile=api_key.profile, **no_retries())
    app = CacheApp(settings, store_factory=lambda: store)
    yield app, log, store, settings.stream_id
    app.replica.log.close()


def put(app: CacheApp, key: str, value: bytes) -> None:
    answer = app.handle(HttpRequest("PUT", f"/cache/{key}", {}, value))
    assert answer.status in (200, 201), answer.body


def get(app: CacheApp, key: str):
    return app.handle(HttpRequest("GET", f"/cache/{key}", {}, b""))


def name(stream: str, value: bytes) -> str:
    return f"values/{stream}/{hashlib.sha256(value).hexdigest()}"


def test_orphans_are_collected_after_the_grace_and_referenced_objects_never(deployment):
    app, log, store, stream = deployment
    kept, orphan, in_flight, replaced = (bytes([n]) * BIG for n in (1, 2, 3, 4))
    put(app, "kept", kept)
    store.put_new(name(stream, orphan), orphan)  # a PUT whose append failed: no record will ever name it
    store.put_new(name(stream, in_flight), in_flight)  # a PUT whose record has not landed yet

    def compaction(minutes: float, keep: int = 3) -> list[str]:
        summary = compact(log, store, stream, keep, clock=lambda: T0 + minutes * MINUTE)
        assert summary.outcome == WRITTEN
        return summary.values_deleted

    assert compaction(0) == []  # both are orphans now, but only just seen so
    put(app, "late", in_flight)  # the in-flight PUT's record lands: the object is the same (content-addressed)
    put(app, "replaced", replaced)
    put(app, "replaced", b"small now")  # its object is still named by a folded record
    assert compaction(GRACE_MS / 60_000 - 1) == []  # within the grace
    put(app, "tick", b"1")
    assert compaction(GRACE_MS / 60_000 + 1) == [name(stream, orphan)]  # orphaned for longer than the grace
    remaining = set(store.list(f"values/{stream}/"))
    assert {name(stream, v) for v in (kept, in_flight, replaced)} <= remaining
    assert name(stream, orphan) not in remaining

    # Once no retained snapshot's refs name the replaced value (keep=1 prunes the one whose fold
    # saw it), it is an orphan too, and goes after its own grace.
    put(app, "tick", b"2")
    assert compaction(20, keep=1) == []
    put(app, "tick", b"3")
    assert compaction(20 + GRACE_MS / 60_000, keep=1) == [name(stream, replaced)]
    for key, value in (("kept", kept), ("late", in_flight), ("replaced", b"small now")):
        assert get(app, key).body == value
    # The bookkeeping stays small: the refs of the one snapshot kept; no orphan note, none is waiting.
    assert [n.split("/")[2] for n in store.list(f"values/{stream}/") if "/refs/" in n or "/orphans/" in n] == ["refs"]


def test_a_store_without_big_values_holds_nothing_but_snapshots():
    log, store = MemoryLog(partitions=3), MemoryStore()
    for n in range(3):
        log.append(f"k{n}", records.encode(records.Put(f"k{n}", b"small", "text/plain", f"r{n}", 1_700_000_000_000)))
        assert compact(log, store, "s", 3, clock=lambda: T0 + n * 3600).outcome == WRITTEN
    assert all(name.startswith("snapshots/") for name in store.list(""))
