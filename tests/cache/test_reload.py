"""A running instance reloads its table through a restore (CacheApp in process, memory log and store):
after the log proved it went backwards, and after retention left it behind (finding 4: a snapshot
that covers the gap makes the loss disappear). While the reload runs, default reads are served from
the old table (``Streamcache-Stale``), strong reads, ``after=`` reads and writes get 503 restoring at
once, and /health says ``recovering``. A partition count that changes under a running instance makes
it refuse (finding 3). Every answer is checked against the OpenAPI document."""

from __future__ import annotations

import threading
import time
import uuid

import orjson
import pytest

from streamcache.adapters.memory_log import MemoryLog
from streamcache.adapters.memory_store import MemoryStore
from streamcache.cache.app import CacheApp
from streamcache.cache.http_api import HttpRequest
from streamcache.cache.log_watch import LogWatch
from streamcache.compactor.compaction import compact
from streamcache.settings import Settings
from support.hooked_store import HookedStore
from support.log_history import put
from support.openapi import check_against_openapi
from support.waiting import wait_for


class Env:
    def __init__(self) -> None:
        self.name = f"reload-{uuid.uuid4().hex}"
        self.log = MemoryLog.named(self.name, 2)
        self.store = MemoryStore.named(self.name)
        self.blocked = threading.Event()  # set: snapshot downloads wait for ``release``
        self.downloading = threading.Event()
        self.release = threading.Event()

    def _get(self, name, *args) -> None:
        if self.blocked.is_set():
            self.downloading.set()
            assert self.release.wait(10)

    def app(self) -> CacheApp:
        env = {"STREAMCACHE_LOG_URL": f"memory://{self.name}", "STREAMCACHE_INSTANCE_ID": "reload-test",
               "STREAMCACHE_SNAPSHOT_URL": f"memory://{self.name}"}
        store = HookedStore(self.store, read_into=self._get)
        app = CacheApp(Settings.from_env(env), store_factory=lambda: store)
        app.replica.watch = LogWatch(check_every_s=0)  # look at every catch-up
        return app

    def compact(self):
        return compact(self.log, self.store, self.name, 3)


@pytest.fixture
def env():
    made = Env()
    yield made
    made.release.set()
    MemoryLog.forget(made.name)
    MemoryStore.forget(made.name)


def call(app: CacheApp, method: str, url: str, body: bytes = b"", headers: dict | None = None):
    response = app.handle(HttpRequest(method, url, headers or {}, body), 10.0)
    check_against_openapi(method, url, *response)
    return response


def health(app: CacheApp) -> dict:
    return orjson.loads(call(app, "GET", "/health").body)


def test_a_proven_regression_reloads_in_the_background_serving_default_reads_stale(env):
    app = env.app()
    for n in range(6):
        assert call(app, "PUT", f"/cache/old-{n}", b"old").status == 201
    env.compact()  # a snapshot of the old log: the reload must not load it
    env.log.lose_everything()  # the broker restarted empty
    put(env.log, "new", b"fresh")
    env.blocked.set()

    found = call(app, "GET", "/cache/old-0?consistency=strong")  # its catch-up proves it, starts the reload
    assert found.status == 503 and orjson.loads(found.body)["error"] == "restoring"
    assert env.downloading.wait(10)
    stale = call(app, "GET", "/cache/old-0")
    assert (stale.status, stale.body, stale.headers.get("Streamcache-Stale")) == (200, b"old", "true")
    status = health(app)
    assert status["phase"] == "recovering" and status["log_regressions"] == 1
    assert {p["kind"] for p in status["problems"]} == {"log_regression", "reloading"}

    started = time.monotonic()
    strong = call(app, "GET", "/cache/old-0?consistency=strong")
    write = call(app, "PUT", "/cache/during", b"x")
    session = call(app, "GET", "/cache/old-0", headers={"streamcache-after": "0-0"})
    assert time.monotonic() - started < 2.0  # promptly, not after a read deadline
    for answer in (strong, write, session):
        assert answer.status == 503 and answer.headers["Retry-After"] == "1"
        assert orjson.loads(answer.body)["error"] == "restoring"
    assert env.log.bounds().next == {0: 0, 1: 0} | {env.log.partition_for("new"): 1}  # nothing appended

    env.release.set()
    wait_for(lambda: health(app)["phase"] != "recovering", what="the reload to finish")
    status = health(app)
    assert status["phase"] == "degraded" and "snapshot_ahead_of_log" in {p["kind"] for p in status["problems"]}
    assert call(app, "GET", "/cache/old-0?consistency=strong").status == 404  # as a fresh instance answers
    assert call(app, "GET", "/cache/new?consistency=strong").body == b"fresh"
    assert call(app, "PUT", "/cache/after", b"y").status == 201


