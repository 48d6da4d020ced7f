"""The client and the CLI read their own writes through a gateway that spreads requests over instances
(session positions), values, deletes and listings alike, even when the instances would otherwise
answer from a table up to an hour old."""

from __future__ import annotations

import uuid

import pytest

from streamcache import Client, NotFound
from streamcache.cli import main as cli
from streamcache_local.dev import DevStack
from streamcache_local.pool import Dispatch

REGION = "us-phoenix-1"
HOUR_MS = "3600000"


@pytest.fixture(scope="module")
def lagging_stack(broker):
    """Two instances that catch up with the stream only once an hour (unless a read asks for more)."""
    topic = f"session-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 3)
    with DevStack(port=0, instances=2, dispatch=Dispatch.ROUND_ROBIN, log_url=broker.log_url(topic),
                  config={"STREAMCACHE_STALENESS_MS": HOUR_MS}) as s:
        yield s


@pytest.mark.parametrize("transport", ["http", "invoke"])
def test_a_client_reads_its_own_writes_and_deletes_on_every_instance(lagging_stack, signer, transport):
    client = Client(lagging_stack.url) if transport == "http" else Client.for_function(
        "cache", lagging_stack.url, config={"region": REGION}, signer=signer)
    prefix = f"own-{transport}-{uuid.uuid4().hex[:6]}/"
    with client:
        for n in range(20):  # the gateway takes turns: every other request lands on the other instance
            client.put(prefix + "k", f"v{n}".encode())
            assert client.get(prefix + "k").value == f"v{n}".encode()
        client.delete(prefix + "k")
        for _ in range(4):
            with pytest.raises(NotFound):
                client.get(prefix + "k")
        for n in range(6):
            client.put(f"{prefix}new-{n}", b"x")
            assert [info.key for info in client.list(prefix)] == [f"{prefix}new-{i}" for i in range(n + 1)]


def test_another_client_sees_them_once_it_joins_the_session(lagging_stack):
    key = f"shared-{uuid.uuid4().hex[:8]}"
    with Client(lagging_stack.url) as writer, Client(lagging_stack.url) as reader:
        writer.put(key, b"1")
        assert reader.get(key).value == b"1"  # a miss is checked against the stream
        writer.put(key, b"2")
        reader.join_session(writer.session)
        for _ in range(4):
            assert reader.get(key).value == b"2"


def test_the_cli_reads_its_own_writes_across_commands(lagging_stack, capsysbinary):
    key = f"cli-{uuid.uuid4().hex[:8]}"
    url = ["--url", lagging_stack.url]
    for n in range(6):
        assert cli.main([*url, "put", key, f"v{n}"]) == 0
        capsysbinary.readouterr()
        assert cli.main([*url, "get", key]) == 0
        assert capsysbinary.readouterr().out == f"v{n}".encode()
    assert cli.main([*url, "delete", key]) == 0
    assert cli.main([*url, "get", key]) == 1  # deleted, on whichever instance answers


def test_a_stale_cli_session_from_another_stream_is_dropped_not_fatal(lagging_stack, capsysbinary, tmp_path,
                                                                      monkeypatch):
    session = tmp_path / "session"
    session.write_text("0-999999,1-999999,2-999999\n")  # a previous streamcache dev's stream, far ahead
    monkeypatch.setenv("STREAMCACHE_SESSION_FILE", str(session))
    key = f"stale-{uuid.uuid4().hex[:8]}"
    assert cli.main(["--url", lagging_stack.url, "get", key]) == 1  # a plain 404, not a 400
    assert not session.exists()
    assert cli.main(["--url", lagging_stack.url, "get", key, "--after", "0-999999"]) == 2  # given by hand: an error
    assert b"position_not_reached" in capsysbinary.readouterr().err
