"""``streamcache dev`` around the functions: the compaction schedule, health checks, idle reclaim with
cold starts, the final compaction, restart continuity through the data dir, and imports.

Every stack here runs its own Tansu broker (an empty stream, as each ``streamcache dev`` run has),
real FDK cache instances and the real compactor function. Time is a hand-driven clock and the jobs
run when a test calls ``stack.tick()``: nothing waits for a timer.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

from streamcache.cli import main as cli
from streamcache.adapters.directory_store import DirectoryStore
from streamcache.core.snapshot import decode_snapshot, newest_first, stream_prefix
from streamcache_local.dev import DevStack
from streamcache_local.pool import Dispatch
from streamcache_local.lifecycle import compact
from support.gateway import request

COMPACT_EVERY, WARM_EVERY, IDLE = 60.0, 30.0, 300.0


class ManualClock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _stack(data_dir: Path, clock: ManualClock, said: list[str], **options) -> DevStack:
    settings = dict(port=0, instances=2, partitions=3, data_dir=data_dir, clock=clock, background=False,
                    dispatch=Dispatch.ROUND_ROBIN, compact_every_s=COMPACT_EVERY, warm_every_s=WARM_EVERY,
                    idle_timeout_s=IDLE, say=said.append)
    return DevStack(**{**settings, **options})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def said() -> list[str]:
    return []


@pytest.fixture
def stack(tmp_path, clock, said):
    with _stack(tmp_path / "data", clock, said) as running:
        yield running


def put(stack: DevStack, key: str, value: bytes, query: str = "", content_type: str = "text/plain") -> str:
    status, headers, _ = request(stack, "PUT", f"/cache/{key}{query}", value, {"Content-Type": content_type})
    assert status in (200, 201)
    return headers["etag"].strip('"')


def listing(stack: DevStack, prefix: str) -> dict[str, dict]:
    status, _, body = request(stack, "GET", f"/cache?prefix={prefix}&consistency=strong&limit=1000")
    assert status == 200
    return {item["key"]: item for item in orjson.loads(body)["keys"]}


def snapshots(data_dir: Path, stream: str) -> list[str]:
    """This stream's snapshot names in the data dir, newest first."""
    return newest_first(DirectoryStore(data_dir).list(stream_prefix(stream)), stream)


def newest_entries(data_dir: Path, stream: str) -> dict:
    (newest, *_) = snapshots(data_dir, stream)
    return dict(decode_snapshot(DirectoryStore(data_dir).get(newest)).table.items())


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ---- the compaction schedule --------------------------------------------------------------------


def test_the_scheduler_invokes_the_compactor_every_interval_and_the_snapshot_lands_in_the_data_dir(stack, clock, said):
    data_dir = stack.data_dir
    put(stack, "s-a", b"1")
    put(stack, "s-b", b"2")
    clock.advance(COMPACT_EVERY - 1)
    assert "compaction" not in stack.tick()
    assert snapshots(data_dir, stack.stream_id) == []

    clock.advance(1)
    assert "compaction" in stack.tick()
    entries = newest_entries(data_dir, stack.stream_id)
    assert {key: entry.value for key, entry in entries.items()} == {"s-a": b"1", "s-b": b"2"}
    assert any(line.startswith("compactor scheduled compaction: 200") for line in said), said

    put(stack, "s-c", b"3")
    assert "compaction" not in stack.tick()  # the next one is an interval later
    clock.advance(3 * COMPACT_EVERY)  # fallen behind (a long compaction, a laptop asleep)
    assert "compaction" in stack.tick()
    assert set(newest_entries(data_dir, stack.stream_id)) == {"s-a", "s-b", "s-c"}
    assert "compaction" not in stack.tick()  # one run for the missed ones, then the normal cadence
    clock.advance(COMPACT_EVERY - 1)
    assert "compaction" not in stack.tick()
    clock.advance(1)
    assert "compaction" in stack.tick()


def test_the_compactor_answers_on_the_local_invoke_api(stack):
    put(stack, "api-a", b"1")
    status, headers, body = request(stack, "POST", "/20181201/functions/compactor/actions/invoke",
                                    orjson.dumps({"action": "compact"}), {"Content-Type": "application/json"})
    assert status == 200 and headers["content-type"].startswith("application/json")
    answer = orjson.loads(body)
    assert (answer["status"], answer["action"]) == (200, "compact")
    assert snapshots(stack.data_dir, stack.stream_id) == [answer["object"]]


