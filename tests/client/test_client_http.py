"""``streamcache.Client`` over HTTP against the running local topology (gateway -> two FDK instances
-> Tansu), and against places that answer nothing: typed results and errors, retries, connections."""

from __future__ import annotations

import http.client
import select
import subprocess
from pathlib import Path
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from support.client_checks import Sleeps, unique, wait_for

import streamcache
from streamcache import (BadRequest, Client, Item, KeyInfo, NotFound, PreconditionFailed, Unavailable, Unreachable,
                         ValueTooLarge, WriteResult)
from streamcache_local.broker import free_port, start_broker
from streamcache_local.dev import DevStack


def test_done_when_put_then_get_prints_the_bytes(stack):
    # The command, with the test stack's URL instead of the default port.
    code = f'import streamcache; c = streamcache.Client("{stack.url}"); c.put("a", b"1"); print(c.get("a").value)'
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "b'1'\n", "")


def test_the_readme_example_for_another_project_runs_as_written(stack):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    (example,) = [b for b in blocks if b.startswith("from streamcache import Client")]
    code = example.replace('"http://127.0.0.1:8080"', repr(stack.url))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "b'queued'\n", "")


def test_values_come_back_byte_exact_with_their_type_version_and_expiry(http_client):
    key = unique()
    every_byte = bytes(range(256)) * 3
    written = http_client.put(key, every_byte, ttl=60, content_type="image/x-test")
    assert isinstance(written, WriteResult) and written.created and written.key == key
    item = http_client.get(key)
    assert isinstance(item, Item)
    assert (item.value, item.content_type, item.version) == (every_byte, "image/x-test", written.version)
    # HTTP carries the expiry as an HTTP-date (whole seconds, rounded down); the put answered it exactly.
    assert item.expires_at == written.expires_at.replace(microsecond=0)
    assert timedelta(seconds=55) < written.expires_at - datetime.now(timezone.utc) <= timedelta(seconds=60)
    assert not item.stale

    replaced = http_client.put(key, "héllo")  # a str is stored as UTF-8 text
    assert not replaced.created and replaced.version != written.version and replaced.expires_at is None
    again = http_client.get(key, consistency="strong")
    assert again.value == "héllo".encode() and again.text() == "héllo"
    assert again.content_type == "text/plain; charset=utf-8" and again.expires_at is None


def test_json_values_are_stored_as_sent(http_client):
    key = unique()
    http_client.put(key, b'{ "a": [1, 2.50] }', content_type="application/json")
    item = http_client.get(key)
    assert item.value == b'{ "a": [1, 2.50] }' and item.json() == {"a": [1, 2.5]}


@pytest.mark.parametrize("key", ["a/b c", "q?x=1&y=2#frag", "100%", "ünï/😀", "+plus", "..", "/leading"])
def test_keys_are_percent_encoded_whole(http_client, key):
    key = f"{unique()}/{key}"
    http_client.put(key, b"v")
    assert http_client.get(key).key == key
    assert [info.key for info in http_client.list(prefix=key, consistency="strong")] == [key]
    assert http_client.delete(key) is True


def test_preconditions(http_client):
    key = unique()
    first = http_client.put(key, b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed) as failed:
        http_client.put(key, b"2", if_none_match=True)
    assert failed.value.status == 412 and failed.value.current_version == first.version
    second = http_client.put(key, b"2", if_match=first.version)
    with pytest.raises(PreconditionFailed) as stale:
        http_client.delete(key, if_match=first.version)
    assert stale.value.current_version == second.version
    assert http_client.put(key, b"3", if_match=f'"{second.version}"').version  # an ETag works as well
    with pytest.raises(PreconditionFailed) as absent:
        http_client.put(unique(), b"x", if_match="*")
    assert absent.value.current_version is None


def test_not_found_and_delete(http_client):
    key = unique()
    with pytest.raises(NotFound) as missing:
        http_client.get(key)
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert http_client.delete(key) is False
    http_client.put(key, b"v")
    assert http_client.delete(key) is True
    with pytest.raises(NotFound):
        http_client.get(key)


def test_a_client_reads_its_own_writes_whichever_instance_answers(stack):
    """The gateway alternates between two instances, and an instance that caught up less than the
    staleness bound ago answers from memory: every read carries the client's session positions, so
    the instance applies the client's writes first (tests/client/test_session_client.py shows the
    difference on instances an hour behind)."""
    with Client(stack.url) as client:
        sent = []
        original = client.transport.send
        client.transport.send = lambda op: sent.append(op) or original(op)
        for n in range(6):
            key = unique(f"ryw{n}")
            client.put(key, str(n))
            assert client.get(key).text() == str(n)
            client.delete(key)
            with pytest.raises(NotFound):
                client.get(key)
    reads = [op for op in sent if op["operation"] == "get"]
    assert len(reads) == 12 and all(op.get("after") for op in reads)


