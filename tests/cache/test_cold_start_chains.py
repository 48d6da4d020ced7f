"""A cache instance's cold start from a chain of deltas (core/snapshot_chain.py): the base, each delta
in order, then the tail; a damaged or missing delta falls back to the longest valid prefix and a
longer tail, reported in /health, and the table is always the full replay's."""

from __future__ import annotations

import pytest

from streamcache.compactor.compaction import compact
from streamcache.core.snapshot_chain import ChainPolicy
from support.log_history import START_MS, fill, full_replay
from test_cold_start import Env, _flip_middle, call, env, health  # noqa: F401  (env is a fixture)

CHAIN = ChainPolicy(max_deltas=5, max_fraction=100)


def _chain(env: Env) -> list[str]:
    fill(env.log, 600, keys=600)
    made = [compact(env.log, env.store, env.name, 5, chain=CHAIN).object]
    for round_ in (1, 2):
        fill(env.log, 10, keys=10, ts_ms=START_MS + 10_000 * round_, prefix=f"r{round_}-")
        summary = compact(env.log, env.store, env.name, 5, chain=CHAIN)
        assert summary.kind == "delta"
        made.append(summary.object)
    fill(env.log, 7, keys=7, ts_ms=START_MS + 50_000, prefix="tail-")
    return made


def test_a_cold_start_loads_the_base_then_each_delta_then_the_tail(env):
    base, d1, d2 = _chain(env)
    app = env.app()
    status = health(app)
    assert status["phase"] == "serving" and status["snapshot"]["name"] == d2
    assert status["snapshot"]["chain"] == [base, d1, d2] and status["snapshot"]["entries"] == 620
    assert status["records_replayed"] == 7 and status["snapshots_skipped"] == []
    assert call(app, "GET", "/cache/r2-3").body == b"r2--3"
    assert app.replica.table.export_state() == full_replay(env.log).export_state()


@pytest.mark.parametrize("damage", [_flip_middle, lambda data: data[: len(data) - 4096], None],
                         ids=["one-bit-flipped", "truncated-by-a-page", "missing"])
def test_a_damaged_or_missing_delta_falls_back_to_the_longest_valid_prefix_and_a_longer_tail(env, damage):
    base, d1, d2 = _chain(env)
    intact = env.store.get(d1)
    env.store.delete(d1)
    if damage is not None:
        env.store.put_new(d1, damage(intact))
    app = env.app()
    status = health(app)
    assert status["phase"] == "serving" and status["snapshot"]["name"] == base
    assert status["records_replayed"] == 27  # both deltas' records and the tail, from the log
    skipped = {s["name"]: s["reason"] for s in status["snapshots_skipped"]}
    assert skipped == ({d2: "missing_link"} if damage is None else {d2: "missing_link", d1: "corrupt"})
    assert app.replica.table.export_state() == full_replay(env.log).export_state()