# ---- health checks, idle reclaim and cold starts -----------------------------------------------


def test_an_idle_instance_is_stopped_and_the_next_request_cold_starts_one_that_sees_every_write(tmp_path, clock, said):
    with _stack(tmp_path / "data", clock, said, warm_every_s=0, compact_every_s=0) as stack:
        written = {f"idle-{n}": str(n).encode() for n in range(6)}
        for key, value in written.items():
            put(stack, key, value)
        assert compact(stack.compactor, said.append, "by hand")["outcome"] == "written"
        clock.advance(COMPACT_EVERY)
        put(stack, "idle-tail", b"t")  # after the snapshot: the cold start needs both
        written["idle-tail"] = b"t"
        first = stack.instances
        sockets = [path for instance in first for path in (instance.socket_path, instance.phony_path)]

        # Each instance is stopped when its own last request is IDLE seconds old: the one that took
        # "idle-tail" a minute after the others goes a minute later.
        clock.advance(IDLE - 1)
        stack.tick()
        assert len(stack.instances) == 1
        clock.advance(1)
        stack.tick()
        assert stack.instances == []
        assert all(gone(instance.pid) for instance in first)
        assert not any(os.path.lexists(path) for path in sockets)
        stopped = sorted(line.split()[1] for line in said if "without a request" in line)
        assert stopped == ["compactor1", "fn1", "fn2"]  # the idle compactor too, as OCI would

        status, _, body = request(stack, "GET", "/cache/idle-tail")
        assert (status, body) == (200, b"t")
        (fresh,) = stack.instances
        assert fresh.name == "fn3" and fresh.pid not in {instance.pid for instance in first}
        assert any(line.startswith("pool fn3 cold start") for line in said), said
        health = orjson.loads(fresh.client.http_call("GET", "/health").body)
        (snapshot_name, *_) = snapshots(stack.data_dir, stack.stream_id)
        assert (health["phase"], health["snapshot"]["name"], health["records_replayed"]) == \
               ("serving", snapshot_name, 1)  # the snapshot, then the one write after it
        for key, value in written.items():  # every acknowledged write, through the new instance
            status, _, body = request(stack, "GET", f"/cache/{key}")
            assert (status, body) == (200, value), key
        assert put(stack, "idle-after", b"x")


def test_the_health_check_counts_as_a_request_and_keeps_instances_warm(stack, clock):
    first = [(instance.name, instance.pid) for instance in stack.instances]
    for _ in range(int(2 * IDLE / WARM_EVERY)):  # ten minutes of checks every 30 s
        clock.advance(WARM_EVERY)
        assert "warmer" in stack.tick()
    assert [(instance.name, instance.pid) for instance in stack.instances] == first


def test_a_busy_pool_cold_starts_a_second_instance_up_to_the_limit(tmp_path, clock, said):
    with _stack(tmp_path / "data", clock, said, warm_every_s=0) as stack:
        clock.advance(IDLE)
        stack.tick()
        assert stack.instances == []
        held = stack.pool.acquire(10)  # cold-starts fn3 and keeps it busy, as a long request would
        try:
            assert request(stack, "GET", "/health")[0] == 200  # needs a second instance: fn4
            assert sorted(instance.name for instance in stack.instances) == ["fn3", "fn4"]
            stack.gateway.busy_wait_s = 0.2
            other = stack.pool.acquire(1)
            try:  # two of two busy: no third instance, the gateway answers 503
                assert request(stack, "GET", "/health")[0] == 503
            finally:
                stack.pool.release(other)
        finally:
            stack.pool.release(held)
        assert len(stack.instances) == 2


# ---- stopping and starting again ----------------------------------------------------------------


def test_stop_runs_a_final_compaction_after_the_last_write_and_leaves_nothing_behind(tmp_path, clock, said):
    stack = _stack(tmp_path / "data", clock, said).start()
    try:
        put(stack, "final-a", b"1")
        put(stack, "final-b", b"2")
        pids = [stack.broker.process.pid] + [i.pid for i in stack.instances + stack.compactor_pool.live()]
        socket_dir = stack.socket_dir
    finally:
        stack.stop()
    assert stack.final_compaction["status"] == 200
    assert set(newest_entries(stack.data_dir, stack.stream_id)) == {"final-a", "final-b"}
    assert said[-1].startswith("compactor final compaction: 200")
    assert all(gone(pid) for pid in pids)
    assert not os.path.exists(socket_dir)


