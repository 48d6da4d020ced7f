"""Which requests get a log line (STREAMCACHE_ACCESS_LOG): every one, only problems (the default:
errors and slow answers, not a cache's normal misses and failed preconditions), or none."""

from __future__ import annotations

import itertools
import logging

import orjson
import pytest

from streamcache.cache.app import CacheApp
from streamcache.cache.http_api import HttpRequest
from streamcache.logs import SLOW_MS, AccessLog
from streamcache.settings import Settings
from support.json_logs import captured_json_logs

_logs = itertools.count()


@pytest.mark.parametrize("status, duration_ms, logged", [
    (200, 1.0, False), (201, 1.0, False), (204, 1.0, False), (304, 1.0, False),
    (404, 1.0, False),  # a miss: how a cache answers
    (412, 1.0, False),  # a failed precondition: how a conditional write answers
    (400, 1.0, True), (401, 1.0, True), (403, 1.0, True), (409, 1.0, True), (413, 1.0, True),
    (500, 1.0, True), (503, 1.0, True), (507, 1.0, True),
    (200, SLOW_MS, True), (404, SLOW_MS + 1, True),  # slow, whatever the status
])
def test_problems_are_errors_and_slow_answers(status, duration_ms, logged):
    assert AccessLog.PROBLEMS.wants(status, duration_ms) is logged
    assert AccessLog.ALL.wants(status, duration_ms)
    assert not AccessLog.OFF.wants(status, duration_ms)


@pytest.fixture
def lines():
    """The JSON lines the ``streamcache`` logger writes while the test runs (at INFO, as in a function)."""
    with captured_json_logs(logging.INFO) as out:
        yield lambda: [orjson.loads(line) for line in out.getvalue().splitlines()]


def _app(level: str | None) -> CacheApp:
    env = {"STREAMCACHE_LOG_URL": f"memory://access-{next(_logs)}?partitions=2"}
    if level is not None:
        env["STREAMCACHE_ACCESS_LOG"] = level
    return CacheApp(Settings.from_env(env))


def _requests(app: CacheApp) -> None:
    for method, url, body in [("PUT", "/cache/a", b"1"), ("GET", "/cache/a", b""), ("GET", "/cache/missing", b""),
                              ("DELETE", "/cache/missing", b""), ("PUT", "/cache/a?ttl=soon", b"2")]:
        app.handle(HttpRequest(method, url, {}, body))
    app.invoke(b'{"operation": "GET", "key": "a"}', "call-ok")
    app.invoke(b'{"operation": "NOPE"}', "call-bad")


def test_by_default_only_problems_are_logged(lines):
    _requests(_app(None))
    logged = [(line.get("method") or line.get("kind"), line["status"]) for line in lines()
              if line["msg"] in ("request", "invoke")]
    assert logged == [("PUT", 400), ("invoke", 400)]  # the TTL that is no number, the unknown operation


def test_all_logs_every_request_and_off_none(lines):
    _requests(_app("all"))
    assert [line["status"] for line in lines() if line["msg"] in ("request", "invoke")] == [201, 200, 404, 404, 400,
                                                                                           200, 400]
    before = len(lines())
    _requests(_app("off"))
    assert [line for line in lines()[before:] if line["logger"] == "streamcache.access"] == []
