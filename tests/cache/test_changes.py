"""GET /changes, the change feed over plain HTTP (cache/changes.py), through CacheApp over a memory://
log: resume tokens, paging, prefixes, retention (410), the long poll's bound, skipped records, and every
answer checked against the OpenAPI document."""

from __future__ import annotations

import uuid
from urllib.parse import quote

import orjson
import pytest
from cloudevents.core.formats.json import JSONFormat

from streamcache.adapters.memory_log import MemoryLog
from streamcache.cache.app import CacheApp
from streamcache.cache.changes import MAX_WAIT_S, changes
from streamcache.cache.http_api import HttpRequest, HttpResponse
from streamcache.settings import Settings
from support.openapi import check_against_openapi


@pytest.fixture
def app():
    name = f"changes-{uuid.uuid4().hex}"
    app = CacheApp(Settings.from_env({"STREAMCACHE_LOG_URL": f"memory://{name}?partitions=3"}))
    yield app
    MemoryLog.forget(name)


def call(app: CacheApp, method: str, url: str, body: bytes = b"") -> HttpResponse:
    response = app.handle(HttpRequest(method, url, {}, body))
    check_against_openapi(method, url, *response)
    return response


def feed(app: CacheApp, **query: object) -> dict:
    url = "/changes?" + "&".join(f"{k}={quote(str(v), safe='')}" for k, v in query.items())
    response = call(app, "GET", url)
    assert response.status == 200, response.body
    return orjson.loads(response.body)


def keys_of(answer: dict) -> list[str]:
    return [change["event"]["subject"] for change in answer["changes"]]


def test_from_earliest_every_change_in_its_partitions_order_then_nothing_after_the_next_token(app):
    written = [f"k{i}" for i in range(12)]
    for key in written:
        assert call(app, "PUT", f"/cache/{key}", key.encode()).status == 201
    assert call(app, "DELETE", "/cache/k3").status == 204

    answer = feed(app, after="earliest", limit=1000)
    assert sorted(keys_of(answer)) == sorted(written + ["k3"])
    for change in answer["changes"]:
        event = JSONFormat().read(None, orjson.dumps(change["event"]))  # the official SDK reads each one
        assert event.get_subject() == change["event"]["subject"]
    by_partition: dict[int, list[int]] = {}
    for change in answer["changes"]:
        partition, offset = map(int, change["position"].split("-"))
        by_partition.setdefault(partition, []).append(offset)
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())
    assert answer["next"] == ",".join(f"{p}-{o}" for p, o in sorted(app.replica.log.bounds().next.items()))
    assert feed(app, after=answer["next"]) == {"changes": [], "next": answer["next"]}


def test_latest_is_the_default_and_sees_only_what_comes_after(app):
    call(app, "PUT", "/cache/before", b"1")
    start = feed(app)
    assert start["changes"] == []
    call(app, "PUT", "/cache/after", b"2")
    assert keys_of(feed(app, after=start["next"])) == ["after"]


def test_pages_of_limit_add_up_to_the_whole_feed_without_repeats(app):
    for i in range(25):
        call(app, "PUT", f"/cache/k{i}", b"v")
    token, seen = "earliest", []
    while True:
        page = feed(app, after=token, limit=4)
        assert len(page["changes"]) <= 4
        if not page["changes"]:
            break
        seen += [change["position"] for change in page["changes"]]
        token = page["next"]
    assert len(seen) == len(set(seen)) == 25


def test_a_prefix_keeps_only_its_keys_and_the_token_moves_past_the_rest(app):
    for key in ["user/1", "order/1", "user/2", "order/2"]:
        call(app, "PUT", f"/cache/{key}", b"v")
    answer = feed(app, after="earliest", prefix="user/")
    assert sorted(keys_of(answer)) == ["user/1", "user/2"]
    assert feed(app, after=answer["next"], prefix="user/")["changes"] == []


def test_records_the_instances_skip_are_not_changes(app):
    log = app.replica.log
    log.append("x", b"not a cloudevent")  # a foreign record: every replica skips it
    call(app, "PUT", "/cache/real", b"v")
    assert keys_of(feed(app, after="earliest")) == ["real"]


