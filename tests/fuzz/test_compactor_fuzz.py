"""Garbage and hostile payloads sent to the compactor function as plain invokes (as OCI Events, the
Resource Scheduler or anyone allowed to invoke it would): malformed JSON, deep nesting, huge
strings, wrong types, unknown actions, and Object Storage events that try to make the importer
read outside its bucket (path traversal, absolute names, control characters).

Every answer: the FDK answers 200 (the handler did not crash) with a JSON body whose ``status`` is
not a 5xx other than 503; the instance stays up. Afterwards nothing was imported from outside the
bucket, a real compaction still succeeds, and a cache instance that cold-starts from the snapshots
it left reads the canary keys written before the fuzzing (nothing lost, nothing corrupted)."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzing import TRIED, examples
from streamcache_local.fn_runner import start_instance

COMPACTOR = Path(__file__).resolve().parents[2] / "functions" / "compactor" / "func.py"
FUZZ = dict(deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
CREATE = "com.oraclecloud.objectstorage.createobject"
OK_STATUSES = {200, 400, 404, 409, 503}


@pytest.fixture(scope="module")
def compactor_setup(broker, tmp_path_factory):
    topic = f"fuzz-c-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 3)
    root = tmp_path_factory.mktemp("compactor")
    bucket, outside = root / "bucket", root / "outside"
    (bucket / "imports").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.jsonl").write_text('{"key": "stolen", "value": 1}\n')
    config = {"STREAMCACHE_LOG_URL": broker.log_url(topic), "STREAMCACHE_SNAPSHOT_URL": f"file://{bucket}",
              "STREAMCACHE_IMPORT_URL": f"file://{bucket}/"}
    socket_dir = tempfile.mkdtemp(prefix="sc-z-", dir="/tmp")
    cache = start_instance("cache", socket_dir, {"STREAMCACHE_LOG_URL": broker.log_url(topic)})
    compactor = None
    try:
        canaries = {f"canary/{n}": b"v%d" % n for n in range(5)}
        for key, value in canaries.items():
            assert cache.client.http_call("PUT", f"/cache/{key}", value).status == 201
        compactor = start_instance("compactor", socket_dir, config, function_path=COMPACTOR)
        yield {"compactor": compactor, "config": config, "socket_dir": socket_dir, "canaries": canaries,
               "topic": topic, "bucket": bucket}
    finally:
        cache.stop()
        if compactor is not None:
            compactor.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)


def invoke(setup, body: bytes, category: str) -> dict:
    answer = setup["compactor"].client.invoke(body, timeout_s=60)
    TRIED[category] += 1
    assert answer.status == 200, (body[:100], answer.status, answer.body[:300])  # not the FDK's 502
    doc = orjson.loads(answer.body)
    assert doc["status"] in OK_STATUSES, (body[:100], doc)
    return doc


def event(name: object = "imports/x.jsonl", bucket: object = "bucket", namespace: object = "ns", **extra) -> bytes:
    data = {"resourceName": name, "additionalDetails": {"bucketName": bucket, "namespace": namespace, "eTag": "e1"}}
    return orjson.dumps({"eventType": CREATE, "eventID": str(uuid.uuid4()), "data": data, **extra})


HOSTILE = [
    b"", b"null", b"[]", b"{}", b'"compact"', b"{", b"\xff\xfe", b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000, b'{"action": 1}', b'{"action": null}', b'{"action": "drop-everything"}',
    b'{"action": "compact", "extra": ' + b"[" * 300 + b"]" * 300 + b"}", b'{"action": "' + b"x" * 1_000_000 + b'"}',
    b'{"eventType": 123}', b'{"eventType": ""}', b'{"eventType": "com.oraclecloud.objectstorage.deleteobject"}',
    b'{"eventType": "com.oraclecloud.objectstorage.createobject"}', b'{"type": "com.example.other", "data": {}}',
    b'{"eventType": "com.oraclecloud.objectstorage.createobject", "data": []}',
    b'{"eventType": "com.oraclecloud.objectstorage.createobject", "data": {"resourceName": 1}}',
    b'{"eventType": "com.oraclecloud.objectstorage.createobject", "data": {"additionalDetails": "x"}}',
    b'{"action": 1e999}', b'{"action": NaN}', b'{"eventType": "' + CREATE.encode() + b'", "eventType": 1}',
    event("imports/../../outside/secret.jsonl"), event("imports/../outside/secret.jsonl"),
    event("/etc/passwd"), event("imports//../../../outside/secret.jsonl"), event("imports/%2e%2e/%2e%2e/outside/secret.jsonl"),
    event("imports/\x00secret"), event("imports/a\nb"), event("imports/" + "x" * 5000), event(""), event("imports/"),
    event("imports/missing.jsonl"), event("imports/x.jsonl", bucket="../outside"), event("imports/x.jsonl", bucket=""),
    event("imports/x.jsonl", namespace="a/b"), event("imports/x.jsonl", bucket=["b"]), event(["imports/x"]),
    event("imports/x.jsonl", eventTime=12), event("imports/x.jsonl", data=None),
]


@pytest.mark.parametrize("body", HOSTILE, ids=lambda b: b[:20].hex() or "empty")
def test_hand_picked_payloads(compactor_setup, body):
    invoke(compactor_setup, body, "compactor (hand-picked)")


json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False)
                           | st.integers(-(2**63), 2**64 - 1) | st.text(),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=15)
names = st.text(max_size=80) | st.sampled_from(["imports/a.jsonl", "imports/../x", "../../etc/passwd", "snapshots/x"])


@settings(max_examples=examples(40), **FUZZ)
@given(st.binary(max_size=200) | json_values.map(orjson.dumps)
       | st.fixed_dictionaries({}, optional={"action": json_values, "eventType": json_values | st.just(CREATE),
                                             "type": json_values, "data": json_values}).map(orjson.dumps)
       | st.builds(event, names | json_values, st.text(max_size=20) | json_values, st.text(max_size=20) | json_values))
def test_generated_payloads(compactor_setup, body):
    invoke(compactor_setup, body, "compactor (generated)")


def test_after_the_garbage_nothing_leaked_compaction_works_and_a_cold_start_reads_the_canaries(compactor_setup):
    setup = compactor_setup
    assert setup["compactor"].alive()
    done = invoke(setup, b'{"action": "compact"}', "compactor (hand-picked)")
    assert done["status"] == 200, done
    fresh = start_instance("fresh", setup["socket_dir"], {k: v for k, v in setup["config"].items()
                                                           if k != "STREAMCACHE_IMPORT_URL"})
    try:
        for key, value in setup["canaries"].items():
            answer = fresh.client.http_call("GET", f"/cache/{key}?consistency=strong", timeout_s=30)
            assert (answer.status, answer.body) == (200, value), key
        stolen = fresh.client.http_call("GET", "/cache/stolen?consistency=strong")
        assert stolen.status == 404  # nothing was imported from outside the bucket
        health = orjson.loads(fresh.client.http_call("GET", "/health").body)
        assert health["status"] == "serving" and health.get("snapshot"), health  # it did start from a snapshot
    finally:
        fresh.stop()
