"""The JSON operations API of direct invokes, over a memory log (the FDK path is covered in tests/e2e)."""

from __future__ import annotations

import itertools

import orjson
import pytest

from streamcache.adapters.memory_log import MemoryLog
from streamcache.cache.app import CacheApp
from streamcache.settings import Settings

_names = itertools.count()


@pytest.fixture
def app():
    name = f"invoke-{next(_names)}"
    yield CacheApp(Settings(log_url=f"memory://{name}?partitions=3", instance_id="test"))
    MemoryLog.forget(name)


def call(app: CacheApp, body: object) -> object:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return orjson.loads(app.invoke(raw))


def test_the_articles_operations_work_in_any_case(app):
    put = call(app, {"operation": "PUT", "key": "k", "value": 1})
    assert put["status"] == 201 and put["key"] == "k" and put["version"]
    got = call(app, {"operation": "GET", "key": "k"})
    assert got["status"] == 200 and got["value"] == 1 and got["version"] == put["version"]
    assert call(app, {"operation": "Get", "key": "k"})["value"] == 1


def test_json_text_and_binary_values_come_back_as_they_went_in(app):
    call(app, {"operation": "put", "key": "j", "value": {"a": [1, 2.5, None]}})
    call(app, {"operation": "put", "key": "t", "value": "héllo", "content_type": "text/plain"})
    call(app, {"operation": "put", "key": "b", "value_base64": "AP8=", "content_type": "image/png"})
    assert call(app, {"operation": "get", "key": "j"})["value"] == {"a": [1, 2.5, None]}
    text = call(app, {"operation": "get", "key": "t"})
    assert text["value"] == "héllo" and text["content_type"] == "text/plain"
    binary = call(app, {"operation": "get", "key": "b"})
    assert binary["value_base64"] == "AP8=" and "value" not in binary


def test_a_get_asking_for_base64_answers_the_exact_bytes_whatever_the_type(app):
    # JSON would come back re-parsed and text as a string; the client library needs the stored bytes.
    call(app, {"operation": "put", "key": "j", "value_base64": "eyAiYSI6IDEgfQ==", "content_type": "application/json"})
    call(app, {"operation": "put", "key": "t", "value": "héllo", "content_type": "text/plain"})
    got = call(app, {"operation": "get", "key": "j", "value_encoding": "base64"})
    assert got["value_base64"] == "eyAiYSI6IDEgfQ==" and "value" not in got  # '{ "a": 1 }', spaces kept
    assert got["content_type"] == "application/json"
    text = call(app, {"operation": "get", "key": "t", "value_encoding": "base64"})
    assert text["value_base64"] == "aMOpbGxv" and "value" not in text
    bad = call(app, {"operation": "get", "key": "missing", "value_encoding": "hex"})
    assert bad["status"] == 400 and bad["error"] == "invalid_operation"


def test_replace_delete_and_not_found(app):
    assert call(app, {"operation": "put", "key": "k", "value": 1})["status"] == 201
    assert call(app, {"operation": "put", "key": "k", "value": 2})["status"] == 200
    deleted = call(app, {"operation": "delete", "key": "k"})
    assert deleted == {"status": 204, "key": "k", "position": deleted["position"]}  # the session position
    assert call(app, {"operation": "delete", "key": "k"})["status"] == 404
    missing = call(app, {"operation": "get", "key": "k"})
    assert missing["status"] == 404 and missing["error"] == "not_found"


def test_preconditions(app):
    v1 = call(app, {"operation": "put", "key": "k", "value": 1, "if_none_match": "*"})["version"]
    again = call(app, {"operation": "put", "key": "k", "value": 9, "if_none_match": "*"})
    assert again["status"] == 412 and again["current_version"] == v1
    assert call(app, {"operation": "put", "key": "k", "value": 2, "if_match": v1})["status"] == 200
    stale = call(app, {"operation": "delete", "key": "k", "if_match": v1})
    assert stale["status"] == 412
    assert call(app, {"operation": "get", "key": "k"})["value"] == 2


