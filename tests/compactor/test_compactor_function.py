"""The compactor function under the real ``fdk`` entrypoint, invoked over its unix socket as the Fn
agent does for the Resource Scheduler and OCI Events (plain invokes: the status is in the JSON body),
with a Kafka log on Tansu and a directory snapshot store."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import orjson
import pytest
from streamcache.adapters.urls import open_snapshot_store
from streamcache.core.snapshot import decode_snapshot, newest_first, stream_prefix
from streamcache.settings import Settings
from streamcache_local.fn_runner import start_instance
from support.log_history import fill, full_replay
from support.waiting import wait_for

COMPACTOR = Path(__file__).resolve().parents[2] / "functions" / "compactor" / "func.py"


@pytest.fixture(scope="module")
def topic(broker):
    name = f"compactor-{uuid.uuid4().hex[:8]}"
    broker.create_topic(name, 3)
    return broker.log_url(name)


@pytest.fixture(scope="module")
def snapshot_dir():
    path = tempfile.mkdtemp(prefix="sc-snap-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def compactor(topic, snapshot_dir):
    sockets = tempfile.mkdtemp(prefix="sc-t-", dir="/tmp")
    config = {"STREAMCACHE_LOG_URL": topic, "STREAMCACHE_SNAPSHOT_URL": f"file://{snapshot_dir}",
              "STREAMCACHE_SNAPSHOTS_KEEP": "2"}
    running = start_instance("compactor1", sockets, config, function_path=COMPACTOR, fn_name="compactor")
    yield running
    running.stop()
    shutil.rmtree(sockets, ignore_errors=True)


def invoke(instance, body: bytes) -> dict:
    answer = instance.client.invoke(body)
    assert answer.status == 200  # a direct invoke: the platform's status is always 200, ours is in the body
    assert answer.header("content-type") == "application/json"
    return orjson.loads(answer.body)


def names(snapshot_dir: str, stream: str) -> list[str]:
    store = open_snapshot_store(f"file://{snapshot_dir}")
    return newest_first(store.list(stream_prefix(stream)), stream)


def test_an_empty_invoke_compacts_and_answers_a_summary(compactor, topic, snapshot_dir):
    log = Settings.from_env({"STREAMCACHE_LOG_URL": topic}).open_log()
    stream = topic.rsplit("/", 1)[1]
    try:
        fill(log, 120, keys=30)
        answer = invoke(compactor, b"")
        assert (answer["status"], answer["action"], answer["outcome"]) == (200, "compact", "written")
        assert answer["records_folded"] == 120 and answer["entries"] == 30
        assert answer["positions_after"] == {str(p): o for p, o in log.bounds().next.items()}
        assert names(snapshot_dir, stream) == [answer["object"]]
        data = (Path(snapshot_dir) / answer["object"]).read_bytes()
        assert answer["bytes"] == len(data)
        assert decode_snapshot(data).table.export_state() == full_replay(log).export_state()

        again = invoke(compactor, b'{"action": "compact"}')  # what the Resource Scheduler sends
        assert (again["status"], again["outcome"], again["object"]) == (200, "unchanged", None)

        fill(log, 10, prefix="more")
        third = invoke(compactor, b'{"action": "compact", "schedule": "every 10 minutes"}')  # extra keys are fine
        assert third["outcome"] == "written" and third["records_folded"] == 10
        assert third["base_snapshot"] == answer["object"]

        def logged():
            lines = [orjson.loads(line) for line in compactor.stderr_lines() if '"kind":"compactor"' in line]
            return [line for line in lines if line.get("object") == third["object"]]

        (line,) = wait_for(logged, what="the compaction's log line")
        assert line["status"] == 200 and line["outcome"] == "written" and line["records_folded"] == 10
    finally:
        log.close()


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe\x00", "invalid_json"),
        (b"[1, 2, 3]", "invalid_body"),
        (b'"compact"', "invalid_body"),
        (b"null", "invalid_body"),
        (b'{"action": "explode"}', "unknown_action"),
        (b'{"action": ["compact"]}', "unknown_action"),
        (b'{"eventType": "com.oraclecloud.computeapi.launchinstance.end"}', "unsupported_event"),
        (b'{"eventType": 42}', "unsupported_event"),
        (b'{"type": "io.example.other"}', "unsupported_event"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    ],
)
def test_a_bad_body_is_a_json_400_and_changes_nothing(compactor, snapshot_dir, body, code):
    before = sorted(p.relative_to(snapshot_dir) for p in Path(snapshot_dir).rglob("*"))
    answer = invoke(compactor, body)
    assert (answer["status"], answer["error"]) == (400, code) and answer["message"]
    assert sorted(p.relative_to(snapshot_dir) for p in Path(snapshot_dir).rglob("*")) == before
    assert compactor.alive()


def test_an_object_storage_event_goes_to_the_importer(compactor):
    event = {"eventType": "com.oraclecloud.objectstorage.createobject", "cloudEventsVersion": "0.1",
             "eventTypeVersion": "2.0", "source": "ObjectStorage", "eventTime": "2030-01-01T00:00:00.000Z",
             "contentType": "application/json", "eventID": str(uuid.uuid4()),
             "data": {"resourceName": "snapshots/not-an-import.snap",
                      "resourceId": "/n/ns/b/bucket/o/snapshots%2Fnot-an-import.snap",
                      "additionalDetails": {"bucketName": "bucket", "namespace": "ns", "eTag": "e1"}}}
    answer = invoke(compactor, orjson.dumps(event))
    assert "outcome" not in answer  # no compaction ran
    # The compactor's own writes also emit events: the importer ignores what is not under imports/.
    assert (answer["status"], answer["action"]) == (200, "ignored")


def test_without_a_snapshot_store_the_compactor_answers_misconfigured_json(topic):
    sockets = tempfile.mkdtemp(prefix="sc-t-", dir="/tmp")
    running = start_instance("compactor9", sockets, {"STREAMCACHE_LOG_URL": topic}, function_path=COMPACTOR,
                             fn_name="compactor")
    try:
        answer = invoke(running, b"")
        assert (answer["status"], answer["error"]) == (500, "misconfigured")
        assert "STREAMCACHE_SNAPSHOT_URL" in answer["message"]
    finally:
        running.stop()
        shutil.rmtree(sockets, ignore_errors=True)


def test_an_unreachable_stream_is_503_not_a_crash(snapshot_dir):
    sockets = tempfile.mkdtemp(prefix="sc-t-", dir="/tmp")
    config = {"STREAMCACHE_LOG_URL": "kafka://127.0.0.1:1/nowhere", "STREAMCACHE_SNAPSHOT_URL": f"file://{snapshot_dir}",
              "STREAMCACHE_APPEND_TIMEOUT_MS": "300"}
    running = start_instance("compactor8", sockets, config, function_path=COMPACTOR, fn_name="compactor")
    try:
        answer = invoke(running, b"")
        assert (answer["status"], answer["error"]) == (503, "stream_unavailable")
    finally:
        running.stop()
        shutil.rmtree(sockets, ignore_errors=True)
