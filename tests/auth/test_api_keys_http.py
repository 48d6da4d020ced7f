"""API keys in the cache function (STREAMCACHE_API_KEYS): the HTTP API refuses a request without a
valid key with 401 and a read-only key's writes with 403, before anything happens (the log stays
as it was), answers as the OpenAPI document declares, and keeps /health open. Then the same
through the gateway of a running stack, and the ``streamcache hash-key`` command."""

from __future__ import annotations

import io
import itertools
import sys

import orjson
import pytest

from streamcache.cli import main as cli
from streamcache.logs import AccessLog
from streamcache.cache.app import CacheApp
from streamcache.auth import hash_key
from streamcache.core.errors import ConfigError
from streamcache.cache.http_api import HttpRequest
from streamcache.settings import Settings
from streamcache_local.dev import DevStack
from support.json_logs import captured_json_logs
from support.openapi import check_against_openapi

WRITER, READER = "sck_test-writer", "sck_test-reader"
ENTRIES = f"{hash_key(WRITER)},{hash_key(READER, read_only=True)}"
_logs = itertools.count()


@pytest.fixture
def app():
    settings = Settings.from_env({"STREAMCACHE_LOG_URL": f"memory://auth-{next(_logs)}?partitions=2",
                                  "STREAMCACHE_API_KEYS": ENTRIES})
    return CacheApp(settings)


def call(app, method: str, url: str, body: bytes = b"", **headers):
    answer = app.handle(HttpRequest(method, url, {k.replace("_", "-").lower(): v for k, v in headers.items()}, body))
    check_against_openapi(method, url, answer.status, answer.headers, answer.body)
    return answer


def log_end(app) -> dict[int, int]:
    return app.replica.log.bounds().next


WRITES = [("PUT", "/cache/k", b"v"), ("POST", "/cache", b'{"key": "k", "value": 1}'), ("DELETE", "/cache/k", b""),
          ("PUT", "/cache?key=k", b"v"), ("DELETE", "/cache?key=k", b"")]


def test_without_a_valid_key_every_request_is_401_and_changes_nothing(app):
    for headers in ({}, {"x_api_key": "wrong"}, {"authorization": "Bearer wrong"}, {"authorization": "Basic eDp5"}):
        for method, url, body in [*WRITES, ("GET", "/cache/k", b""), ("HEAD", "/cache/k", b""), ("GET", "/cache", b"")]:
            answer = call(app, method, url, body, **headers)
            assert answer.status == 401, (method, url, headers)
            assert answer.headers["WWW-Authenticate"].startswith('Bearer realm="streamcache"')
            if method != "HEAD":
                assert orjson.loads(answer.body)["error"] == "unauthorized"
    assert log_end(app) == {0: 0, 1: 0}


def test_a_read_only_key_reads_and_its_writes_are_403_and_change_nothing(app):
    assert call(app, "PUT", "/cache/k", b"v", x_api_key=WRITER).status == 201
    end = log_end(app)
    for method, url, body in WRITES:
        answer = call(app, method, url, body, authorization=f"Bearer {READER}")
        assert answer.status == 403 and orjson.loads(answer.body)["error"] == "forbidden", (method, url)
    assert log_end(app) == end
    assert call(app, "GET", "/cache/k", x_api_key=READER).body == b"v"
    assert call(app, "HEAD", "/cache/k", x_api_key=READER).status == 200
    assert orjson.loads(call(app, "GET", "/cache", x_api_key=READER).body)["keys"][0]["key"] == "k"


def test_a_read_write_key_does_everything(app):
    assert call(app, "PUT", "/cache/k", b"v", x_api_key=WRITER).status == 201
    assert call(app, "POST", "/cache", b'{"key": "j", "value": [1]}', authorization=f"Bearer {WRITER}").status == 201
    assert call(app, "DELETE", "/cache/k", x_api_key=WRITER).status == 204


def test_no_key_reaches_the_log(app):
    # Log lines go to OCI Logging, readable by more people than the keys are meant for.
    app.http.access_log = AccessLog.ALL  # a line for every request, not only for problems
    with captured_json_logs() as lines:
        for key in (WRITER, READER, "sck_a-wrong-key"):
            for method, url, body in [*WRITES, ("GET", "/cache/k", b""), ("GET", "/cache", b"")]:
                call(app, method, url, body, x_api_key=key)
                call(app, method, url, body, authorization=f"Bearer {key}")
        app.invoke(b'{"operation": "GET", "key": "k"}', "call-1")
    logged = lines.getvalue()
    assert logged.count("\n") >= 2 * 3 * (len(WRITES) + 2)  # a line for every request
    for key in (WRITER, READER, "sck_a-wrong-key", hash_key(WRITER)):
        assert key not in logged


def test_health_stays_open_for_health_checks(app):
    assert call(app, "GET", "/health").status == 200


def test_a_key_list_that_is_not_digests_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"STREAMCACHE_LOG_URL": "memory://x", "STREAMCACHE_API_KEYS": "sck_my-plain-key"})
    assert "STREAMCACHE_API_KEYS" in str(error.value) and "sck_my-plain-key" not in str(error.value)


def test_without_keys_configured_there_is_no_check():
    app = CacheApp(Settings.from_env({"STREAMCACHE_LOG_URL": f"memory://auth-{next(_logs)}"}))
    assert call(app, "PUT", "/cache/k", b"v").status == 201


def test_through_the_gateway(broker):
    topic = f"auth-{next(_logs)}"
    broker.create_topic(topic, 3)
    with DevStack(port=0, instances=1, log_url=broker.log_url(topic), config={"STREAMCACHE_API_KEYS": ENTRIES}) as stack:
        (instance,) = stack.instances
        refused = instance.client.http_call("PUT", "/cache/g", b"v")
        assert refused.status == 401 and refused.header("www-authenticate").startswith("Bearer")
        assert instance.client.http_call("PUT", "/cache/g", b"v", {"X-Api-Key": READER}).status == 403
        assert instance.client.http_call("PUT", "/cache/g", b"v", {"Authorization": f"Bearer {WRITER}"}).status == 201
        assert instance.client.http_call("GET", "/cache/g?consistency=strong", headers={"X-Api-Key": READER}).body == b"v"


def test_the_hash_key_command(monkeypatch, capsys):
    assert cli.main(["hash-key", "s3cret"]) == 0
    assert capsys.readouterr().out == hash_key("s3cret") + "\n"
    monkeypatch.setattr(sys, "stdin", io.StringIO("from-stdin\n"))
    assert cli.main(["hash-key", "--read-only"]) == 0
    assert capsys.readouterr().out == hash_key("from-stdin", read_only=True) + "\n"
