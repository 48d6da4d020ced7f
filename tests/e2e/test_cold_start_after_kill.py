"""End to end: write through cache instances (the real FDK, a Kafka log on Tansu), compact through the
compactor function, write more, SIGKILL every instance, and a fresh instance serves every acknowledged
write, restored from the snapshot plus the tail (as OCI does when it reclaims and starts containers)."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from pathlib import Path

import orjson
from support.waiting import wait_for
import pytest

from streamcache_local.fn_runner import start_instance

COMPACTOR = Path(__file__).resolve().parents[2] / "functions" / "compactor" / "func.py"


@pytest.fixture
def sockets():
    path = tempfile.mkdtemp(prefix="sc-t-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_fresh_instance_serves_every_acknowledged_write_after_every_instance_was_killed(kafka_topic, tmp_path, sockets):
    config = {"STREAMCACHE_LOG_URL": kafka_topic(3), "STREAMCACHE_SNAPSHOT_URL": f"file://{tmp_path}/snapshots",
              "STREAMCACHE_STALENESS_MS": "0"}
    instances = [start_instance(f"fn{i}", sockets, config) for i in (1, 2)]
    compactor = start_instance("compactor1", sockets, config, function_path=COMPACTOR, fn_name="compactor")
    fresh = None
    try:
        acknowledged: dict[str, tuple[bytes, str] | None] = {}  # key -> (value, version), None = deleted

        def write(number: int, key: str, value: bytes, method: str = "PUT") -> None:
            answer = instances[number % 2].client.http_call(method, f"/cache/{key}", value)
            assert answer.status in (200, 201, 204), answer.body
            acknowledged[key] = None if method == "DELETE" else (value, answer.header("etag").strip('"'))

        for i in range(60):
            write(i, f"user/{i % 25}", f"v{i}".encode())
        compaction = orjson.loads(compactor.client.invoke(b"").body)
        assert (compaction["status"], compaction["outcome"], compaction["records_folded"]) == (200, "written", 60)
        for i in range(60, 75):  # the tail: overwrites, new keys and deletes after the snapshot
            write(i, f"user/{i % 30}", f"w{i}".encode())
        write(0, "user/3", b"", method="DELETE")
        write(1, "user/24", b"", method="DELETE")

        for instance in instances:
            os.kill(instance.pid, signal.SIGKILL)
        for instance in instances:
            assert instance.exited_within(5)
            instance.stop()  # removes the socket files a killed process leaves behind

        fresh = start_instance("fn3", sockets, config)

        def health_now() -> dict:  # /health never waits for the restore; it reports its phase
            return orjson.loads(fresh.client.http_call("GET", "/health").body)

        wait_for(lambda: health_now()["phase"] != "restoring", timeout_s=30, what="the fresh instance's restore")
        health = health_now()
        assert health["phase"] == "serving" and health["snapshot"]["name"] == compaction["object"]
        assert health["records_replayed"] == 17 and health["lag_records"] == 0 and health["problems"] == []
        assert health["cold_start_ms"] > health["restore_ms"] > 0
        for key, expected in acknowledged.items():
            answer = fresh.client.http_call("GET", f"/cache/{key}")
            if expected is None:
                assert answer.status == 404, key
            else:
                assert (answer.status, answer.body, answer.header("etag")) == (200, expected[0], f'"{expected[1]}"'), key
    finally:
        for instance in [*instances, compactor, *([fresh] if fresh else [])]:
            instance.stop()
