"""The whole local topology: gateway -> two real FDK instances -> Tansu topic with three partitions.

Proves issue 2's "done when": a write through the gateway is read back by every instance, it is a
CloudEvents record on the topic that a plain Kafka consumer reads, and two concurrent conditional
writes through different instances have exactly one winner that every instance agrees on.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import uuid

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from streamcache_local.dev import DevStack
from streamcache_local.pool import Dispatch
from streamcache_local.fn_runner import start_instance
from streamcache_local.gateway import MAX_BODY_BYTES, GatewayServer, Pool
from support.gateway import request
from support.waiting import wait_for as _wait_for

PARTITIONS = 3


def _new_topic(broker, partitions: int = PARTITIONS) -> str:
    topic = f"gw-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, partitions)
    return topic


@pytest.fixture(scope="module")
def topic(broker):
    return _new_topic(broker)


@pytest.fixture(scope="module")
def stack(broker, topic):
    with DevStack(port=0, instances=2, dispatch=Dispatch.ROUND_ROBIN, log_url=broker.log_url(topic)) as running:
        yield running


def _raw(stack, data: bytes) -> bytes:
    """Send raw bytes to the gateway and read its whole answer (it closes the connection)."""
    with socket.create_connection(stack.gateway.server_address[:2], timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_write_through_the_gateway_is_read_back_by_every_instance(stack):
    status, headers, body = request(stack, "PUT", "/cache/a", b"1", {"Content-Type": "text/plain"})
    assert status == 201
    etag = headers["etag"]
    assert orjson.loads(body)["version"] == etag.strip('"')

    # Whichever instance the gateway picks: a strong read always sees the write...
    for _ in stack.instances:
        status, headers, body = request(stack, "GET", "/cache/a?consistency=strong")
        assert (status, body, headers["etag"]) == (200, b"1", etag)
    for instance in stack.instances:  # each instance directly, through its own socket
        strong = instance.client.http_call("GET", "/cache/a?consistency=strong")
        assert (strong.status, strong.body, strong.header("etag")) == (200, b"1", etag), instance.name


def test_a_new_key_is_found_at_once_by_a_default_read_on_every_instance(stack):
    """A miss is checked against the stream, so PUT-then-GET works whichever instance answers."""
    for n, writer in enumerate(stack.instances):
        key = f"fresh-{n}-{uuid.uuid4().hex[:6]}"
        put = writer.client.http_call("PUT", f"/cache/{key}", b"1", {"Content-Type": "text/plain"})
        assert put.status == 201
        for reader in stack.instances:
            got = reader.client.http_call("GET", f"/cache/{key}")
            assert (got.status, got.body) == (200, b"1"), (writer.name, reader.name)


def test_a_replaced_value_reaches_every_instance_within_the_staleness_bound(stack):
    key = f"replaced-{uuid.uuid4().hex[:6]}"
    assert request(stack, "PUT", f"/cache/{key}", b"old")[0] == 201
    for instance in stack.instances:
        assert instance.client.http_call("GET", f"/cache/{key}").body == b"old"
    assert request(stack, "PUT", f"/cache/{key}", b"new")[0] == 200
    # A default read may answer the old value for up to the staleness bound (1 s), then the new one.
    for instance in stack.instances:
        _wait_for(lambda: instance.client.http_call("GET", f"/cache/{key}").body == b"new", timeout_s=5,
                  what=f"{instance.name} to see the new value")


def test_the_write_is_a_cloudevent_record_a_plain_kafka_consumer_reads(stack, broker, topic):
    key = f"ce-{uuid.uuid4().hex[:6]}"
    status, headers, _ = request(stack, "PUT", f"/cache/{key}", b"hello", {"Content-Type": "text/plain"})
    assert status == 201
    partition, offset = (int(part) for part in headers["etag"].strip('"').split("-"))

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        found = []

        def read_it():
            for records in consumer.poll(timeout_ms=200).values():
                found.extend(r for r in records if r.key == key.encode())
            return found

        (record,) = _wait_for(read_it, what="the record on the topic")
    finally:
        consumer.close()
    assert (record.partition, record.offset) == (partition, offset)  # the ETag is the record's position
    event = orjson.loads(record.value)
    assert event["specversion"] == "1.0"
    assert event["type"] == "io.streamcache.put.v1"
    assert event["subject"] == key
    assert (event["datacontenttype"], event["data"]) == ("text/plain", "hello")


def test_concurrent_if_match_writes_through_different_instances_have_one_winner(stack):
    first, second = stack.instances
    for round_number in range(5):
        key = f"race-{round_number}-{uuid.uuid4().hex[:6]}"
        status, headers, _ = request(stack, "PUT", f"/cache/{key}", b"v0")
        assert status == 201
        version = headers["etag"]
        start = threading.Barrier(2, timeout=10)
        answers = {}

        def write(instance, value):
            start.wait()
            answers[instance.name] = instance.client.http_call("PUT", f"/cache/{key}", value, {"If-Match": version})

        threads = [threading.Thread(target=write, args=(inst, inst.name.encode())) for inst in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(answer.status for answer in answers.values()) == [200, 412], answers
        winner = next(name for name, answer in answers.items() if answer.status == 200)
        loser = next(answer for answer in answers.values() if answer.status == 412)
        winning_version = answers[winner].header("etag")
        assert orjson.loads(loser.body)["current_version"] == winning_version.strip('"')
        for instance in stack.instances:
            read = instance.client.http_call("GET", f"/cache/{key}?consistency=strong")
            assert (read.status, read.body, read.header("etag")) == (200, winner.encode(), winning_version)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("OPTIONS", "/cache/a", b"x", 405, "method_not_allowed"),
        ("PATCH", "/cache/a?ttl=soon", b"", 400, "invalid_ttl"),
        ("PUT", "/cache/a?ttl=-1", b"x", 400, "invalid_ttl"),
        ("POST", "/cache", b"[1,", 400, "invalid_json"),
        ("PUT", "/cache/big", b"v" * 5_800_000, 413, "value_too_large"),  # the function's limit
        ("PUT", "/cache/huge", b"v" * (MAX_BODY_BYTES + 1), 413, "payload_too_large"),  # the gateway's
    ],
)
def test_client_mistakes_are_4xx_json_through_the_gateway(stack, method, path, body, status, code):
    got_status, headers, got_body = request(stack, method, path, body)
    assert got_status == status
    assert headers["content-type"] == "application/json"
    assert orjson.loads(got_body)["error"] == code


def test_repeated_client_headers_reach_the_function_joined(stack):
    # The FDK keeps only the last of repeated headers; the gateway joins them first, as HTTP allows.
    # Collapsed, this would be an ordinary If-Match write; joined, the function sees two versions.
    status, body = _split(_raw(stack, b"PUT /cache/twice HTTP/1.1\r\nHost: h\r\nIf-Match: \"0-1\"\r\n"
                                      b"If-Match: \"0-2\"\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"))
    assert status == 400 and orjson.loads(body)["error"] == "invalid_precondition"


def _split(raw: bytes) -> tuple[int, bytes]:
    head, body = raw.split(b"\r\n\r\n", 1)
    return int(head.split(b" ", 2)[1]), body


def test_malformed_requests_get_json_errors_and_the_gateway_keeps_serving(stack):
    garbage = _raw(stack, b"garbage\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 ")
    assert orjson.loads(garbage.split(b"\r\n\r\n", 1)[1])["error"] == "bad_request"
    bad_length = _raw(stack, b"PUT /cache/x HTTP/1.1\r\nHost: h\r\nContent-Length: lots\r\n\r\n")
    assert bad_length.startswith(b"HTTP/1.1 400 ")
    long_line = _raw(stack, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
    assert long_line.startswith(b"HTTP/1.1 414 ")
    chunked = _raw(stack, b"PUT /cache/chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                          b"Connection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert chunked.split(b" ", 2)[1] in (b"200", b"201")
    status, _, body = request(stack, "GET", "/cache/chunked?consistency=strong")
    assert (status, body) == (200, b"abcde")


def test_when_every_instance_stays_busy_the_gateway_answers_503(stack, monkeypatch):
    monkeypatch.setattr(stack.gateway, "busy_wait_s", 0.2)
    pool = stack.gateway.pool
    held = [pool.acquire(1), pool.acquire(1)]  # what two long-running requests would do
    try:
        status, headers, body = request(stack, "GET", "/health")
    finally:
        for instance in held:
            pool.release(instance)
    assert status == 503 and headers["retry-after"] == "1"
    assert orjson.loads(body)["error"] == "busy"
    assert request(stack, "GET", "/health")[0] == 200


def test_a_dead_instance_is_never_handed_a_request_and_leaves_the_rotation(broker):
    with DevStack(port=0, instances=2, dispatch=Dispatch.ROUND_ROBIN,
                  log_url=broker.log_url(_new_topic(broker))) as running:
        victim, survivor = running.instances
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.exited_within(5)
        # The exited instance is never handed a request: every one (writes included) goes to the
        # survivor instead of a 502. (Refused connections: the next test.)
        statuses = [request(running, "PUT", f"/cache/after-kill-{n}", b"v")[0] for n in range(4)]
        assert statuses == [201] * 4, statuses
        assert request(running, "GET", "/health")[0] == 200
        assert running.gateway.pool.live() == [survivor]
        socket_dir = running.socket_dir
    assert not os.path.exists(socket_dir)


def test_an_instance_that_refuses_the_connection_is_passed_over(broker):
    with DevStack(port=0, instances=2, dispatch=Dispatch.ROUND_ROBIN,
                  log_url=broker.log_url(_new_topic(broker))) as running:
        refusing = running.instances[0]
        refusing.client.close()
        os.unlink(refusing.socket_path)  # alive, but its socket refuses: as a container that is going away
        statuses = [request(running, "PUT", f"/cache/refused-{n}", b"v")[0] for n in range(4)]
        assert statuses == [201] * 4, statuses


def test_a_stack_with_its_own_broker_stops_without_leftovers():
    stack = DevStack(port=0, instances=2, dispatch=Dispatch.ROUND_ROBIN, partitions=2).start()
    try:
        assert request(stack, "PUT", "/cache/k", b"v")[0] == 201
        pids = [stack.broker.process.pid] + [instance.pid for instance in stack.instances]
        sockets = [path for instance in stack.instances for path in (instance.socket_path, instance.phony_path)]
        assert all(os.path.exists(path) for path in sockets)
        address = stack.gateway.server_address[:2]
    finally:
        stack.stop()
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # stopped and reaped, not a zombie
            os.kill(pid, 0)
    assert not any(os.path.lexists(path) for path in sockets)
    assert not os.path.exists(stack.socket_dir)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(address, timeout=2).close()


def test_a_taken_port_fails_before_anything_starts(stack):
    port = stack.gateway.server_address[1]
    with pytest.raises(OSError):
        DevStack(port=port, instances=1).start()


FAILING_FUNCTION = """
import time
def handler(ctx, data=None):
    body = data.getvalue()
    if body.startswith(b"slow "):
        time.sleep(float(body[5:]))  # a handler slower than the function timeout
        return "late"
    raise RuntimeError("kaboom")
