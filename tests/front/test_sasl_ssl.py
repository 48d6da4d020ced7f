"""SASL_SSL end to end: real FDK instances and the compactor function connect to Tansu through the
local front end (TLS against its CA, SASL answered by it) with nothing but STREAMCACHE_* settings;
a wrong password or an untrusted certificate fails at once and names the setting to fix."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import orjson
import pytest

from streamcache.core.errors import LogUnavailable
from streamcache.settings import Settings
from streamcache_local.fn_runner import start_instance
from streamcache_local.kafka_front import start_fronted_broker
from streamcache_local.kafka_tls import make_tls_files
from support.waiting import wait_for

COMPACTOR = Path(__file__).resolve().parents[2] / "functions" / "compactor" / "func.py"


@pytest.fixture
def sockets():
    path = tempfile.mkdtemp(prefix="sc-t-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _config(front, topic: str, **extra: str) -> dict[str, str]:
    return {"STREAMCACHE_LOG_URL": f"kafka://{front.bootstrap}/{topic}", **front.security_settings(), **extra}


def test_write_strong_read_compaction_and_cold_start_over_sasl_ssl(fronted, front_topic, tmp_path, sockets):
    _broker, front = fronted
    config = _config(front, front_topic(3), STREAMCACHE_SNAPSHOT_URL=f"file://{tmp_path}/snapshots",
                     STREAMCACHE_STALENESS_MS="0")
    assert config["STREAMCACHE_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    writer = start_instance("fn1", sockets, config)
    compactor = start_instance("compactor1", sockets, config, function_path=COMPACTOR, fn_name="compactor")
    fresh = None
    try:
        for i in range(8):
            assert writer.client.http_call("PUT", f"/cache/k{i}", f"v{i}".encode()).status == 201
        strong = writer.client.http_call("GET", "/cache/k7?consistency=strong")
        assert (strong.status, strong.body) == (200, b"v7")
        compaction = orjson.loads(compactor.client.invoke(b"").body)
        assert (compaction["status"], compaction["outcome"], compaction["records_folded"]) == (200, "written", 8)
        assert writer.client.http_call("PUT", "/cache/k0", b"after").status == 200

        fresh = start_instance("fn2", sockets, config)  # a cold start: the snapshot, then the tail
        wait_for(lambda: orjson.loads(fresh.client.http_call("GET", "/health").body)["phase"] != "restoring",
                 timeout_s=30, what="the cold start over SASL_SSL")
        health = orjson.loads(fresh.client.http_call("GET", "/health").body)
        assert health["phase"] == "serving" and health["snapshot"]["name"] == compaction["object"]
        assert health["records_replayed"] == 1 and health["problems"] == []
        assert fresh.client.http_call("GET", "/cache/k0?consistency=strong").body == b"after"
        assert fresh.client.http_call("GET", "/cache/k5").body == b"v5"
    finally:
        for instance in (writer, compactor, *([fresh] if fresh else [])):
            instance.stop()
    assert front.stats()["sasl_failures"] == 0


def _first_append_fails(env: dict[str, str]) -> tuple[str, float]:
    log = Settings.from_env(env).open_log()
    started = time.monotonic()
    try:
        with pytest.raises(LogUnavailable) as failure:
            log.append("k", b"v")
        return str(failure.value), time.monotonic() - started
    finally:
        log.close()


def test_a_wrong_password_fails_at_once_naming_the_setting(fronted, front_topic):
    _broker, front = fronted
    message, took = _first_append_fails(_config(front, front_topic(1), STREAMCACHE_KAFKA_SASL_PASSWORD="wrong"))
    assert took < 1.0  # not the 5 s bootstrap timeout
    assert "STREAMCACHE_KAFKA_SASL_PASSWORD" in message and "refused" in message


def test_an_untrusted_certificate_fails_at_once_naming_the_setting(fronted, front_topic, tmp_path):
    _broker, front = fronted
    other_ca = make_tls_files(tmp_path / "other").ca_file  # a CA that did not sign the front end's certificate
    message, took = _first_append_fails(_config(front, front_topic(1), STREAMCACHE_KAFKA_SSL_CA_FILE=str(other_ca)))
    assert took < 1.0
    assert "STREAMCACHE_KAFKA_SSL_CA_FILE" in message and "not trusted" in message


def test_an_unoffered_mechanism_fails_at_once_naming_the_setting(fronted, front_topic):
    _broker, front = fronted
    env = _config(front, front_topic(1), STREAMCACHE_KAFKA_SASL_MECHANISM="SCRAM-SHA-256")
    message, took = _first_append_fails(env)
    assert took < 1.0 and "STREAMCACHE_KAFKA_SASL_MECHANISM" in message


def test_plain_with_an_oci_shaped_username_as_terraform_configures_it(tmp_path):
    user = "mytenancy/Default/streamer/ocid1.streampool.oc1.eu-frankfurt-1.aaaa"
    broker, front = start_fronted_broker(recycle_s=None, idle_close_s=None, read_budget=None, latency_s=0,
                                         sasl=("PLAIN", user, "auth-token"), tls_dir=tmp_path)
    try:
        broker.create_topic("plain", 1)
        settings = Settings.from_env(_config(front, "plain"))
        assert settings.kafka_security()["sasl_mechanism"] == "PLAIN"
        log = settings.open_log()
        try:
            position = log.append("k", b"v")
            assert [r.value for r in log.read({0: 0}, {0: position.offset + 1})] == [b"v"]
        finally:
            log.close()
    finally:
        front.stop()
        broker.stop()


@pytest.mark.parametrize("setting", ["STREAMCACHE_KAFKA_SASL_PASSWORD", "STREAMCACHE_KAFKA_SSL_CA_FILE"])
def test_an_instance_with_a_wrong_setting_answers_at_once_naming_it(fronted, front_topic, tmp_path, sockets, setting):
    _broker, front = fronted
    wrong = "wrong" if setting.endswith("PASSWORD") else str(make_tls_files(tmp_path / "other").ca_file)
    instance = start_instance("fn1", sockets, _config(front, front_topic(1), **{setting: wrong}))
    try:
        started = time.monotonic()
        answer = instance.client.http_call("PUT", "/cache/k", b"v")
        assert time.monotonic() - started < 2.0  # the cold start failed at once, not after the bootstrap timeout
        error = orjson.loads(answer.body)
        assert (answer.status, error["error"]) == (503, "stream_unavailable") and setting in error["message"]
        # And the operator's log says it: written before the answer, relayed by a thread of the runner.
        wait_for(lambda: any(setting in line for line in instance.stderr_lines()), 10.0, f"a log line naming {setting}")
    finally:
        instance.stop()
