"""Settings: parsed once, at the edge, from the function's configuration (environment variables).

OCI Functions passes application and function config to the container as environment variables
(``ctx.Config()`` is ``os.environ``). :meth:`Settings.from_env` reads every key, and reports every
missing or invalid one in a single :class:`~streamcache.core.errors.ConfigError`. Nothing below the
handlers reads the environment.
"""

from __future__ import annotations

import os
import socket
from dataclasses import MISSING, dataclass, fields
from typing import TYPE_CHECKING, Mapping

from streamcache.core.errors import ConfigError
from streamcache.core.retention import RetentionPolicy
from streamcache.logs import AccessLog
from streamcache.setting_values import (_PARSERS, _SECRETS, PREFIX, _compactor_pair, _cross_checks, _metrics_pair,
                                        default_stream_id)

if TYPE_CHECKING:
    from streamcache.ports import MutationLog, SnapshotStore



@dataclass(frozen=True)
class Settings:
    """Every setting, with its default. The table in docs/settings.md mirrors this class."""

    #: ``kafka://HOST:PORT/TOPIC`` or ``memory://NAME``. Required.
    log_url: str
    #: Path prefix of the cache routes behind the gateway.
    route_prefix: str = "/cache"
    #: A read catches up with the log first when its last catch-up is older than this.
    staleness_ms: int = 1000
    #: Largest value accepted. 5.5 MiB: a function invoke carries at most 6 MB (the rest: the envelope).
    max_value_bytes: int = 5_767_168
    #: Values above this go to the object store (STREAMCACHE_SNAPSHOT_URL); the record carries a reference.
    inline_max_bytes: int = 262_144
    #: Bound of the in-memory cache of big values an instance keeps (least recently used first out).
    value_cache_bytes: int = 67_108_864
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
    #: Deltas a compaction writes between full images (0: full images only; core/snapshot_chain.py).
    snapshot_max_deltas: int = 12
    #: ... and a full image once the chain's deltas would exceed this percentage of the full image's size.
    snapshot_delta_percent: int = 25
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
