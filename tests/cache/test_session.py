"""Session positions: every write answers ``Streamcache-Position``; a read that carries it back
(``Streamcache-After`` or ``?after=``, ``"after"`` in a direct invoke) sees the write on any instance,
replaced values, deletes and listings included, at the cost of one fetch when the instance is behind."""

from __future__ import annotations

import uuid

import orjson
import pytest

from streamcache.adapters.memory_log import MemoryLog
from streamcache.cache.app import CacheApp
from streamcache.cache.http_api import HttpRequest
from streamcache.settings import Settings
from support.openapi import check_against_openapi

HOUR_MS = 3_600_000  # a staleness bound no test outlives: without the position, reads stay behind


@pytest.fixture
def pair():
    name = f"session-{uuid.uuid4().hex[:8]}"
    settings = {"log_url": f"memory://{name}?partitions=3", "staleness_ms": HOUR_MS}
    yield (CacheApp(Settings(**settings, instance_id="a")), CacheApp(Settings(**settings, instance_id="b")))
    MemoryLog.forget(name)


def call(app: CacheApp, method: str, url: str, body: bytes = b"", **headers: str):
    names = {name.replace("_", "-").lower(): value for name, value in headers.items()}
    response = app.handle(HttpRequest(method, url, names, body), 10)
    check_against_openapi(method, url, *response)
    return response


def test_a_plain_client_reads_stale_through_another_instance_and_a_session_does_not(pair):
    a, b = pair
    call(a, "PUT", "/cache/k", b"v1")
    assert call(b, "GET", "/cache/k").body == b"v1"  # b's first read catches up; the next hour's do not
    position = call(a, "PUT", "/cache/k", b"v2").headers["Streamcache-Position"]
    assert call(b, "GET", "/cache/k").body == b"v1"  # what a plain client sees: the bound, 1 h here
    assert call(b, "GET", "/cache/k", streamcache_after=position).body == b"v2"

    position = call(a, "DELETE", "/cache/k").headers["Streamcache-Position"]
    assert call(b, "GET", "/cache/k").status == 200  # a plain client still sees the deleted value
    assert call(b, "GET", f"/cache/k?after={position}").status == 404
    assert call(b, "HEAD", "/cache?key=k", streamcache_after=position).status == 404


def test_listings_show_a_sessions_new_keys_at_once(pair):
    a, b = pair
    assert orjson.loads(call(b, "GET", "/cache?prefix=n/").body)["keys"] == []
    position = call(a, "PUT", "/cache/n/1", b"x").headers["Streamcache-Position"]
    assert orjson.loads(call(b, "GET", "/cache?prefix=n/").body)["keys"] == []  # within the bound
    listed = orjson.loads(call(b, "GET", "/cache?prefix=n/", streamcache_after=position).body)["keys"]
    assert [item["key"] for item in listed] == ["n/1"]


def test_positions_of_several_writes_merge_and_the_later_of_each_partition_counts(pair):
    a, b = pair
    positions = [call(a, "PUT", f"/cache/many-{n}", b"x").headers["Streamcache-Position"] for n in range(12)]
    token = ",".join(positions)  # what a client sends after writes to several partitions
    for n in range(12):
        assert call(b, "GET", f"/cache/many-{n}?after={token}").status == 200
    assert {p.split("-")[0] for p in positions} == {"0", "1", "2"}


def test_direct_invokes_answer_and_take_positions_too(pair):
    a, b = pair
    b.invoke(orjson.dumps({"operation": "list"}))  # b has caught up once, and will not for an hour
    written = orjson.loads(a.invoke(orjson.dumps({"operation": "put", "key": "i", "value": 1})))
    assert written["status"] == 201 and written["position"]
    stale = orjson.loads(b.invoke(orjson.dumps({"operation": "list", "prefix": "i"})))
    assert stale["keys"] == []
    fresh = orjson.loads(b.invoke(orjson.dumps({"operation": "get", "key": "i", "after": written["position"]})))
    assert (fresh["status"], fresh["value"]) == (200, 1)


@pytest.mark.parametrize("after, status, code", [
    ("2-999", 409, "position_not_reached"),  # beyond the stream's end: another stream's, or invented
    ("7-0", 409, "position_not_reached"),  # a partition the stream does not have
    ("2", 400, "invalid_position"),
    ("a-1", 400, "invalid_position"),
    ("1-2;0-1", 400, "invalid_position"),
])
def test_a_position_the_stream_never_reached_is_409_and_a_malformed_one_400(pair, after, status, code):
    a, _ = pair
    call(a, "PUT", "/cache/k", b"v")
    response = call(a, "GET", "/cache/k", streamcache_after=after)
    assert response.status == status and orjson.loads(response.body)["error"] == code
