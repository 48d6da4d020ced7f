"""The data-loss alarms, evaluated locally on what the compactor posted: the compactor's metrics go
through the real oci SDK to the local Monitoring server, and the alarms are the deployment's own
(infra/terraform/alarms.json.tftpl, rendered as Terraform renders it). Time is a hand-driven clock
shared by the compactor, the server and the evaluator: nothing waits.

When the compactor stops (its compactions fail: the stream cannot be read), the snapshot-age alarm
fires once the newest snapshot is older than the limit, and clears when a compaction runs again;
when the compactor is not invoked at all, the absence alarm ("no compaction") fires instead."""

from __future__ import annotations

import uuid

import pytest
from support.log_history import fill

from streamcache.adapters.memory_log import MemoryLog
from streamcache.adapters.oci_monitoring import BackgroundPoster, MonitoringSink
from streamcache.compactor.app import CompactorApp
from streamcache.metrics import Metrics
from streamcache.settings import Settings
from streamcache_local.alarms import AlarmState, load_alarms
from streamcache_local.monitoring import start_monitoring
from streamcache_local.resource_principal import write_resource_principal
from support.clock import Clock

LIMIT_S = 3600  # the snapshot-age limit: Terraform derives it from the stream's retention
NO_COMPACTION_MIN = 10


@pytest.fixture
def setup(tmp_path, monkeypatch):
    clock = Clock(1_790_000_000.0)
    principal = write_resource_principal(tmp_path)
    for name, value in principal.env.items():
        monkeypatch.setenv(name, value)
    name = f"alarm-{uuid.uuid4().hex[:8]}"
    log = MemoryLog.named(name, partitions=2)
    settings = Settings.from_env({"STREAMCACHE_LOG_URL": f"memory://{name}",
                                  "STREAMCACHE_SNAPSHOT_URL": (tmp_path / "snapshots").as_uri()})
    with start_monitoring(clock=clock) as server:
        server.alarms = load_alarms("test", {"snapshot_age_limit_s": LIMIT_S,
                                             "no_compaction_minutes": NO_COMPACTION_MIN})
        poster = BackgroundPoster(MonitoringSink("streamcache", "ocid1.compartment.oc1..local", server.endpoint).post)
        metrics = Metrics({"function": "compactor", "deployment": "test"}, poster.submit, 60, clock)
        metrics.poster = poster  # type: ignore[attr-defined]
        compactor = CompactorApp(settings, metrics=metrics)
        yield clock, log, compactor, server
    MemoryLog.forget(name)


def states(server, now):
    got = server.alarm_states(now)
    return got["snapshot_age"], got["no_compaction"]


def test_snapshot_age_fires_when_compactions_stop_and_clears_when_one_runs(setup):
    clock, log, compactor, server = setup
    fill(log, 20, ts_ms=int(clock.now * 1000) - 1000)
    assert compactor.handle(b"")["outcome"] == "written"
    assert states(server, clock.now) == (AlarmState.OK, AlarmState.OK)

    # The compactor stops compacting: the stream cannot be read; new writes wait uncovered.
    log.available = False
    for minutes in (30, 59, 61, 90):
        clock.now += 60 * (minutes - (clock.now - 1_790_000_000.0) / 60)
        answer = compactor.handle(b"")
        assert answer["status"] == 503
        expected = AlarmState.FIRING if minutes > LIMIT_S / 60 else AlarmState.OK
        assert states(server, clock.now)[0] is expected, minutes
    assert [p.value for p in server.received("SnapshotAgeSeconds")][-1] > LIMIT_S

    # It runs again: the newest snapshot covers the log, the age is 0, the alarm clears.
    log.available = True
    clock.now += 60
    assert compactor.handle(b"")["status"] == 200
    assert states(server, clock.now) == (AlarmState.OK, AlarmState.OK)


def test_no_compaction_fires_when_the_compactor_is_not_invoked_and_clears_when_it_runs(setup):
    clock, log, compactor, server = setup
    fill(log, 5, ts_ms=int(clock.now * 1000))
    assert compactor.handle(b"")["status"] == 200
    assert states(server, clock.now + 9 * 60)[1] is AlarmState.OK
    clock.now += (NO_COMPACTION_MIN + 1) * 60  # the schedule stopped: nothing posted since
    assert states(server, clock.now)[1] is AlarmState.FIRING
    assert compactor.handle(b"")["status"] == 200
    assert states(server, clock.now)[1] is AlarmState.OK
