"""The settings' values: how each raw environment value is parsed and checked, and the checks that
span several settings. :mod:`streamcache.settings` applies them once, at the edge."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import urlsplit

from streamcache.adapters.urls import check_log_url, check_store_url
from streamcache.auth import parse_api_keys
from streamcache.logs import AccessLog

PREFIX = "STREAMCACHE_"


def default_stream_id(log_url: str) -> str:
    """The stream identity when none is set: the topic (``kafka://HOST:PORT/TOPIC``) or the name
    (``memory://NAME``) of the log."""
    parts = urlsplit(log_url)
    return parts.path.strip("/") if parts.scheme == "kafka" else parts.netloc


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be zero or more")
    return value


def _route_prefix(raw: str) -> str:
    if not raw.startswith("/") or raw.endswith("/") or "?" in raw:
        raise ValueError("must start with / and not end with / (e.g. /cache)")
    return raw


def _stream_id(raw: str) -> str:
    # It becomes one segment of every snapshot's object name (percent-encoded): keep names short.
    if len(raw) > 255 or not raw.isprintable():
        raise ValueError("must be at most 255 printable characters (the stream's name or OCID)")
    return raw


def _http_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return raw.rstrip("/")


def _import_prefix(raw: str) -> str:
    if raw.startswith("/") or not raw.endswith("/") or not raw.isprintable() or "\\" in raw:
        raise ValueError("must be a folder of the bucket such as imports/ (ending with /, no leading /)")
    for own in ("snapshots/", "import-markers/", "values/"):  # what the compactor itself writes
        if raw.startswith(own) or own.startswith(raw):
            raise ValueError(f"must not overlap {own}, where the compactor writes")
    return raw


def _function_ocid(raw: str) -> str:
    if not raw.startswith("ocid1.fnfunc.") or not raw.isprintable() or " " in raw:
        raise ValueError("must be a function's OCID (ocid1.fnfunc....)")
    return raw


def _security_protocol(raw: str) -> str:
    if raw not in ("PLAINTEXT", "SASL_SSL", "SSL", "SASL_PLAINTEXT"):
        raise ValueError("must be PLAINTEXT, SASL_SSL, SSL or SASL_PLAINTEXT")
    return raw


def _sasl_mechanism(raw: str) -> str:
    if raw not in ("PLAIN", "SCRAM-SHA-512", "SCRAM-SHA-256"):
        raise ValueError("must be PLAIN (OCI Streaming), SCRAM-SHA-512 or SCRAM-SHA-256")
    return raw


def _ca_file(raw: str) -> str:
    try:
        text = Path(raw).read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ValueError(f"cannot read the CA file: {exc.strerror or exc}") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ValueError("must be a PEM file holding the CA certificate (-----BEGIN CERTIFICATE-----)")
    return raw


_SECRETS = frozenset({"api_keys", "kafka_sasl_password"})


def _access_log(raw: str) -> AccessLog:
    try:
        return AccessLog(raw)
    except ValueError:
        raise ValueError(f"must be one of {', '.join(level.value for level in AccessLog)}") from None


def _metrics_namespace(raw: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,254}", raw):
        raise ValueError("must be lowercase letters, digits and _ , starting with a letter (e.g. streamcache)")
    if raw.startswith(("oci_", "oracle_")):
        raise ValueError("oci_ and oracle_ are reserved by OCI for its own namespaces")
    return raw


def _compartment_ocid(raw: str) -> str:
    if not raw.startswith(("ocid1.compartment.", "ocid1.tenancy.")) or not raw.isprintable() or " " in raw:
        raise ValueError("must be a compartment's (or the tenancy's) OCID")
    return raw


def _dimension_value(raw: str) -> str:
    if len(raw) > 512 or not raw.isprintable():
        raise ValueError("must be at most 512 printable characters")
    return raw


_PARSERS: dict[str, Callable[[str], object]] = {
    "metrics_namespace": _metrics_namespace,
    "metrics_compartment_id": _compartment_ocid,
    "metrics_endpoint": _http_url,
    "metrics_interval_s": _positive_int,
    "metrics_deployment": _dimension_value,
    "access_log": _access_log,
    "api_keys": parse_api_keys,
    "route_prefix": _route_prefix,
    "staleness_ms": _non_negative_int,
    "max_value_bytes": _positive_int, "inline_max_bytes": _positive_int, "value_cache_bytes": _non_negative_int,
    "max_record_bytes": _positive_int,
    "max_ttl_seconds": _positive_int,
    "max_list_limit": _positive_int,
    "max_bytes": _non_negative_int,
    "append_timeout_ms": _positive_int,
    "kafka_security_protocol": _security_protocol,
    "kafka_sasl_mechanism": _sasl_mechanism,
    "kafka_ssl_ca_file": _ca_file,
    "stream_id": _stream_id,
    "snapshots_keep": _positive_int,
    "snapshots_keep_all_hours": _non_negative_int,
    "snapshots_daily_days": _non_negative_int,
    "snapshot_max_deltas": _non_negative_int, "snapshot_delta_percent": _positive_int,
    "oci_endpoint": _http_url,
    "snapshot_connections": _positive_int,
    "import_prefix": _import_prefix,
    "compact_after_records": _non_negative_int,
    "compactor_function_id": _function_ocid,
    "compactor_invoke_endpoint": _http_url,
}


def _compactor_pair(env: Mapping[str, str]) -> list[str]:
    """One without the other would silently never ask for a compaction. Judged on what is set, not on
    what parsed, so that an invalid OCID is reported once, as invalid."""
    names = (f"{PREFIX}COMPACTOR_FUNCTION_ID", f"{PREFIX}COMPACTOR_INVOKE_ENDPOINT")
    if bool(env.get(names[0])) == bool(env.get(names[1])):
        return []
    return [f"{names[0]} and {names[1]} go together: set both (the compactor's OCID and its invoke endpoint) "
            "or neither"]


def _metrics_pair(env: Mapping[str, str]) -> list[str]:
    """A namespace without a compartment could post nowhere; judged on what is set, as above."""
    if env.get(f"{PREFIX}METRICS_NAMESPACE") and not env.get(f"{PREFIX}METRICS_COMPARTMENT_ID"):
        return [f"{PREFIX}METRICS_COMPARTMENT_ID is required with {PREFIX}METRICS_NAMESPACE (the compartment "
                "the metrics belong to)"]
    return []


def _cross_checks(values: Mapping[str, object]) -> list[str]:
    problems = []
    url = values.get("log_url")
    if isinstance(url, str):
        problem = check_log_url(url)
        if problem:
            problems.append(f"{PREFIX}LOG_URL: {problem}")
        elif not values.get("stream_id") and not default_stream_id(url):
            problems.append(f"{PREFIX}STREAM_ID is required: the log URL names no topic")
    for name in ("snapshot_url", "import_url"):
        url = values.get(name)
        if isinstance(url, str):
            problem = check_store_url(url)
            if problem:
                problems.append(f"{PREFIX}{name.upper()}: {problem}")
    if str(values.get("kafka_security_protocol", "")).startswith("SASL"):
        user = str(values.get("kafka_sasl_username", ""))
        if values.get("kafka_sasl_mechanism", "PLAIN") != "PLAIN":  # SCRAM: any name (the local front end's)
            if not user:
                problems.append(f"{PREFIX}KAFKA_SASL_USERNAME is required when SASL is used")
        elif user.count("/") < 2:  # PLAIN is OCI Streaming's: its username has OCI's shape
            problems.append(
                f"{PREFIX}KAFKA_SASL_USERNAME must be tenancyName/domainName/userName/streamPoolOCID "
                "(or tenancyName/userName/streamPoolOCID) with SASL PLAIN (OCI Streaming)"
            )
        if not values.get("kafka_sasl_password"):
            problems.append(f"{PREFIX}KAFKA_SASL_PASSWORD (the auth token) is required when SASL is used")
    return problems
