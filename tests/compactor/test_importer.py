"""Bulk import end to end on the real parts: objects in a directory store (and once through the OCI SDK
against the local Object Storage server), records appended to a real Tansu topic, and the stream's
contents applied with the core table to check what a cache instance would hold."""

from __future__ import annotations


import base64
import dataclasses
import threading
from pathlib import Path

import orjson
import pytest
from support.oci_fakes import api_key, object_storage  # noqa: F401  (fixtures)

from streamcache.adapters.directory_store import DirectoryStore
from streamcache.adapters.kafka_log import KafkaLog
from streamcache.core import records
from streamcache.core.errors import ConfigError, LogUnavailable
from streamcache.core.table import Table
from streamcache.compactor import importer
from streamcache.compactor.app import import_config
from streamcache.compactor.importer import MARKER_PREFIX, handle_object_event, marker_name, store_for
from streamcache.compactor.object_events import DELETE_OBJECT, object_created_event, parse_object_event
from streamcache.settings import Settings
from streamcache.ports import SnapshotStoreUnavailable

NOW_S = 1_800_000_000.0  # the importer's clock in these tests


@pytest.fixture
def bucket(tmp_path) -> DirectoryStore:
    return DirectoryStore(tmp_path / "bucket")


@pytest.fixture
def run(stream, bucket):
    """``run(event, **settings)`` -> the importer's answer, reading objects from ``bucket``."""
    url, log = stream

    def invoke(event, log_=None, **env: str):
        settings = Settings.from_env({"STREAMCACHE_LOG_URL": url, **env})
        return handle_object_event(event, import_config(settings), log_ or log, clock=lambda: NOW_S,
                                   open_store=lambda obj, _: DirectoryStore(bucket.root))

    return invoke


def event_for(name: str, etag: str = "etag-1", **kwargs) -> dict:
    return object_created_event("ns", "data", name, etag, **kwargs)


def jsonl(*items) -> bytes:
    return b"".join((item if isinstance(item, bytes) else orjson.dumps(item)) + b"\n" for item in items)


def applied(log: KafkaLog) -> tuple[Table, list, int]:
    """The stream applied in order: (table, [(position, mutation)] of fresh applies, records on the stream)."""
    table, fresh, total = Table(), [], 0
    bounds = log.bounds()
    for record in sorted(log.read(bounds.first, bounds.next), key=lambda r: r.position):
        total += 1
        mutation = records.decode(record.value)
        outcome = table.apply(record.position, mutation)
        if outcome is not None and outcome.version == record.position:
            fresh.append((record.position, mutation))
    return table, fresh, total


def test_a_file_loads_every_line_with_its_value_type_and_ttl_in_order(run, stream, bucket):
    _, log = stream
    lines = [{"key": f"user/{i % 1500}", "value": {"n": i, "name": f"user {i}"}} for i in range(5000)]
    lines += [
        {"key": "text", "value": "héllo", "content_type": "text/plain"},
        {"key": "bytes", "value_base64": base64.b64encode(b"\x00\xff").decode(), "content_type": "image/x-raw"},
        {"key": "ttl", "value": [1, 2], "ttl": 60},
    ]
    bucket.put_new("imports/users.jsonl", jsonl(*lines))

    answer = run(event_for("imports/users.jsonl"))

    assert {k: answer[k] for k in ("status", "action", "object", "lines", "imported", "bad_count", "bad_lines",
                                   "skipped_duplicate")} == {
        "status": 200, "action": "import", "object": "imports/users.jsonl", "lines": 5003, "imported": 5003,
        "bad_count": 0, "bad_lines": [], "skipped_duplicate": False}
    table, fresh, total = applied(log)
    assert total == len(fresh) == 5003
    now_ms = int(NOW_S * 1000)
    for i in range(3500, 5000):  # the last line of a key wins: records of a key landed in file order
        assert orjson.loads(table.get(f"user/{i % 1500}", now_ms).value) == {"n": i, "name": f"user {i}"}
    assert table.get("text", now_ms)[:2] == ("héllo".encode(), "text/plain")
    assert table.get("bytes", now_ms)[:2] == (b"\x00\xff", "image/x-raw")
    assert table.get("ttl", now_ms).expires_at_ms == now_ms + 60_000
    assert table.get("ttl", now_ms + 60_000) is None
    mutations = [m for _, m in fresh]
    assert {m.ts_ms for m in mutations} == {now_ms}  # the injected clock dates every record
    identity = parse_object_event(event_for("imports/users.jsonl")).identity
    assert sorted(int(m.request_id.rsplit("-", 1)[1]) for m in mutations) == list(range(1, 5004))
    assert all(m.request_id.startswith(f"import-{identity[:32]}-") for m in mutations)


