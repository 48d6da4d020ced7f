"""Big values by reference through the real stack: cache instances under the real FDK on their unix
sockets, a Kafka log on Tansu, and the oci SDK against the local Object Storage server.

A value over the inline threshold is written to Object Storage first and its record carries a
CloudEvents ``dataref``; GETs over HTTP and over direct invokes answer its bytes; it survives a
compaction and a cold start; a missing object is a JSON 500 ``value_unavailable``.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path

import orjson
import pytest
from support.oci_fakes import api_key, no_retries, object_storage  # noqa: F401  (fixtures)
from support.waiting import wait_for

from streamcache.adapters.urls import open_snapshot_store
from streamcache.core.value_refs import REF_CONTENT_TYPE
from streamcache_local.fn_runner import start_instance

COMPACTOR = Path(__file__).resolve().parents[2] / "functions" / "compactor" / "func.py"
FIVE_MB = 5 * 1024 * 1024
INLINE_MAX = 262_144  # the default STREAMCACHE_INLINE_MAX_BYTES


@pytest.fixture
def sockets():
    path = tempfile.mkdtemp(prefix="sc-t-", dir="/tmp")  # short: unix socket paths are limited
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def deployment(kafka_topic, object_storage, api_key, sockets):
    """Two cache instances and a compactor of one stream, their snapshots and values in one bucket."""
    bucket = f"b-{uuid.uuid4().hex[:8]}"
    object_storage.create_bucket(bucket)
    topic_url = kafka_topic(3)
    stream = topic_url.rsplit("/", 1)[-1]
    config = {"STREAMCACHE_LOG_URL": topic_url, "STREAMCACHE_SNAPSHOT_URL": object_storage.url(bucket, "cache"),
              "STREAMCACHE_OCI_ENDPOINT": object_storage.endpoint, "STREAMCACHE_OCI_CONFIG_FILE": str(api_key.config_file),
              "STREAMCACHE_OCI_PROFILE": api_key.profile, "STREAMCACHE_STALENESS_MS": "0"}
    store = open_snapshot_store(config["STREAMCACHE_SNAPSHOT_URL"], oci_endpoint=object_storage.endpoint,
                                oci_config_file=str(api_key.config_file), oci_profile=api_key.profile, **no_retries())
    started = []

    def start(name: str, **kwargs):
        started.append(start_instance(name, sockets, config, **kwargs))
        return started[-1]

    class Deployment:
        pass

    d = Deployment()
    d.config, d.store, d.stream, d.start = config, store, stream, start
    d.a, d.b = start("fn1"), start("fn2")
    yield d
    for instance in started:
        instance.stop()


def value_names(store, stream: str) -> list[str]:
    return [n for n in store.list(f"values/{stream}/") if "/refs/" not in n and "/orphans/" not in n]


def test_a_5_mb_value_round_trips_over_http_on_every_instance(deployment):
    d = deployment
    value = bytes(range(256)) * (FIVE_MB // 256)
    put = d.a.client.http_call("PUT", "/cache/pictures/big", value, {"Content-Type": "image/png"})
    assert put.status == 201, put.body
    digest = hashlib.sha256(value).hexdigest()
    assert value_names(d.store, d.stream) == [f"values/{d.stream}/{digest}"]
    assert d.store.get(f"values/{d.stream}/{digest}") == value
    for instance in (d.a, d.b):  # the writer (its cache) and another instance (a download)
        got = instance.client.http_call("GET", "/cache/pictures/big")
        assert (got.status, got.header("content-type"), got.header("etag")) == (200, "image/png", put.header("etag"))
        assert got.body == value
    listed = orjson.loads(d.b.client.http_call("GET", "/cache?prefix=pictures/").body)["keys"]
    assert [(k["key"], k["size"]) for k in listed] == [("pictures/big", FIVE_MB)]  # the value's size, not the reference's
    # The record on the stream carries the reference, not the bytes (the change feed shows it as it is).
    feed = orjson.loads(d.b.client.http_call("GET", "/changes?after=earliest").body)
    [change] = feed["changes"]
    event = change["event"]
    assert "data" not in event and "data_base64" not in event
    assert (event["dataref"], event["datasize"], event["datadigest"], event["datacontenttype"]) == (
        f"values/{d.stream}/{digest}", FIVE_MB, f"sha256:{digest}", "image/png")


def test_big_values_over_direct_invokes_up_to_what_an_invoke_answer_carries(deployment):
    d = deployment
    text = hashlib.shake_256(b"doc").hexdigest(FIVE_MB // 2)  # 5 MiB of text: travels as a JSON string
    put = orjson.loads(d.a.client.invoke(orjson.dumps({"operation": "put", "key": "doc", "value": text,
                                                      "content_type": "text/plain"})).body)
    assert put["status"] == 201, put
    assert len(value_names(d.store, d.stream)) == 1
    got = orjson.loads(d.b.client.invoke(orjson.dumps({"operation": "get", "key": "doc"})).body)
    assert (got["status"], got["content_type"], got["value"], got["version"]) == (200, "text/plain", text, put["version"])
    # 5 MB of binary is 6.7 MB of base64: more than an invoke answers. Said so, in JSON, not a bare failure.
    assert d.a.client.http_call("PUT", "/cache/bin", b"\xff" * FIVE_MB).status == 201
    answer = d.b.client.invoke(orjson.dumps({"operation": "get", "key": "bin"}))
    assert answer.status == 200
    refused = orjson.loads(answer.body)
    assert (refused["status"], refused["error"]) == (413, "answer_too_large")


def test_the_inline_threshold_is_inclusive(deployment):
    d = deployment
    at, over = b"a" * INLINE_MAX, b"b" * (INLINE_MAX + 1)
    assert d.a.client.http_call("PUT", "/cache/at", at).status == 201
    assert value_names(d.store, d.stream) == []
    assert d.a.client.http_call("PUT", "/cache/over", over).status == 201
    assert value_names(d.store, d.stream) == [f"values/{d.stream}/{hashlib.sha256(over).hexdigest()}"]
    # At the threshold but not inline: 256 KiB of NULs are 1.5 MB of JSON (\u0000 each), past the
    # stream's 1 MB. A value the stream cannot carry goes by reference whatever its size.
    nuls = b"\x00" * INLINE_MAX
    assert d.a.client.http_call("PUT", "/cache/nuls", nuls, {"Content-Type": "text/plain"}).status == 201
    assert f"values/{d.stream}/{hashlib.sha256(nuls).hexdigest()}" in value_names(d.store, d.stream)
    for key, value in (("at", at), ("over", over), ("nuls", nuls)):
        assert d.b.client.http_call("GET", f"/cache/{key}").body == value


def test_the_reserved_reference_type_cannot_be_written_by_a_client(deployment):
    answer = deployment.a.client.http_call("PUT", "/cache/k", b'{"dataref": "values/x/y"}',
                                           {"Content-Type": REF_CONTENT_TYPE})
    assert (answer.status, orjson.loads(answer.body)["error"]) == (400, "invalid_content_type")


def test_a_missing_value_object_is_a_json_500_value_unavailable(deployment):
    d = deployment
    value = b"v" * (INLINE_MAX * 2)
    assert d.a.client.http_call("PUT", "/cache/gone", value).status == 201
    [name] = value_names(d.store, d.stream)
    d.store.delete(name)  # deleted behind streamcache's back
    answer = d.b.client.http_call("GET", "/cache/gone")  # b never cached it
    assert answer.fdk_status == 200 and answer.status == 500
    body = orjson.loads(answer.body)
    assert body["error"] == "value_unavailable" and name in body["message"]
    invoked = orjson.loads(d.b.client.invoke(orjson.dumps({"operation": "get", "key": "gone"})).body)
    assert (invoked["status"], invoked["error"]) == (500, "value_unavailable")
    # Writing the key again heals it: the object is written anew.
    assert d.a.client.http_call("PUT", "/cache/gone", value).status == 200
    assert d.b.client.http_call("GET", "/cache/gone").body == value


def test_a_big_value_survives_a_compaction_and_a_cold_start(deployment, tmp_path):
    d = deployment
    values = {f"big/{i}": bytes([i]) * (INLINE_MAX + 1000 * i) for i in range(3)}
    for key, value in values.items():
        assert d.a.client.http_call("PUT", f"/cache/{key}", value, {"Content-Type": "application/x-test"}).status == 201
    compactor = d.start("compactor1", function_path=COMPACTOR, fn_name="compactor")
    compaction = orjson.loads(compactor.client.invoke(b"").body)
    assert (compaction["status"], compaction["outcome"]) == (200, "written"), compaction
    # The snapshot keeps the references, not the bytes.
    image = tmp_path / "snap.db"
    image.write_bytes(d.store.get(compaction["object"]))
    with sqlite3.connect(image) as db:
        rows = db.execute("SELECT key, content_type, length(value) FROM entries_readable ORDER BY key").fetchall()
    assert [(k, t) for k, t, _ in rows] == [(k, REF_CONTENT_TYPE) for k in sorted(values)]
    assert all(size < 400 for _, _, size in rows)

    fresh = d.start("fn3")
    wait_for(lambda: orjson.loads(fresh.client.http_call("GET", "/health").body)["phase"] == "serving",
             timeout_s=30, what="the fresh instance's cold start")
    health = orjson.loads(fresh.client.http_call("GET", "/health").body)
    assert health["snapshot"]["name"] == compaction["object"] and health["records_replayed"] == 0
    for key, value in values.items():
        got = fresh.client.http_call("GET", f"/cache/{key}")
        assert (got.status, got.header("content-type"), got.body) == (200, "application/x-test", value)


def test_a_5_mb_value_through_the_gateway_and_the_python_client(broker, tmp_path):
    """The whole local stack as `streamcache dev` runs it (its data directory is the store): the
    gateway's 6 MB body limit passes 5 MiB, and the client reads it back from the other instance."""
    from streamcache.client import Client
    from streamcache_local.dev import DevStack, Dispatch

    topic = f"big-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 3)
    value = hashlib.shake_256(b"gateway").digest(FIVE_MB)
    with DevStack(port=0, instances=2, dispatch=Dispatch.ROUND_ROBIN, log_url=broker.log_url(topic),
                  data_dir=tmp_path / "data", background=False) as stack:
        client = Client(stack.url + "/cache")
        written = client.put("big", value, content_type="application/x-big")
        item = client.get("big")
        assert (item.value, item.content_type, item.version) == (value, "application/x-big", written.version)
        assert (tmp_path / "data" / "values" / topic / hashlib.sha256(value).hexdigest()).read_bytes() == value
