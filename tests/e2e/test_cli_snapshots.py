"""``streamcache compact`` and ``streamcache snapshots``: in-process (``cli.main``) against a memory log
and a directory store, and once as the real console script against Tansu."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest

from streamcache.cli import main as cli
from streamcache.adapters.memory_log import MemoryLog
from support.log_history import START_MS, fill

STREAMCACHE = str(Path(sys.executable).parent / "streamcache")


@pytest.fixture(autouse=True)
def no_dev_stack_to_find(monkeypatch):
    """These tests name their stream themselves: a streamcache dev a developer runs on the default port
    must not lend them its stream (port 9, discard, is closed)."""
    monkeypatch.setenv("STREAMCACHE_URL", "http://127.0.0.1:9")


@pytest.fixture
def log_name():
    name = f"cli-{uuid.uuid4().hex[:8]}"
    yield name
    MemoryLog.forget(name)


@pytest.fixture
def run(capsys, tmp_path, log_name):
    """``run(*argv)`` -> (exit code, stdout, stderr) of ``streamcache ARGV`` with this test's log and store."""
    flags = ["--log-url", f"memory://{log_name}?partitions=2", "--snapshot-url", f"file://{tmp_path}/snaps"]

    def invoke(*argv: str, defaults: bool = True):
        command, rest = argv[0], list(argv[1:])
        code = cli.main([command, *rest, *(flags if defaults else [])])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


def test_compact_then_list_then_show(run, log_name, tmp_path):
    log = MemoryLog.named(log_name, 2)
    fill(log, 50, keys=20)
    code, out, err = run("compact")
    assert code == 0, err
    assert out.startswith("written: snapshots/" + log_name + "/")
    name = out.split()[1]
    assert "20 entries" in out and "folded 50 records" in out
    assert (tmp_path / "snaps" / name).is_file()

    code, out, _ = run("compact", "--json")
    summary = orjson.loads(out)
    assert (code, summary["outcome"], summary["base_snapshot"]) == (0, "unchanged", name)

    code, out, _ = run("snapshots")
    assert code == 0
    header, row = out.splitlines()
    assert header.split("\t") == ["NAME", "POSITIONS", "AS_OF", "ENTRIES", "BYTES", "KIND"]
    cells = row.split("\t")
    end = log.bounds().next
    assert cells[0] == name and cells[1] == f"0:{end[0]},1:{end[1]}" and cells[3] == "20"
    assert cells[2].startswith("2023-11-14T22:13:20") and int(cells[4]) == (tmp_path / "snaps" / name).stat().st_size
    assert cells[5] == "full"

    code, out, _ = run("snapshots", name.rsplit("/", 1)[1])  # the last part of the name is enough
    shown = orjson.loads(out)
    assert code == 0 and shown["valid"] is True and shown["header"]["entries"] == 20
    assert shown["header"]["next_offsets"] == {str(p): o for p, o in end.items()}


def test_a_damaged_snapshot_is_shown_as_invalid(run, log_name, tmp_path):
    fill(MemoryLog.named(log_name, 2), 10)
    run("compact")
    (path,) = (tmp_path / "snaps").rglob("*.db")
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # its last byte changed (a rebuilt image ends in zeros)
    code, out, _ = run("snapshots", path.name)
    shown = orjson.loads(out)
    assert code == 1 and shown["valid"] is False and "checksum" in shown["problem"]
    code, out, _ = run("snapshots", "no-such.snap")
    assert code == 1


def test_flags_override_the_environment(run, log_name, tmp_path, monkeypatch):
    fill(MemoryLog.named(log_name, 2), 10)
    monkeypatch.setenv("STREAMCACHE_LOG_URL", f"memory://{log_name}?partitions=2")
    monkeypatch.setenv("STREAMCACHE_SNAPSHOT_URL", str(tmp_path / "from-env"))
    monkeypatch.setenv("STREAMCACHE_STREAM_ID", "from-env")
    code, out, _ = run("compact", "--stream-id", "from-flag", "--keep", "1", defaults=False)
    assert code == 0 and out.startswith("written: snapshots/from-flag/")
    assert list((tmp_path / "from-env" / "snapshots").iterdir()) == [tmp_path / "from-env" / "snapshots" / "from-flag"]
    code, out, _ = run("snapshots", "--stream-id", "from-flag", defaults=False)
    assert code == 0 and len(out.splitlines()) == 2


def test_data_loss_exits_4_and_can_be_acknowledged(run, log_name):
    log = MemoryLog.named(log_name, 2)
    fill(log, 10)
    run("compact")
    fill(log, 10, ts_ms=START_MS + 1000, prefix="x")
    end = log.bounds().next
    for p in (0, 1):
        log.truncate_before(p, end[p])
    code, out, err = run("compact")
    assert code == 4 and "DATA LOSS" in err and "UNACKNOWLEDGED DATA LOSS" in out
    code, _, err = run("snapshots")
    assert code == 0 and "DATA LOSS RECORD" in err
    code, out, _ = run("snapshots", "--acknowledge-data-loss")
    assert code == 0 and out.startswith("acknowledged and deleted snapshots/")
    code, out, _ = run("compact", "--json")
    assert code == 0 and orjson.loads(out)["unacknowledged_losses"] == []


def test_a_recreated_stream_makes_compact_refuse_with_3(run, log_name):
    fill(MemoryLog.named(log_name, 2), 10)
    run("compact")
    MemoryLog.forget(log_name)
    fill(MemoryLog.named(log_name, 2), 2)
    code, _, err = run("compact")
    assert code == 3 and "SNAPSHOT OF ANOTHER LOG" in err


