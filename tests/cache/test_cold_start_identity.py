"""A cold start checks the snapshot against the log before loading it (log identity): a snapshot of
another log is never loaded, a short log end is not taken for one, a changed partition count refuses,
and a snapshot folded with another quota is said (CacheApp in process, memory log and store)."""

from __future__ import annotations

import orjson

from streamcache.adapters.memory_log import MemoryLog
from streamcache.compactor.compaction import compact
from streamcache.ports import LogBounds
from support.log_history import fill

from test_cold_start import Env, call, env, health  # noqa: F401  (env is a fixture)


def test_a_snapshot_of_a_lost_log_is_not_loaded_even_when_the_new_log_is_longer(env):
    fill(env.log, 30, prefix="old")
    env.compact()
    MemoryLog.forget(env.name)
    env.log = MemoryLog.named(env.name, 3)  # a broker that lost its log, then took more records
    fill(env.log, 90, keys=90, prefix="new")
    app = env.app()
    status = health(app)
    assert status["phase"] == "degraded" and status["snapshot"] is None
    assert status["problems"][0]["kind"] == "snapshot_ahead_of_log"
    assert "SNAPSHOT OF ANOTHER LOG" in status["problems"][0]["message"]
    assert call(app, "GET", "/cache/new89").body == b"new-89"
    assert call(app, "GET", "/cache/old1").status == 404  # nothing of the dead log is served


class ShortEnd:
    """The log, with a ListOffsets that answers short (as the local broker does after a batch)."""

    def __init__(self, log: MemoryLog) -> None:
        self._log = log

    def __getattr__(self, name):
        return getattr(self._log, name)

    def bounds(self) -> LogBounds:
        real = self._log.bounds()
        return LogBounds(real.first, {p: max(real.first[p], n - 5) for p, n in real.next.items()})


def test_a_short_log_end_is_not_taken_for_another_log(env, monkeypatch):
    fill(env.log, 60, keys=20)
    written = env.compact().object
    app = env.app()
    monkeypatch.setattr(app.replica, "_log", ShortEnd(env.log))
    status = health(app)
    assert status["phase"] == "serving" and status["snapshot"]["name"] == written
    assert status["problems"] == []
    assert call(app, "GET", "/cache/k19").body == b"k-59"


def test_a_log_whose_partition_count_changed_is_refused_with_503_log_mismatch(env):
    fill(env.log, 30)
    env.compact()
    grown = MemoryLog(4)
    for record in env.log.read({0: 0, 1: 0, 2: 0}):
        grown._records[record.position.partition].append(record)
    MemoryLog._registry[env.name] = grown  # partitions added under the same stream
    app = env.app()
    status = health(app)
    assert status["phase"] == "refusing"
    assert status["problems"][0]["kind"] == "partition_count_changed"
    assert status["problems"][0]["snapshot_partitions"] == 3 and status["problems"][0]["log_partitions"] == 4
    for method, url in [("GET", "/cache/k1"), ("PUT", "/cache/k1"), ("GET", "/cache/k1?consistency=strong")]:
        answer = call(app, method, url)
        assert answer.status == 503 and orjson.loads(answer.body)["error"] == "log_mismatch"
        assert dict(answer.headers)["Retry-After"] == "1"


def test_a_snapshot_folded_with_another_quota_is_said(env):
    fill(env.log, 30)
    compact(env.log, env.store, env.name, 3, max_bytes=1 << 20)
    app = env.app(max_bytes=2 << 20)
    status = health(app)
    assert status["phase"] == "degraded"
    assert [p["kind"] for p in status["problems"]] == ["settings_differ"]
    assert "STREAMCACHE_MAX_BYTES=1048576" in status["problems"][0]["message"]
    assert call(app, "GET", "/cache/k1").status == 200
