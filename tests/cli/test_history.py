"""``streamcache export`` and ``streamcache restore``, in-process (``cli.main``) against a memory log and
a directory store: the table now and as it was, an export that imports as the same table, a restore
that every instance sees, and moments that cannot be reached."""

from __future__ import annotations

import uuid

import orjson
import pytest

from streamcache.adapters.directory_store import DirectoryStore
from streamcache.adapters.memory_log import MemoryLog
from streamcache.cache.app import CacheApp
from streamcache.cache.http_api import HttpRequest
from streamcache.cli import main as cli
from streamcache.compactor.compaction import compact
from streamcache.compactor.importer import ImportConfig, handle_object_event
from streamcache.compactor.object_events import object_created_event
from streamcache.core.records import format_time
from streamcache.settings import Settings
from support.log_history import START_MS, delete, fill, full_replay, put

STREAM = "history"


@pytest.fixture(autouse=True)
def no_dev_stack_to_find(monkeypatch):
    monkeypatch.setenv("STREAMCACHE_URL", "http://127.0.0.1:9")  # these tests name their stream themselves


@pytest.fixture
def env(tmp_path):
    name = f"history-{uuid.uuid4().hex[:8]}"
    log = MemoryLog.named(name, 3)
    store = DirectoryStore(tmp_path / "snapshots")
    flags = ["--log-url", f"memory://{name}?partitions=3", "--snapshot-url", str(tmp_path / "snapshots"),
             "--stream-id", STREAM]
    yield log, store, flags
    MemoryLog.forget(name)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def entries(table, prefix: str = "", at_ms: int = START_MS) -> dict:
    return {key: (e.value, e.content_type, e.expires_at_ms) for key, e in table.scan(prefix, None, at_ms)}


def test_an_export_imported_into_an_empty_stack_gives_an_identical_table(env, capsys, tmp_path):
    log, store, flags = env
    fill(log, 100_000, keys=100_000, ts_ms=START_MS)  # 100k keys, half of them folded into a snapshot
    put(log, "json", b'{"a":[1,2]}', START_MS, content_type="application/json")
    put(log, "spaced-json", b'{ "a": 1 }', START_MS, content_type="application/json")
    put(log, "text", "héllo".encode(), START_MS, content_type="text/plain; charset=utf-8")
    put(log, "bytes", bytes(range(256)), START_MS, content_type="image/png", ttl_ms=10**13)  # expires in ~300 years
    assert compact(log, store, STREAM, 3).outcome.value == "written"
    put(log, "after-the-snapshot", b"tail", START_MS + 1)
    delete(log, "k7", START_MS + 1)

    exported = tmp_path / "imports" / "export.jsonl"
    exported.parent.mkdir()
    code, _, err = run(capsys, "export", *flags, "-o", str(exported))
    assert code == 0 and "100,004 keys" in err

    # Dropped into an empty stack's import bucket, exactly as the compactor imports files.
    fresh = MemoryLog(3)
    config = ImportConfig(source_url=tmp_path.as_uri() + "/", max_value_bytes=716_800, max_ttl_seconds=10**9,
                          max_record_bytes=1_000_000)
    answer = handle_object_event(object_created_event("ns", "b", "imports/export.jsonl", "e1"), config, fresh)
    assert (answer["status"], answer["imported"], answer["bad_count"]) == (200, 100_004, 0)
    assert entries(full_replay(fresh)) == entries(full_replay(log))


