"""Short tails by design: when a cold start replays more than STREAMCACHE_COMPACT_AFTER_RECORDS records
it asks for a compaction, once, on its own thread, without holding up the cold start or any request;
a failure shows in /health and the log, never in an answer. Real cache apps over a memory log; the
request is a plain callable here (the detached invoke itself: tests/adapters/test_oci_functions.py)."""

from __future__ import annotations

import threading
import uuid

import orjson
import pytest

from streamcache.adapters.memory_log import MemoryLog
from streamcache.cache.app import CacheApp, compaction_requester
from streamcache.cache.compaction_request import CompactionTrigger, RequestState, decide
from streamcache.cache.http_api import HttpRequest
from streamcache.settings import Settings
from support.log_history import fill
from support.openapi import check_against_openapi
from support.waiting import wait_for


@pytest.mark.parametrize("replayed, threshold, configured, state", [
    (0, 0, True, RequestState.OFF),
    (10**6, 0, True, RequestState.OFF),  # 0 turns it off whatever the tail
    (0, 5, True, RequestState.NOT_NEEDED),
    (5, 5, True, RequestState.NOT_NEEDED),  # "more than": the threshold itself is short enough
    (6, 5, True, RequestState.SENDING),
    (6, 5, False, RequestState.NOT_CONFIGURED),
    (20_001, 20_000, True, RequestState.SENDING),
])
def test_the_decision(replayed, threshold, configured, state):
    assert decide(replayed, threshold, configured) is state


class Recorder:
    """A compaction request that records its bodies, optionally holds until released, or fails."""

    def __init__(self, fail: Exception | None = None, hold: bool = False) -> None:
        self.bodies: list[dict] = []
        self.fail = fail
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, body: dict) -> str:
        self.release.wait(30)
        self.bodies.append(body)
        if self.fail is not None:
            raise self.fail
        return f"request-{len(self.bodies)}"


def test_a_trigger_asks_once_however_often_it_is_told():
    recorder = Recorder(hold=True)
    trigger = CompactionTrigger(5, recorder)
    assert trigger.numbers()["compaction_request"] == "pending"
    assert trigger.after_restore(9) is RequestState.SENDING
    assert trigger.after_restore(12) is RequestState.SENDING  # already decided: nothing new
    recorder.release.set()
    trigger.thread.join(10)
    assert trigger.after_restore(30) is RequestState.SENT
    assert recorder.bodies == [{"action": "compact", "reason": "long_tail", "records_replayed": 9, "threshold": 5}]
    assert trigger.numbers() == {"compaction_requested": True, "compaction_request": "sent",
                                 "compaction_request_error": None, "compact_after_records": 5}


def test_a_failed_request_is_reported_not_raised(caplog):
    trigger = CompactionTrigger(5, Recorder(fail=ConnectionRefusedError("nothing listens")))
    trigger.after_restore(6)
    trigger.thread.join(10)
    numbers = trigger.numbers()
    assert (numbers["compaction_requested"], numbers["compaction_request"]) == (False, "failed")
    assert numbers["compaction_request_error"] == "ConnectionRefusedError: nothing listens"
    assert any("asking for a compaction failed" in r.getMessage() for r in caplog.records)


def test_a_long_tail_without_a_compactor_is_not_configured_and_says_so(caplog):
    trigger = CompactionTrigger(5, None)
    assert trigger.after_restore(6) is RequestState.NOT_CONFIGURED and trigger.thread is None
    assert any("no compactor is configured" in r.getMessage() for r in caplog.records)


# ---- in a cache app: after the restore, in the background ----------------------------------------


@pytest.fixture
def log_name():
    name = f"tail-{uuid.uuid4().hex}"
    yield name
    MemoryLog.forget(name)


def app_over(name: str, request=None, **settings) -> CacheApp:
    env = {"STREAMCACHE_LOG_URL": f"memory://{name}", "STREAMCACHE_INSTANCE_ID": "tail-test"}
    env.update({f"STREAMCACHE_{k.upper()}": str(v) for k, v in settings.items()})
    app = CacheApp(Settings.from_env(env))
    if request is not None:  # the edge's requester, replaced by a recorder (same hand-over)
        app.cold_start.compaction = CompactionTrigger(app.cold_start.compaction.threshold, request)
    return app


def health(app: CacheApp) -> dict:
    """/health once the restore is done (/health itself never waits for it)."""
    app.ensure_started(10.0)
    response = app.handle(HttpRequest("GET", "/health", {}, b""), 10.0)
    check_against_openapi("GET", "/health", *response)
    assert response.status == 200
    return orjson.loads(response.body)


def test_a_long_tail_asks_without_holding_up_the_cold_start_or_requests(log_name):
    fill(MemoryLog.named(log_name, 3), 40, keys=10)
    recorder = Recorder(hold=True)  # the request hangs until the test lets it go
    app = app_over(log_name, recorder, compact_after_records=25)

    status = health(app)  # the cold start: answered while the request is still held
    assert (status["phase"], status["records_replayed"]) == ("serving", 40)
    assert status["compaction_request"] in ("pending", "sending")  # decided right after the restore
    wait_for(lambda: health(app)["compaction_request"] == "sending", what="the request to be under way")
    assert health(app)["compaction_requested"] is False
    assert app.handle(HttpRequest("GET", "/cache/k3", {}, b""), 10.0).status == 200  # nothing waits for it

    recorder.release.set()
    wait_for(lambda: health(app)["compaction_request"] == "sent", what="the request to be sent")
    assert health(app)["compaction_requested"] is True
    assert [body["records_replayed"] for body in recorder.bodies] == [40]


def test_a_short_tail_or_a_threshold_of_zero_asks_nothing(log_name):
    fill(MemoryLog.named(log_name, 3), 40, keys=10)
    for threshold, state in ((40, "not_needed"), (0, "off")):
        recorder = Recorder()
        app = app_over(log_name, recorder, compact_after_records=threshold)
        status = wait_for(lambda: [s for s in [health(app)] if s["compaction_request"] != "pending"],
                          what="the decision")[0]
        assert (status["compaction_request"], status["compaction_requested"]) == (state, False)
        assert app.cold_start.compaction.thread is None and recorder.bodies == []


def test_a_failed_request_shows_in_health_and_the_instance_serves(log_name):
    fill(MemoryLog.named(log_name, 3), 12, keys=4)
    app = app_over(log_name, Recorder(fail=RuntimeError("503 FunctionInvokeServiceUnavailable")),
                   compact_after_records=10)
    assert health(app)["phase"] == "serving"
    wait_for(lambda: health(app)["compaction_request"] == "failed", what="the request to fail")
    status = health(app)
    assert (status["compaction_request"], status["compaction_requested"]) == ("failed", False)
    assert "FunctionInvokeServiceUnavailable" in status["compaction_request_error"]
    assert app.handle(HttpRequest("GET", "/cache/k1", {}, b""), 10.0).status == 200


def test_the_edge_builds_a_requester_only_when_a_compactor_is_named():
    base = {"STREAMCACHE_LOG_URL": "memory://edge"}
    assert compaction_requester(Settings.from_env(base)) is None
    named = {**base, "STREAMCACHE_COMPACTOR_FUNCTION_ID": "ocid1.fnfunc.oc1.phx.aaaa",
             "STREAMCACHE_COMPACTOR_INVOKE_ENDPOINT": "https://x.us-phoenix-1.functions.oci.oraclecloud.com"}
    assert callable(compaction_requester(Settings.from_env(named)))
    assert compaction_requester(Settings.from_env({**named, "STREAMCACHE_COMPACT_AFTER_RECORDS": "0"})) is None
