"""What the HTTP API and the direct-invoke API answer when an append's acknowledgement is lost:
the record's own outcome when it is found on the stream, else 503 ``outcome_unknown`` with
Retry-After, checked against functions/cache/openapi.yaml; never 2xx for a record that is not there.
The fault sits at the port: a real memory log whose appends land and then lose their answer."""

from __future__ import annotations

import uuid

import orjson
import pytest
from support.openapi import check_against_openapi

from streamcache.adapters.memory_log import MemoryLog
from streamcache.cache.app import CacheApp
from streamcache.cache.http_api import HttpRequest
from streamcache.core.errors import OutcomeUnknown
from streamcache.settings import Settings


class LostAnswerLog:
    """The app's log, whose next appends land and then raise OutcomeUnknown (a lost acknowledgement).
    ``then_unavailable``: the stream also stops answering reads, so the record cannot be looked for."""

    def __init__(self, inner: MemoryLog) -> None:
        self.inner = inner
        self.lose = 0
        self.then_unavailable = False
        self.land = True

    def append(self, key: str, value: bytes):
        if self.lose <= 0:
            return self.inner.append(key, value)
        self.lose -= 1
        if self.land:
            self.inner.append(key, value)
        if self.then_unavailable:
            self.inner.available = False
        raise OutcomeUnknown("the acknowledgement was lost")

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def app():
    name = f"unknown-{uuid.uuid4().hex}"
    app = CacheApp(Settings.from_env({"STREAMCACHE_LOG_URL": f"memory://{name}?partitions=3",
                                      "STREAMCACHE_INSTANCE_ID": "unknown"}))
    app.replica._log = LostAnswerLog(app.replica.log)
    yield app
    MemoryLog.forget(name)


def call(app: CacheApp, method: str, url: str, body: bytes = b"", headers: dict | None = None):
    response = app.handle(HttpRequest(method, url, headers or {}, body))
    check_against_openapi(method, url, *response)
    return response


def test_a_lost_answer_whose_record_is_found_answers_the_records_outcome(app):
    assert call(app, "PUT", "/cache/k", b"1").status == 201
    app.replica.log.lose = 1
    response = call(app, "PUT", "/cache/k", b"2", {"if-none-match": "*"})
    assert response.status == 412  # it landed, and its precondition failed in log order
    app.replica.log.lose = 1
    assert call(app, "PUT", "/cache/k", b"3").status == 200
    assert call(app, "GET", "/cache/k?consistency=strong").body == b"3"


@pytest.mark.parametrize("landed", [True, False])
def test_a_lost_answer_that_cannot_be_looked_for_is_503_outcome_unknown(app, landed):
    log = app.replica.log
    log.lose, log.then_unavailable, log.land = 1, True, landed
    for method, url, body, headers in [("DELETE", "/cache/k", b"", {}),
                                       ("POST", "/cache", b'{"key": "k", "value": 1}', {}),
                                       ("PUT", "/cache/k", b"1", {"if-match": "*"})]:
        log.lose, log.inner.available = 1, True
        response = call(app, method, url, body, headers)
        assert response.status == 503 and response.headers["Retry-After"] == "1", (method, response)
        assert orjson.loads(response.body)["error"] == "outcome_unknown"
    log.inner.available = True
    found = call(app, "GET", "/cache/k?consistency=strong")
    # "Unknown" was honest either way: what is there is what landed.
    assert (found.status, found.body if landed else None) == ((200, b"1") if landed else (404, None))


def test_the_direct_invoke_answers_outcome_unknown_with_retry_after(app):
    log = app.replica.log
    log.lose, log.then_unavailable = 1, True
    answer = orjson.loads(app.invoke(b'{"operation": "put", "key": "k", "value": 1, "if_none_match": "*"}'))
    assert (answer["status"], answer["error"], answer["retry_after"]) == (503, "outcome_unknown", 1)