def test_a_restart_in_the_same_data_dir_restores_every_key_under_a_new_run(tmp_path, clock, said):
    data_dir = tmp_path / "data"
    with _stack(data_dir, clock, said, instances=1) as first:
        for value in (b"v1", b"v2", b"v3"):  # three writes: "r-ttl"'s version is at offset 2 or later
            old_version = put(first, "r-ttl", value, "?ttl=3600", "application/x-thing")
        put(first, "r-plain", b"plain")
        put(first, "r-gone", b"x")
        assert request(first, "DELETE", "/cache/r-gone")[0] == 204
        before = listing(first, "r-")
        first_stream = first.stream_id

    with _stack(data_dir, clock, said, instances=1) as second:
        assert second.stream_id != first_stream and second.run_id in second.stream_id
        assert second.restored_keys == 2
        assert any(line.startswith("restore: 2 keys restored from run " + first_stream) for line in said)
        after = listing(second, "r-")
        assert {k: (v["size"], v["expires_at"]) for k, v in after.items()} == \
               {k: (v["size"], v["expires_at"]) for k, v in before.items()}  # same keys, sizes, expiry
        status, headers, body = request(second, "GET", "/cache/r-ttl")
        assert (status, body, headers["content-type"]) == (200, b"v3", "application/x-thing")
        # A version of the earlier run names another stream's position: If-Match with it fails.
        assert after["r-ttl"]["version"] != old_version
        assert request(second, "PUT", "/cache/r-ttl", b"new", {"If-Match": f'"{old_version}"'})[0] == 412
        # The new run has its own snapshot; the earlier run's folder moved to previous/.
        assert set(newest_entries(data_dir, second.stream_id)) == {"r-ttl", "r-plain"}
        assert snapshots(data_dir, first_stream) == []
        assert (data_dir / "snapshots" / "previous" / first_stream).is_dir()
        put(second, "r-second", b"2")
        second_stream = second.stream_id

    runs = [second_stream]
    for _ in range(2):  # two more runs: previous/ keeps the last two
        with _stack(data_dir, clock, said, instances=1) as later:
            assert set(listing(later, "r-")) == {"r-ttl", "r-plain", "r-second"}
            runs.append(later.stream_id)
    assert sorted(p.name for p in (data_dir / "snapshots" / "previous").iterdir()) == sorted(runs[:2])


def test_compact_and_snapshots_find_the_running_dev_stack_without_settings(stack, monkeypatch, capsys):
    for name in [n for n in os.environ if n.startswith("STREAMCACHE_")]:
        monkeypatch.delenv(name)
    put(stack, "found-by-the-cli", b"1")
    prefix = f"written: snapshots/{quote(stack.stream_id, safe='')}/"
    assert cli.main(["--url", stack.url, "compact"]) == 0
    written = capsys.readouterr().out
    assert written.startswith(prefix)  # this run's stream, found through the gateway as watch does
    assert cli.main(["--url", stack.url, "snapshots"]) == 0
    assert written.split()[1] in capsys.readouterr().out
    # Given the stack's log and store but not its stream id: still this run's stream, never a stray.
    store = Path(stack.data_dir).resolve().as_uri()
    put(stack, "found-by-the-cli", b"2")
    assert cli.main(["--url", stack.url, "compact", "--log-url", str(stack.log_url), "--snapshot-url", store]) == 0
    assert capsys.readouterr().out.startswith(prefix)
    assert [p.name for p in (Path(stack.data_dir) / "snapshots").iterdir() if p.name != "previous"] == [
        quote(stack.stream_id, safe="")]


def test_a_second_stack_on_the_same_data_dir_is_refused(stack):
    with pytest.raises(RuntimeError, match="in use by another streamcache dev"):
        DevStack(port=0, instances=1, data_dir=stack.data_dir, background=False).start()


# ---- imports --------------------------------------------------------------------------------------


