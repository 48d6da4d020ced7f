"""Assembles one cache instance from settings: the log adapter, the replica, the service, the HTTP API.

Built once per container (module scope of ``func.py``) and kept while the container is hot. The
first request starts the cold start (newest snapshot + the log's tail, see
:mod:`streamcache.restore_runner`); requests wait for it within their deadline budget and are
answered ``503 restoring`` (Retry-After: 1) when it runs out first.
"""

from __future__ import annotations

import logging
import os
from typing import Callable
from urllib.parse import urlsplit

import orjson

from . import __version__
from .adapters import open_log
from .adapters.oci_secrets import with_secrets
from .invoke_api import handle_invoke
from .http_api import HttpApi, HttpRequest, HttpResponse, error_response
from .core.errors import ConfigError, LogUnavailable
from .replica import Replica
from .restore_runner import ColdStart, Restoring
from .service import CacheService
from .settings import Settings
from .snapshot_catalog import open_store
from .snapshot_store import SnapshotStore, SnapshotStoreUnavailable

log = logging.getLogger("streamcache.access")

#: How long a request waits for the cold start when its caller gave no deadline (OCI's default
#: function timeout is 30 s; the answer must leave before it).
DEFAULT_WAIT_S = 25.0


class CacheApp:
    """One cache instance. ``handle`` never raises: every problem becomes an HTTP answer."""

    def __init__(self, settings: Settings, store_factory: Callable[[], SnapshotStore] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        """``store_factory`` overrides the snapshot store the settings name (tests); ``clock`` is
        the wall clock the snapshot's age is measured with (``None``: time.time at each call)."""
        self.settings = settings
        self.replica = Replica(open_log(settings))
        self.service = CacheService(settings, self.replica)
        self.http = HttpApi(self.service, self.health)
        if store_factory is None and settings.snapshot_url:
            store_factory = lambda: open_store(settings)  # noqa: E731 - opened in the restore thread
        self.cold_start = ColdStart(self.replica, settings.stream_id, store_factory, clock=clock)

    def ensure_started(self, wait_s: float | None = None) -> None:
        """Restore before the first answer (cold start), waiting at most ``wait_s`` seconds. Raises
        :class:`Restoring`, or what the restore failed with (it is retried on the next request)."""
        self.cold_start.ensure(DEFAULT_WAIT_S if wait_s is None else wait_s)

    def _not_started(self, exc: BaseException) -> tuple[int, str, str, dict[str, str]]:
        """Status, error code, message and headers for a request that the cold start holds up."""
        retry = {"Retry-After": "1"}
        if isinstance(exc, Restoring):
            return 503, "restoring", f"the instance is restoring its data; retry shortly ({exc})", retry
        if isinstance(exc, LogUnavailable):
            return 503, "stream_unavailable", f"starting: the stream cannot be reached: {exc}", retry
        if isinstance(exc, SnapshotStoreUnavailable):
            return 503, "snapshot_store_unavailable", f"starting: the snapshot store cannot be read: {exc}", retry
        if isinstance(exc, ConfigError):
            return 500, "misconfigured", str(exc), {}
        log.error("cold start failed: %s: %s", type(exc).__name__, exc)
        return 500, "internal", "internal error during the cold start; see the function's logs", {}

    def handle(self, request: HttpRequest, wait_s: float | None = None) -> HttpResponse:
        """Answer one HTTP request; ``wait_s`` is how long it may wait for the cold start."""
        try:
            self.ensure_started(wait_s)
        except Exception as exc:
            if isinstance(exc, Restoring) and self._is_health(request):
                response = self.http.handle(request)  # /health answers while restoring: phase "restoring"
            else:
                status, code, message, headers = self._not_started(exc)
                response = error_response(status, code, message, headers)
        else:
            response = self.http.handle(request)
        # An answer to HEAD never has a body, whatever the route or the error.
        return response._replace(body=b"") if request.method.upper() == "HEAD" else response

    def _is_health(self, request: HttpRequest) -> bool:
        path = urlsplit(request.url).path
        return path == "/health" or (path.endswith("/health") and not path.startswith(self.settings.route_prefix + "/"))

    def invoke(self, body: bytes, request_id: str = "", wait_s: float | None = None) -> bytes:
        """Answer a direct invoke (no API Gateway): a JSON operation in, a JSON answer out."""
        try:
            self.ensure_started(wait_s)
        except Exception as exc:
            if isinstance(exc, Restoring) and _is_health_operation(body):
                answer: object = {"status": 200, "health": self.health()}
            else:
                status, code, message, headers = self._not_started(exc)
                answer = {"status": status, "error": code, "message": message}
                if headers:
                    answer["retry_after"] = 1
        else:
            try:
                answer = handle_invoke(self.service, body, self.health)
            except Exception:  # a bug: a JSON 500 in the answer rather than the FDK's bare 502
                log.exception("unhandled error in a direct invoke")
                answer = {"status": 500, "error": "internal", "message": "internal error; see the function's logs"}
        statuses = [a.get("status") for a in answer] if isinstance(answer, list) else answer.get("status")
        log.info("invoke", extra={"fields": {"request_id": request_id, "kind": "invoke", "status": statuses}})
        return orjson.dumps(answer)

    def health(self) -> dict:
        """The instance's status. ``status`` and ``phase`` are the same: restoring, serving or
        degraded (``problems`` says why, and what an operator should do)."""
        replica = self.replica
        age = replica.seconds_since_catch_up()
        cold = self.cold_start.health()
        done = self.cold_start.done
        # While restoring, nothing here may wait for the log: the restore thread is using it.
        positions = replica.positions() if done else replica.table.next_offsets()
        to_replay = cold["records_to_replay"]
        regression = replica.watch.health()
        if regression["log_regressions"]:  # the stream lost records this instance had applied
            problem = {"kind": "log_regression", **regression["log_regression"]}
            cold = {**cold, "phase": "degraded", "problems": [*cold["problems"], problem]}
        for loss in replica.tail_losses:  # a hot instance that fell behind the stream's retention
            cold = {**cold, "phase": "degraded", "problems": [*cold["problems"], {"kind": "data_loss", "message": loss}]}
        return {
            "status": cold["phase"],
            **cold,
            "instance": self.settings.instance_id,
            "version": __version__,
            "stream": self.settings.stream_id,
            "keys": len(replica.table),
            "positions": {str(p): o for p, o in positions.items()},
            "lag_records": replica.lag_records() if done else (None if to_replay is None else max(0, to_replay - cold["records_replayed"])),
            "staleness_ms": None if age is None else round(age * 1000, 1),
            "staleness_bound_ms": self.settings.staleness_ms,
            "records_applied": replica.records_applied,
            "records_skipped": replica.records_skipped,
            **regression,
        }


def _is_health_operation(body: bytes) -> bool:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and str(doc.get("operation", "")).lower() == "health"


def misconfigured_response(error: ConfigError) -> HttpResponse:
    """The answer to every request while the function's settings are invalid."""
    return error_response(500, "misconfigured", str(error))


def build_from_env(env=None) -> CacheApp:
    # The Kafka auth token may live in an OCI Vault secret (STREAMCACHE_KAFKA_SASL_PASSWORD_SECRET_ID).
    return CacheApp(Settings.from_env(with_secrets(os.environ if env is None else env)))
