"""The memory quota through the instances: a put past ``STREAMCACHE_MAX_BYTES`` answers 507 with how
full the table is, changes nothing, and is refused alike on every instance, on a fresh one, and on one
that cold-starts from the compactor's snapshot."""

from __future__ import annotations

import uuid

import orjson
import pytest

from streamcache.adapters.memory_log import MemoryLog
from streamcache.adapters.memory_store import MemoryStore
from streamcache.cache.app import CacheApp
from streamcache.cache.http_api import HttpRequest
from streamcache.compactor.compaction import compact
from streamcache.core.quota import ENTRY_OVERHEAD_BYTES
from streamcache.settings import Settings
from support.openapi import check_against_openapi

MAX_BYTES = 3 * 1000  # one partition: 1000 accounted bytes each of the three


@pytest.fixture
def stack():
    name = f"quota-{uuid.uuid4().hex[:8]}"
    store_name = f"quota-store-{uuid.uuid4().hex[:8]}"
    settings = dict(log_url=f"memory://{name}?partitions=3", snapshot_url=f"memory://{store_name}",
                    stream_id="quota", max_bytes=MAX_BYTES)

    def instance(instance_id: str) -> CacheApp:
        return CacheApp(Settings(**settings, instance_id=instance_id))

    yield instance, MemoryLog.named(name, 3), MemoryStore.named(store_name), settings["log_url"]
    MemoryLog.forget(name)
    MemoryStore.forget(store_name)


def call(app: CacheApp, method: str, url: str, body: bytes = b"", **headers: str):
    response = app.handle(HttpRequest(method, url, {k.replace("_", "-"): v for k, v in headers.items()}, body), 10)
    check_against_openapi(method, url, *response)
    return response


def test_a_put_past_the_quota_is_507_everywhere_and_changes_nothing(stack):
    instance, log, store, log_url = stack
    a, b = instance("a"), instance("b")
    key = "q/0"  # all of this test's keys share q/0's partition
    partition = log.partition_for(key)
    keys = [k for k in (f"q/{n}" for n in range(200)) if log.partition_for(k) == partition][:3]
    value = b"x" * (400 - ENTRY_OVERHEAD_BYTES - len(keys[0]))  # 400 accounted bytes each: two fit in 1000
    assert [call(a, "PUT", f"/cache/{k}", value).status for k in keys[:2]] == [201, 201]

    refused = call(a, "PUT", f"/cache/{keys[2]}", value)
    body = orjson.loads(refused.body)
    assert refused.status == 507 and body["error"] == "quota_exceeded" and "full" in body["message"]
    assert (body["used_bytes"], body["limit_bytes"], body["needed_bytes"]) == (800, 1000, 400)
    after = refused.headers["Streamcache-Position"]
    # Every instance applied the same record the same way: the key is absent on all of them.
    assert call(b, "GET", f"/cache/{keys[2]}", streamcache_after=after).status == 404
    assert call(b, "PUT", f"/cache/{keys[2]}", value).status == 507  # and refuses the same write
    assert call(a, "PUT", f"/cache/{keys[0]}", b"smaller").status == 200  # shrinking always succeeds

    assert compact(log, store, "quota", 3, max_bytes=MAX_BYTES).outcome.value == "written"
    replaying = CacheApp(Settings(log_url=log_url, max_bytes=MAX_BYTES, stream_id="quota", instance_id="replay"))
    from_snapshot = instance("fresh-from-snapshot")
    for fresh in (from_snapshot, replaying):
        assert call(fresh, "GET", f"/cache/{keys[2]}").status == 404
        health = orjson.loads(call(fresh, "GET", "/health").body)
        assert health["max_bytes"] == MAX_BYTES and health["bytes_used"] == 400 + 400 - len(value) + len(b"smaller")
    assert orjson.loads(call(from_snapshot, "GET", "/health").body)["snapshot"] is not None  # it loaded the image
    assert call(from_snapshot, "PUT", f"/cache/{keys[2]}", value).status == 201  # keys[0] shrank: room now
    assert call(replaying, "GET", f"/cache/{keys[2]}").status == 200