def test_export_as_of_a_moment_and_restore_brings_it_back_on_every_instance(env, capsys):
    log, store, flags = env
    put(log, "keep/a", b"a1", START_MS)
    put(log, "keep/b", b"b1", START_MS)
    compact(log, store, STREAM, 3)  # the snapshot at START_MS
    put(log, "keep/c", b"c1", START_MS + 1_000)
    before = format_time(START_MS + 1_500)
    put(log, "keep/a", b"a2", START_MS + 2_000)  # overwritten,
    delete(log, "keep/b", START_MS + 2_000)  # deleted,
    put(log, "keep/new", b"n", START_MS + 2_000)  # and created after the moment
    put(log, "other/x", b"x", START_MS + 2_000)  # outside the prefix: left alone

    code, out, _ = run(capsys, "export", *flags, "--as-of", before, "--prefix", "keep/")
    assert code == 0
    assert [orjson.loads(line)["key"] for line in out.splitlines()] == ["keep/a", "keep/b", "keep/c"]

    app = CacheApp(Settings(log_url=flags[1], instance_id="a"))  # an instance that is already serving
    assert app.handle(HttpRequest("GET", "/cache/keep/a", {}, b""), 10).body == b"a2"

    code, out, _ = run(capsys, "restore", *flags, "--as-of", before, "--prefix", "keep/")
    assert code == 1 and "2 to write back, 1 to delete" in out and "nothing written" in out
    assert full_replay(log).get("keep/a", START_MS + 3_000).value == b"a2"

    code, out, _ = run(capsys, "restore", *flags, "--as-of", before, "--prefix", "keep/", "--yes")
    assert code == 0 and "restored 3 keys" in out
    late = START_MS + 10**12  # any reader's clock: none of these values expires
    expected = {"keep/a": b"a1", "keep/b": b"b1", "keep/c": b"c1"}
    assert {k: v[0] for k, v in entries(full_replay(log), "keep/", late).items()} == expected
    assert full_replay(log).get("other/x", late).value == b"x"
    for instance in (app, CacheApp(Settings(log_url=flags[1], instance_id="fresh"))):
        for key, value in expected.items():
            answer = instance.handle(HttpRequest("GET", f"/cache/{key}?consistency=strong", {}, b""), 10)
            assert answer.body == value, (instance, key)
        assert instance.handle(HttpRequest("GET", "/cache/keep/new?consistency=strong", {}, b""), 10).status == 404
    sources = {orjson.loads(r.value)["source"] for r in log.read(dict(log.bounds().first))}
    assert "/streamcache/restore" in sources  # the change feed can tell a restore from a client

    code, out, _ = run(capsys, "restore", *flags, "--as-of", before, "--prefix", "keep/", "--yes")
    assert code == 0 and "0 to write back, 0 to delete" in out  # nothing left to change


def test_a_moment_neither_the_snapshots_nor_the_stream_reach_names_the_earliest_one(env, capsys):
    log, store, flags = env
    fill(log, 30, ts_ms=START_MS)
    compact(log, store, STREAM, 3)
    fill(log, 30, ts_ms=START_MS + 60_000, prefix="later")
    for partition in range(3):  # retention dropped everything the snapshot does not hold
        log.truncate_before(partition, log.bounds().next[partition])
    code, _, err = run(capsys, "export", *flags, "--as-of", format_time(START_MS - 1))
    assert code == 2 and "cannot be reached" in err and format_time(START_MS + 29) in err
    code, _, err = run(capsys, "export", *flags, "--as-of", "yesterday")
    assert code == 2 and "RFC 3339" in err


# ---- issue 20: one replica implementation (the quota, the snapshot an as-of by positions starts from) --

QUOTA = 3_000  # 1,000 accounted bytes (key + value + 64 B an entry) per partition of 3


def quota_instance(flags: list[str], name: str) -> CacheApp:
    return CacheApp(Settings(log_url=flags[1], instance_id=name, max_bytes=QUOTA))


def http_put(app: CacheApp, key: str, value: bytes) -> int:
    return app.handle(HttpRequest("PUT", f"/cache/{key}", {}, value), 10).status


def strong_get(app: CacheApp, key: str):
    return app.handle(HttpRequest("GET", f"/cache/{key}?consistency=strong", {}, b""), 10)


def same_partition(log, key: str, prefix: str) -> str:
    """A key starting with ``prefix`` in the partition of ``key`` (the quota is per partition)."""
    return next(f"{prefix}{i}" for i in range(1000) if log.partition_for(f"{prefix}{i}") == log.partition_for(key))


def positions(log) -> str:
    return ",".join(f"{p}-{o}" for p, o in sorted(log.bounds().next.items()))