def test_records_carry_the_import_source(run, stream, bucket):
    _, log = stream
    bucket.put_new("imports/one.jsonl", jsonl({"key": "k", "value": 1}))
    run(event_for("imports/one.jsonl"), STREAMCACHE_EVENT_SOURCE="/svc")
    [record] = list(log.read(log.bounds().first))
    assert orjson.loads(record.value)["source"] == "/svc/import"


def test_bad_lines_are_reported_with_line_numbers_while_the_good_ones_land(run, stream, bucket):
    _, log = stream
    body = bytearray()
    bad_numbers = []
    for i in range(1, 401):
        if i % 3 == 0:
            body += b'{"key": "k%d", "vlaue": 1}\n' % i
            bad_numbers.append(i)
        elif i == 200:
            body += b"\n"  # blank: skipped, not bad, but it still counts as a line number
        else:
            body += orjson.dumps({"key": f"k{i}", "value": i}) + b"\n"
    body += b"{broken json"  # the last line, without a newline
    bad_numbers.append(401)
    bucket.put_new("imports/mixed.jsonl", bytes(body))

    answer = run(event_for("imports/mixed.jsonl"))

    assert answer["status"] == 200
    assert answer["bad_count"] == len(bad_numbers) == 134
    assert [b["line"] for b in answer["bad_lines"]] == bad_numbers[:100]  # the first 100, in order
    assert answer["bad_lines"][0]["reason"].startswith("unknown field 'vlaue'")
    assert answer["lines"] == 400 and answer["imported"] == 400 - 134
    table, _, total = applied(log)
    assert total == 266
    good = [i for i in range(1, 401) if i % 3 and i != 200]
    assert all(table.get(f"k{i}", 0).value == b"%d" % i for i in good)
    assert all(table.get(f"k{i}", 0) is None for i in bad_numbers)


def test_a_record_over_the_stream_limit_is_a_bad_line(run, stream, bucket):
    _, log = stream
    bucket.put_new("imports/big.jsonl", jsonl({"key": "big", "value": "x" * 5000, "content_type": "text/plain"},
                                              {"key": "small", "value": 1}))
    answer = run(event_for("imports/big.jsonl"), STREAMCACHE_MAX_RECORD_BYTES="2000")
    assert answer["bad_lines"] == [{"line": 1, "reason": answer["bad_lines"][0]["reason"]}]
    assert "the stream takes at most 2000" in answer["bad_lines"][0]["reason"]
    assert answer["imported"] == 1 and applied(log)[2] == 1


def test_the_same_event_delivered_twice_is_applied_once(run, stream, bucket):
    _, log = stream
    bucket.put_new("imports/a.jsonl", jsonl(*({"key": f"k{i}", "value": i} for i in range(50)), b"oops"))
    event = event_for("imports/a.jsonl")
    first = run(event)
    second = run({**event, "eventID": "another-delivery-id"})  # OCI may give a redelivery a new id [U]
    assert (first["skipped_duplicate"], second["skipped_duplicate"]) == (False, True)
    for field in ("status", "object", "lines", "imported", "bad_count", "bad_lines"):
        assert second[field] == first[field]  # the duplicate reports what the import did
    assert applied(log)[2] == 50  # nothing appended the second time
    assert bucket.list(MARKER_PREFIX) == [marker_name(parse_object_event(event))]


def test_a_new_upload_under_the_same_name_is_imported_again(run, stream, bucket):
    _, log = stream
    bucket.put_new("imports/a.jsonl", jsonl({"key": "k", "value": 1}))
    assert run(event_for("imports/a.jsonl", "etag-1"))["imported"] == 1
    bucket.delete("imports/a.jsonl")
    bucket.put_new("imports/a.jsonl", jsonl({"key": "k", "value": 2}))
    answer = run(event_for("imports/a.jsonl", "etag-2"))
    assert (answer["imported"], answer["skipped_duplicate"]) == (1, False)
    assert applied(log)[0].get("k", 0).value == b"2"