def test_list_iterates_every_page_lazily(stack):
    prefix = unique("list") + "/"
    keys = [f"{prefix}{n:02d}" for n in range(7)]
    sends = []
    with Client(stack.url) as client:
        for key in reversed(keys):
            client.put(key, key.encode(), ttl=600 if key.endswith("3") else None)
        original = client.transport.send
        client.transport.send = lambda op: sends.append(op) or original(op)
        listing = client.list(prefix, page_size=3, consistency="strong")
        first = next(listing)
        assert len(sends) == 1  # one page fetched so far
        rest = list(listing)
    infos = [first, *rest]
    assert [i.key for i in infos] == keys and all(isinstance(i, KeyInfo) and i.size == len(i.key) for i in infos)
    assert [i.expires_at is not None for i in infos] == [k.endswith("3") for k in keys]
    assert len(sends) == 3  # 3 + 3 + 1


@pytest.mark.parametrize("call, error, code", [
    (lambda c: c.put(unique(), b"v", ttl=-1), BadRequest, "invalid_ttl"),
    (lambda c: c.get("a\x01b"), BadRequest, "invalid_key"),
    (lambda c: c.get(""), BadRequest, "invalid_key"),
    (lambda c: c.put("", b"v"), BadRequest, "invalid_key"),
    (lambda c: c.get("x" * 600), BadRequest, "invalid_key"),
    (lambda c: c.put(unique(), b"v", if_match="no pe"), BadRequest, "invalid_version"),  # not even an entity-tag
    (lambda c: c.put(unique(), b"v", if_match="nope"), PreconditionFailed, "precondition_failed"),  # matches nothing
    (lambda c: list(c.list(page_size=0)), BadRequest, "invalid_limit"),
    (lambda c: c.get(unique(), consistency="eventual"), BadRequest, "invalid_consistency"),
    (lambda c: c.put(unique(), b"x" * 5_800_000), ValueTooLarge, "value_too_large"),
])
def test_refused_requests_raise_typed_errors(http_client, call, error, code):
    with pytest.raises(error) as raised:
        call(http_client)
    assert raised.value.code == code and raised.value.message and 400 <= raised.value.status < 500


def test_a_wrong_route_is_not_mistaken_for_a_missing_key(stack):
    with Client(stack.url + "/elsewhere") as client, pytest.raises(BadRequest) as raised:
        client.get("k")
    assert (raised.value.status, raised.value.code) == (404, "no_route")


def test_health(http_client):
    health = http_client.health()
    assert health["status"] == "serving" and health["instance"]


def test_one_client_serves_many_threads_over_a_few_kept_connections(stack):
    errors: list[BaseException] = []
    with Client(stack.url) as client:
        def work(n: int) -> None:
            try:
                for i in range(10):
                    key = f"threads-{n}-{i}"
                    client.put(key, str(i))
                    assert client.get(key).text() == str(i)
            except BaseException as exc:  # reported below, not lost in the thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert 1 <= len(client.transport._idle) <= 4


def test_the_connection_is_kept_and_reused(http_client):
    key = unique()
    http_client.put(key, b"v")
    conn = http_client.transport._idle[-1]
    http_client.get(key)
    assert http_client.transport._idle[-1] is conn and conn.sock is not None


# ---- a server that closes idle connections, and records what it was sent ----------------------


