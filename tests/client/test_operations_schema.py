"""functions/cache/operations.schema.json against the function's direct-invoke API (over a memory log):
every answer of a corpus covering each operation, outcome and error matches the schema; every request
the function carried out is valid; requests the schema rejects are the ones the function refuses; and
the schema is strict enough to catch answers that drifted. (The client tests check the wire too.)"""

from __future__ import annotations

import itertools

import jsonschema
import orjson
import pytest
from support.client_checks import OPERATION_VALIDATOR, REQUEST_VALIDATOR, SCHEMA, check_exchange, check_response

from streamcache.adapters.memory_log import MemoryLog
from streamcache.cache.app import CacheApp
from streamcache.settings import Settings

_names = itertools.count()


@pytest.fixture
def app():
    name = f"schema-{next(_names)}"
    # Staleness bound 0: every default read catches up first, so a log that went away shows at once.
    yield CacheApp(Settings(log_url=f"memory://{name}?partitions=3", instance_id="schema", staleness_ms=0))
    MemoryLog.forget(name)


def invoke(app: CacheApp, request: object) -> object:
    raw = request if isinstance(request, bytes) else orjson.dumps(request)
    answer = orjson.loads(app.invoke(raw))
    check_exchange(request, answer)
    return answer


def test_the_schema_is_a_valid_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_every_operation_and_outcome_answers_as_the_schema_says(app):
    statuses = []
    requests = [
        {"operation": "PUT", "key": "j", "value": {"a": [1, None]}, "ttl": 60},
        {"operation": "put", "key": "t", "value": "héllo", "content_type": "text/plain", "if_none_match": "*"},
        {"operation": "put", "key": "b", "value_base64": "AP8=", "content_type": "image/png"},
        {"operation": "put", "key": "b", "value_base64": "AP8=", "if_match": "*"},
        {"operation": "put", "key": "t", "value": "again", "if_none_match": "*"},
        {"operation": "Get", "key": "j"},
        {"operation": "get", "key": "t", "consistency": "strong"},
        {"operation": "get", "key": "b"},
        {"operation": "get", "key": "t", "value_encoding": "base64"},
        {"operation": "get", "key": "missing"},
        {"operation": "list", "prefix": "", "limit": 2},
        {"operation": "list", "cursor": None, "consistency": "default"},
        {"operation": "delete", "key": "j"},
        {"operation": "delete", "key": "j"},
        {"operation": "delete", "key": "t", "if_match": "0-0"},
        {"operation": "health"},
        {"operations": [{"operation": "get", "key": "b"}, {"operation": "frobnicate"},
                        {"operation": "delete", "key": "b"}]},
        {"operations": []},
        {"operations": [{"operation": "health"}] * 101},
        b"not json",
        {"operation": "put", "key": "big", "value": "x" * 5_800_000, "content_type": "text/plain"},
    ]
    for request in requests:
        answer = invoke(app, request)
        statuses.append([a["status"] for a in answer] if isinstance(answer, list) else answer["status"])
    page = invoke(app, {"operation": "list", "limit": 1})
    invoke(app, {"operation": "list", "limit": 1, "cursor": page["cursor"]})
    assert statuses == [201, 201, 201, 200, 412, 200, 200, 200, 200, 404, 200, 200, 204, 404, 412, 200,
                        [200, 400, 204], 400, 400, 400, 413]


def test_unavailable_and_stale_answers(app):
    invoke(app, {"operation": "put", "key": "k", "value": 1})
    app.replica.log.available = False
    assert invoke(app, {"operation": "put", "key": "k", "value": 2})["status"] == 503
    assert invoke(app, {"operation": "get", "key": "k"})["stale"] is True
    assert invoke(app, {"operation": "get", "key": "k", "consistency": "strong"})["retry_after"] == 1


@pytest.mark.parametrize("request_", [
    {"key": "k"},
    {"operation": "frobnicate"},
    {"operation": "get"},
    {"operation": "get", "key": ""},
    {"operation": "get", "key": "a\x00b"},
    {"operation": "get", "key": "k", "value_encoding": "hex"},
    {"operation": "get", "key": "k", "consistency": "eventual"},
    {"operation": "put", "key": "k"},
    {"operation": "put", "key": "k", "value": 1, "ttl": "10"},
    {"operation": "put", "key": "k", "value": 1, "ttl": -1},
    {"operation": "put", "key": "k", "value": 1, "if_match": "nope"},
    {"operation": "put", "key": "k", "value": 1, "if_match": "*", "if_none_match": "*"},
    {"operation": "put", "key": "k", "value": 1, "if_none_match": "1-1"},
    {"operation": "list", "limit": 0},
    {"operation": "list", "cursor": 5},
    {"operations": []},
])
def test_requests_the_schema_rejects_are_refused_by_the_function(app, request_):
    with pytest.raises(jsonschema.ValidationError):
        REQUEST_VALIDATOR.validate(request_)
    answer = invoke(app, request_)
    assert 400 <= answer["status"] < 500
    assert invoke(app, {"operation": "list"})["keys"] == []


def test_requests_with_lower_or_upper_case_operations_are_valid():
    for name in ("get", "GET", "Get", "gEt"):
        OPERATION_VALIDATOR.validate({"operation": name, "key": "k"})
    with pytest.raises(jsonschema.ValidationError):
        OPERATION_VALIDATOR.validate({"operation": "gets", "key": "k"})


@pytest.mark.parametrize("answer", [
    {"key": "k", "version": "1-1", "expires_at": None},
    {"status": 200, "key": "k", "content_type": "text/plain", "expires_at": None, "value": "v"},
    {"status": 200, "key": "k", "content_type": "text/plain", "version": "1-1", "expires_at": None,
     "value": "v", "value_base64": "dg=="},
    {"status": 200, "key": "k", "content_type": "text/plain", "version": "1-1", "expires_at": "tomorrow", "value": "v"},
    {"status": 201, "key": "k", "version": "1-1", "expires_at": None, "extra": True},
    {"status": 204, "key": "k", "version": "1-1", "expires_at": None},
    {"status": 412, "error": "precondition_failed", "message": "m"},
    {"status": 503, "error": "stream_unavailable", "message": "m"},
    {"status": 400, "error": "something_new", "message": "m"},
    {"status": 200, "keys": [{"key": "k", "version": "1-1", "size": -1, "expires_at": None}], "cursor": None},
    [],
])
def test_the_schema_catches_answers_that_drifted(answer):
    with pytest.raises(jsonschema.ValidationError):
        check_response(answer)
