"""Atomic counters through the gateway: concurrent increments spread over instances never lose one,
every instance and a fresh one after a cold start agree, and an increment that cannot apply (not a
number, past the signed 64-bit range) answers 409 and changes nothing, on every path (HTTP, a direct
invoke, the Python client, the CLI)."""

from __future__ import annotations

import threading
import uuid

import orjson
import pytest

from streamcache import Client, Conflict
from streamcache.cli import main as cli
from streamcache_local.dev import DevStack
from streamcache_local.pool import Dispatch
from streamcache_local.fn_runner import start_instance
from support.gateway import request
from support.history import INCR, READ, History, check

CLIENTS, INCREMENTS = 8, 50


@pytest.fixture(scope="module")
def three(broker, tmp_path_factory):
    topic = f"counters-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 3)
    with DevStack(port=0, instances=3, dispatch=Dispatch.ROUND_ROBIN, log_url=broker.log_url(topic)) as stack:
        yield stack


def test_concurrent_increments_over_three_instances_lose_none(three, tmp_path):
    key = f"hits-{uuid.uuid4().hex[:8]}"
    errors: list[BaseException] = []

    def count() -> None:
        try:
            with Client(three.url, retries=0) as client:
                for _ in range(INCREMENTS):
                    client.increment(key)
        except BaseException as exc:  # reported below: a thread must not swallow a failure
            errors.append(exc)

    threads = [threading.Thread(target=count) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and not any(t.is_alive() for t in threads)

    total = str(CLIENTS * INCREMENTS).encode()
    for instance in three.instances:  # each instance, asked directly, after catching up
        answer = instance.client.http_call("GET", f"/cache/{key}?consistency=strong")
        assert (answer.status, answer.body) == (200, total), instance.name
    fresh = start_instance("fresh", str(tmp_path), three.function_config())  # a cold start replays it all
    try:
        answer = fresh.client.http_call("GET", f"/cache/{key}")
        assert (answer.status, answer.body) == (200, total)
    finally:
        fresh.stop()


def test_increments_answer_the_new_value_and_refuse_what_cannot_count(three, capsys):
    key = f"c-{uuid.uuid4().hex[:8]}"
    status, headers, body = request(three, "POST", f"/cache/{key}?increment=5&ttl=60")
    assert status == 201 and orjson.loads(body)["value"] == 5 and headers["etag"]
    status, _, body = request(three, "POST", f"/cache/{key}?increment=-7")
    assert status == 200 and orjson.loads(body)["value"] == -2
    assert request(three, "GET", f"/cache/{key}?consistency=strong")[2] == b"-2"  # its decimal text

    before = request(three, "GET", f"/cache/{key}?consistency=strong")[1]["etag"]
    status, _, body = request(three, "POST", f"/cache/{key}?increment=-9223372036854775807")  # -2 - (2**63 - 1)
    assert (status, orjson.loads(body)["error"]) == (409, "overflow")
    assert request(three, "GET", f"/cache/{key}?consistency=strong")[1]["etag"] == before  # nothing changed

    text = f"t-{uuid.uuid4().hex[:8]}"
    request(three, "PUT", f"/cache/{text}", b"hello", {"Content-Type": "text/plain"})
    status, _, body = request(three, "POST", f"/cache/{text}?increment=1")
    assert (status, orjson.loads(body)["error"]) == (409, "not_a_number")
    assert request(three, "GET", f"/cache/{text}?consistency=strong")[2] == b"hello"

    invoked = request(three, "POST", "/20181201/functions/cache/actions/invoke",
                      orjson.dumps({"operation": "INCR", "key": key, "by": 3}))
    assert orjson.loads(invoked[2])["value"] == 1
    with Client(three.url) as client:
        assert client.increment(key, by=10) == 11
        with pytest.raises(Conflict):
            client.increment(text)
    assert cli.main(["--url", three.url, "incr", key, "--by", "-1"]) == 0
    assert capsys.readouterr().out.strip() == "10"


def test_increments_and_strong_reads_through_the_gateway_are_linearizable(three):
    """Clients increment and read (strongly) two counters through the gateway, which spreads them over
    three instances; the history checker finds an order that explains every answer."""
    history = History()
    keys = [f"lin-{uuid.uuid4().hex[:6]}-{n}" for n in range(2)]

    def client(number: int) -> None:
        for step in range(30):
            key = keys[(number + step) % 2]
            if step % 3 == 2:
                op = history.invoke(number, READ, key)
                status, headers, body = request(three, "GET", f"/cache/{key}?consistency=strong")
                history.ok(op, None if status == 404 else (body.decode(), headers["etag"].strip('"')))
            else:
                op = history.invoke(number, INCR, key, by=1)
                status, _, body = request(three, "POST", f"/cache/{key}?increment=1")
                answer = orjson.loads(body)
                history.ok(op, (status, answer["version"], answer["value"]))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for instance in three.instances:  # and nothing acknowledged is lost: a final strong read everywhere
        for key in keys:
            op = history.invoke(99, READ, key)
            answer = instance.client.http_call("GET", f"/cache/{key}?consistency=strong")
            history.ok(op, (answer.body.decode(), answer.header("etag").strip('"')))
    verdict = check(history.ops)
    assert verdict, str(verdict)
    assert verdict.ops_checked == 4 * 30 + 3 * 2
