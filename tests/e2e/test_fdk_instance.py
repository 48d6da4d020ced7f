"""The cache function under the real ``fdk`` entrypoint, spoken to over its unix socket the way the
Fn agent and API Gateway do (``POST /call`` with ``Fn-*`` headers), with a Kafka log on Tansu.

Also covers the runner's process handling: readiness, stop, the stale phony socket, reconnecting
after an instance restarted on the same path.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import tempfile
import uuid

import orjson
import pytest

from streamcache_local.fn_protocol import FnClient, FnUnavailable, deadline_header, new_call_id
from streamcache_local.fn_runner import start_instance
from support.waiting import wait_for as _wait_for




@pytest.fixture
def socket_dir():
    path = tempfile.mkdtemp(prefix="sc-t-", dir="/tmp")  # short: unix socket paths are limited to 107 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def log_url(broker):
    topic = f"fdk-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 3)
    return broker.log_url(topic)


@pytest.fixture(scope="module")
def instance(log_url):
    directory = tempfile.mkdtemp(prefix="sc-t-", dir="/tmp")
    running = start_instance("fn1", directory, {"STREAMCACHE_LOG_URL": log_url, "STREAMCACHE_ACCESS_LOG": "all"})
    yield running
    running.stop()
    shutil.rmtree(directory, ignore_errors=True)


class _AgentConnection(http.client.HTTPConnection):
    """What the Fn agent does: HTTP/1.1 over the instance's unix socket, nothing from our runner."""

    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.socket_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.socket_path)


def _agent_call(path: str, method: str, url: str, body: bytes = b"", headers: dict | None = None):
    conn = _AgentConnection(path)
    try:
        fn_headers = {"Fn-Call-Id": new_call_id(), "Fn-Deadline": deadline_header(30), "Fn-Intent": "httprequest",
                      "Fn-Invoke-Type": "sync", "Fn-Http-Method": method, "Fn-Http-Request-Url": url,
                      "Fn-Http-H-Host": "gw.example.com"}
        for name, value in (headers or {}).items():
            fn_headers[f"Fn-Http-H-{name}"] = value
            if name.lower() == "content-type":
                fn_headers["Content-Type"] = value
        conn.request("POST", "/call", body=body, headers=fn_headers)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_ready_means_the_symlink_to_the_phony_socket_accepts_connections(instance):
    assert os.path.islink(instance.socket_path)
    assert os.readlink(instance.socket_path) == "phonyfn1.sock"
    assert instance.alive()


def test_put_get_delete_speaking_fns_protocol(instance):
    path = instance.socket_path
    status, headers, body = _agent_call(path, "PUT", "/cache/fdk-k1?ttl=60", b"hello", {"Content-Type": "text/plain"})
    assert status == 200  # the socket status; the HTTP status travels in Fn-Http-Status
    assert headers["fn-http-status"] == "201"
    assert headers["content-type"] == "application/json"  # content-type stays unprefixed
    created = orjson.loads(body)
    assert headers["fn-http-h-etag"] == f'"{created["version"]}"'
    assert created["key"] == "fdk-k1" and created["expires_at"] is not None

    status, headers, body = _agent_call(path, "GET", "/cache/fdk-k1")
    assert (status, headers["fn-http-status"], body) == (200, "200", b"hello")
    assert headers["content-type"] == "text/plain"
    assert headers["fn-http-h-etag"] == f'"{created["version"]}"'
    assert 55 <= int(headers["fn-http-h-cache-control"].removeprefix("max-age=")) <= 60

    status, headers, body = _agent_call(path, "DELETE", "/cache/fdk-k1")
    assert (status, headers["fn-http-status"], body) == (200, "204", b"")

    status, headers, body = _agent_call(path, "GET", "/cache/fdk-k1")
    assert headers["fn-http-status"] == "404"
    assert orjson.loads(body)["error"] == "not_found"


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "code"),
    [
        ("PUT", "/cache/k?ttl=soon", b"x", 400, "invalid_ttl"),
        ("PUT", "/cache/%01bad", b"x", 400, "invalid_key"),
        ("OPTIONS", "/cache/k", b"x", 405, "method_not_allowed"),
        ("PATCH", "/cache/k?ttl=-1", b"", 400, "invalid_ttl"),
        ("PUT", "/cache/big", b"v" * 5_800_000, 413, "value_too_large"),
        ("POST", "/cache", b"{not json", 400, "invalid_json"),
        ("GET", "/elsewhere", b"", 404, "no_route"),
    ],
)
def test_errors_arrive_as_fn_http_status_with_a_json_body(instance, method, url, body, status, code):
    answer = instance.client.http_call(method, url, body, {"Content-Type": "application/octet-stream"})
    assert answer.fdk_status == 200  # a client mistake is an answer, not a function failure
    assert answer.status == status
    assert answer.header("content-type") == "application/json"
    error = orjson.loads(answer.body)
    assert error["error"] == code and error["message"]