def test_a_token_older_than_retention_answers_410_naming_the_oldest_position(app):
    for i in range(6):
        call(app, "PUT", "/cache/same", str(i).encode())
    partition = app.replica.log.partition_for("same")
    app.replica.log.truncate_before(partition, 4)  # retention dropped offsets 0-3
    response = call(app, "GET", f"/changes?after={partition}-1")
    assert response.status == 410
    body = orjson.loads(response.body)
    assert body["error"] == "token_gone" and f"{partition}-4" in body["message"]
    assert [c["position"] for c in feed(app, after="earliest")["changes"]] == [f"{partition}-4", f"{partition}-5"]


@pytest.mark.parametrize("query, words", [
    ("after=yesterday", "earliest, latest or P-O"),
    ("after=7-0", "partitions 0 to 2"),
    ("after=0-x", "P-O"),
    ("limit=0", "limit"),
    ("limit=1001", "limit"),
    ("limit=ten", "whole number"),
    ("wait=21", "wait"),
    ("wait=-1", "wait"),
    ("wait=nan", "wait"),
    ("since=0-1", "since"),
])
def test_a_bad_query_is_a_400_that_says_what_is_wrong(app, query, words):
    response = call(app, "GET", f"/changes?{query}")
    assert response.status == 400
    assert words in orjson.loads(response.body)["message"]
    assert orjson.loads(response.body)["error"] in {"invalid_token", "invalid_limit", "invalid_query"}


def test_only_get_and_head(app):
    assert call(app, "HEAD", "/changes?after=earliest").status == 200
    response = call(app, "PUT", "/changes", b"x")
    assert response.status == 405 and "GET" in response.headers["Allow"]


class Clock:
    """A monotonic clock that moves only when the feed sleeps."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds
        self.slept += seconds


def test_a_long_poll_with_nothing_new_answers_empty_after_wait_and_not_later(app):
    clock = Clock()
    start = feed(app)["next"]
    answer = changes(app.replica.log, start, wait_s=3.0, monotonic=clock, sleep=clock.sleep)
    assert answer == {"changes": [], "next": start}
    assert clock.now == pytest.approx(3.0)


def test_a_long_poll_answers_as_soon_as_a_change_lands(app):
    clock = Clock()
    start = feed(app)["next"]

    written = []

    def sleep_then_write(seconds: float) -> None:
        clock.sleep(seconds)
        if clock.slept >= 1.0 and not written:
            written.append(call(app, "PUT", "/cache/late", b"v").status)

    answer = changes(app.replica.log, start, wait_s=MAX_WAIT_S, monotonic=clock, sleep=sleep_then_write)
    assert keys_of(answer) == ["late"]
    assert 1.0 <= clock.now < 1.5  # within a poll interval of the write, far from the 20 s bound


def test_a_changes_path_under_the_cache_prefix_is_a_key_not_the_feed(app):
    assert call(app, "PUT", "/cache/changes", b"a key").status == 201
    assert call(app, "GET", "/cache/changes").body == b"a key"


def test_under_a_gateway_deployment_prefix_the_feed_sits_beside_the_cache():
    name = f"changes-{uuid.uuid4().hex}"
    app = CacheApp(Settings.from_env({"STREAMCACHE_LOG_URL": f"memory://{name}", "STREAMCACHE_ROUTE_PREFIX": "/v1/cache"}))
    try:
        assert app.handle(HttpRequest("PUT", "/v1/cache/changes", {}, b"a key")).status == 201
        answer = orjson.loads(app.handle(HttpRequest("GET", "/v1/changes?after=earliest", {}, b"")).body)
        assert keys_of(answer) == ["changes"]
    finally:
        MemoryLog.forget(name)


def test_over_a_direct_invoke_alone_but_never_in_a_batch(app):
    call(app, "PUT", "/cache/k", b"v")
    alone = orjson.loads(call(app, "POST", "/cache", b'{"operation": "CHANGES", "after": "earliest"}').body)
    assert [c["event"]["subject"] for c in alone["changes"]] == ["k"] and alone["status"] == 200
    batch = orjson.loads(call(app, "POST", "/cache", b'{"operations": [{"operation": "changes", "wait": 20}]}').body)
    assert batch[0]["status"] == 400 and "cannot be batched" in batch[0]["message"]  # 100 long polls would time out