def test_export_leaves_out_what_every_instance_refused_for_the_quota(env, capsys, monkeypatch):
    log, store, flags = env
    monkeypatch.setenv("STREAMCACHE_MAX_BYTES", str(QUOTA))
    app = quota_instance(flags, "a")
    assert http_put(app, "small", b"s") == 201
    assert http_put(app, "big", b"b" * 1_000) == 507  # past its partition's share on every instance
    assert compact(log, store, STREAM, 3, max_bytes=QUOTA).outcome.value == "written"
    assert http_put(app, "big-after-the-snapshot", b"b" * 1_000) == 507  # in the tail the export replays

    code, out, err = run(capsys, "export", *flags)
    assert code == 0, err
    assert [orjson.loads(line)["key"] for line in out.splitlines()] == ["small"]


def test_restore_deletes_first_so_that_the_space_they_free_takes_the_puts(env, capsys, monkeypatch):
    log, store, flags = env
    monkeypatch.setenv("STREAMCACHE_MAX_BYTES", str(QUOTA))
    app = quota_instance(flags, "a")
    newer = same_partition(log, "keep/a", "keep/new")
    assert http_put(app, "keep/a", b"a" * 600) == 201
    moment = positions(log)
    assert app.handle(HttpRequest("DELETE", "/cache/keep/a", {}, b""), 10).status == 204
    assert http_put(app, newer, b"n" * 600) == 201  # fits only because keep/a is gone

    code, out, err = run(capsys, "restore", *flags, "--as-of", moment, "--prefix", "keep/", "--yes")
    assert code == 0 and "restored 2 keys" in out, (out, err)
    for instance in (app, quota_instance(flags, "fresh")):
        assert strong_get(instance, "keep/a").body == b"a" * 600
        assert strong_get(instance, newer).status == 404


def test_restore_counts_puts_the_quota_refused_and_exits_non_zero(env, capsys, monkeypatch):
    log, store, flags = env
    monkeypatch.setenv("STREAMCACHE_MAX_BYTES", str(QUOTA))
    app = quota_instance(flags, "a")
    newer = same_partition(log, "keep/a", "keep/new")
    filler = same_partition(log, "keep/a", "other/")
    assert http_put(app, "keep/a", b"a" * 600) == 201
    moment = positions(log)
    assert http_put(app, "keep/a", b"x") == 200  # shrunk,
    assert http_put(app, newer, b"n" * 300) == 201  # a key created since,
    assert http_put(app, filler, b"f" * 400) == 201  # and one outside the prefix that stays: no room for 600 B

    code, out, err = run(capsys, "restore", *flags, "--as-of", moment, "--prefix", "keep/", "--yes")
    assert code == 3, (out, err)
    assert "restored" not in out
    assert "1 of 2 keys were not restored" in err and "1 refused for the quota (quota_exceeded): keep/a" in err
    assert strong_get(quota_instance(flags, "fresh"), "keep/a").body == b"x"  # as every instance has it


def test_an_export_as_of_positions_never_starts_from_a_snapshot_past_them(env, capsys):
    log, store, flags = env
    put(log, "k1", b"first", START_MS + 1_000)
    assert compact(log, store, STREAM, 3).outcome.value == "written"  # as of START_MS + 1 s
    moment = positions(log)
    put(log, "k1", b"second", START_MS)  # a writer whose clock is behind: the next snapshot covers
    put(log, "k2", b"later", START_MS)  # more of the log, and its as-of time is not later
    assert compact(log, store, STREAM, 3).outcome.value == "written"

    code, out, err = run(capsys, "export", *flags, "--as-of", moment)
    assert code == 0, err
    assert [(orjson.loads(line)["key"], orjson.loads(line)["value"]) for line in out.splitlines()] == [("k1", "first")]


