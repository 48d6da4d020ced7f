"""A write whose outcome is unknown raises ``OutcomeUnknown`` from the client, and is never retried:
the answers of a real stack whose stream's answers are cut by the fault proxy (503
``outcome_unknown``), and a write sent to a server that never answers (``UnansweredWrite``). A write
that certainly never left (connection refused) stays a plain ``Unreachable``. The same for batches,
over both transports: one holding a write or an increment whose answer was lost is OutcomeUnknown."""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest
from support.client_checks import unique
from support.fault_proxy import FETCH, LIST_OFFSETS, PRODUCE, start_proxied_broker

from streamcache import Client, Op, OutcomeUnknown, ServerError, UnansweredWrite, Unavailable, Unreachable
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


@pytest.mark.parametrize("transport", ["http", "invoke"])
def test_a_write_that_never_left_is_only_unreachable(closed_port, sleeps, invoke_client, transport):
    url = f"http://127.0.0.1:{closed_port}"
    with (invoke_client(endpoint=url, retries=1, sleep=sleeps) if transport == "invoke"
          else Client(url, retries=1, sleep=sleeps)) as client:
        for write in (lambda: client.put("k", b"v", if_none_match=True), lambda: client.delete("k"),
                      lambda: client.increment("n"), lambda: client.batch([Op.increment("n"), Op.put("k", b"v")])):
            with pytest.raises(Unreachable) as raised:
                write()
            assert not isinstance(raised.value, OutcomeUnknown)


# ---- batches --------------------------------------------------------------------------------------
# A batch holding a write or an increment whose answer was lost is OutcomeUnknown, never retried: a
# plain Unreachable would say "safe to retry", and retrying would count an increment twice.


@pytest.fixture(params=["http", "invoke"])
def silent_client(request, silent_port, sleeps, invoke_client):
    """A client (over each transport) of a server that takes every request and never answers."""
    url = f"http://127.0.0.1:{silent_port}"
    if request.param == "invoke":
        yield invoke_client(endpoint=url, timeout=0.3, retries=2, sleep=sleeps)
    else:
        with Client(url, timeout=0.2, retries=2, sleep=sleeps) as client:
            yield client


@pytest.mark.parametrize("write", [Op.increment("n", 5), Op.put("k", b"v"), Op.delete("k")], ids=["incr", "put", "delete"])
def test_a_batch_whose_write_was_sent_without_an_answer_is_outcome_unknown_and_not_retried(silent_client, sleeps, write):
    with pytest.raises(OutcomeUnknown) as raised:
        silent_client.batch([write, Op.get("n")])  # one call, sent: its write may have run
    assert isinstance(raised.value, UnansweredWrite) and raised.value.status == 0
    assert sleeps.delays == []  # not retried: the caller must look first


def test_a_batch_of_reads_without_an_answer_is_only_unreachable_and_retried(silent_client, sleeps):
    with pytest.raises(Unreachable) as raised:
        silent_client.batch([Op.get("n"), Op.list("n")])
    assert not isinstance(raised.value, OutcomeUnknown) and len(sleeps.delays) == 2


@contextlib.contextmanager
def scripted_server(*answers: tuple[int, dict]):
    """A real HTTP server that answers its first requests with ``answers`` (status, JSON body), in
    order, then takes every later request and never answers it (until the test ends)."""
    script, done = list(answers), threading.Event()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_any(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not script:
                done.wait()  # the answer is lost: the client times out
                return
            status, doc = script.pop(0)
            body = orjson.dumps(doc)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_any

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        done.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_batch_whose_increments_ran_and_a_later_answer_was_lost_is_outcome_unknown(sleeps):
    # Over HTTP a batch travels 100 operations per POST: the first call's increments are answered,
    # then the second call is not. The batch raises, so the caller never sees the increments'
    # answers: retrying would count them twice.
    counted = {"status": 201, "key": "n", "version": "0-1", "expires_at": None, "value": 5}
    with scripted_server((200, [counted] * 100)) as url, Client(url, timeout=0.2, retries=2, sleep=sleeps) as client:
        with pytest.raises(OutcomeUnknown) as raised:
            client.batch([Op.increment("n", 5)] * 100 + [Op.get("n")])
    assert isinstance(raised.value, UnansweredWrite) and "100 operation" in raised.value.message


def test_a_platform_timeout_of_a_batch_with_a_write_is_outcome_unknown(invoke_client, sleeps):
    # OCI's 504 FunctionInvokeTimeout to the whole invoke: the function may have run the batch.
    timeout = {"code": "FunctionInvokeTimeout", "message": "Timed out"}
    with scripted_server((504, timeout), (504, timeout)) as url:
        client = invoke_client(endpoint=url, retries=2, sleep=sleeps)
        with pytest.raises(OutcomeUnknown) as raised:
            client.batch([Op.get("n"), Op.increment("n")])
        assert (raised.value.status, raised.value.code) == (504, "FunctionInvokeTimeout")
        with pytest.raises(ServerError) as raised:  # a read-only batch: nothing may have changed
            client.batch([Op.get("n")])
        assert not isinstance(raised.value, OutcomeUnknown)
    assert sleeps.delays == []