def test_twin_deliveries_running_at_once_apply_each_line_once(stream, bucket):
    url, log = stream
    bucket.put_new("imports/a.jsonl", jsonl(*({"key": f"k{i % 40}", "value": i} for i in range(3000))))
    both_reading = threading.Barrier(2, timeout=30)

    class TwinStore(DirectoryStore):
        def open_stream(self, name, chunk_bytes=1 << 20):
            both_reading.wait()  # both deliveries got past the marker check: neither is skipped
            return super().open_stream(name, chunk_bytes=8192)

    settings = Settings.from_env({"STREAMCACHE_LOG_URL": url})
    answers = []

    def deliver():
        answers.append(handle_object_event(event_for("imports/a.jsonl"), import_config(settings), log, clock=lambda: NOW_S,
                                           open_store=lambda obj, _: TwinStore(bucket.root)))

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [(a["status"], a["imported"], a["skipped_duplicate"]) for a in answers] == [(200, 3000, False)] * 2
    table, fresh, total = applied(log)
    assert total == 6000 and len(fresh) == 3000  # copies within the de-duplication window change nothing
    assert sorted(int(m.request_id.rsplit("-", 1)[1]) for _, m in fresh) == list(range(1, 3001))
    assert all(table.get(f"k{k}", 0).value == b"%d" % (2960 + k) for k in range(40))


class FlakyLog:
    """The real Kafka log, but the stream becomes unreachable after ``good_batches`` bulk appends."""

    def __init__(self, log: KafkaLog, good_batches: int) -> None:
        self.log, self.good_batches = log, good_batches

    def append_many(self, items):
        if self.good_batches == 0:
            raise LogUnavailable("appending: the broker went away (injected)")
        self.good_batches -= 1
        return self.log.append_many(items)


def test_a_stream_failure_part_way_answers_503_and_the_redelivery_completes_applying_each_line_once(
        run, stream, bucket, monkeypatch):
    _, log = stream
    monkeypatch.setattr(importer, "BATCH_RECORDS", 2000)
    bucket.put_new("imports/a.jsonl", jsonl(*({"key": f"k{i}", "value": i} for i in range(5000))))
    event = event_for("imports/a.jsonl")

    failed = run(event, FlakyLog(log, good_batches=1))
    assert (failed["status"], failed["error"], failed["imported"]) == (503, "log_unavailable", 2000)
    assert bucket.list(MARKER_PREFIX) == []  # not done: a redelivery must import

    retried = run(event)
    assert (retried["status"], retried["imported"], retried["skipped_duplicate"]) == (200, 5000, False)
    _, fresh, total = applied(log)
    assert total == 7000 and len(fresh) == 5000  # the first 2000 again, de-duplicated
    assert run(event)["skipped_duplicate"] is True


def test_the_record_dedup_window_is_120_s_of_log_time_the_marker_has_none(stream, bucket):
    """Documents the two layers: without a marker (an import that failed before writing it), a
    redelivery more than 120 s after the first records applies the lines again; with the marker, a
    redelivery any time later is skipped."""
    url, log = stream
    bucket.put_new("imports/a.jsonl", jsonl(*({"key": f"k{i}", "value": i} for i in range(10))))
    event = event_for("imports/a.jsonl")
    settings = Settings.from_env({"STREAMCACHE_LOG_URL": url})

    def deliver(at_s: float) -> dict:
        return handle_object_event(event, import_config(settings), log, clock=lambda: at_s,
                                   open_store=lambda obj, _: DirectoryStore(bucket.root))

    deliver(NOW_S)
    bucket.delete(marker_name(parse_object_event(event)))  # as if the first import had died before it
    deliver(NOW_S + 119)
    assert len(applied(log)[1]) == 10  # within the window: the copies change nothing
    bucket.delete(marker_name(parse_object_event(event)))
    deliver(NOW_S + 121 + 119)
    assert len(applied(log)[1]) == 20  # past it: applied again (same values, new versions)
    assert deliver(NOW_S + 30 * 86400)["skipped_duplicate"] is True  # the marker: no window


class FailingStore(DirectoryStore):
    """A directory store whose object reads break after ``chunks`` chunks (a connection reset)."""

    def __init__(self, root: Path, chunks: int) -> None:
        super().__init__(root)
        self.chunks = chunks

    def open_stream(self, name, chunk_bytes=1 << 20):
        inner = super().open_stream(name, chunk_bytes=4096)

        def broken():
            for i, chunk in enumerate(inner):
                if i == self.chunks:
                    raise SnapshotStoreUnavailable("connection reset by peer (injected)")
                yield chunk

        return broken()