def test_a_recreated_stream_is_exported_alone_then_seeded_from_its_retired_snapshot(env, capsys, tmp_path):
    """The log-identity issue: export must not fold the new log onto a snapshot of the lost one (the
    new log is longer than the snapshot covered); the operator retires the old snapshot and seeds
    the new stream from it, keeping the new stream's own writes."""
    log, store, flags = env
    fill(log, 30, keys=30, prefix="old")
    assert compact(log, store, STREAM, 3).outcome.value == "written"
    name = flags[1].removeprefix("memory://").split("?")[0]
    MemoryLog.forget(name)
    recreated = MemoryLog.named(name, 3)
    fill(recreated, 60, keys=60, prefix="new")
    put(recreated, "old1", b"rewritten in the new stream", START_MS + 10)

    code, out, err = run(capsys, "export", *flags)
    assert code == 0, err
    exported = {orjson.loads(line)["key"] for line in out.splitlines()}
    assert exported == {f"new{i}" for i in range(60)} | {"old1"} and "no snapshot" in err

    assert run(capsys, "snapshots", "--retire-other-log", "--yes", *flags)[0] == 0
    retired = [str(p.relative_to(tmp_path / "snapshots")) for p in (tmp_path / "snapshots" / "retired").rglob("*.db")]
    assert len(retired) == 1
    code, out, err = run(capsys, "restore", "--from-snapshot", retired[0], *flags)
    assert code == 1 and "29 to write back, 0 to delete" in out  # old1 is the new stream's now
    code, out, err = run(capsys, "restore", "--from-snapshot", retired[0], "--yes", *flags)
    assert code == 0, err
    table = full_replay(recreated)
    assert table.get("old2", START_MS).value == b"old-2" and table.get("new59", START_MS).value == b"new-59"
    assert table.get("old1", START_MS).value == b"rewritten in the new stream"


def test_an_export_carries_what_touches_left_the_expiry_at(env, capsys, tmp_path):
    from streamcache.core.records import Touch, encode

    log, store, flags = env
    put(log, "kept", b"v", START_MS, ttl_ms=1_000)
    put(log, "cleared", b"w", START_MS, ttl_ms=1_000)
    log.append("kept", encode(Touch("kept", "touch-kept", START_MS + 1, START_MS + 10**13)))
    log.append("cleared", encode(Touch("cleared", "touch-cleared", START_MS + 1, None)))
    exported = tmp_path / "export.jsonl"
    code, _, err = run(capsys, "export", *flags, "-o", str(exported))
    lines = {doc["key"]: doc for doc in map(orjson.loads, exported.read_bytes().splitlines())}
    assert code == 0 and set(lines) == {"kept", "cleared"}, err
    assert lines["kept"]["expires_at"] == format_time(START_MS + 10**13)
    assert lines["cleared"].get("expires_at") is None


def test_a_retired_chain_moves_whole_and_seeds_the_new_stream_from_its_newest_delta(env, capsys, tmp_path):
    from streamcache.core.snapshot_chain import ChainPolicy

    log, store, flags = env
    policy = ChainPolicy(max_deltas=4, max_fraction=100)
    fill(log, 30, keys=30, prefix="old")
    base = compact(log, store, STREAM, 3, chain=policy).object
    fill(log, 5, keys=5, ts_ms=START_MS + 1_000, prefix="later")
    delta = compact(log, store, STREAM, 3, chain=policy)
    assert delta.kind == "delta"
    name = flags[1].removeprefix("memory://").split("?")[0]
    MemoryLog.forget(name)
    recreated = MemoryLog.named(name, 3)
    fill(recreated, 60, keys=60, prefix="new")

    assert run(capsys, "snapshots", "--retire-other-log", "--yes", *flags)[0] == 0
    retired = sorted(p.name for p in (tmp_path / "snapshots" / "retired").rglob("*.db"))
    assert retired == sorted(n.rsplit("/", 1)[1] for n in (base, delta.object))
    (moved,) = [p for p in (tmp_path / "snapshots" / "retired").rglob("*.db") if "-delta-" in p.name]
    code, out, err = run(capsys, "restore", "--from-snapshot", str(moved.relative_to(tmp_path / "snapshots")),
                         "--yes", *flags)
    assert code == 0, err
    table = full_replay(recreated)
    assert table.get("old7", START_MS).value == b"old-7" and table.get("later4", START_MS + 2_000).value == b"later-4"
    assert table.get("new59", START_MS).value == b"new-59"
