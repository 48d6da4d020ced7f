"""The ``streamcache`` command against a running local topology: the client subcommands in-process
(``cli.main``), and ``streamcache dev`` itself as the real console script, stopped with Ctrl-C."""

from __future__ import annotations

import io
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import orjson
import pytest

from streamcache.cli import main as cli
from streamcache_local.dev import DevStack
from streamcache_local.pool import Dispatch


@pytest.fixture(scope="module")
def stack(broker):
    topic = f"cli-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 3)
    with DevStack(port=0, instances=2, dispatch=Dispatch.ROUND_ROBIN, log_url=broker.log_url(topic)) as running:
        yield running


@pytest.fixture
def run(stack, capsysbinary, monkeypatch):
    """``run(*argv)`` -> (exit code, stdout bytes, stderr text) of ``streamcache --url <stack> ...``."""

    def invoke(*argv: str, stdin: bytes | None = None):
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        code = cli.main(["--url", stack.url, *argv])
        out, err = capsysbinary.readouterr()
        return code, out, err.decode()

    return invoke


def _key() -> str:
    return f"cli-{uuid.uuid4().hex[:8]}"


def test_put_then_get_writes_the_raw_value(run):
    key = _key()
    code, out, _ = run("put", key, "héllo wörld", "--content-type", "text/plain")
    assert code == 0
    created = orjson.loads(out)
    assert created["key"] == key and created["version"]
    code, out, err = run("get", key, "--strong")
    assert (code, out, err) == (0, "héllo wörld".encode(), "")


def test_put_dash_reads_binary_stdin(run):
    key, value = _key(), bytes(range(256)) * 4
    assert run("put", key, "-", stdin=value)[0] == 0
    assert run("get", key, "--strong")[1] == value


def test_get_of_a_missing_key_exits_1_with_the_servers_message(run):
    code, out, err = run("get", _key(), "--strong")
    assert (code, out) == (1, b"")
    assert err.startswith("streamcache get: 404 not_found: no value for key")
    assert err.count("\n") == 1


def test_if_match_put_and_delete(run):
    key = _key()
    version = orjson.loads(run("put", key, "v1")[1])["version"]
    code, out, err = run("put", key, "v2", "--if-match", "0-999999")
    assert code == 1 and "412 precondition_failed" in err
    code, out, _ = run("put", key, "v2", "--if-match", version)
    assert code == 0
    new_version = orjson.loads(out)["version"]
    assert run("delete", key, "--if-match", version)[0] == 1  # the old version no longer matches
    assert run("delete", key, "--if-match", new_version)[0] == 0
    code, _, err = run("delete", key)
    assert code == 1 and "404 not_found" in err


def test_put_if_absent(run):
    key = _key()
    assert run("put", key, "first", "--if-absent")[0] == 0
    code, _, err = run("put", key, "second", "--if-absent")
    assert code == 1 and "412" in err


def test_list_prints_key_version_size_expiry_and_follows_cursors(run):
    prefix = _key() + "/"
    versions, expiries = {}, {}
    for name, ttl in (("b", None), ("a", "300"), ("c", None)):
        args = ["put", prefix + name, "x" * 3] + (["--ttl", ttl] if ttl else [])
        written = orjson.loads(run(*args)[1])
        versions[name], expiries[name] = written["version"], written["expires_at"]
    code, out, _ = run("list", "--prefix", prefix, "--strong")
    assert code == 0
    rows = [line.split("\t") for line in out.decode().splitlines()]
    assert [row[0] for row in rows] == [prefix + "a", prefix + "b", prefix + "c"]
    assert [row[1] for row in rows] == [versions["a"], versions["b"], versions["c"]]
    assert [row[2] for row in rows] == ["3", "3", "3"]
    # One timestamp format in the API and the CLI: RFC 3339, UTC, milliseconds, Z.
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rows[0][3]) and rows[1][3] == "-"
    assert rows[0][3] == expiries["a"] and expiries["b"] is None
    code, out, _ = run("list", "--prefix", prefix, "--limit", "2", "--strong")
    assert [line.split("\t")[0] for line in out.decode().splitlines()] == [prefix + "a", prefix + "b"]


def test_a_rejected_request_exits_2(run):
    code, _, err = run("put", _key(), "v", "--ttl", "-5")
    assert code == 2 and "400 invalid_ttl" in err
    code, _, err = run("put", _key(), "v", "--ttl", "forever")
    assert code == 2 and "--ttl must be a number" in err


def test_an_unreachable_cache_exits_2(capsys):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        code = cli.main(["get", "k", "--url", f"http://127.0.0.1:{port}"])
    assert code == 2
    assert "cannot reach the cache at http://127.0.0.1" in capsys.readouterr().err


def test_the_url_comes_from_streamcache_url(stack, monkeypatch, capsysbinary):
    monkeypatch.setenv("STREAMCACHE_URL", stack.url)
    assert cli.main(["put", "from-env", "1"]) == 0
    assert cli.main(["get", "from-env", "--strong"]) == 0
    assert capsysbinary.readouterr().out.endswith(b"1")


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["put", "only-a-key"])
    assert exited.value.code == 2
    assert "required: value" in capsys.readouterr().err
    assert cli.main(["dev", "--log-url", "kafka://127.0.0.1:1/t", "--topic", "t"]) == 2
    assert "--topic" in capsys.readouterr().err


def test_dev_on_a_taken_port_exits_2_naming_the_port_and_the_way_out(stack, capsys):
    port = stack.gateway.server_address[1]
    assert cli.main(["dev", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "could not start" in err and f"port {port}" in err and "--port" in err


def _lines(pipe, sink: queue.Queue) -> None:
    for line in iter(pipe.readline, ""):
        sink.put(line)
    pipe.close()


def test_streamcache_dev_serves_and_stops_on_ctrl_c_without_leftovers(capsysbinary, tmp_path):
    script = Path(sys.executable).parent / "streamcache"
    process = subprocess.Popen([str(script), "dev", "--port", "0", "--instances", "2", "--partitions", "2",
                                "--data-dir", str(tmp_path / "data")],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    pids: list[int] = []
    printed: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_lines, args=(process.stdout, printed), daemon=True)
    reader.start()
    try:
        banner = []
        deadline = time.monotonic() + 30
        while not banner or "Ctrl-C stops everything" not in banner[-1]:
            banner.append(printed.get(timeout=max(0.1, deadline - time.monotonic())))
        text = "".join(banner)
        url = re.search(r"gateway\s+(http://127\.0\.0\.1:\d+)", text).group(1)
        pids = [int(pid) for pid in re.findall(r"pid (\d+)", text)]
        sockets = re.findall(r"socket (\S+\.sock)", text)
        assert len(pids) == 4 and len(sockets) == 3  # the broker, two cache instances and the compactor
        assert "topic 'streamcache' with 2 partitions" in text

        assert cli.main(["--url", url, "put", "a", "1"]) == 0
        assert cli.main(["--url", url, "get", "a", "--strong"]) == 0
        assert capsysbinary.readouterr().out.endswith(b"1")

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:  # stop it as Ctrl-C would, so that it stops its children too
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            for pid in pids:  # and never leave a child behind, even when the test failed
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        reader.join(5)
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not any(os.path.lexists(path) for path in sockets)
    assert not os.path.exists(os.path.dirname(sockets[0]))