def _behind_retention(env) -> tuple[CacheApp, list[str]]:
    """An instance that applied the first record, then records it never read, some of them dropped."""
    app = env.app()
    assert call(app, "PUT", "/cache/first", b"1").status == 201
    assert call(app, "GET", "/cache/first?consistency=strong").status == 200
    keys = [k for k in (f"k{i}" for i in range(200)) if env.log.partition_for(k) == env.log.partition_for("first")][:6]
    for key in keys:
        put(env.log, key, key.encode())
    return app, keys


def test_an_instance_behind_retention_reloads_from_a_snapshot_that_covers_the_gap(env):
    """Finding 4. Fails before the change: the instance skipped to the log's first offset and served
    without the dropped keys (degraded, data_loss), though the snapshot held them."""
    app, keys = _behind_retention(env)
    env.compact()  # covers every record
    partition = env.log.partition_for("first")
    env.log.truncate_before(partition, 4)
    first = call(app, "GET", f"/cache/{keys[0]}?consistency=strong")
    assert first.status in (200, 503)  # 503 restoring when the reload has not finished within the request
    wait_for(lambda: health(app)["phase"] not in ("recovering", "restoring"), what="the reload to finish")
    status = health(app)
    assert status["phase"] == "serving" and status["problems"] == [], status
    for key in keys:
        assert call(app, "GET", f"/cache/{key}?consistency=strong").body == key.encode()


def test_an_instance_behind_retention_with_no_snapshot_covering_it_reports_the_loss(env):
    app, keys = _behind_retention(env)
    partition = env.log.partition_for("first")
    env.log.truncate_before(partition, 4)
    call(app, "GET", f"/cache/{keys[-1]}?consistency=strong")
    wait_for(lambda: health(app)["phase"] not in ("recovering", "restoring"), what="the reload to finish")
    status = health(app)
    assert status["phase"] == "degraded" and [p["kind"] for p in status["problems"]] == ["data_loss"]
    assert call(app, "GET", f"/cache/{keys[0]}?consistency=strong").status == 404  # dropped, said so
    assert call(app, "GET", f"/cache/{keys[-1]}?consistency=strong").body == keys[-1].encode()


def test_partitions_added_under_a_running_instance_make_it_refuse(env):
    """Finding 3 (the Kafka adapter's fresh count is in the contract suite). Fails before the change:
    the instance went on answering, with keys now hashing elsewhere."""
    app = env.app()
    for n in range(6):
        assert call(app, "PUT", f"/cache/k{n}", b"v").status == 201
    before = env.log.bounds().next
    env.log.add_partitions(3)
    # the next periodic look (a catch-up, at most CHECK_EVERY_S apart) learns the count; every
    # answer from then on is refused
    for answer in (call(app, "GET", "/cache/k0?consistency=strong"), call(app, "GET", "/cache/k0"),
                   call(app, "PUT", "/cache/k9", b"v"), call(app, "GET", "/cache/?prefix=k")):
        assert answer.status == 503 and orjson.loads(answer.body)["error"] == "log_mismatch"
    assert {p: n for p, n in env.log.bounds().next.items() if p in before} == before  # nothing appended
    status = health(app)
    assert status["phase"] == "refusing"
    assert [p["kind"] for p in status["problems"]] == ["partition_count_changed"]
    assert app.replica.quota is None and app.replica.log.partitions == 2  # placement did not switch
