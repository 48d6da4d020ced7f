"""``GET /_local/stack``: the local gateway's description of its stack (what ``streamcache watch`` asks)."""

from __future__ import annotations

import os

import orjson
import pytest

from streamcache_local.stack_info import KIND, STACK_PATH, describe, is_stack_path, stack_answer


def test_describe_names_the_stream_and_the_gateway():
    info = describe("kafka://127.0.0.1:9092/streamcache", 3, "http://127.0.0.1:8080",
                    stream_id="streamcache.20261123T200000.000Z-abcdef", data_dir="/tmp/data")
    assert info == {"kind": KIND, "log_url": "kafka://127.0.0.1:9092/streamcache", "topic": "streamcache",
                    "partitions": 3, "gateway": "http://127.0.0.1:8080", "pid": os.getpid(),
                    "stream_id": "streamcache.20261123T200000.000Z-abcdef", "data_dir": "/tmp/data",
                    "snapshot_url": "file:///tmp/data"}  # where compact and snapshots find this run's store
    assert "stream_id" not in describe("kafka://h:1/t", 1, "http://g")


@pytest.mark.parametrize("path, expected", [
    (STACK_PATH, True), (STACK_PATH + "/", True), (STACK_PATH + "?x=1", True),
    ("/_local/stacks", False), ("/cache/_local/stack", False), ("/", False),
])
def test_only_the_stack_path_is_the_stack_path(path, expected):
    assert is_stack_path(path) is expected


def test_get_answers_the_description_as_json_that_is_never_cached():
    info = describe("kafka://127.0.0.1:9092/t", 2, "http://127.0.0.1:8080")
    status, headers, body = stack_answer("GET", info)
    assert status == 200 and orjson.loads(body) == info
    assert ("Cache-Control", "no-store") in headers and ("Content-Type", "application/json") in headers


def test_other_methods_and_a_gateway_without_a_stack_answer_json_errors():
    status, headers, body = stack_answer("POST", {"log_url": "x"})
    assert status == 405 and ("Allow", "GET, HEAD") in headers and orjson.loads(body)["error"] == "method_not_allowed"
    status, _, body = stack_answer("GET", None)
    assert status == 404 and orjson.loads(body)["error"] == "not_found"