def test_a_wrong_method_names_the_allowed_ones(instance):
    answer = instance.client.http_call("OPTIONS", "/cache/k")
    assert answer.header("allow") == "GET, HEAD, PUT, DELETE, POST, PATCH"  # POST: ?increment=N; PATCH: ?ttl=S


def test_a_plain_invoke_speaks_the_json_operations_api(instance):
    key = f"inv-{uuid.uuid4().hex[:6]}"
    put = instance.client.http_call("PUT", f"/cache/{key}", b'{"n": 1}', {"Content-Type": "application/json"})
    assert put.status == 201
    answer = instance.client.invoke(orjson.dumps({"operation": "get", "key": key}))
    assert answer.status == 200  # outside gateway mode the platform answers 200; the status is in the body
    assert answer.header("fn-http-status") is None and answer.header("content-type") == "application/json"
    got = orjson.loads(answer.body)
    assert (got["status"], got["value"]) == (200, {"n": 1})
    assert got["version"] == put.header("etag").strip('"')
    bad = orjson.loads(instance.client.invoke(b"{not json").body)
    assert (bad["status"], bad["error"]) == (400, "invalid_json")


def test_function_logs_are_json_lines_on_stderr_without_library_chatter(instance):
    key = f"log-{uuid.uuid4().hex[:6]}"
    call_id = f"01TESTCALL{uuid.uuid4().hex[:16].upper()}"
    assert instance.client.http_call("PUT", f"/cache/{key}", b"v", call_id=call_id).status == 201

    def logged():
        return [line for line in instance.stderr_lines() if f'"key":"{key}"' in line]

    (line,) = _wait_for(logged, what="the request's log line")
    entry = orjson.loads(line)
    assert entry["method"] == "PUT" and entry["status"] == 201 and entry["outcome"] == "created"
    assert entry["request_id"] == call_id  # the platform's call id ties the log line to the request
    assert isinstance(entry["duration_ms"], float) and entry["position"]
    lines = instance.stderr_lines()
    assert len(lines) >= 2  # the earlier tests' requests too: Kafka was used on every one of them
    for each in lines:
        parsed = orjson.loads(each)  # every line is one JSON object
        assert not parsed.get("logger", "").startswith(("kafka", "fdk", "asyncio"))


def test_a_log_sink_that_fails_does_not_stop_the_instance(socket_dir, log_url):
    # The runner must keep draining the instance's output: a pipe nobody reads fills up, and the
    # instance then blocks on its next log line (every request after it a 504).
    def failing_sink(name: str, stream: str, line: str) -> None:
        raise RuntimeError("the sink is broken")

    running = start_instance("fnsink", socket_dir, {"STREAMCACHE_LOG_URL": log_url, "STREAMCACHE_ACCESS_LOG": "all"},
                             log_sink=failing_sink)
    try:
        for n in range(600):  # a line of ~150 bytes each: far more than the 64 KiB a pipe holds
            assert running.client.http_call("GET", f"/cache/sink-{n}", timeout_s=10).status == 404
        _wait_for(lambda: [line for line in running.stderr_lines() if '"key":"sink-599"' in line],
                  what="the last request's line, kept although the sink failed")
    finally:
        running.stop()


def test_stale_phony_socket_does_not_block_a_start_and_stop_removes_both(socket_dir):
    # A phony socket left without its symlink makes the FDK fail with "Address already in use".
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.path.join(socket_dir, "phonyfn9.sock"))
    stale.close()
    started = start_instance("fn9", socket_dir, {"STREAMCACHE_LOG_URL": "memory://stale"})
    try:
        assert started.client.http_call("GET", "/health").status == 200
    finally:
        started.stop()
    assert started.process.returncode is not None
    assert os.listdir(socket_dir) == []


def test_the_client_reconnects_to_a_restarted_instance_and_reports_a_dead_one(socket_dir):
    first = start_instance("fn1", socket_dir, {"STREAMCACHE_LOG_URL": "memory://restart"})
    client = FnClient(first.socket_path)
    try:
        assert client.http_call("GET", "/health").status == 200  # leaves a keep-alive connection open
        first.stop()
        second = start_instance("fn1", socket_dir, {"STREAMCACHE_LOG_URL": "memory://restart"})
        try:
            answer = client.http_call("GET", "/health")  # the old connection is closed: a new one is made
            assert answer.status == 200
            os.kill(second.pid, signal.SIGKILL)
            second.process.wait(timeout=5)
            with pytest.raises(FnUnavailable):
                client.http_call("GET", "/health")
        finally:
            second.stop()
    finally:
        client.close()
        first.stop()
    assert os.listdir(socket_dir) == []


def test_an_instance_that_cannot_start_reports_its_error(socket_dir, tmp_path):
    broken = tmp_path / "func.py"
    broken.write_text("def handler(ctx, data=None):\n    return 'ok'\n")
    # FN_LISTENER pointing into a missing directory: the FDK exits at bind time.
    with pytest.raises(RuntimeError, match="exited"):
        start_instance("fn1", os.path.join(socket_dir, "missing"), {}, function_path=broken)
