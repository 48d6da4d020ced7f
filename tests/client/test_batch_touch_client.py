"""Pipelined batches and touch through the real stack (a Tansu broker, two FDK instances behind the
gateway and the invoke API), with the client over both transports, curl and the CLI: batch
outcomes in log order under concurrent writers, touch racing a put, bad TTLs answered 400."""

from __future__ import annotations

import subprocess
import threading
from datetime import datetime, timezone

import orjson
import pytest
from support.client_checks import unique

from streamcache import Client, NotFound, Op, PreconditionFailed
from streamcache.cli import main as cli
from streamcache.core import records


@pytest.fixture(params=["http", "invoke"])
def client(request, stack, invoke_client):
    if request.param == "invoke":
        yield invoke_client()
    else:
        with Client(stack.url) as made:
            yield made


def test_put_many_get_many_delete_many_round_trip_on_both_transports(client):
    prefix = unique("many")
    values = {f"{prefix}/{n}": f"v{n}".encode() for n in range(150)}  # two calls: 100 + 50
    written = client.put_many(values, ttl=300)
    assert [w.created for w in written] == [True] * 150 and all(w.expires_at for w in written)
    got = client.get_many([*values, f"{prefix}/absent"])
    assert {k: i.value for k, i in got.items() if i is not None} == values and got[f"{prefix}/absent"] is None
    assert client.delete_many([f"{prefix}/0", f"{prefix}/absent"]) == [True, False]
    assert client.get_many([f"{prefix}/0"]) == {f"{prefix}/0": None}


def test_touch_changes_the_expiry_not_the_value_or_version_on_both_transports(client):
    key = unique("touch")
    put = client.put(key, b"kept", ttl=5)
    touched = client.touch(key, 3600)
    assert touched.version == put.version and touched.expires_at > put.expires_at
    item = client.get(key, consistency="strong")
    assert (item.value, item.version) == (b"kept", put.version)
    assert abs((item.expires_at - touched.expires_at).total_seconds()) < 1  # HTTP's Expires: whole seconds
    assert client.touch(key, None).expires_at is None and client.get(key).expires_at is None
    with pytest.raises(PreconditionFailed):
        client.touch(key, 60, if_match="0-999999")
    with pytest.raises(NotFound):
        client.touch(unique("absent"), 60)


def test_batch_outcomes_are_decided_in_log_order_under_concurrent_writers(stack):
    # Four clients send batches of increments of the same counters at once, through both instances:
    # every answer is the counter as its own record left it, so per key the answers, ordered by
    # version (log order), are exactly 1, 2, 3, ... with no value answered twice.
    keys = [unique("race") for _ in range(3)]
    answers: list[tuple[str, str, int]] = []
    lock = threading.Lock()

    def writer() -> None:
        with Client(stack.url) as c:
            for _ in range(5):
                ops = [Op.increment(key) for key in keys for _ in range(4)]
                got = c.batch(ops)
                for key in keys:  # two operations on one key keep their order within the batch
                    mine = [v for op, v in zip(ops, got) if op["key"] == key]
                    assert mine == sorted(mine) and len(set(mine)) == len(mine)
                with lock:
                    answers.extend((op["key"], "", value) for op, value in zip(ops, got))

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    with Client(stack.url) as c:
        for key in keys:
            values = sorted(v for k, _, v in answers if k == key)
            assert values == list(range(1, 81))  # 4 writers x 5 batches x 4: none lost, none twice
            assert c.get(key, consistency="strong").value == b"80"


def test_a_touch_racing_puts_is_decided_in_log_order_and_every_instance_agrees(stack):
    key = unique("touch-race")
    touched: list = []

    def toucher() -> None:
        with Client(stack.url) as c:
            for _ in range(30):
                try:
                    touched.append(c.touch(key, 600))
                except NotFound:
                    touched.append(None)

    thread = threading.Thread(target=toucher)
    thread.start()
    with Client(stack.url) as c:
        puts = [c.put(key, f"{n}".encode()) for n in range(30)]  # no TTL: only a touch gives one
    thread.join(60)
    versions = {p.version for p in puts}
    assert all(t is None or t.version in versions for t in touched)  # a touch names the value it found
    # Both instances (round robin) answer the same entry, the one log order decides.
    with Client(stack.url) as c:
        first, second = c.get(key, consistency="strong"), c.get(key, consistency="strong")
    assert (first.version, first.expires_at, first.value) == (second.version, second.expires_at, second.value)
    assert first.version == max(versions, key=records.parse_version)
    later_touches = [t for t in touched if t is not None and t.version == first.version]
    assert (first.expires_at is not None) == bool(later_touches)


@pytest.mark.parametrize("ttl", ["-1", "abc", "1e20", "0"])
def test_curl_patch_with_a_bad_ttl_is_400_with_a_json_body(stack, ttl):
    key = unique("curl")
    subprocess.run(["curl", "-sf", "-X", "PUT", "--data-binary", "v", f"{stack.url}/cache/{key}"], check=True,
                   capture_output=True)
    done = subprocess.run(["curl", "-s", "-X", "PATCH", "-w", "\n%{http_code}", f"{stack.url}/cache/{key}?ttl={ttl}"],
                          check=True, capture_output=True, text=True)
    body, status = done.stdout.rsplit("\n", 1)
    assert status == "400" and orjson.loads(body)["error"] == "invalid_ttl"


def test_curl_patch_and_the_cli_touch(stack, capsysbinary):
    key = unique("cli")
    subprocess.run(["curl", "-sf", "-X", "PUT", "--data-binary", "v", f"{stack.url}/cache/{key}"], check=True,
                   capture_output=True)
    done = subprocess.run(["curl", "-sf", "-X", "PATCH", f"{stack.url}/cache/{key}?ttl=90"], check=True,
                          capture_output=True, text=True)
    assert orjson.loads(done.stdout)["expires_at"] is not None
    assert cli.main(["--url", stack.url, "touch", key, "--ttl", "120"]) == 0
    printed = orjson.loads(capsysbinary.readouterr().out)
    expires = datetime.fromisoformat(printed["expires_at"].replace("Z", "+00:00"))
    assert 100 < (expires - datetime.now(timezone.utc)).total_seconds() <= 120
    assert cli.main(["--url", stack.url, "touch", key, "--no-expiry"]) == 0
    assert orjson.loads(capsysbinary.readouterr().out)["expires_at"] is None
    assert cli.main(["--url", stack.url, "touch", unique("absent"), "--ttl", "5"]) != 0
