"""Assembles one cache instance from settings: the log adapter, the replica, the service, the HTTP API.

Built once per container (module scope of ``func.py``) and kept while the container is hot. The
first request starts the cold start (newest snapshot + the log's tail, see
:mod:`streamcache.cache.cold_start`); requests wait for it within their deadline budget and are
answered ``503 restoring`` (Retry-After: 1) when it runs out first. The same restore reloads a
running instance whose log went backwards or left it behind retention (phase ``recovering``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from typing import Callable

import orjson

from streamcache import __version__
from streamcache.adapters.oci_functions import invoke_detached  # light: the SDK is imported when called
from streamcache.adapters.oci_secrets import with_secrets
from streamcache.cache.big_values import BigValues
from streamcache.cache.cold_start import ColdStart
from streamcache.cache.compaction_request import RequestCompaction
from streamcache.cache.health import Health, HealthProblem, Phase, ProblemKind
from streamcache.cache.instance_metrics import InstanceMetrics, TimedLog
from streamcache.cache.http_api import HttpApi, HttpRequest, HttpResponse, error_response
from streamcache.cache.invoke_api import error_answer, fit_answer, handle_invoke
from streamcache.cache.replica import Replica
from streamcache.cache.service import CacheService, Limits
from streamcache.core.errors import ConfigError, LogMismatch, Restoring
from streamcache.metrics import open_metrics
from streamcache.ports import SnapshotStore
from streamcache.settings import Settings
from streamcache.statuses import INTERNAL, ErrorCode, for_error

log = logging.getLogger("streamcache.access")

#: How long a request waits for the cold start when its caller gave no deadline (OCI's default
#: function timeout is 30 s; the answer must leave before it).
DEFAULT_WAIT_S = 25.0
#: The interpreter's GIL switch interval in a cache instance (func.py sets it; the bench's in-handler
#: run too). A write waits for kafka-python's I/O thread to complete its future; woken, the handler
#: then waits for the GIL until that thread's loop blocks again, up to the switch interval (5 ms by
#: default). Profiled: 50 us takes 0.05-0.06 ms off a PUT's p50, in the handler and through the FDK.
#: Nothing in an instance is CPU-bound in two threads at once (a cold start's replay runs while
#: requests wait for it).
SWITCH_INTERVAL_S = 0.00005


class CacheApp:
    """One cache instance. ``handle`` never raises: every problem becomes an HTTP answer."""

    def __init__(self, settings: Settings, store_factory: Callable[[], SnapshotStore] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        """``store_factory`` overrides the snapshot store the settings name (tests); ``clock`` is
        the wall clock the snapshot's age is measured with (``None``: time.time at each call)."""
        # The edge: settings become plain values here and go no further down.
        self.instance_id, self.stream_id = settings.instance_id, settings.stream_id
        self.metrics = open_metrics(settings, "cache", clock)
        mutation_log = settings.open_log()
        self.replica = Replica(TimedLog(mutation_log) if self.metrics.enabled else mutation_log,
                               max_bytes=settings.max_bytes)
        if store_factory is None and settings.snapshot_url:
            store_factory = settings.open_store  # opened in the restore thread
        values = None if store_factory is None else BigValues(store_factory, settings.stream_id, settings.inline_max_bytes,
                                                              settings.value_cache_bytes)
        self.service = CacheService(self.replica, limits(settings), settings.event_source, values=values)
        self.http = HttpApi(self.service, self.health_json, settings.route_prefix, settings.api_keys,
                            access_log=settings.access_log)
        self.cold_start = ColdStart(self.replica, settings.stream_id, store_factory, clock=clock,
                                    compact_after_records=settings.compact_after_records,
                                    request_compaction=compaction_requester(settings))
        self.observed = InstanceMetrics(self.metrics, self.replica, self.cold_start, settings.route_prefix)
        if isinstance(self.replica.log, TimedLog):
            self.replica.log.observed = self.observed

    def ensure_started(self, wait_s: float | None = None) -> None:
        """Restore before the first answer (cold start), waiting at most ``wait_s`` seconds. Raises
        :class:`Restoring`, or what the restore failed with (it is retried on the next request)."""
        self.cold_start.ensure(DEFAULT_WAIT_S if wait_s is None else wait_s)

    def _not_started(self, exc: BaseException):
        """The problem to answer a request that the cold start holds up with."""
        problem = for_error(exc, context="" if isinstance(exc, Restoring) else "starting")
        if problem.code == ErrorCode.INTERNAL:  # a bug: the details go to the log, not to the client
            log.error("cold start failed: %s: %s", type(exc).__name__, exc)
        return problem

    def handle(self, request: HttpRequest, wait_s: float | None = None) -> HttpResponse:
        """Answer one HTTP request; ``wait_s`` is how long it may wait for the cold start. ``/health``
        never waits: it starts the restore if none runs, and reports it (phase ``restoring``)."""
        started = time.perf_counter()
        try:
            self.ensure_started(0.0 if self.http.is_health(request) else wait_s)
        except Exception as exc:
            if isinstance(exc, (Restoring, LogMismatch)) and self.http.is_health(request):
                response = self.http.handle(request)  # /health answers while restoring (or refusing)
            else:
                problem = self._not_started(exc)
                response = error_response(problem.status, problem.code, problem.message, problem.headers())
        else:
            response = self.http.handle(request)
        if self.metrics.enabled:
            self.observed.http(request.method, request.url, response.status, response.headers, started)
        # An answer to HEAD never has a body, whatever the route or the error.
        return response._replace(body=b"") if request.method.upper() == "HEAD" else response

    def invoke(self, body: bytes, request_id: str = "", wait_s: float | None = None) -> bytes:
        """Answer a direct invoke (no API Gateway): a JSON operation in, a JSON answer out."""
        started = time.perf_counter()
        try:
            self.ensure_started(0.0 if _is_health_operation(body) else wait_s)
        except Exception as exc:
            if isinstance(exc, (Restoring, LogMismatch)) and _is_health_operation(body):
                answer: object = {"status": 200, "health": self.health_json()}
            else:
                answer = error_answer(self._not_started(exc))
        else:
            try:
                answer = handle_invoke(self.service, body, self.health_json)
            except Exception:  # a bug: a JSON 500 in the answer rather than the FDK's bare 502
                log.exception("unhandled error in a direct invoke")
                answer = error_answer(INTERNAL)
        statuses = [a.get("status") for a in answer] if isinstance(answer, list) else answer.get("status")  # type: ignore[union-attr]
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        listed = statuses if isinstance(statuses, list) else [statuses]
        if self.metrics.enabled:
            self.observed.invoke(listed, started)
        if any(not isinstance(status, int) or self.http.access_log.wants(status, duration_ms) for status in listed):
            log.info("invoke", extra={"fields": {"request_id": request_id, "kind": "invoke", "status": statuses,
                                                 "duration_ms": duration_ms}})
        return fit_answer(orjson.dumps(answer))

    def health(self) -> Health:
        """The instance's status: restoring, serving or degraded (``problems`` says why, and what an
        operator should do)."""
        replica, cold = self.replica, self.cold_start
        done = cold.done
        age = replica.seconds_since_catch_up()
        # While restoring, nothing here may wait for the log: the restore thread is using it.
        health = Health(
            phase=cold.phase, problems=tuple(cold.problems()), cold_start=cold.numbers(),
            instance=self.instance_id, version=__version__, stream=self.stream_id, keys=len(replica.table),
            positions=replica.positions() if done else replica.table.next_offsets(),
            lag_records=replica.lag_records() if done else cold.records_left(),
            staleness_ms=None if age is None else round(age * 1000, 1),
            staleness_bound_ms=self.service.limits.staleness_ms,
            records_applied=replica.records_applied, records_skipped=replica.records_skipped,
            records_misplaced=replica.records_misplaced,
            log_watch=replica.watch.health(), log_reads=replica.pacer.health(),
            bytes_used=replica.table.used_bytes() if done else 0,
            max_bytes=None if replica.quota is None else replica.quota.max_bytes,
        )
        regression = replica.watch.health()
        if regression["log_regressions"]:  # the stream lost records this instance had applied
            last = regression["log_regression"]
            health = health.with_problem(HealthProblem(ProblemKind.LOG_REGRESSION, last["message"],
                                                       {"detected_at": last["detected_at"]}))
        if replica.refused is not None:  # the log's partition count changed under this process
            health = replace(health, phase=Phase.REFUSING, problems=(
                *health.problems, HealthProblem(ProblemKind.PARTITION_COUNT_CHANGED, replica.refused)))
        return health

    def health_json(self) -> dict:
        return self.health().to_json()