def test_a_store_failure_while_reading_answers_503_with_what_landed(stream, bucket):
    url, log = stream
    bucket.put_new("imports/a.jsonl", jsonl(*({"key": f"k{i}", "value": i} for i in range(3000))))
    settings = Settings.from_env({"STREAMCACHE_LOG_URL": url})
    answer = handle_object_event(event_for("imports/a.jsonl"), import_config(settings), log,
                                 open_store=lambda obj, _: FailingStore(bucket.root, chunks=10))
    assert (answer["status"], answer["error"]) == (503, "store_unavailable")
    assert 0 < answer["lines"] < 3000 and answer["imported"] <= answer["lines"]
    assert applied(log)[2] == answer["imported"] and bucket.list(MARKER_PREFIX) == []


def test_the_object_is_streamed_records_land_before_it_is_read_to_the_end(stream, bucket, monkeypatch):
    url, log = stream
    monkeypatch.setattr(importer, "BATCH_RECORDS", 2000)
    bucket.put_new("imports/a.jsonl", jsonl(*({"key": f"k{i}", "value": "v" * 50} for i in range(8000))))
    on_stream_when_read: list[int] = []

    class WatchedStore(DirectoryStore):
        def open_stream(self, name, chunk_bytes=1 << 20):
            for chunk in super().open_stream(name, chunk_bytes=16 * 1024):
                on_stream_when_read.append(sum(log.bounds().next.values()))
                yield chunk

    settings = Settings.from_env({"STREAMCACHE_LOG_URL": url})
    answer = handle_object_event(event_for("imports/a.jsonl"), import_config(settings), log,
                                 open_store=lambda obj, _: WatchedStore(bucket.root))
    assert answer["imported"] == 8000
    assert on_stream_when_read[0] == 0 and on_stream_when_read[-1] >= 6000  # batches went out while reading


@pytest.mark.parametrize("name", [
    "snapshots/streamcache/00000000000000000042-a1.snap",  # the compactor's own writes
    MARKER_PREFIX + "0" * 64 + ".json",  # the importer's own markers
    "imports",
    "imports/",
    "imports-old/a.jsonl",
    "other/imports/a.jsonl",
])
def test_objects_outside_the_import_prefix_are_ignored_without_reading_anything(stream, name):
    url, log = stream
    settings = Settings.from_env({"STREAMCACHE_LOG_URL": url})

    def no_store(obj, _):
        raise AssertionError("an ignored event must not open the store")

    answer = handle_object_event(event_for(name), import_config(settings), log, open_store=no_store)
    assert (answer["status"], answer["action"], answer["imported"]) == (200, "ignored", 0)
    assert "import prefix" in answer["reason"]
    assert sum(log.bounds().next.values()) == 0


def test_the_import_prefix_comes_from_the_settings(run, bucket):
    bucket.put_new("loads/a.jsonl", jsonl({"key": "k", "value": 1}))
    assert run(event_for("loads/a.jsonl"), STREAMCACHE_IMPORT_PREFIX="loads/")["imported"] == 1
    assert run(event_for("imports/a.jsonl"), STREAMCACHE_IMPORT_PREFIX="loads/")["action"] == "ignored"


def test_markers_are_never_imported_even_under_a_prefix_that_covers_them(stream, bucket):
    url, log = stream
    with pytest.raises(ConfigError):  # the settings refuse such a prefix...
        Settings.from_env({"STREAMCACHE_LOG_URL": url, "STREAMCACHE_IMPORT_PREFIX": "import"})
    # ...and the importer ignores markers even if one got through (defence in depth).
    settings = dataclasses.replace(Settings.from_env({"STREAMCACHE_LOG_URL": url}), import_prefix="import")

    def run(event):
        return handle_object_event(event, import_config(settings), log, clock=lambda: NOW_S,
                                   open_store=lambda obj, _: DirectoryStore(bucket.root))

    bucket.put_new("import-data/a.jsonl", jsonl({"key": "k", "value": 1}))
    assert run(event_for("import-data/a.jsonl"))["imported"] == 1
    [marker] = bucket.list(MARKER_PREFIX)
    answer = run(event_for(marker))  # the marker's own createobject
    assert (answer["action"], answer["imported"]) == ("ignored", 0)
    assert applied(log)[2] == 1


def test_a_delete_event_is_ignored(run):
    answer = run(event_for("imports/a.jsonl", event_type=DELETE_OBJECT))
    assert (answer["status"], answer["action"]) == (200, "ignored")


