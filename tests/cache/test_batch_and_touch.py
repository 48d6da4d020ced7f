"""Pipelined batches and touch through the invoke API, over a memory log (the real broker and the FDK:
tests/e2e/test_batch_touch_stack.py and tests/faults/test_batch_faults.py)."""

from __future__ import annotations

import itertools

import orjson
import pytest
from freezegun import freeze_time

from streamcache.adapters.memory_log import MemoryLog
from streamcache.cache.app import CacheApp
from streamcache.core import records
from streamcache.cache.http_api import HttpRequest
from streamcache.settings import Settings
from support.openapi import check_against_openapi

_names = itertools.count()


class CountingLog:
    """The memory log, counting the appends that reach it (one ``append_many`` per run of writes)."""

    def __init__(self, log) -> None:
        self.log, self.single, self.many = log, 0, []

    def append(self, key, value):
        self.single += 1
        return self.log.append(key, value)

    def append_many(self, items):
        self.many.append(len(items))
        return self.log.append_many(items)

    def __getattr__(self, name):
        return getattr(self.log, name)


@pytest.fixture
def app():
    name = f"batch-{next(_names)}"
    yield CacheApp(Settings(log_url=f"memory://{name}?partitions=3", instance_id="test"))
    MemoryLog.forget(name)


def call(app: CacheApp, body: object) -> object:
    return orjson.loads(app.invoke(orjson.dumps(body)))


def counting(app: CacheApp) -> CountingLog:
    app.invoke(b'{"operation": "health"}')  # started: the replica and its log exist
    log = CountingLog(app.service.replica.log)
    app.service.replica._log = log
    return log


def test_the_writes_of_a_batch_are_appended_together_and_each_is_answered_by_its_own_record(app):
    log = counting(app)
    ops = [{"operation": "put", "key": f"k{n}", "value": n} for n in range(50)]
    ops += [{"operation": "put", "key": "k1", "value": "again", "content_type": "text/plain"},
            {"operation": "delete", "key": "k2"}, {"operation": "incr", "key": "n", "by": 5},
            {"operation": "incr", "key": "n", "by": 2}, {"operation": "touch", "key": "k3", "ttl": 60},
            {"operation": "put", "key": "k4", "value": 0, "if_none_match": "*"}, {"operation": "delete", "key": "nope"}]
    answers = call(app, {"operations": ops})
    assert log.many == [len(ops)] and log.single == 0  # one append for the whole run of writes
    assert [a["status"] for a in answers[:50]] == [201] * 50
    assert answers[50]["status"] == 200 and answers[51]["status"] == 204
    assert (answers[52]["status"], answers[52]["value"]) == (201, 5)
    assert (answers[53]["status"], answers[53]["value"]) == (200, 7)  # the counter as this record left it
    assert answers[54]["status"] == 200 and answers[54]["expires_at"] is not None
    assert answers[54]["version"] == answers[3]["version"]  # a touch keeps the value's version (ETag)
    assert answers[55]["status"] == 412 and answers[56]["status"] == 404  # not a transaction: others stand
    versions = [records.parse_version(a["version"]) for a in answers[:51]]
    k1 = [v for v, a in zip(versions, answers) if a["key"] == "k1"]
    assert k1[0] < k1[1]  # two writes of one key keep their order


def test_a_read_in_a_batch_sees_the_writes_before_it_and_splits_the_run(app):
    log = counting(app)
    answers = call(app, {"operations": [
        {"operation": "put", "key": "a", "value": 1}, {"operation": "put", "key": "b", "value": 2},
        {"operation": "get", "key": "a"}, {"operation": "put", "key": "a", "value": 3},
        {"operation": "get", "key": "a"}, {"operation": "touch", "key": "a", "ttl": None}]})
    assert log.many == [2, 1, 1]
    assert answers[2]["value"] == 1 and answers[4]["value"] == 3 and answers[5]["status"] == 200


def test_a_bad_write_in_a_batch_is_answered_400_and_the_others_are_appended(app):
    log = counting(app)
    answers = call(app, {"operations": [
        {"operation": "put", "key": "a", "value": 1}, {"operation": "touch", "key": "a", "ttl": -1},
        {"operation": "touch", "key": "a", "ttl": "soon"}, {"operation": "touch", "key": "a"},
        {"operation": "put", "key": "", "value": 1}, {"operation": "put", "key": "b", "value": 2}]})
    assert [a["status"] for a in answers] == [201, 400, 400, 400, 400, 201]
    assert [answers[i]["error"] for i in (1, 2, 3, 4)] == ["invalid_ttl", "invalid_ttl", "invalid_ttl", "invalid_key"]
    assert log.many == [2]


