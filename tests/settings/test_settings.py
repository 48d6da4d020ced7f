"""Settings.from_env: defaults, parsing, and one ConfigError that names every problem at once."""

from __future__ import annotations

import dataclasses

import pytest

from streamcache.auth import ApiKey
from streamcache.core.errors import ConfigError
from streamcache.logs import AccessLog
from streamcache.settings import Settings

LOG = {"STREAMCACHE_LOG_URL": "memory://cache"}
OCI_USER = "mytenancy/default/jane@example.com/ocid1.streampool.oc1.phx.aaaa"


def problems(env: dict) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    return raised.value.problems


def test_defaults():
    settings = Settings.from_env(LOG)
    derived = ("log_url", "instance_id", "stream_id")
    defaults = {f.name: f.default for f in dataclasses.fields(Settings) if f.name not in derived}
    assert {name: getattr(settings, name) for name in defaults} == defaults
    assert settings.log_url == "memory://cache" and settings.route_prefix == "/cache"
    assert settings.instance_id, "an instance always has a name"
    assert settings.stream_id == "cache", "the stream is named after the log by default"
    assert (settings.snapshot_url, settings.snapshots_keep, settings.import_prefix) == ("", 3, "imports/")


def test_every_setting_is_read_from_its_variable(tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    env = {
        "STREAMCACHE_LOG_URL": "kafka://broker-1:9092,broker-2:9092/cache",
        "STREAMCACHE_ROUTE_PREFIX": "/api/v1/cache",
        "STREAMCACHE_STALENESS_MS": "0",
        "STREAMCACHE_MAX_VALUE_BYTES": "1024",
        "STREAMCACHE_INLINE_MAX_BYTES": "512",
        "STREAMCACHE_VALUE_CACHE_BYTES": "0",
        "STREAMCACHE_MAX_RECORD_BYTES": "4096",
        "STREAMCACHE_MAX_TTL_SECONDS": "60",
        "STREAMCACHE_MAX_LIST_LIMIT": "10",
        "STREAMCACHE_MAX_BYTES": "1000000000",
        "STREAMCACHE_APPEND_TIMEOUT_MS": "250",
        "STREAMCACHE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "STREAMCACHE_KAFKA_SASL_USERNAME": OCI_USER,
        "STREAMCACHE_KAFKA_SASL_PASSWORD": "auth-token",
        "STREAMCACHE_KAFKA_SASL_PASSWORD_SECRET_ID": "ocid1.vaultsecret.oc1.phx.aaaa",
        "STREAMCACHE_KAFKA_SASL_MECHANISM": "PLAIN",
        "STREAMCACHE_KAFKA_SSL_CA_FILE": str(ca_file),
        "STREAMCACHE_EVENT_SOURCE": "/cache-eu",
        "STREAMCACHE_INSTANCE_ID": "cache-1",
        "STREAMCACHE_SNAPSHOT_URL": "oci://snapshots@mytenancy/cache",
        "STREAMCACHE_STREAM_ID": "ocid1.stream.oc1.phx.aaaa",
        "STREAMCACHE_SNAPSHOTS_KEEP": "5",
        "STREAMCACHE_SNAPSHOTS_KEEP_ALL_HOURS": "48",
        "STREAMCACHE_SNAPSHOTS_DAILY_DAYS": "30",
        "STREAMCACHE_SNAPSHOT_MAX_DELTAS": "0",
        "STREAMCACHE_SNAPSHOT_DELTA_PERCENT": "40",
        "STREAMCACHE_OCI_PROFILE": "STREAMCACHE",
        "STREAMCACHE_OCI_CONFIG_FILE": "/etc/oci/config",
        "STREAMCACHE_OCI_ENDPOINT": "http://127.0.0.1:9000/",
        "STREAMCACHE_SNAPSHOT_CONNECTIONS": "8",
        "STREAMCACHE_IMPORT_PREFIX": "bulk/",
        "STREAMCACHE_IMPORT_URL": "file:///var/imports",
        "STREAMCACHE_API_KEYS": "sha256:" + "ab" * 32 + ":ro",
        "STREAMCACHE_COMPACT_AFTER_RECORDS": "0",
        "STREAMCACHE_COMPACTOR_FUNCTION_ID": "ocid1.fnfunc.oc1.phx.aaaa",
        "STREAMCACHE_COMPACTOR_INVOKE_ENDPOINT": "https://abc.us-phoenix-1.functions.oci.oraclecloud.com/",
        "STREAMCACHE_ACCESS_LOG": "all",
        "STREAMCACHE_METRICS_NAMESPACE": "streamcache_eu",
        "STREAMCACHE_METRICS_COMPARTMENT_ID": "ocid1.compartment.oc1..aaaa",
        "STREAMCACHE_METRICS_ENDPOINT": "http://127.0.0.1:9001/",
        "STREAMCACHE_METRICS_INTERVAL_S": "120",
        "STREAMCACHE_METRICS_DEPLOYMENT": "eu-prod",
    }
    assert sorted(env) == sorted(Settings.env_names())
    settings = Settings.from_env(env)
    assert dataclasses.asdict(settings) == {
        "log_url": "kafka://broker-1:9092,broker-2:9092/cache",
        "route_prefix": "/api/v1/cache",
        "staleness_ms": 0,
        "max_value_bytes": 1024,
        "inline_max_bytes": 512,
        "value_cache_bytes": 0,
        "max_record_bytes": 4096,
        "max_ttl_seconds": 60,
        "max_list_limit": 10,
        "max_bytes": 1_000_000_000,
        "append_timeout_ms": 250,
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_username": OCI_USER,
        "kafka_sasl_password": "auth-token",
        "kafka_sasl_password_secret_id": "ocid1.vaultsecret.oc1.phx.aaaa",
        "kafka_sasl_mechanism": "PLAIN",
        "kafka_ssl_ca_file": str(ca_file),
        "event_source": "/cache-eu",
        "instance_id": "cache-1",
        "snapshot_url": "oci://snapshots@mytenancy/cache",
        "stream_id": "ocid1.stream.oc1.phx.aaaa",
        "snapshots_keep": 5,
        "snapshots_keep_all_hours": 48,
        "snapshots_daily_days": 30,
        "snapshot_max_deltas": 0,
        "snapshot_delta_percent": 40,
        "oci_profile": "STREAMCACHE",
        "oci_config_file": "/etc/oci/config",
        "oci_endpoint": "http://127.0.0.1:9000",
        "snapshot_connections": 8,
        "import_prefix": "bulk/",
        "import_url": "file:///var/imports",
        "api_keys": (ApiKey(bytes.fromhex("ab" * 32), read_only=True),),
        "compact_after_records": 0,
        "compactor_function_id": "ocid1.fnfunc.oc1.phx.aaaa",
        "compactor_invoke_endpoint": "https://abc.us-phoenix-1.functions.oci.oraclecloud.com",
        "access_log": AccessLog.ALL,
        "metrics_namespace": "streamcache_eu",
        "metrics_compartment_id": "ocid1.compartment.oc1..aaaa",
        "metrics_endpoint": "http://127.0.0.1:9001",
        "metrics_interval_s": 120,
        "metrics_deployment": "eu-prod",
    }
    assert settings.snapshot_store_options() == {
        "oci_profile": "STREAMCACHE", "oci_config_file": "/etc/oci/config", "oci_endpoint": "http://127.0.0.1:9000",
        "oci_connections": 8}


def test_the_process_environment_is_the_default_source(monkeypatch):
    monkeypatch.setenv("STREAMCACHE_LOG_URL", "memory://from-env")
    monkeypatch.setenv("STREAMCACHE_STALENESS_MS", "42")
    settings = Settings.from_env()
    assert (settings.log_url, settings.staleness_ms) == ("memory://from-env", 42)


def test_an_empty_variable_means_unset():
    assert Settings.from_env({**LOG, "STREAMCACHE_STALENESS_MS": "", "STREAMCACHE_ROUTE_PREFIX": ""}) == Settings.from_env(LOG)


def test_settings_are_frozen():
    settings = Settings.from_env(LOG)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.staleness_ms = 5  # type: ignore[misc]


@pytest.mark.parametrize("env", [{}, {"STREAMCACHE_LOG_URL": ""}])
def test_the_log_url_is_required(env):
    assert problems(env) == ["STREAMCACHE_LOG_URL is required"]


INVALID = [
    ("LOG_URL", "http://broker:9092/cache"),
    ("LOG_URL", "broker:9092"),
    ("LOG_URL", "memory://"),
    ("LOG_URL", "kafka://"),
    ("LOG_URL", "kafka://broker:9092"),
    ("LOG_URL", "kafka://broker:9092/"),
    # These name a log that cannot be opened; the function must say so at start, not crash later.
    ("LOG_URL", "memory://cache?partitions=abc"),
    ("LOG_URL", "memory://cache?partitions=0"),
    ("LOG_URL", "kafka://broker:port/cache"),
    ("ROUTE_PREFIX", "cache"),
    ("ROUTE_PREFIX", "/cache/"),
    ("ROUTE_PREFIX", "/"),
    ("ROUTE_PREFIX", "/cache?x=1"),
    ("STALENESS_MS", "-1"),
    ("STALENESS_MS", "1.5"),
    ("STALENESS_MS", "soon"),
    ("MAX_VALUE_BYTES", "0"),
    ("MAX_VALUE_BYTES", "1MB"),
    ("MAX_RECORD_BYTES", "-5"),
    ("MAX_TTL_SECONDS", "0"),
    ("MAX_TTL_SECONDS", "1e6"),
    ("MAX_LIST_LIMIT", "0"),
    ("MAX_LIST_LIMIT", "many"),
    ("APPEND_TIMEOUT_MS", "0"),
    ("APPEND_TIMEOUT_MS", "5s"),
    ("KAFKA_SECURITY_PROTOCOL", "TLS"),
    ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
    ("SNAPSHOT_URL", "s3://bucket/prefix"),
    ("SNAPSHOT_URL", "oci://bucket-without-namespace/prefix"),
    ("SNAPSHOT_URL", "memory://"),
    ("IMPORT_URL", "ftp://host/dir"),
    ("STREAM_ID", "x" * 256),
    ("SNAPSHOTS_KEEP", "0"),
    ("SNAPSHOTS_KEEP", "all"),
    ("SNAPSHOTS_KEEP_ALL_HOURS", "-1"),
    ("SNAPSHOTS_DAILY_DAYS", "a week"),
    ("SNAPSHOT_MAX_DELTAS", "-1"),
    ("SNAPSHOT_DELTA_PERCENT", "0"),
    ("OCI_ENDPOINT", "127.0.0.1:9000"),
    ("IMPORT_PREFIX", "/imports/"),
    ("IMPORT_PREFIX", "snapshots/imports/"),
    ("IMPORT_PREFIX", "import-markers/"),
    ("IMPORT_PREFIX", "imports"),
    ("COMPACT_AFTER_RECORDS", "-1"),
    ("COMPACT_AFTER_RECORDS", "20k"),
    ("ACCESS_LOG", "errors"),
    ("ACCESS_LOG", "ALL"),
]

# The compactor's OCID and invoke endpoint travel together (with the other set, so the pair is complete).
COMPACTOR = {"STREAMCACHE_COMPACTOR_FUNCTION_ID": "ocid1.fnfunc.oc1.phx.aaaa",
             "STREAMCACHE_COMPACTOR_INVOKE_ENDPOINT": "https://abc.us-phoenix-1.functions.oci.oraclecloud.com"}
INVALID_COMPACTOR = [
    ("COMPACTOR_FUNCTION_ID", "ocid1.fnapp.oc1.phx.aaaa"),
    ("COMPACTOR_FUNCTION_ID", "compactor"),
    ("COMPACTOR_INVOKE_ENDPOINT", "abc.us-phoenix-1.functions.oci.oraclecloud.com"),
]


@pytest.mark.parametrize("name, raw", INVALID_COMPACTOR, ids=[f"{n}={v}" for n, v in INVALID_COMPACTOR])
def test_an_invalid_compactor_setting_is_one_problem_naming_it(name, raw):
    (problem,) = problems({**LOG, **COMPACTOR, f"STREAMCACHE_{name}": raw})
    assert f"STREAMCACHE_{name}" in problem and raw in problem


@pytest.mark.parametrize("alone", sorted(COMPACTOR))
def test_the_compactor_id_and_endpoint_go_together(alone):
    (problem,) = problems({**LOG, alone: COMPACTOR[alone]})
    assert "STREAMCACHE_COMPACTOR_FUNCTION_ID and STREAMCACHE_COMPACTOR_INVOKE_ENDPOINT go together" in problem
    settings = Settings.from_env({**LOG, **COMPACTOR})
    assert (settings.compact_after_records, settings.compactor_function_id) == (20_000, "ocid1.fnfunc.oc1.phx.aaaa")


@pytest.mark.parametrize("name, raw", INVALID, ids=[f"{n}={v}" for n, v in INVALID])
def test_every_invalid_value_is_a_problem_naming_the_variable(name, raw):
    env = {**LOG, f"STREAMCACHE_{name}": raw}
    (problem,) = problems(env)
    assert f"STREAMCACHE_{name}" in problem and raw in problem


def test_all_problems_are_reported_at_once():
    env = {
        "STREAMCACHE_ROUTE_PREFIX": "cache",
        "STREAMCACHE_STALENESS_MS": "-1",
        "STREAMCACHE_MAX_VALUE_BYTES": "big",
        "STREAMCACHE_MAX_LIST_LIMIT": "0",
        "STREAMCACHE_KAFKA_SECURITY_PROTOCOL": "TLS",
    }
    found = problems(env)
    assert len(found) == 6
    for name in ["LOG_URL", *(n.removeprefix("STREAMCACHE_") for n in env)]:
        assert sum(f"STREAMCACHE_{name}" in p for p in found) == 1, name
    more = problems({**env, "STREAMCACHE_SNAPSHOT_URL": "s3://x", "STREAMCACHE_SNAPSHOTS_KEEP": "0",
                     "STREAMCACHE_OCI_ENDPOINT": "nowhere"})
    assert len(more) == 9
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    assert all(problem in str(raised.value) for problem in found)


# ---- SASL for OCI Streaming -------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["SASL_SSL", "SASL_PLAINTEXT"])
def test_sasl_needs_the_oci_username_and_the_auth_token(protocol):
    found = problems({**LOG, "STREAMCACHE_KAFKA_SECURITY_PROTOCOL": protocol})
    assert len(found) == 2
    assert any("STREAMCACHE_KAFKA_SASL_USERNAME" in p and "tenancyName/" in p for p in found)
    assert any("STREAMCACHE_KAFKA_SASL_PASSWORD" in p for p in found)


@pytest.mark.parametrize(
    "username, ok",
    [
        (OCI_USER, True),
        ("mytenancy/jane@example.com/ocid1.streampool.oc1.phx.aaaa", True),  # without an identity domain
        ("mytenancy/jane@example.com", False),
        ("jane@example.com", False),
    ],
)
def test_the_sasl_username_format_is_checked(username, ok):
    env = {**LOG, "STREAMCACHE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "STREAMCACHE_KAFKA_SASL_USERNAME": username, "STREAMCACHE_KAFKA_SASL_PASSWORD": "token"}
    if ok:
        assert Settings.from_env(env).kafka_sasl_username == username
    else:
        (problem,) = problems(env)
        assert "STREAMCACHE_KAFKA_SASL_USERNAME" in problem


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL"])
def test_without_sasl_no_credentials_are_needed(protocol):
    assert Settings.from_env({**LOG, "STREAMCACHE_KAFKA_SECURITY_PROTOCOL": protocol}).kafka_sasl_password == ""


def test_scram_takes_any_username_plain_takes_oci_s_shape():
    env = {**LOG, "STREAMCACHE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMCACHE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
           "STREAMCACHE_KAFKA_SASL_USERNAME": "streamcache", "STREAMCACHE_KAFKA_SASL_PASSWORD": "pw"}
    assert Settings.from_env(env).kafka_sasl_mechanism == "SCRAM-SHA-512"
    (problem,) = problems({**env, "STREAMCACHE_KAFKA_SASL_MECHANISM": "PLAIN"})
    assert "STREAMCACHE_KAFKA_SASL_USERNAME" in problem and "tenancyName/" in problem
    (problem,) = problems({**env, "STREAMCACHE_KAFKA_SASL_USERNAME": ""})
    assert "STREAMCACHE_KAFKA_SASL_USERNAME is required" in problem


def test_an_unknown_sasl_mechanism_is_refused():
    (problem,) = problems({**LOG, "STREAMCACHE_KAFKA_SASL_MECHANISM": "GSSAPI"})
    assert "STREAMCACHE_KAFKA_SASL_MECHANISM" in problem and "PLAIN" in problem


def test_the_ca_file_must_be_a_readable_pem_certificate(tmp_path):
    (problem,) = problems({**LOG, "STREAMCACHE_KAFKA_SSL_CA_FILE": str(tmp_path / "missing.pem")})
    assert "STREAMCACHE_KAFKA_SSL_CA_FILE" in problem and "cannot read" in problem
    (tmp_path / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (problem,) = problems({**LOG, "STREAMCACHE_KAFKA_SSL_CA_FILE": str(tmp_path / "key.pem")})
    assert "BEGIN CERTIFICATE" in problem


def test_kafka_security_carries_the_mechanism_and_the_ca_file(tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {**LOG, "STREAMCACHE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMCACHE_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
           "STREAMCACHE_KAFKA_SASL_USERNAME": "streamcache", "STREAMCACHE_KAFKA_SASL_PASSWORD": "pw",
           "STREAMCACHE_KAFKA_SSL_CA_FILE": str(ca_file)}
    assert Settings.from_env(env).kafka_security() == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "streamcache",
        "sasl_plain_password": "pw", "ssl_cafile": str(ca_file)}
    oci = {**env, "STREAMCACHE_KAFKA_SASL_MECHANISM": "", "STREAMCACHE_KAFKA_SSL_CA_FILE": "",
           "STREAMCACHE_KAFKA_SASL_USERNAME": OCI_USER}
    assert Settings.from_env(oci).kafka_security() == {  # OCI: PLAIN, the system's CAs
        "security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_plain_username": OCI_USER,
        "sasl_plain_password": "pw"}


def test_sasl_problems_join_the_others():
    env = {"STREAMCACHE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "STREAMCACHE_STALENESS_MS": "x"}
    assert len(problems(env)) == 4  # log URL, staleness, username, password


def test_the_auth_token_never_appears_in_a_problem():
    env = {**LOG, "STREAMCACHE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "STREAMCACHE_KAFKA_SASL_USERNAME": "bad", "STREAMCACHE_KAFKA_SASL_PASSWORD": "s3cr3t-token"}
    assert all("s3cr3t-token" not in p for p in problems(env))


# ---- snapshots ---------------------------------------------------------------------------------


@pytest.mark.parametrize("log_url, stream", [("kafka://broker:9092/orders", "orders"), ("memory://cache?partitions=3", "cache")])
def test_the_stream_id_defaults_to_the_log_s_topic(log_url, stream):
    assert Settings.from_env({"STREAMCACHE_LOG_URL": log_url}).stream_id == stream
    ocid = "ocid1.stream.oc1.phx.amaaaa"
    assert Settings.from_env({"STREAMCACHE_LOG_URL": log_url, "STREAMCACHE_STREAM_ID": ocid}).stream_id == ocid


@pytest.mark.parametrize("url", ["oci://snapshots@ns/cache/prod", "oci://b@ns", "file:///var/lib/streamcache",
                                 "./.streamcache", "memory://snapshots"])
def test_snapshot_urls_of_every_store_are_accepted(url):
    assert Settings.from_env({**LOG, "STREAMCACHE_SNAPSHOT_URL": url}).snapshot_url == url


def test_a_stream_id_with_control_characters_is_refused():
    (problem,) = problems({**LOG, "STREAMCACHE_STREAM_ID": "two\nlines"})
    assert "STREAMCACHE_STREAM_ID" in problem and "printable" in problem


def test_metrics_settings_refuse_reserved_namespaces_and_a_namespace_without_compartment():
    env = {"STREAMCACHE_LOG_URL": "memory://m", "STREAMCACHE_METRICS_NAMESPACE": "oci_streamcache",
           "STREAMCACHE_METRICS_INTERVAL_S": "0", "STREAMCACHE_METRICS_ENDPOINT": "telemetry"}
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(env)
    text = str(raised.value)
    for expected in ("STREAMCACHE_METRICS_NAMESPACE='oci_streamcache': oci_ and oracle_ are reserved",
                     "STREAMCACHE_METRICS_INTERVAL_S='0'", "STREAMCACHE_METRICS_ENDPOINT='telemetry'",
                     "STREAMCACHE_METRICS_COMPARTMENT_ID is required with STREAMCACHE_METRICS_NAMESPACE"):
        assert expected in text
    with pytest.raises(ConfigError, match="lowercase letters"):
        Settings.from_env({"STREAMCACHE_LOG_URL": "memory://m", "STREAMCACHE_METRICS_NAMESPACE": "Stream-Cache",
                           "STREAMCACHE_METRICS_COMPARTMENT_ID": "ocid1.compartment.oc1..aaaa"})
