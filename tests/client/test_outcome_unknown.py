"""A write whose outcome is unknown raises ``OutcomeUnknown`` from the client, and is never retried:
the answers of a real stack whose stream's answers are cut by the fault proxy (503
``outcome_unknown``), and a write sent to a server that never answers (``UnansweredWrite``). A write
that certainly never left (connection refused) stays a plain ``Unreachable``."""

from __future__ import annotations

import pytest
from support.client_checks import unique
from support.fault_proxy import FETCH, LIST_OFFSETS, PRODUCE, start_proxied_broker

from streamcache import Client, OutcomeUnknown, UnansweredWrite, Unavailable, Unreachable
from streamcache_local.dev import DevStack


@pytest.fixture(scope="module")
def cut_stack():
    """One instance whose stream sits behind a fault proxy; appends give up after a second."""
    broker, proxy = start_proxied_broker()
    try:
        broker.create_topic("unknown", 3)
        with DevStack(port=0, instances=1, log_url=broker.log_url("unknown"),
                      config={"STREAMCACHE_APPEND_TIMEOUT_MS": "1000"}) as running:
            yield running, proxy
    finally:
        proxy.stop()
        broker.stop()


def _lose_every_answer(proxy) -> None:
    """Every produce is forwarded and its answer cut; the look on the stream for it fails too."""
    for api in (PRODUCE, FETCH, LIST_OFFSETS):
        proxy.drop_answers(api, count=1000)


@pytest.mark.parametrize("conditional", [True, False])
def test_a_write_whose_answer_was_lost_raises_outcome_unknown_and_is_not_retried(cut_stack, sleeps, conditional):
    stack, proxy = cut_stack
    key = unique()
    with Client(stack.url, retries=3, sleep=sleeps) as client:
        _lose_every_answer(proxy)
        try:
            with pytest.raises(OutcomeUnknown) as raised:
                client.put(key, b"maybe", if_none_match=conditional)
        finally:
            proxy.clear()
        assert (raised.value.status, raised.value.code) == (503, "outcome_unknown")
        assert isinstance(raised.value, Unavailable)  # what callers catching Unavailable already get
        assert sleeps.delays == []  # not retried: the caller must look first
        # Looking tells: the producer's retries did land it (the proxy forwarded every attempt).
        assert client.get(key, consistency="strong").value == b"maybe"


def test_a_write_sent_without_an_answer_is_an_unanswered_write(silent_port, sleeps):
    with Client(f"http://127.0.0.1:{silent_port}", timeout=0.2, retries=2, sleep=sleeps) as client:
        with pytest.raises(UnansweredWrite) as raised:
            client.put("k", b"v", if_match="1-1")
    assert isinstance(raised.value, OutcomeUnknown) and isinstance(raised.value, Unreachable)
    assert raised.value.status == 0 and sleeps.delays == []


def test_a_write_that_never_left_is_only_unreachable(closed_port, sleeps):
    with Client(f"http://127.0.0.1:{closed_port}", retries=1, sleep=sleeps) as client:
        for write in (lambda: client.put("k", b"v", if_none_match=True), lambda: client.delete("k")):
            with pytest.raises(Unreachable) as raised:
                write()
            assert not isinstance(raised.value, OutcomeUnknown)
