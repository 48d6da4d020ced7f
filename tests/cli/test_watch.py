"""``streamcache watch`` against a real broker: the command runs as its own process (as a user runs it)
and is stopped with Ctrl-C (SIGINT); errors and formatting are checked in-process."""

from __future__ import annotations

import contextlib
import queue
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from streamcache.cli import watch as cli_watch
from streamcache.adapters.kafka_log import KafkaLog
from streamcache.core import records
from streamcache.client.subscribe import ChangeEvent
from streamcache.core.value_refs import REF_CONTENT_TYPE, ref_for
from streamcache_local.stack_info import describe, is_stack_path, stack_answer

LINE_DEADLINE_S = 15.0  # generous: a slow CI machine; the latency itself is measured in bench/bench_watch.py


def put(log: KafkaLog, key: str, value: bytes, content_type: str = "text/plain", n: int = 0) -> records.Position:
    mutation = records.Put(key, value, content_type, f"req-{key}-{n}-{time.monotonic_ns()}", int(time.time() * 1000))
    return log.append(key, records.encode(mutation))


class Watcher:
    """A running ``streamcache watch`` process; lines of its stdout arrive on a queue."""

    def __init__(self, *args: str, sigint_ignored: bool = False) -> None:
        # A shell starts a background job (`cmd &`) with SIGINT ignored; the process inherits that.
        ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
        self.process = subprocess.Popen([sys.executable, "-m", "streamcache.cli.watch", "watch", *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                        preexec_fn=ignore)
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.stderr = ""

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def take(self, count: int) -> list[str]:
        """The next ``count`` lines; fails the test if they do not come within the deadline."""
        out, deadline = [], time.monotonic() + LINE_DEADLINE_S
        while len(out) < count:
            try:
                out.append(self.lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"watch printed {len(out)} of {count} lines; stderr: {self.stop()[1]}") from None
        return out

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        """Ctrl-C (or ``sig``), then wait: (exit status, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            _, self.stderr = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, self.stderr = self.process.communicate()
        self._reader.join(5)
        return self.process.returncode, self.stderr


@contextlib.contextmanager
def watching(*args: str, sigint_ignored: bool = False):
    watcher = Watcher(*args, sigint_ignored=sigint_ignored)
    try:
        yield watcher
    finally:
        watcher.stop()


def wait_until_subscribed(watcher: Watcher, log: KafkaLog) -> None:
    """A ``--from latest`` watcher only sees writes made after it subscribed: write a marker record
    until it shows up (the only way to know, from outside, that it is listening)."""
    deadline = time.monotonic() + LINE_DEADLINE_S
    while time.monotonic() < deadline:
        put(log, "_ready", b"?")
        try:
            while "_ready" not in watcher.lines.get(timeout=0.3):
                pass
            return
        except queue.Empty:
            continue
    raise AssertionError("watch never started listening")


def test_from_earliest_prints_every_write_in_order_per_key(stream):
    url, log = stream
    written = [(f"key-{i % 5}", f"value {i}") for i in range(40)]
    for n, (key, value) in enumerate(written[:20]):
        put(log, key, value.encode(), n=n)
    with watching("--from", "earliest", "--log-url", url) as watcher:
        first = watcher.take(20)
        for n, (key, value) in enumerate(written[20:], start=20):
            put(log, key, value.encode(), n=n)
        lines = first + watcher.take(20)
        code, err = watcher.stop()
    assert code == 0 and "resume with --from " in err
    seen = [(line.split()[3], line.split("  ")[-1].strip('"')) for line in lines]
    for key in {k for k, _ in written}:
        assert [v for k, v in seen if k == key] == [v for k, v in written if k == key]
    assert all(line.split()[2] == "put" for line in lines)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_watch_started_in_the_background_stops_on_a_signal_with_its_resume_token(stream, sig):
    url, log = stream
    put(log, "bg", b"1", n=0)
    with watching("--from", "earliest", "--log-url", url, sigint_ignored=True) as watcher:
        assert watcher.take(1)[0].split()[3] == "bg"  # running, and past its start
        code, err = watcher.stop(sig)
    assert code == 0 and "resume with --from " in err


def test_json_mode_prints_one_change_event_per_line(stream):
    url, log = stream
    position = put(log, "user/1", b'{"name":"Ada"}', "application/json")
    log.append("user/1", records.encode(records.Delete("user/1", "req-del", 1_800_000_000_000, records.IF_EXISTS)))
    with watching("--from", "earliest", "--json", "--log-url", url) as watcher:
        first, second = (orjson.loads(line) for line in watcher.take(2))
    assert first["position"] == str(position) and first["kind"] == "put" and first["key"] == "user/1"
    assert first["value"] == '{"name":"Ada"}' and first["content_type"] == "application/json"
    assert second == ChangeEvent(records.Position(position.partition, position.offset + 1),
                                 records.Delete("user/1", "req-del", 1_800_000_000_000, records.IF_EXISTS)).as_json()


def test_an_increment_is_printed_as_an_increment_with_its_delta(stream):
    url, log = stream
    position = put(log, "visits", b"10")
    log.append("visits", records.encode(records.Increment("visits", 5, "req-incr", 1_800_000_000_000)))
    with watching("--from", "earliest", "--log-url", url) as watcher:
        lines = watcher.take(2)
    assert [line.split()[1:] for line in lines][1] == [f"{position.partition}-{position.offset + 1}", "increment",
                                                       "visits", "by", "5"]
    with watching("--from", "earliest", "--json", "--log-url", url) as watcher:
        counted = orjson.loads(watcher.take(2)[1])
    assert (counted["kind"], counted["key"], counted["by"]) == ("increment", "visits", 5)


def test_a_big_value_is_printed_with_its_dataref_not_its_reference(stream):
    """A big value's record (core/value_refs.py) carries a reference: watch says where the value is."""
    url, log = stream
    ref = ref_for("cache", b"p" * 300_000, "image/png")
    put(log, "pictures/cat", ref.encode(), REF_CONTENT_TYPE)
    with watching("--from", "earliest", "--log-url", url) as watcher:
        line = watcher.take(1)[0]
    assert line.split()[3:] == ["pictures/cat", "300000", "B", "image/png", "dataref", ref.name]
    with watching("--from", "earliest", "--json", "--log-url", url) as watcher:
        shown = orjson.loads(watcher.take(1)[0])
    assert (shown["dataref"], shown["datadigest"], shown["size"], shown["content_type"], shown["value"]) == (
        ref.name, ref.digest, 300_000, "image/png", None)


def test_from_a_position_resumes_where_the_last_watch_stopped(stream):
    url, log = stream
    for n in range(12):
        put(log, f"k{n}", b"before %d" % n, n=n)
    with watching("--from", "earliest", "--log-url", url) as watcher:
        assert len(watcher.take(12)) == 12
        code, err = watcher.stop()
    assert code == 0
    token = err.rsplit("--from ", 1)[1].split()[0]
    for n in range(12, 20):
        put(log, f"k{n}", b"after %d" % n, n=n)
    with watching("--from", token, "--log-url", url) as watcher:
        lines = watcher.take(8)
        assert watcher.lines.empty()
    assert sorted(line.split()[3] for line in lines) == sorted(f"k{n}" for n in range(12, 20))  # none repeated


def test_from_latest_shows_only_new_writes_and_prefix_filters(stream):
    url, log = stream
    put(log, "user/old", b"old")
    with watching("--prefix", "user/", "--log-url", url) as watcher:  # --from latest is the default
        # Knowing from outside when it listens: write until a user/ line shows up.
        deadline, first = time.monotonic() + LINE_DEADLINE_S, None
        while first is None and time.monotonic() < deadline:
            put(log, "user/probe", b"p")
            with contextlib.suppress(queue.Empty):
                first = watcher.lines.get(timeout=0.3)
        assert first is not None, "watch printed nothing"
        put(log, "order/1", b"filtered out")
        put(log, "user/last", b"the end")
        lines = [first]
        while lines[-1].split()[3] != "user/last":
            lines += watcher.take(1)
    assert {line.split()[3] for line in lines} == {"user/probe", "user/last"}  # no user/old, no order/1


def test_it_finds_the_local_dev_stack_through_the_gateway(stream):
    """The stack description as the local gateway serves it (stack_info.py), over real HTTP."""
    url, log = stream
    with stack_server(describe(url, 3, "http://127.0.0.1")) as gateway_url:
        with watching("--url", gateway_url) as watcher:
            wait_until_subscribed(watcher, log)
            put(log, "found", b"it")
            assert watcher.take(1)[0].split()[3] == "found"


@contextlib.contextmanager
def stack_server(info: dict | None):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, headers, body = stack_answer("GET", info) if is_stack_path(self.path) else (404, [], b"{}")
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# ---- errors, in-process ---------------------------------------------------------------------------


def run_watch(capsys, *argv: str) -> tuple[int, str]:
    code = cli_watch.main(["watch", *argv])
    return code, capsys.readouterr().err


def test_nothing_listening_at_the_url_says_how_to_start_one(capsys, broker):
    from streamcache_local.broker import free_port

    code, err = run_watch(capsys, "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 2 and "no streamcache dev answers" in err and "--log-url" in err


def test_a_gateway_without_a_stack_is_not_mistaken_for_one(capsys):
    with stack_server(None) as gateway_url:
        code, err = run_watch(capsys, "--url", gateway_url)
    assert code == 2 and "is not a streamcache dev" in err and "404" in err


def test_a_dev_stack_on_a_memory_log_cannot_be_watched(capsys):
    with stack_server(describe("memory://local", 1, "http://127.0.0.1")) as gateway_url:
        code, err = run_watch(capsys, "--url", gateway_url)
    assert code == 2 and "kafka://" in err


@pytest.mark.parametrize("argv, message", [
    (["--log-url", "memory://x"], "kafka://"),
    (["--log-url", "kafka://nohost/t"], "kafka://HOST:PORT"),
    (["--from", "yesterday", "--log-url", "kafka://127.0.0.1:1/t"], "not a position"),
    (["--url", "ftp://x"], "http(s)"),
])
def test_usage_errors_exit_2_with_one_line(capsys, argv, message):
    code, err = run_watch(capsys, *argv)
    assert code == 2 and message in err and err.count("\n") == 1


def test_sasl_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("STREAMCACHE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("STREAMCACHE_KAFKA_SASL_USERNAME", "tenancy/domain/user/ocid1.streampool")
    monkeypatch.setenv("STREAMCACHE_KAFKA_SASL_PASSWORD", "token")
    assert cli_watch.find_stream("kafka://cell-1.streaming.example:9092/s", None) == (
        "cell-1.streaming.example:9092", "s",
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN",
         "sasl_plain_username": "tenancy/domain/user/ocid1.streampool", "sasl_plain_password": "token"})
    monkeypatch.setenv("STREAMCACHE_KAFKA_SASL_PASSWORD", "")
    with pytest.raises(cli_watch.WatchError, match="SASL_PASSWORD"):
        cli_watch.find_stream("kafka://h:9092/s", None)


# ---- the human line -------------------------------------------------------------------------------


def change(mutation, position=records.Position(2, 17)) -> str:
    return cli_watch.format_change(ChangeEvent(position, mutation))


def test_a_put_line_shows_position_kind_key_size_type_and_preview():
    line = change(records.Put("user/1", b'{"a": [1, 2]}', "application/json", "r", 1_800_000_000_123))
    assert line.split()[1:5] == ["2-17", "put", "user/1", "13"]
    assert line.endswith('application/json  {"a":[1,2]}')
    assert line.split()[0].endswith(".123Z")


def test_previews_are_short_escaped_and_never_binary_garbage():
    assert cli_watch.preview(b"two\nlines\x00", "text/plain") == '"two\\nlines\\u0000"'
    assert cli_watch.preview(b"\xff\xfe\x00", "application/octet-stream") == "(binary)"
    long = cli_watch.preview(b"x" * 500, "text/plain")
    assert len(long) == cli_watch.PREVIEW_CHARS and long.endswith("…")
    assert cli_watch.preview(b"not json{", "application/json") == '"not json{"'


def test_a_delete_line_and_preconditions():
    line = change(records.Delete("k", "r", 1_800_000_000_000, records.if_match(records.Position(0, 41))))
    assert line.split()[1:] == ["2-17", "delete", "k", "if-match", "0-41"]
    assert change(records.Put("k", b"v", "text/plain", "r", 0, 60_000, records.IF_ABSENT)).split()[-1] == "if-absent"
    line = change(records.Put("k", b"v", "text/plain", "r", 0, 60_000))  # RFC 3339, UTC, ms: the API's format
    assert line.startswith("1970-01-01T00:00:00.000Z") and line.endswith("expires 1970-01-01T00:01:00.000Z")


def test_an_increment_line_shows_its_delta_and_the_expiry_it_gives_a_new_counter():
    assert change(records.Increment("visits", -3, "r", 0)).split()[1:] == ["2-17", "increment", "visits", "by", "-3"]
    line = change(records.Increment("visits", 1, "r", 0, 60_000))
    assert line.endswith("increment visits  by 1  expires 1970-01-01T00:01:00.000Z")


def test_a_touch_line_shows_its_new_expiry_or_that_it_removes_it():
    ts = 1_800_000_000_000
    assert change(records.Touch("s/1", "r", ts, ts + 60_000)).split()[1:] == [
        "2-17", "touch", "s/1", "expires", records.format_time(ts + 60_000)]
    assert change(records.Touch("s/1", "r", ts, None)).split()[-2:] == ["expires", "never"]
    summary = ChangeEvent(records.Position(2, 17), records.Touch("s/1", "r", ts, None)).as_json()
    assert (summary["kind"], summary["expires_at_ms"], "by" in summary) == ("touch", None, False)