def test_touch_sets_and_removes_the_expiry_without_changing_value_or_version(app):
    with freeze_time("2026-12-01 00:00:00") as clock:
        put = call(app, {"operation": "put", "key": "k", "value": "v", "content_type": "text/plain", "ttl": 10})
        touched = call(app, {"operation": "touch", "key": "k", "ttl": 100})
        assert touched["status"] == 200 and touched["version"] == put["version"]
        assert touched["expires_at"] == "2026-12-01T00:01:40.000Z"
        clock.tick(50)
        got = call(app, {"operation": "get", "key": "k", "consistency": "strong"})
        assert got["value"] == "v" and got["version"] == put["version"]  # the put's 10 s are gone
        assert call(app, {"operation": "touch", "key": "k", "ttl": None})["expires_at"] is None
        clock.tick(10_000)
        assert call(app, {"operation": "get", "key": "k", "consistency": "strong"})["expires_at"] is None


def test_touch_of_an_absent_or_expired_key_is_404_and_if_match_is_honoured(app):
    with freeze_time("2026-12-01 00:00:00") as clock:
        assert call(app, {"operation": "touch", "key": "none", "ttl": 5})["status"] == 404
        put = call(app, {"operation": "put", "key": "k", "value": 1, "ttl": 1})
        stale = call(app, {"operation": "touch", "key": "k", "ttl": 5, "if_match": '"0-999"'})
        assert stale["status"] == 412 and stale["current_version"] == put["version"]
        assert call(app, {"operation": "touch", "key": "k", "ttl": 5, "if_match": put["version"]})["status"] == 200
        bad = call(app, {"operation": "touch", "key": "k", "ttl": 5, "if_none_match": "*"})
        assert bad["status"] == 400 and bad["error"] == "invalid_precondition"
        clock.tick(6)
        assert call(app, {"operation": "touch", "key": "k", "ttl": 5})["status"] == 404  # expired: stays absent


def test_a_touch_is_de_duplicated_by_request_id_and_leaves_the_quota_alone(app):
    call(app, {"operation": "put", "key": "k", "value": "x" * 100, "content_type": "text/plain"})
    table = app.service.replica.table
    used = table.used_bytes()
    touch = records.Touch("k", "same-id", app.service.now_ms(), app.service.now_ms() + 60_000)
    log = app.service.replica.log
    first = log.append("k", records.encode(touch))
    again = log.append("k", records.encode(records.Touch("k", "same-id", touch.ts_ms, None)))  # a retry's id
    app.service.replica.catch_up()
    assert table.used_bytes() == used
    assert table.get("k", 0).expires_at_ms == touch.expires_at_ms  # the retry changed nothing
    assert table.outcome_for(first.partition, "same-id").kind.value == "touched" and again.offset > first.offset


# ---- PATCH /cache/{key}?ttl=S over the HTTP API (the router; through the gateway: tests/e2e) ----------


def http(app: CacheApp, method: str, url: str, headers: dict | None = None):
    """One request through the app's router, its answer checked against the OpenAPI document."""
    response = app.handle(HttpRequest(method, url, headers or {}, b"v"))
    check_against_openapi(method, url, *response)
    return response


@pytest.mark.parametrize("ttl, why", [("-5", "more than 0"), ("0", "more than 0"), ("soon", "number of seconds"),
                                      ("1e12", "at most"), ("nan", "more than 0")])
def test_patch_with_a_bad_ttl_is_400_with_a_json_body_and_changes_nothing(app, ttl, why):
    http(app, "PUT", "/cache/k")
    before = app.service.replica.table.next_offsets()
    response = http(app, "PATCH", f"/cache/k?ttl={ttl}")
    body = orjson.loads(response.body)
    assert response.status == 400 and body["error"] == "invalid_ttl" and why in body["message"]
    assert app.service.replica.table.next_offsets() == before  # nothing appended


def test_patch_sets_and_removes_the_expiry_and_honours_if_match(app):
    put = http(app, "PUT", "/cache/k")
    etag = put.headers["ETag"]
    assert http(app, "PATCH", "/cache/k").status == 400  # ttl is required (empty = remove)
    assert http(app, "PATCH", "/cache/absent?ttl=5").status == 404
    assert http(app, "PATCH", "/cache/k?ttl=5", {"if-match": '"9-9"'}).status == 412
    touched = http(app, "PATCH", "/cache/k?ttl=5", {"if-match": etag})
    assert touched.status == 200 and touched.headers["ETag"] == etag and "Streamcache-Position" in touched.headers
    assert orjson.loads(touched.body)["expires_at"] is not None
    assert "max-age" in http(app, "GET", "/cache/k").headers["Cache-Control"]
    cleared = http(app, "PATCH", "/cache/k?ttl=")
    assert cleared.status == 200 and orjson.loads(cleared.body)["expires_at"] is None
    assert http(app, "PATCH", "/cache/k?ttl=5", {"if-none-match": "*"}).status == 400


def test_a_touch_is_in_the_change_feed_as_its_own_record_type(app):
    call(app, {"operation": "put", "key": "k", "value": 1})
    call(app, {"operation": "touch", "key": "k", "ttl": 30})
    feed = call(app, {"operation": "changes", "after": "earliest"})
    events = [change["event"] for change in feed["changes"]]
    assert [e["type"] for e in events] == [records.PUT_TYPE, records.TOUCH_TYPE]
    assert "expiresat" in events[1] and "data" not in events[1] and events[1]["subject"] == "k"