def test_a_file_dropped_into_imports_is_loaded_once_complete_and_moved_aside(stack, clock, said):
    imports = stack.data_dir / "imports"
    (imports / ".hidden.jsonl.tmp").write_text('{"key":"imp-ignored","value":"x"}\n')
    dropped = imports / "load.jsonl"
    dropped.write_text('{"key":"imp-1","value":"one"}\n')
    clock.advance(1)
    stack.tick()  # first sight of the file: maybe still being written
    with dropped.open("a") as file:
        file.write('not json\n{"key":"imp-2","value":"two"}\n')
    clock.advance(1)
    stack.tick()  # it changed: still not complete
    assert dropped.exists() and not any(line.startswith("imports:") for line in said)
    clock.advance(1)
    stack.tick()  # unchanged since the last look: delivered as a createobject event

    assert not dropped.exists() and (imports / "done" / "load.jsonl").exists()
    assert (imports / ".hidden.jsonl.tmp").exists()
    ((name, answer),) = stack.imports.answers
    assert (name, answer["status"], answer["action"], answer["imported"]) == ("load.jsonl", 200, "import", 2)
    assert [bad["line"] for bad in answer["bad_lines"]] == [2]  # reported, and the good lines landed
    assert any(line.startswith("imports: load.jsonl: 200") for line in said), said
    for key, value in (("imp-1", b'"one"'), ("imp-2", b'"two"')):  # JSON values are stored as JSON
        status, _, body = request(stack, "GET", f"/cache/{key}?consistency=strong")
        assert (status, body) == (200, value), key
    assert request(stack, "GET", "/cache/imp-ignored")[0] == 404
    report = orjson.loads((imports / "done" / "load.jsonl.report.json").read_bytes())  # beside the file
    assert (report["lines"], report["imported"], report["bad_count"]) == (3, 2, 1)
    assert report["bad_lines"][0]["line"] == 2 and report["bad_lines"][0]["reason"]


def test_a_file_of_which_no_line_is_good_goes_to_failed_with_its_report(stack, clock, said):
    imports = stack.data_dir / "imports"
    (imports / "junk.jsonl").write_text('not json\n{"value": 1}\n')
    for _ in range(2):  # seen, then seen unchanged: delivered
        clock.advance(1)
        stack.tick()
    assert not (imports / "junk.jsonl").exists() and (imports / "failed" / "junk.jsonl").exists()
    report = orjson.loads((imports / "failed" / "junk.jsonl.report.json").read_bytes())
    assert (report["lines"], report["imported"], report["bad_count"]) == (2, 0, 2)
    assert [bad["line"] for bad in report["bad_lines"]] == [1, 2]


# ---- the command ----------------------------------------------------------------------------------


def test_dev_refuses_negative_intervals(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["dev", "--compact-every", "-1"])
    assert exited.value.code == 2
    assert "--compact-every" in capsys.readouterr().err


def _start_dev(data_dir: Path) -> tuple[subprocess.Popen, queue.Queue]:
    script = Path(sys.executable).parent / "streamcache"
    process = subprocess.Popen([str(script), "dev", "--port", "0", "--instances", "1", "--data-dir", str(data_dir)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    printed: queue.Queue = queue.Queue()

    def relay() -> None:
        for line in iter(process.stdout.readline, ""):
            printed.put(line)
        printed.put(None)  # the process closed its output

    threading.Thread(target=relay, daemon=True).start()
    return process, printed


def _gateway_url(printed: queue.Queue) -> str:
    lines = []
    while not lines or not lines[-1].startswith("Ctrl-C"):
        lines.append(printed.get(timeout=30))
    return re.search(r"gateway\s+(http://\S+)", "".join(lines)).group(1)


def _stop_dev(process: subprocess.Popen) -> None:
    """SIGTERM, which stops the instances and the broker as Ctrl-C does. SIGKILL only as a last
    resort: it would leave them running (they are in sessions of their own, as Fn's containers)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_ctrl_c_compacts_and_a_restarted_streamcache_dev_serves_the_data(tmp_path, capsysbinary):
    data_dir = tmp_path / "data"
    for round_number in (1, 2):
        process, printed = _start_dev(data_dir)
        try:
            url = _gateway_url(printed)
            if round_number == 2:
                assert cli.main(["--url", url, "get", "kept"]) == 0
                assert capsysbinary.readouterr().out == b"across restarts"
            else:
                assert cli.main(["--url", url, "put", "kept", "across restarts"]) == 0
                capsysbinary.readouterr()
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=30) == 0
        finally:
            _stop_dev(process)
        tail = list(iter(lambda: printed.get(timeout=10), None))
        assert any("final compaction: 200" in line for line in tail), (round_number, tail)