def test_settings_problems_are_usage_errors(capsys, monkeypatch):
    assert cli.main(["compact", "--log-url", "memory://x"]) == 2
    assert "STREAMCACHE_SNAPSHOT_URL" in capsys.readouterr().err
    assert cli.main(["compact", "--log-url", "nope://x", "--snapshot-url", "s3://b"]) == 2
    err = capsys.readouterr().err
    assert "STREAMCACHE_LOG_URL" in err and "STREAMCACHE_SNAPSHOT_URL" in err  # every problem at once
    assert cli.main(["snapshots", "--snapshot-url", "/tmp/x"]) == 2  # no log URL and no stream id
    assert "STREAMCACHE_LOG_URL" in capsys.readouterr().err


def test_the_console_script_compacts_a_kafka_stream_and_logs_progress_as_json(kafka_topic, tmp_path):
    from streamcache.settings import Settings

    url = kafka_topic(3)
    log = Settings.from_env({"STREAMCACHE_LOG_URL": url}).open_log()
    try:
        fill(log, 30)
    finally:
        log.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMCACHE_")}
    env.update(STREAMCACHE_LOG_URL=url, STREAMCACHE_SNAPSHOT_URL=str(tmp_path))
    done = subprocess.run([STREAMCACHE, "compact"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("written: snapshots/") and "folded 30 records" in done.stdout
    progress = [orjson.loads(line) for line in done.stderr.splitlines() if '"kind":"progress"' in line]
    assert progress and progress[0]["task"] == "compaction"  # stderr is not a terminal: JSON lines


def test_a_broker_that_lost_its_log_then_took_more_records_is_not_folded_onto_old_snapshots(tmp_path):
    """Finding 2 of the log-identity issue, through the real console script and a real broker: write,
    compact, lose the log (the local broker restarts empty), write MORE records than the snapshot
    covered, compact again. The compactor refuses (the snapshot's last records are not this log's);
    the operator retires the old snapshots, and the next compaction holds the new log's keys only."""
    from streamcache.adapters.kafka_log import KafkaLog
    from streamcache.core.snapshot import decode_snapshot
    from streamcache_local.broker import start_broker

    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMCACHE_")}
    env.update(STREAMCACHE_SNAPSHOT_URL=str(tmp_path), STREAMCACHE_STREAM_ID="orders", STREAMCACHE_URL="http://127.0.0.1:9")

    def streamcache(*argv):
        return subprocess.run([STREAMCACHE, *argv], env=env, capture_output=True, text=True, timeout=60)

    def write(broker, count, prefix):
        broker.create_topic("orders", 3)
        log = KafkaLog(broker.bootstrap, "orders")
        try:
            fill(log, count, keys=count, prefix=prefix)
        finally:
            log.close()

    with start_broker() as first:
        env["STREAMCACHE_LOG_URL"] = first.log_url("orders")
        port = int(first.bootstrap.rsplit(":", 1)[1])
        write(first, 30, "old")
        assert streamcache("compact").returncode == 0
    with start_broker(port=port) as second:
        write(second, 90, "new")
        refused = streamcache("compact")
        assert refused.returncode == 3, refused.stderr
        assert "SNAPSHOT OF ANOTHER LOG" in refused.stderr and "is another one than the table applied" in refused.stderr
        shown = streamcache("snapshots", "--retire-other-log")
        assert shown.returncode == 1 and "retire snapshots/orders/" in shown.stdout and "nothing moved" in shown.stdout
        moved = streamcache("snapshots", "--retire-other-log", "--yes")
        assert moved.returncode == 0, moved.stderr
        assert not list((tmp_path / "snapshots" / "orders").glob("*.db"))
        assert len(list((tmp_path / "retired" / "orders").glob("*/*.db"))) == 1
        written = streamcache("compact")
        assert written.returncode == 0, written.stderr
        name = written.stdout.split()[1]
        table = decode_snapshot((tmp_path / name).read_bytes(), name).table
        keys = {key for key, _ in table.items()}
        assert keys == {f"new{i}" for i in range(90)}  # nothing of the lost log


def test_a_chain_through_the_cli_compact_list_show_and_export(run, log_name, tmp_path, monkeypatch):
    monkeypatch.setenv("STREAMCACHE_SNAPSHOT_DELTA_PERCENT", "1000")  # a small table: deltas are not smaller
    log = MemoryLog.named(log_name, 2)
    fill(log, 200, keys=200)
    code, out, _ = run("compact")
    base = out.split()[1]
    assert code == 0 and "a full image (no snapshot to fold onto)" in out
    fill(log, 5, keys=5, ts_ms=1_700_000_100_000, prefix="late")
    code, out, _ = run("compact")
    delta = out.split()[1]
    assert code == 0 and "a delta, link 2 of its chain" in out and delta.endswith(".db") and "-delta-" in delta

    code, out, _ = run("snapshots")
    rows = [line.split("\t") for line in out.splitlines()[1:]]
    assert [(r[0], r[3], r[5]) for r in rows] == [(delta, "205", "delta"), (base, "200", "full")]
    code, out, _ = run("snapshots", delta.rsplit("/", 1)[1])
    shown = orjson.loads(out)
    assert code == 0 and shown["valid"] is True and shown["chain"] == [base, delta]
    assert shown["header"]["kind"] == "delta" and shown["header"]["parent"] == base

    code, out, err = run("export")  # the table as it is now: the chain, then the tail
    assert code == 0 and "205 keys" in err
    assert {orjson.loads(line)["key"] for line in out.splitlines()} == {f"k{i}" for i in range(200)} | {
        f"late{i}" for i in range(5)}
