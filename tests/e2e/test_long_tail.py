"""Short tails by design, end to end under ``streamcache dev``: a cache instance whose cold start
replays more than STREAMCACHE_COMPACT_AFTER_RECORDS records asks the compactor for a compaction, as
on OCI, with a detached invoke through the oci SDK, signed with the resource principal the stack gives
its instances, to the stack's invoke API; the compactor writes a snapshot that nobody else asked for.

Real parts: a Tansu broker, FDK cache instances, the compactor function, the gateway. The schedule's
compactions are off and time is a hand-driven clock, so the only compaction is the one asked for.
"""

from __future__ import annotations

import orjson

from streamcache_local.dev import DevStack
from streamcache_local.invoke_endpoint import function_ocid
from support.gateway import request
from support.waiting import wait_for

from test_dev_lifecycle import IDLE, ManualClock, put, snapshots

THRESHOLD = 8


def json_line(line: str) -> dict:
    try:
        parsed = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def test_a_long_tail_at_cold_start_triggers_a_compaction(tmp_path):
    clock, said = ManualClock(), []
    with DevStack(port=0, instances=1, partitions=3, data_dir=tmp_path / "data", clock=clock, background=False,
                  compact_every_s=0, warm_every_s=0, idle_timeout_s=IDLE, say=said.append,
                  config={"STREAMCACHE_COMPACT_AFTER_RECORDS": str(THRESHOLD)}) as stack:
        (first,) = stack.instances
        warm = orjson.loads(first.client.http_call("GET", "/health").body)
        assert (warm["records_replayed"], warm["compaction_request"]) == (0, "not_needed")  # an empty stream
        assert warm["compact_after_records"] == THRESHOLD

        written = {f"tail-{n}": str(n).encode() for n in range(THRESHOLD + 4)}
        for key, value in written.items():
            put(stack, key, value)
        assert snapshots(stack.data_dir, stack.stream_id) == []

        clock.advance(IDLE)  # the instance (and the idle compactor) are reclaimed
        stack.tick()
        assert stack.instances == []

        status, _, got = request(stack, "GET", "/cache/tail-0")  # cold-starts fn2: it replays every write
        assert (status, got) == (200, b"0")
        health = orjson.loads(request(stack, "GET", "/health")[2])
        assert health["records_replayed"] == len(written) and health["phase"] == "serving"
        assert health["compaction_request"] in ("pending", "sending", "sent")  # decided after the restore

        (fresh,) = stack.instances

        def request_state() -> str:
            state = orjson.loads(fresh.client.http_call("GET", "/health").body)
            return state["compaction_request"] if state["compaction_request"] not in ("pending", "sending") else ""

        assert wait_for(request_state, timeout_s=60, what="the compaction request to finish") == "sent"
        (snapshot,) = wait_for(lambda: snapshots(stack.data_dir, stack.stream_id), timeout_s=30,
                               what="the requested compaction's snapshot")
        final = orjson.loads(fresh.client.http_call("GET", "/health").body)
        assert final["compaction_requested"] is True and final["compaction_request_error"] is None

        # The compactor that ran it was cold-started for the invoke, through the stack's invoke API.
        assert any(line.startswith("pool compactor2 cold start") for line in said), said
        logged = [json_line(line) for instance in stack.compactor_pool.live() for _, line in instance.log_lines]
        assert [(e["outcome"], e["object"]) for e in logged if e.get("kind") == "compactor"] == [("written", snapshot)]
        # The cache instance asked with the compactor's local OCID, signed as a resource principal.
        cache_log = "\n".join(line for _, line in fresh.log_lines)
        assert "asked for a compaction" in cache_log
        assert stack.cache_config()["STREAMCACHE_COMPACTOR_FUNCTION_ID"] == function_ocid("compactor")
        assert stack.cache_config()["OCI_RESOURCE_PRINCIPAL_VERSION"] == "2.2"
