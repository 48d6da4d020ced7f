"""The bench end to end in its smallest mode (``--mode tiny``, a few seconds): it starts the broker,
the function instances, the gateway and (when redis-server is installed) Redis, measures, writes the
results and charts, and stops everything. Only the shape of the results is checked here: speed is the
bench's business, not the tests'."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LATENCY_FIELDS = {"n", "errors", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms", "rps"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    # --no-redis-setup: a test never installs packages; the Redis half runs when redis-server is there.
    done = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--mode", "tiny", "--out", str(out),
                           "--no-redis-setup"], cwd=REPO, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, json.loads((out / "latest.json").read_text()), done


def _check_latency(stats: dict) -> None:
    assert LATENCY_FIELDS <= stats.keys(), stats
    assert stats["n"] > 0 and stats["errors"] == 0
    assert 0 < stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    assert stats["rps"] > 0


def test_the_machine_is_described(tiny_run):
    _, results, _ = tiny_run
    assert results["mode"] == "tiny"
    machine = results["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and machine["python"].count(".") == 2


def test_streamcache_warm_paths_are_measured(tiny_run):
    _, results, _ = tiny_run
    ours = results["measurements"]["warm"]["streamcache"]
    for path in ("handler", "fdk_socket", "gateway", "gateway_concurrent"):
        for op in ("get", "put"):
            _check_latency(ours[path][op])
    assert ours["gateway_concurrent"]["clients"] >= 2
    _check_latency(ours["gateway_taking_turns"]["put"])
    for control in ("fdk_append_function", "gateway_append_function"):  # a function that only appends
        _check_latency(ours[control]["put"])
    for path in ("handler", "fdk_socket", "fdk_append_function", "gateway", "gateway_append_function",
                 "gateway_taking_turns"):  # the append alone, in turns with each path's PUTs
        _check_latency(ours["append_alone"][path])
    assert [row["path"] for row in ours["targets"]] == [
        "handler", "fdk_socket", "fdk_socket, a function that only appends (control)", "gateway",
        "gateway, a function that only appends (control)", "gateway, 2 instances taking turns",
        "gateway, 4 clients, 2 instances"]


def test_durability_scaling_and_snapshot_are_measured(tiny_run):
    _, results, _ = tiny_run
    measurements = results["measurements"]
    _check_latency(measurements["durability"]["streamcache"]["append_acks_all"])
    _check_latency(measurements["durability"]["streamcache"]["put_in_handler"])
    cold = measurements["scaling"]["streamcache"]["stream_replay"]["1000"]
    assert cold["keys_held"] == 1000 and cold["records"] == 1110  # 1000 keys, then tails of 1 % and 10 % overwrites
    assert 0 < cold["socket_ready_s"] < cold["first_read_s"]
    assert cold["rss_bytes"] > 0 and cold["peak_rss_bytes"] >= cold["rss_bytes"]
    if "snapshot_and_tail" in measurements["scaling"]["streamcache"]:  # snapshots (issue 3) are in the build
        restored = measurements["scaling"]["streamcache"]["snapshot_and_tail"]["1000"]
        assert restored["keys_held"] == 1000 and restored["snapshot"].endswith(".db")
        assert restored["records"] == 10  # only the 1 % tail is replayed
        samples = restored["first_read_samples_s"]  # two cold starts in tiny mode, the median quoted
        assert len(samples) == 2 and restored["first_read_s"] == min(samples)
        assert measurements["scaling"]["streamcache"]["snapshot_and_tail_10pct"]["1000"]["records"] == 100
        compaction = measurements["compaction"]["1000"]
        assert compaction["records_folded"] == 1000 and compaction["entries"] == 1000
        incremental = compaction["incremental"]["snapshot_and_tail"]
        assert incremental["records_folded"] == 10 and incremental["entries"] == 1000
    else:
        assert measurements["scaling"]["snapshot_and_tail"].startswith("skipped")
    snapshot = measurements["snapshot"]["1000"]
    assert snapshot["entries_loaded"] == 1000 and snapshot["snapshot_bytes"] > 0
    assert "error" not in measurements["compaction"]
    cost = measurements["metrics"]  # issue 23: metrics on and off, in the same run
    for op in ("get", "put"):
        assert cost[op]["metrics_on"]["n"] > 0 and cost[op]["metrics_off"]["n"] > 0
        assert cost[op]["metrics_on"]["errors"] == 0 and "within_target" in cost[op]


def test_redis_half_runs_or_says_why_not(tiny_run):
    _, results, _ = tiny_run
    measurements = results["measurements"]
    if shutil.which("redis-server") is None:
        assert results["redis"]["available"] is False and results["redis"]["reason"]
        assert "skipped" in measurements["warm"]["redis"]
        return
    assert results["redis"]["available"] is True
    theirs = measurements["warm"]["redis"]
    _check_latency(theirs["get"])
    _check_latency(theirs["set"])
    assert measurements["warm"]["ratios"]["gateway.get"]["p50_x"] > 0
    for variant in ("no_persistence", "aof_everysec", "aof_always"):
        _check_latency(measurements["durability"]["redis"][variant])
    rdb = measurements["scaling"]["redis"]["1000"]
    assert rdb["first_read_s"] > 0 and rdb["rdb_bytes"] > 0 and rdb["used_memory_per_key_bytes"] > 0
    assert len(rdb["first_read_samples_s"]) == 2 and rdb["first_read_s"] == min(rdb["first_read_samples_s"])
    assert measurements["scaling"]["ratios"]["stream_replay.1000"]["cold_start_x"] > 0


def test_report_and_charts_are_written(tiny_run):
    out, results, done = tiny_run
    table = (out / "latest.md").read_text()
    assert "Warm GET and PUT" in table and "Cold start and memory" in table
    assert table in done.stdout  # the table is also printed
    assert sorted(results["charts"]) == ["latency.png", "scaling.png"]
    for name in results["charts"]:
        assert (out / name).read_bytes()[:8] == PNG_MAGIC


def test_the_oci_like_section_is_measured(tiny_run):
    out, results, _ = tiny_run
    section = results["measurements"]["oci_like"]
    assert sorted(section["instances"], key=int) == ["1", "4", "16"]
    for row in section["instances"].values():
        _check_latency(row["get"])
        _check_latency(row["put"])
        assert row["read_requests_per_partition_per_s"] >= 0
        assert row["staleness"]["reads"] > 0 and 0 <= row["staleness"]["p50_ms"] <= row["staleness"]["p99_ms"]
    assert section["instances"]["16"]["read_requests_per_partition_per_s"] > 0  # many readers: fetches counted
    assert section["instances"]["16"]["thaws"] >= 1  # the freezer ran: instances were frozen and continued
    thaw = section["thaw"]
    assert thaw["status"] == 200 and thaw["was_frozen"] and thaw["answer_ms"] > 0 and thaw["frozen_s"] >= 1
    assert "OCI-like" in (out / "latest.md").read_text()


def test_the_batch_section_is_measured(tiny_run):
    _, results, _ = tiny_run
    section = results["measurements"]["batch"]
    for way in ("one_put", "batch_of_100", "sequential_100"):
        _check_latency(section["loopback"][way])
    assert section["loopback"]["batch_over_one_put_p50"] > 0 and section["loopback"]["puts_per_s"]["batch_of_100"] > 0
    assert section["oci_like"] == {"skipped": "not in tiny mode"}  # quick and full modes run it (seconds)


def test_the_big_values_section_is_measured(tiny_run):
    out, results, _ = tiny_run
    section = results["measurements"]["big_values"]
    for name in ("put_big", "put_small", "get_big_cached", "get_big_fetched", "get_small"):
        _check_latency(section[name])
    assert section["objects_written"] >= section["put_big"]["n"]  # every big PUT uploaded new bytes
    rss = section["memory"]["rss_bytes"]
    assert rss["empty"] > 0 and rss["inline_256k_double"] > 0
    assert section["memory"]["inline_estimate_bytes"] >= section["memory"]["inline_floor_bytes"]
    assert "Big values by reference" in (out / "latest.md").read_text()
