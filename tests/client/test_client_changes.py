"""Client.changes: the change feed from /changes, over HTTP and over direct invokes through the real
OCI SDK (checked against the operations schema), against the local topology (real FDK instances,
Tansu). The feed's own rules (tokens, paging, 410, the wait bound) are in tests/cache/test_changes.py."""

from __future__ import annotations

import threading

import pytest
from support.client_checks import unique

from streamcache import BadRequest, Change, Client


@pytest.fixture(params=["http", "invoke"])
def client(request, stack, invoke_client) -> Client:
    if request.param == "http":
        with Client(stack.url) as http:
            yield http
    else:
        yield invoke_client()


def test_the_feed_so_far_in_order_then_it_stops_when_not_following(client):
    prefix = unique("feed") + "/"
    client.put(prefix + "a", b"1")
    client.put(prefix + "a", b"2")
    client.put(prefix + "b", b"3")
    client.delete(prefix + "a")

    seen = list(client.changes("earliest", prefix, follow=False))
    assert all(isinstance(change, Change) for change in seen)
    assert [(c.event["subject"], c.event["type"].split(".")[-2]) for c in seen if c.event["subject"].endswith("a")] \
        == [(prefix + "a", "put"), (prefix + "a", "put"), (prefix + "a", "delete")]
    assert sorted({c.event["subject"] for c in seen}) == [prefix + "a", prefix + "b"]
    assert list(client.changes(seen[-1].token, prefix, follow=False)) == []


def test_following_receives_a_write_made_while_it_waits(client, stack):
    prefix = unique("follow") + "/"
    client.put(prefix + "first", b"1")
    token = list(client.changes("earliest", prefix, follow=False))[-1].token
    feed = client.changes(token, prefix, wait=8)
    received: list[Change] = []
    reader = threading.Thread(target=lambda: received.append(next(feed)))
    reader.start()
    with Client(stack.url) as writer:
        writer.put(prefix + "second", b"2")
    reader.join(timeout=30)
    assert [c.event["subject"] for c in received] == [prefix + "second"]


def test_a_bad_token_is_a_clear_bad_request(client):
    with pytest.raises(BadRequest) as refused:
        next(client.changes("yesterday"))
    assert refused.value.status == 400 and refused.value.code == "invalid_token"


def test_an_increment_in_the_feed_is_an_increment_with_its_delta(client):
    prefix = unique("counted") + "/"
    client.put(prefix + "visits", b"10")
    client.increment(prefix + "visits", by=5)
    client.delete(prefix + "visits")
    seen = list(client.changes("earliest", prefix, follow=False))
    assert [(c.key, c.kind, c.by) for c in seen] == [
        (prefix + "visits", "put", None), (prefix + "visits", "increment", 5), (prefix + "visits", "delete", None)]