class _Recorder(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self._answer(b"v", "text/plain")

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(b'{"key": "k", "version": "0-2", "expires_at": null}', "application/json")

    def _answer(self, body: bytes, content_type: str) -> None:
        self.server.seen.append((self.command, self.path, dict(self.headers.items())))
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("ETag", '"0-1"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle(self) -> None:
        self.handle_one_request()  # one request per connection, then close it without a word

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def closing_server():
    """Answers every request, then closes the connection without saying so (as a server does with
    idle keep-alive connections). Records the requests."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    server.seen = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_a_connection_the_server_closed_is_not_reused(closing_server, sleeps):
    host, port = closing_server.server_address[:2]
    with Client(f"http://{host}:{port}", api_key="s3cret", sleep=sleeps) as client:
        assert client.get("k").value == b"v"
        kept = client.transport._idle[0]
        wait_for(lambda: _closed_by_peer(kept), what="the server closing the connection")
        # A conditional write is never retried: it only succeeds if no request goes into the dead socket.
        client.put("k", b"v", if_match="0-1")
    assert sleeps.delays == []
    assert [(method, path) for method, path, _ in closing_server.seen] == [("GET", "/cache/k"), ("PUT", "/cache/k")]
    headers = closing_server.seen[1][2]
    assert headers["Authorization"] == "Bearer s3cret" and headers["If-Match"] == '"0-1"'


def _closed_by_peer(conn: http.client.HTTPConnection) -> bool:
    return bool(select.select([conn.sock], [], [], 0)[0])


# ---- retries -----------------------------------------------------------------------------------


def test_connection_errors_are_retried_for_idempotent_calls_only(closed_port, sleeps):
    with Client(f"http://127.0.0.1:{closed_port}", retries=3, sleep=sleeps) as client:
        with pytest.raises(Unreachable) as raised:
            client.get("k")
        assert raised.value.status == 0 and "ConnectionRefusedError" in raised.value.message
        assert len(sleeps.delays) == 3
        assert all(0 <= delay <= 0.1 * 2 ** n for n, delay in enumerate(sleeps.delays))  # full jitter
        for idempotent in (lambda: client.put("k", b"v"), lambda: client.delete("k"), lambda: list(client.list())):
            with pytest.raises(Unreachable):
                idempotent()
        assert len(sleeps.delays) == 12
        for conditional in (lambda: client.put("k", b"v", if_none_match=True), lambda: client.delete("k", "1-1"),
                            lambda: client.put("k", b"v", if_match="*")):
            with pytest.raises(Unreachable):
                conditional()
        assert len(sleeps.delays) == 12


def test_a_server_that_never_answers_times_out(silent_port, sleeps):
    with Client(f"http://127.0.0.1:{silent_port}", timeout=0.2, retries=1, sleep=sleeps) as client:
        with pytest.raises(Unreachable) as raised:
            client.get("k")
    assert "timed out" in raised.value.message and len(sleeps.delays) == 1


def test_503_is_retried_honouring_retry_after_then_raised(unreachable_stream_stack, sleeps):
    with Client(unreachable_stream_stack.url, retries=2, sleep=sleeps) as client:
        with pytest.raises(Unavailable) as raised:
            client.get("k")
        assert (raised.value.status, raised.value.code, raised.value.retry_after) == (503, "stream_unavailable", 1.0)
        assert len(sleeps.delays) == 2 and all(delay >= 1.0 for delay in sleeps.delays)
        with pytest.raises(Unavailable):
            client.put("k", b"v", if_none_match=True)
        assert len(sleeps.delays) == 2  # a conditional write is not retried
    with Client(unreachable_stream_stack.url, retries=2, max_backoff=0.5, sleep=sleeps) as impatient:
        with pytest.raises(Unavailable):
            impatient.get("k")  # Retry-After 1 s is longer than it may wait: no retry
    assert len(sleeps.delays) == 2


def test_every_instance_busy_is_503_and_retried(busy, sleeps):
    with Client(busy.url, retries=1, sleep=sleeps) as client, pytest.raises(Unavailable) as raised:
        client.get("k")
    assert (raised.value.status, raised.value.code, raised.value.retry_after) == (503, "busy", 1.0)
    assert sleeps.delays and sleeps.delays[0] >= 1.0


def test_a_retried_read_succeeds_once_the_stream_is_back(broker):
    """The stream is away when the client first asks; the broker starts during the client's backoff."""
    port = free_port()
    started = []

    def start_the_stream(sleep_number: int) -> None:
        if not started:
            started.append(start_broker(port=port))
            started[0].create_topic("late", 1)

    with DevStack(port=0, instances=1, log_url=f"kafka://127.0.0.1:{port}/late", warm_up=False,
                  config={"STREAMCACHE_APPEND_TIMEOUT_MS": "500", "STREAMCACHE_STALENESS_MS": "0"}) as stack:
        try:
            sleeps = Sleeps(then=start_the_stream, cap=0.1)
            with Client(stack.url, retries=20, backoff=0.05, max_backoff=2.0, sleep=sleeps) as client:
                with pytest.raises(NotFound):
                    client.get("k")  # answered once the stream is reachable: no such key
                assert len(sleeps.delays) >= 1 and started
                client.put("k", b"v")
                started[0].process.kill()  # the stream goes away again (SIGTERM waits for its clients)
                started[0].process.wait(5)
                item = client.get("k")
                assert item.value == b"v" and item.stale
        finally:
            for running in started:
                running.stop()


def test_the_package_exports_the_client_and_its_types():
    for name in streamcache.__all__:
        assert getattr(streamcache, name)
    # Importing the package must stay cheap: the oci SDK is imported only by the invoke transport.
    done = subprocess.run([sys.executable, "-c", "import sys, streamcache; print('oci' in sys.modules)"],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout == "False\n"