"""


def test_a_crashing_or_slow_handler_becomes_a_502_or_504_json_answer(tmp_path):
    function = tmp_path / "func.py"
    function.write_text(FAILING_FUNCTION)
    socket_dir = tempfile.mkdtemp(prefix="sc-t-", dir="/tmp")
    instance = start_instance("fn1", socket_dir, {}, function_path=function)
    gateway = GatewayServer(Pool([instance]), port=0, call_timeout_s=0.3).start()
    try:
        status, _, body = request(gateway, "POST", "/anything", b"boom")
        assert status == 502 and orjson.loads(body)["error"] == "function_error"
        assert "kaboom" in orjson.loads(body)["message"]
        status, _, body = request(gateway, "POST", "/anything", b"slow 0.8")
        assert status == 504 and orjson.loads(body)["error"] == "function_timeout"
        assert gateway.pool.live() == [instance]  # a failed call is not a dead instance
    finally:
        gateway.stop()
        instance.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)
    assert any("kaboom" in line for line in instance.stderr_lines())  # the FDK logged the traceback


def test_plain_curl_long_polls_the_change_feed_through_the_gateway(stack):
    """A client with neither Kafka nor a stream token follows the changes: curl waits on /changes
    (real FDK instances, Tansu) and receives a write made meanwhile through the gateway."""
    host, port = stack.gateway.server_address[:2]
    status, _, body = request(stack, "GET", "/changes")
    assert status == 200
    token = orjson.loads(body)["next"]
    curl = subprocess.Popen(["curl", "-sS", "--max-time", "25", f"http://{host}:{port}/changes?after={token}&wait=15"],
                            stdout=subprocess.PIPE)
    try:
        assert request(stack, "PUT", "/cache/feed/one", b"1", {"Content-Type": "text/plain"})[0] == 201
        out, _ = curl.communicate(timeout=30)
    finally:
        curl.kill()
    answer = orjson.loads(out)
    assert [change["event"]["subject"] for change in answer["changes"]] == ["feed/one"]
    status, _, body = request(stack, "GET", f"/changes?after={answer['next']}")
    assert (status, orjson.loads(body)["changes"]) == (200, [])