def test_ttl_and_listing_with_cursor(app):
    put = call(app, {"operation": "put", "key": "a/1", "value": 1, "ttl": 60})
    assert put["expires_at"] is not None
    for key in ("a/2", "a/3", "b/1"):
        call(app, {"operation": "put", "key": key, "value": 0})
    first = call(app, {"operation": "list", "prefix": "a/", "limit": 2})
    assert [k["key"] for k in first["keys"]] == ["a/1", "a/2"] and first["cursor"]
    rest = call(app, {"operation": "list", "prefix": "a/", "limit": 2, "cursor": first["cursor"]})
    assert [k["key"] for k in rest["keys"]] == ["a/3"] and rest["cursor"] is None


def test_a_batch_runs_in_order_and_answers_a_list(app):
    answers = call(app, {"operations": [
        {"operation": "put", "key": "k", "value": "v1", "content_type": "text/plain"},
        {"operation": "get", "key": "k"},
        {"operation": "delete", "key": "k"},
        {"operation": "get", "key": "k"},
        {"operation": "frobnicate"},
    ]})
    assert [a["status"] for a in answers] == [201, 200, 204, 404, 400]
    assert answers[1]["value"] == "v1"


@pytest.mark.parametrize("body, code", [
    (b"not json", "invalid_json"),
    ({"key": "k"}, "invalid_operation"),
    ([1, 2], "invalid_operation"),
    ({"operation": "get"}, "invalid_key"),
    ({"operation": "get", "key": ""}, "invalid_key"),
    ({"operation": "get", "key": "a\x00b"}, "invalid_key"),
    ({"operation": "put", "key": "k"}, "invalid_operation"),
    ({"operation": "put", "key": "k", "value": 1, "ttl": "10"}, "invalid_ttl"),
    ({"operation": "put", "key": "k", "value": 1, "ttl": -1}, "invalid_ttl"),
    ({"operation": "put", "key": "k", "value_base64": "!!"}, "invalid_operation"),
    ({"operation": "put", "key": "k", "value": 1, "if_match": "nope"}, "invalid_version"),
    ({"operation": "put", "key": "k", "value": 1, "if_match": "*", "if_none_match": "**"}, "invalid_precondition"),
    ({"operation": "get", "key": "k", "consistency": "eventual"}, "invalid_consistency"),
    ({"operation": "list", "limit": 0}, "invalid_limit"),
    ({"operation": "list", "cursor": 5}, "invalid_operation"),
    ({"operation": "list", "cursor": "%%%"}, "invalid_cursor"),
    ({"operations": []}, "invalid_batch"),
])
def test_bad_operations_get_a_4xx_answer_and_change_nothing(app, body, code):
    answer = call(app, body)
    assert 400 <= answer["status"] < 500 and answer["error"] == code and answer["message"]
    assert call(app, {"operation": "list"})["keys"] == []


def test_a_value_over_the_limit_is_413(app):
    answer = call(app, {"operation": "put", "key": "k", "value": "x" * 5_767_169, "content_type": "text/plain"})
    assert answer["status"] == 413 and answer["error"] == "value_too_large"


def test_the_stream_being_away_is_503_with_retry_after(app):
    call(app, {"operation": "put", "key": "k", "value": 1})
    app.replica.log.available = False
    answer = call(app, {"operation": "put", "key": "k", "value": 2})
    assert answer["status"] == 503 and answer["retry_after"] == 1
    stale = call(app, {"operation": "get", "key": "k"})
    assert stale["status"] == 200 and stale["value"] == 1
    assert call(app, {"operation": "get", "key": "k", "consistency": "strong"})["status"] == 503


def test_health(app):
    answer = call(app, {"operation": "health"})
    assert answer["status"] == 200 and answer["health"]["instance"] == "test"
