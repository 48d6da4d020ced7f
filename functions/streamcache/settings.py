"""Settings: parsed once, at the edge, from the function's configuration (environment variables).

OCI Functions passes application and function config to the container as environment variables
(``ctx.Config()`` is ``os.environ``). :meth:`Settings.from_env` reads every key, and reports every
missing or invalid one in a single :class:`~streamcache.core.errors.ConfigError`. Nothing below the
handlers reads the environment.
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping
from urllib.parse import urlsplit

from streamcache.adapters.urls import check_log_url, check_store_url
from streamcache.auth import parse_api_keys
from streamcache.core.errors import ConfigError
from streamcache.core.retention import RetentionPolicy
from streamcache.logs import AccessLog

if TYPE_CHECKING:
    from streamcache.ports import MutationLog, SnapshotStore

PREFIX = "STREAMCACHE_"


@dataclass(frozen=True)
class Settings:
    """Every setting, with its default. The table in docs/settings.md mirrors this class."""

    #: ``kafka://HOST:PORT/TOPIC`` or ``memory://NAME``. Required.
    log_url: str
    #: Path prefix of the cache routes behind the gateway.
    route_prefix: str = "/cache"
    #: A read catches up with the log first when its last catch-up is older than this.
    staleness_ms: int = 1000
    #: Largest value accepted. 700 KiB: base64 in the CloudEvents envelope stays under 1 MB.
    max_value_bytes: int = 716_800
    #: Largest encoded record (OCI Streaming takes at most 1 MB per message).
    max_record_bytes: int = 1_000_000
    #: Largest TTL accepted, in seconds (10 years).
    max_ttl_seconds: int = 315_360_000
    #: Largest page of a listing.
    max_list_limit: int = 1000
    #: Bound on the table's accounted size (key + value + 64 B per entry; see core/quota.py), decided
    #: at apply time alike on every instance and the compactor: a put past it answers 507. 0: none.
    #: Every function of a deployment must have the same value.
    max_bytes: int = 0
    #: How long an append waits for the broker's acknowledgement before answering 503.
    append_timeout_ms: int = 5000
    #: Kafka ``security_protocol``: SASL_SSL for OCI Streaming (and ``streamcache dev --like-oci``),
    #: PLAINTEXT for the plain local broker.
    kafka_security_protocol: str = "PLAINTEXT"
    #: The SASL mechanism: PLAIN on OCI Streaming, SCRAM-SHA-512 (or -256) on the local front end.
    kafka_sasl_mechanism: str = "PLAIN"
    #: SASL username. OCI Streaming (PLAIN): ``tenancyName/domainName/userName/streamPoolOCID``.
    kafka_sasl_username: str = ""
    #: SASL password. OCI Streaming: the user's auth token.
    kafka_sasl_password: str = ""
    #: PEM file of the CA that signed the Kafka endpoint's certificate (checked with its host name).
    #: Default: the system's CAs, which sign OCI Streaming's.
    kafka_ssl_ca_file: str = ""
    #: OCI Streaming: the OCID of the Vault secret holding the auth token, read with Resource
    #: Principals when the function starts (instead of STREAMCACHE_KAFKA_SASL_PASSWORD).
    kafka_sasl_password_secret_id: str = ""
    #: CloudEvents ``source`` of the records this instance writes.
    event_source: str = "/streamcache"
    #: Names this instance in logs and /health.
    instance_id: str = ""
    #: Where snapshots live: ``oci://BUCKET@NAMESPACE/PREFIX`` (OCI Object Storage), ``file:///DIR``
    #: or a plain path (a local directory), ``memory://NAME`` (tests). Required by the compactor.
    #: Optional for the cache function: without it a cold start replays the whole stream.
    snapshot_url: str = ""
    #: The stream's identity, written into every snapshot and part of its object name.
    #: Default: the topic of ``STREAMCACHE_LOG_URL``. On OCI set it to the stream's OCID, so that
    #: a stream deleted and recreated under the same name is never mistaken for the old one.
    stream_id: str = ""
    #: How many snapshots the compactor keeps (the newest ones; older ones are the fallback when the
    #: newest is damaged).
    snapshots_keep: int = 3
    #: Every snapshot younger than this many hours is kept (see core/retention.py): the window in
    #: which the table can be seen as of any moment.
    snapshots_keep_all_hours: int = 24
    #: Before that window, the newest snapshot of each UTC day is kept for this many days.
    snapshots_daily_days: int = 7
    #: Profile of the OCI config file used for Object Storage outside OCI Functions (inside, the
    #: function's resource principal signs). Default: ``DEFAULT``.
    oci_profile: str = ""
    #: The OCI config file used outside OCI Functions. Default: ``~/.oci/config``.
    oci_config_file: str = ""
    #: Object Storage endpoint override, e.g. ``http://127.0.0.1:PORT`` for a local server.
    #: Default: the region's endpoint.
    oci_endpoint: str = ""
    #: Connections one big object moves over at once on OCI (ranged GETs of a snapshot's download).
    snapshot_connections: int = 4
    #: Objects under this prefix of the snapshot bucket are imported into the cache when created
    #: (an OCI Events rule invokes the compactor function with the event).
    import_prefix: str = "imports/"
    #: The store that holds objects to import, if not the bucket the event names: ``file:///DIR``
    #: under ``streamcache dev``, or an ``oci://`` URL (events must then name its bucket).
    import_url: str = ""

    #: A cold start that replays more records than this asks the compactor for a compaction (once,
    #: in the background), so the next cold start has a short tail. 0: never.
    compact_after_records: int = 20_000
    #: The compactor function's OCID: where that request goes (a detached invoke, signed with the
    #: function's resource principal). Empty: no request is made.
    compactor_function_id: str = ""
    #: The compactor function's invoke endpoint (``https://<id>.<region>.functions.oci.oraclecloud.com``,
    #: Terraform's ``invoke_endpoint``). Required with ``STREAMCACHE_COMPACTOR_FUNCTION_ID``.
    compactor_invoke_endpoint: str = ""

    #: Which requests get a JSON log line: ``problems`` (errors and slow answers), ``all`` or ``off``
    #: (see :class:`streamcache.logs.AccessLog`).
    access_log: AccessLog = AccessLog.PROBLEMS

    #: OCI Monitoring namespace the functions post their metrics to (``[a-z][a-z0-9_]*``, not
    #: ``oci_``/``oracle_``, which OCI reserves). Empty: no metrics are posted.
    metrics_namespace: str = ""
    #: The compartment the metrics belong to (its OCID). Required with the namespace.
    metrics_compartment_id: str = ""
    #: Ingestion endpoint override (``http://127.0.0.1:PORT`` for ``streamcache dev``). Default:
    #: ``https://telemetry-ingestion.<region>.oraclecloud.com``.
    metrics_endpoint: str = ""
    #: Seconds between two posts of one instance (each carries per-minute aggregates). OCI keeps
    #: one-minute resolution: below 60 only makes sense locally.
    metrics_interval_s: int = 60
    #: The ``deployment`` dimension of every metric. Default: the stream identity.
    metrics_deployment: str = ""

    #: API keys allowed to call the HTTP API, hashed: comma-separated ``sha256:<64 hex>[:ro]``
    #: (``streamcache hash-key`` prints one). Empty: no API-key check (the gateway's only).
    api_keys: tuple = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        problems: list[str] = []
        values: dict[str, object] = {}
        for f in fields(cls):
            name = PREFIX + f.name.upper()
            raw = env.get(name)
            if raw is None or raw == "":
                if f.default is MISSING:
                    problems.append(f"{name} is required")
                continue
            parse = _PARSERS.get(f.name, str)
            try:
                values[f.name] = parse(raw)
            except ValueError as exc:
                # A secret pasted into the wrong setting must not reach the logs.
                shown = "" if f.name in _SECRETS else f"={raw!r}"
                problems.append(f"{name}{shown}: {exc}")
        problems += _cross_checks(values) + _compactor_pair(env) + _metrics_pair(env)
        if problems:
            raise ConfigError(problems)
        if not values.get("instance_id"):
            values["instance_id"] = f"{socket.gethostname()}-{os.getpid()}"
        if not values.get("stream_id"):
            values["stream_id"] = default_stream_id(str(values["log_url"]))
        return cls(**values)  # type: ignore[arg-type]

    def snapshot_store_options(self) -> dict[str, str | int | None]:
        """Keyword arguments of :func:`~streamcache.adapters.urls.open_snapshot_store`."""
        return {
            "oci_profile": self.oci_profile or None,
            "oci_config_file": self.oci_config_file or None,
            "oci_endpoint": self.oci_endpoint or None,
            "oci_connections": self.snapshot_connections,
        }

    def retention(self) -> RetentionPolicy:
        """Which snapshots the compactor keeps."""
        return RetentionPolicy(self.snapshots_keep, self.snapshots_keep_all_hours * 3_600_000, self.snapshots_daily_days)

    def kafka_security(self) -> dict[str, object]:
        """kafka-python's security options: SASL/PLAIN with the auth token over TLS on OCI, SCRAM
        against the local front end's CA, PLAINTEXT to the bare local broker."""
        security: dict[str, object] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.startswith("SASL"):
            # kafka-python takes the username and password under these names for SCRAM too.
            security.update(sasl_mechanism=self.kafka_sasl_mechanism, sasl_plain_username=self.kafka_sasl_username,
                            sasl_plain_password=self.kafka_sasl_password)
        if self.kafka_security_protocol.endswith("SSL") and self.kafka_ssl_ca_file:
            security["ssl_cafile"] = self.kafka_ssl_ca_file
        return security

    # The edge turns settings into plain values here, once; nothing below sees this object.

    def open_log(self) -> "MutationLog":
        """The mutation log these settings name."""
        from streamcache.adapters.urls import open_log

        return open_log(self.log_url, timeout_ms=self.append_timeout_ms, client_id=f"streamcache-{self.instance_id}",
                        security=self.kafka_security())

    def open_store(self) -> "SnapshotStore":
        """The snapshot store these settings name. Raises ConfigError if they name none."""
        from streamcache.adapters.urls import open_snapshot_store

        if not self.snapshot_url:
            raise ConfigError([f"{PREFIX}SNAPSHOT_URL is required (where snapshots live)"])
        return open_snapshot_store(self.snapshot_url, **self.snapshot_store_options())

    @classmethod
    def env_names(cls) -> list[str]:
        return [PREFIX + f.name.upper() for f in fields(cls)]


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
    for own in ("snapshots/", "import-markers/"):  # what the compactor itself writes
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
    "max_value_bytes": _positive_int,
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
