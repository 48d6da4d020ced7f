"""Assembles one cache instance from settings: the log adapter, the replica, the service, the HTTP API.

Built once per container (module scope of ``func.py``) and kept while the container is hot. The
first request pays for opening the log and replaying it; see :meth:`CacheApp.ensure_started`.
"""

from __future__ import annotations

import logging
import threading
import time

import orjson

from . import __version__
from .adapters import open_log
from .invoke_api import handle_invoke
from .http_api import HttpApi, HttpRequest, HttpResponse, error_response
from .core.errors import ConfigError, LogUnavailable
from .replica import Replica
from .service import CacheService
from .settings import Settings

log = logging.getLogger("streamcache.access")


class CacheApp:
    """One cache instance. ``handle`` never raises: every problem becomes an HTTP answer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.replica = Replica(open_log(settings))
        self.service = CacheService(settings, self.replica)
        self.http = HttpApi(self.service, self.health)
        self._started = False
        self._start_lock = threading.Lock()
        self.process_started = time.monotonic()
        self.cold_start_ms: float | None = None

    def ensure_started(self) -> None:
        """Replay the log before the first answer (cold start). Retried on the next request if the
        log is unreachable now."""
        if self._started:
            return
        with self._start_lock:
            if not self._started:
                self.replica.catch_up()
                self._started = True
                self.cold_start_ms = round((time.monotonic() - self.process_started) * 1000, 1)

    def handle(self, request: HttpRequest) -> HttpResponse:
        try:
            self.ensure_started()
        except LogUnavailable as exc:
            response = error_response(503, "stream_unavailable", f"starting: the stream cannot be reached: {exc}",
                                      {"Retry-After": "1"})
            return response._replace(body=b"") if request.method.upper() == "HEAD" else response
        response = self.http.handle(request)
        # An answer to HEAD never has a body, whatever the route or the error.
        return response._replace(body=b"") if request.method.upper() == "HEAD" else response

    def invoke(self, body: bytes, request_id: str = "") -> bytes:
        """Answer a direct invoke (no API Gateway): a JSON operation in, a JSON answer out."""
        try:
            self.ensure_started()
        except LogUnavailable as exc:
            answer: object = {"status": 503, "error": "stream_unavailable", "retry_after": 1,
                              "message": f"starting: the stream cannot be reached: {exc}"}
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
        replica = self.replica
        age = replica.seconds_since_catch_up()
        return {
            "status": "serving" if self._started else "starting",
            "instance": self.settings.instance_id,
            "version": __version__,
            "keys": len(replica.table),
            "positions": {str(p): o for p, o in replica.positions().items()},
            "staleness_ms": None if age is None else round(age * 1000, 1),
            "staleness_bound_ms": self.settings.staleness_ms,
            "records_applied": replica.records_applied,
            "records_skipped": replica.records_skipped,
            "cold_start_ms": self.cold_start_ms,
        }


def misconfigured_response(error: ConfigError) -> HttpResponse:
    """The answer to every request while the function's settings are invalid."""
    return error_response(500, "misconfigured", str(error))


def build_from_env(env=None) -> CacheApp:
    return CacheApp(Settings.from_env(env))