HOSTILE = {
    "not an object": [1, 2, 3],
    "a string": "imports/a.jsonl",
    "empty": {},
    "no data": {"eventType": "com.oraclecloud.objectstorage.createobject", "eventID": "x"},
    "another service": {**event_for("imports/a.jsonl"), "eventType": "com.oraclecloud.computeapi.launchinstance.end"},
    "bucket smuggling a URL": object_created_event("ns", "data@evil/x?", "imports/a.jsonl", "e"),
    "namespace smuggling a path": object_created_event("../ns", "data", "imports/a.jsonl", "e"),
    "huge name": event_for("imports/" + "x" * 5000),
    "control character": event_for("imports/a\x00.jsonl"),
    "non-string etag": {**event_for("imports/a.jsonl"),
                        "data": {**event_for("imports/a.jsonl")["data"],
                                 "additionalDetails": {"bucketName": "data", "namespace": "ns", "eTag": ["x"]}}},
}


@pytest.mark.parametrize("event", HOSTILE.values(), ids=HOSTILE.keys())
def test_garbage_and_hostile_events_answer_400_and_append_nothing(run, stream, event):
    _, log = stream
    answer = run(event)
    assert (answer["status"], answer["error"]) == (400, "invalid_event")
    assert answer["message"] and answer["imported"] == 0
    assert sum(log.bounds().next.values()) == 0


@pytest.mark.parametrize("name", ["imports/../../etc/passwd", "imports/./a", "imports/.hidden", "imports//a"])
def test_object_names_that_could_escape_the_store_answer_400(run, stream, name):
    _, log = stream
    answer = run(event_for(name))
    assert (answer["status"], answer["error"]) == (400, "invalid_object_name")
    assert sum(log.bounds().next.values()) == 0


def test_an_object_deleted_before_it_is_read_answers_404(run):
    answer = run(event_for("imports/gone.jsonl"))
    assert (answer["status"], answer["error"], answer["imported"]) == (404, "object_not_found", 0)


# ---- which store: the configured import URL, or the event's bucket through the OCI SDK -------------


def test_the_configured_import_url_is_the_bucket_root(stream, tmp_path):
    url, log = stream
    DirectoryStore(tmp_path).put_new("imports/a.jsonl", jsonl({"key": "k", "value": 1}))
    settings = Settings.from_env({"STREAMCACHE_LOG_URL": url, "STREAMCACHE_IMPORT_URL": tmp_path.as_uri() + "/"})
    answer = handle_object_event(event_for("imports/a.jsonl"), import_config(settings), log)
    assert answer["imported"] == 1
    assert DirectoryStore(tmp_path).list(MARKER_PREFIX) == [marker_name(parse_object_event(event_for("imports/a.jsonl")))]


def test_through_the_oci_sdk_from_the_snapshot_bucket(stream, object_storage, api_key):
    url, log = stream
    object_storage.create_bucket("data")
    env = {"STREAMCACHE_LOG_URL": url, "STREAMCACHE_SNAPSHOT_URL": object_storage.url("data", "snapshots"),
           "STREAMCACHE_OCI_ENDPOINT": object_storage.endpoint,
           "STREAMCACHE_OCI_CONFIG_FILE": str(api_key.config_file), "STREAMCACHE_OCI_PROFILE": api_key.profile}
    settings = Settings.from_env(env)
    event = object_created_event(object_storage.namespace, "data", "imports/a.jsonl", "etag-1")
    store = store_for(parse_object_event(event), import_config(settings))
    store.put_new("imports/a.jsonl", jsonl(*({"key": f"k{i}", "value": i} for i in range(3000))))

    answer = handle_object_event(event, import_config(settings), log)

    assert (answer["status"], answer["imported"]) == (200, 3000)
    assert handle_object_event(event, import_config(settings), log)["skipped_duplicate"] is True
    assert store.list(MARKER_PREFIX) == [marker_name(parse_object_event(event))]
    store.close()


def test_without_a_bucket_configured_the_import_is_refused(stream):
    url, log = stream
    answer = handle_object_event(event_for("imports/a.jsonl"), import_config(Settings.from_env({"STREAMCACHE_LOG_URL": url})), log)
    assert (answer["status"], answer["error"]) == (503, "import_not_configured")
    assert "STREAMCACHE_IMPORT_URL" in answer["message"]


def test_an_event_for_another_bucket_than_the_configured_one_answers_400(stream, object_storage):
    url, log = stream
    base = Settings.from_env({"STREAMCACHE_LOG_URL": url, "STREAMCACHE_SNAPSHOT_URL": object_storage.url("data", "snap")})
    event = object_created_event(object_storage.namespace, "payroll", "imports/a.jsonl", "etag-1")
    for settings in (base, dataclasses.replace(base, import_url=object_storage.url("uploads"))):
        answer = handle_object_event(event, import_config(settings), log)
        assert (answer["status"], answer["error"]) == (400, "foreign_bucket")
    assert sum(log.bounds().next.values()) == 0
