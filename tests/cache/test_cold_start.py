"""Cold start of a cache instance (CacheApp in process, memory log and store): newest valid snapshot
plus the tail, requests during the restore, and the degraded cases, as /health reports them (every
answer checked against the OpenAPI document)."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timezone

import orjson
import pytest
from freezegun import freeze_time

from streamcache.adapters.memory_log import MemoryLog
from streamcache.adapters.memory_store import MemoryStore
from streamcache.cache.app import CacheApp
from streamcache.compactor.compaction import compact
from streamcache.cache.http_api import HttpRequest
from streamcache.cache.cold_start import process_age_s
from streamcache.settings import Settings
from support.hooked_store import HookedStore
from support.log_history import START_MS, fill, full_replay, put
from support.openapi import check_against_openapi
from support.waiting import wait_for


class Env:
    """A memory log and store shared by name, and cache instances over them."""

    def __init__(self) -> None:
        self.name = f"cold-{uuid.uuid4().hex}"
        self.log = MemoryLog.named(self.name, 3)
        self.store = MemoryStore.named(self.name)

    def app(self, snapshots: bool = True, store=None, **settings) -> CacheApp:
        env = {"STREAMCACHE_LOG_URL": f"memory://{self.name}", "STREAMCACHE_INSTANCE_ID": "cold-test"}
        if snapshots:
            env["STREAMCACHE_SNAPSHOT_URL"] = f"memory://{self.name}"
        env.update({f"STREAMCACHE_{k.upper()}": str(v) for k, v in settings.items()})
        return CacheApp(Settings.from_env(env), store_factory=(lambda: store) if store is not None else None)

    def compact(self, keep: int = 3):
        return compact(self.log, self.store, self.name, keep)

    def forget(self) -> None:
        MemoryLog.forget(self.name)
        MemoryStore.forget(self.name)


@pytest.fixture
def env():
    made = Env()
    yield made
    made.forget()


def call(app: CacheApp, method: str, url: str, wait_s: float | None = 10.0):
    response = app.handle(HttpRequest(method, url, {}, b""), wait_s)
    check_against_openapi(method, url, *response)
    return response


def health(app: CacheApp, wait_s: float | None = 10.0) -> dict:
    """/health once the cold start is done (or ``wait_s`` ran out): /health itself never waits."""
    if wait_s:
        try:
            app.ensure_started(wait_s)
        except Exception:  # a failed or unfinished restore is what /health then reports
            pass
    response = call(app, "GET", "/health", wait_s)
    assert response.status == 200
    return orjson.loads(response.body)


def test_a_cold_start_loads_the_newest_snapshot_and_replays_only_the_tail(env):
    latest = fill(env.log, 200, keys=60)
    written = env.compact().object
    latest.update(fill(env.log, 12, keys=60, ts_ms=START_MS + 5_000, prefix="k"))
    app = env.app()
    status = health(app)
    assert status["status"] == status["phase"] == "serving"
    assert status["snapshot"]["name"] == written and status["snapshot"]["entries"] == 60
    assert status["records_replayed"] == status["records_to_replay"] == 12
    assert status["lag_records"] == 0 and status["problems"] == [] and status["snapshots_skipped"] == []
    assert status["positions"] == {str(p): o for p, o in env.log.bounds().next.items()}
    assert status["cold_start_ms"] >= status["restore_ms"] >= 0
    assert status["cold_start_from"] == "process start" and status["stream"] == env.name
    for key, value in latest.items():
        assert call(app, "GET", f"/cache/{key}").body == value
    assert app.replica.table.export_state() == full_replay(env.log).export_state()


def test_without_a_snapshot_store_the_whole_log_is_replayed(env):
    fill(env.log, 30)
    status = health(env.app(snapshots=False))
    assert status["phase"] == "serving" and status["snapshot"] is None and status["records_replayed"] == 30


def test_health_reports_the_snapshot_age_by_the_wall_clock(env):
    put(env.log, "k", b"v", ts_ms=START_MS)  # the snapshot's as-of time is its newest record's log time
    env.compact()
    with freeze_time(datetime.fromtimestamp((START_MS + 90_500) / 1000, timezone.utc)):
        status = health(env.app())
    assert status["snapshot"]["as_of_ms"] == START_MS and status["snapshot"]["age_s"] == 90.5


def test_a_request_during_the_restore_waits_within_its_budget_or_gets_503_restoring(env):
    fill(env.log, 40)
    env.compact()
    put(env.log, "late", b"tail", ts_ms=START_MS + 1_000)
    downloading, release = threading.Event(), threading.Event()

    def slow_download(name, *args):
        downloading.set()
        assert release.wait(10)

    app = env.app(store=HookedStore(env.store, read_into=slow_download))
    busy = call(app, "GET", "/cache/late", wait_s=0)
    assert busy.status == 503 and busy.headers["Retry-After"] == "1"
    assert orjson.loads(busy.body)["error"] == "restoring"
    assert downloading.wait(10)
    status = health(app, wait_s=0)  # /health answers while restoring
    assert status["phase"] == "restoring" and status["positions"] == {} and status["cold_start_ms"] is None
    answer = orjson.loads(app.invoke(b'{"operation": "get", "key": "late"}', wait_s=0))
    assert (answer["status"], answer["error"], answer["retry_after"]) == (503, "restoring", 1)
    invoked_health = orjson.loads(app.invoke(b'{"operation": "HEALTH"}', wait_s=0))
    assert invoked_health["status"] == 200 and invoked_health["health"]["phase"] == "restoring"

    waited = []
    waiter = threading.Thread(target=lambda: waited.append(call(app, "GET", "/cache/late", wait_s=10)))
    waiter.start()
    release.set()  # the restore finishes while the request waits: it is answered, not refused
    waiter.join(10)
    assert waited[0].status == 200 and waited[0].body == b"tail"
    assert health(app)["phase"] == "serving"


def test_a_restore_that_cannot_read_the_snapshot_store_is_503_and_retried(env):
    fill(env.log, 10)
    env.compact()
    env.store.available = False
    app = env.app()
    response = call(app, "GET", "/cache/k1")
    assert response.status == 503 and orjson.loads(response.body)["error"] == "snapshot_store_unavailable"
    assert call(app, "GET", "/health").status == 503
    env.store.available = True
    assert call(app, "GET", "/cache/k1").body == b"k-1"


def _flip_middle(data: bytes) -> bytes:
    return data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 1]) + data[len(data) // 2 + 1 :]


@pytest.mark.parametrize("damage", [lambda data: b"\x89SCSNAP\n" + bytes(40), _flip_middle,
                                    lambda data: data[: len(data) - 4096]],
                         ids=["garbage", "one-bit-flipped", "truncated-by-a-page"])
def test_a_corrupt_newest_snapshot_falls_back_to_an_older_one(env, damage):
    fill(env.log, 50)
    older = env.compact().object
    fill(env.log, 10, ts_ms=START_MS + 1_000, prefix="n")
    newest = env.compact().object
    intact = env.store.get(newest)
    env.store.delete(newest)
    env.store.put_new(newest, damage(intact))
    status = health(env.app())
    assert status["phase"] == "serving" and status["snapshot"]["name"] == older
    assert status["records_replayed"] == 10
    assert [(s["name"], s["reason"]) for s in status["snapshots_skipped"]] == [(newest, "corrupt")]


def test_a_truncated_tail_serves_what_there_is_and_reports_data_loss(env, caplog):
    fill(env.log, 30, keys=30)
    env.compact()
    fill(env.log, 30, keys=30, ts_ms=START_MS + 1_000, prefix="gone-")
    fill(env.log, 3, keys=3, ts_ms=START_MS + 2_000, prefix="still-")
    end = env.log.bounds().next
    for p in range(3):  # partition 0 loses everything, the others keep their last record
        env.log.truncate_before(p, end[p] - (p > 0))
    app = env.app()
    status = health(app)
    assert status["phase"] == "degraded"
    assert status["positions"] == {str(p): o for p, o in end.items()}  # past the gap, even where nothing is left
    (problem,) = status["problems"]
    assert problem["kind"] == "data_loss" and "DATA LOSS" in problem["message"]
    assert "compactor well inside the stream's retention" in problem["message"]
    assert call(app, "GET", "/cache/k0").body == b"k-0"  # from the snapshot
    assert any("DATA LOSS" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    put(env.log, "after", b"1", ts_ms=START_MS + 3_000)
    assert call(app, "GET", "/cache/after?consistency=strong").body == b"1"  # catch-ups start past the gap


def test_a_snapshot_ahead_of_the_log_is_not_used(env):
    fill(env.log, 40)
    env.compact()
    MemoryLog.forget(env.name)
    env.log = MemoryLog.named(env.name, 3)  # the stream was recreated
    fill(env.log, 6, keys=6, prefix="expired-")
    end = env.log.bounds().next
    for p in range(3):  # the new stream's retention dropped these already
        env.log.truncate_before(p, end[p])
    put(env.log, "new", b"n", ts_ms=START_MS)
    app = env.app()
    status = health(app)
    assert status["phase"] == "degraded" and status["snapshot"] is None and status["records_replayed"] == 1
    assert status["positions"] == {str(p): o for p, o in env.log.bounds().next.items()}
    assert status["problems"][0]["kind"] == "snapshot_ahead_of_log"
    assert call(app, "GET", "/cache/new").body == b"n"
    assert call(app, "GET", "/cache/k1").status == 404


def test_a_recorded_data_loss_keeps_instances_degraded_until_acknowledged(env):
    fill(env.log, 20)
    env.compact()
    fill(env.log, 20, ts_ms=START_MS + 1_000, prefix="lost-")
    end = env.log.bounds().next
    for p in range(3):
        env.log.truncate_before(p, end[p])
    summary = env.compact()
    status = health(env.app())
    assert status["phase"] == "degraded" and status["records_replayed"] == 0
    assert [p["kind"] for p in status["problems"]] == ["data_loss_recorded"]
    env.store.delete(summary.data_loss_record)  # what `streamcache snapshots --acknowledge-data-loss` does
    assert health(env.app())["phase"] == "serving"


def test_cold_start_duration_counts_from_the_process_start(env):
    age = process_age_s()
    assert age is not None and age > 0  # this test runs on Linux, with /proc
    status = health(env.app())
    assert status["cold_start_ms"] >= age * 1000 - 50  # the process is older than this test's restore


def test_a_restore_waits_on_nothing_once_done(env):
    app = env.app()
    health(app)
    wait_for(lambda: app.cold_start.done, what="the restore")
    assert call(app, "GET", "/cache/missing", wait_s=0).status == 404