def _is_health_operation(body: bytes) -> bool:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and str(doc.get("operation", "")).lower() == "health"


def limits(settings: Settings) -> Limits:
    return Limits(staleness_ms=settings.staleness_ms, max_value_bytes=settings.max_value_bytes,
                  max_record_bytes=settings.max_record_bytes, max_ttl_seconds=settings.max_ttl_seconds,
                  max_list_limit=settings.max_list_limit, inline_max_bytes=settings.inline_max_bytes)


def compaction_requester(settings: Settings) -> RequestCompaction | None:
    """How this instance asks the compactor for a compaction after a long tail: a detached invoke
    of the compactor function (plain values only; the SDK is imported when the request is sent, on
    the request's own thread, so a short tail never pays for it). ``None`` when no compactor is configured."""
    if not settings.compactor_function_id or settings.compact_after_records == 0:
        return None
    function_id, endpoint = settings.compactor_function_id, settings.compactor_invoke_endpoint
    profile, config_file = settings.oci_profile or None, settings.oci_config_file or None
    instance = settings.instance_id

    def request(body: dict) -> str:
        # The compactor tolerates the extra keys; they say in its log who asked and why.
        return invoke_detached(function_id, endpoint, orjson.dumps({**body, "instance": instance}),
                               profile=profile, config_file=config_file)

    return request


def misconfigured_response(error: ConfigError) -> HttpResponse:
    """The answer to every request while the function's settings are invalid."""
    problem = for_error(error)
    return error_response(problem.status, problem.code, problem.message)


def build_from_env(env=None) -> CacheApp:
    # The Kafka auth token may live in an OCI Vault secret (STREAMCACHE_KAFKA_SASL_PASSWORD_SECRET_ID).
    return CacheApp(Settings.from_env(with_secrets(os.environ if env is None else env)))
