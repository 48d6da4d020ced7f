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
from typing import Callable, Mapping

from .core.errors import ConfigError

PREFIX = "STREAMCACHE_"


@dataclass(frozen=True)
class Settings:
    """Every setting, with its default. The README's settings table mirrors this class."""

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
    #: How long an append waits for the broker's acknowledgement before answering 503.
    append_timeout_ms: int = 5000
    #: Kafka ``security_protocol``: PLAINTEXT locally, SASL_SSL for OCI Streaming.
    kafka_security_protocol: str = "PLAINTEXT"
    #: OCI Streaming: ``tenancyName/domainName/userName/streamPoolOCID`` (SASL/PLAIN username).
    kafka_sasl_username: str = ""
    #: OCI Streaming: the user's auth token (SASL/PLAIN password).
    kafka_sasl_password: str = ""
    #: CloudEvents ``source`` of the records this instance writes.
    event_source: str = "/streamcache"
    #: Names this instance in logs and /health.
    instance_id: str = ""

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
                problems.append(f"{name}={raw!r}: {exc}")
        problems += _cross_checks(values)
        if problems:
            raise ConfigError(problems)
        if not values.get("instance_id"):
            values["instance_id"] = f"{socket.gethostname()}-{os.getpid()}"
        return cls(**values)  # type: ignore[arg-type]

    @classmethod
    def env_names(cls) -> list[str]:
        return [PREFIX + f.name.upper() for f in fields(cls)]


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


def _security_protocol(raw: str) -> str:
    if raw not in ("PLAINTEXT", "SASL_SSL", "SSL", "SASL_PLAINTEXT"):
        raise ValueError("must be PLAINTEXT, SASL_SSL, SSL or SASL_PLAINTEXT")
    return raw


_PARSERS: dict[str, Callable[[str], object]] = {
    "route_prefix": _route_prefix,
    "staleness_ms": _non_negative_int,
    "max_value_bytes": _positive_int,
    "max_record_bytes": _positive_int,
    "max_ttl_seconds": _positive_int,
    "max_list_limit": _positive_int,
    "append_timeout_ms": _positive_int,
    "kafka_security_protocol": _security_protocol,
}


def _cross_checks(values: Mapping[str, object]) -> list[str]:
    from .adapters import check_log_url

    problems = []
    url = values.get("log_url")
    if isinstance(url, str):
        problem = check_log_url(url)
        if problem:
            problems.append(f"{PREFIX}LOG_URL: {problem}")
    if str(values.get("kafka_security_protocol", "")).startswith("SASL"):
        user = str(values.get("kafka_sasl_username", ""))
        if user.count("/") < 2:
            problems.append(
                f"{PREFIX}KAFKA_SASL_USERNAME must be tenancyName/domainName/userName/streamPoolOCID "
                "(or tenancyName/userName/streamPoolOCID) when SASL is used"
            )
        if not values.get("kafka_sasl_password"):
            problems.append(f"{PREFIX}KAFKA_SASL_PASSWORD (the auth token) is required when SASL is used")
    return problems
