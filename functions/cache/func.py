"""The cache function: the FDK entry point behind OCI API Gateway.

A thin adapter: it turns the FDK's context into an :class:`HttpRequest`, hands it to the
container-scoped :class:`~streamcache.cache.app.CacheApp` (built on the first call, kept while the
container is hot) and turns the answer back into an FDK response. All logic lives in ``streamcache``.
"""

from __future__ import annotations

import io
import sys
from datetime import datetime, timezone

import orjson
from fdk import response

from streamcache import logs
from streamcache.cache.app import SWITCH_INTERVAL_S, CacheApp, build_from_env, misconfigured_response
from streamcache.cache.memory_release import limit_malloc_arenas
from streamcache.core.errors import ConfigError
from streamcache.cache.http_api import HttpRequest, HttpResponse

logs.configure()
limit_malloc_arenas()  # before the instance starts its threads: see streamcache.cache.memory_release
_app: CacheApp | None = None
DEADLINE_MARGIN_S = 1.0  # the answer (503 restoring) must leave before the platform's deadline
sys.setswitchinterval(SWITCH_INTERVAL_S)  # why: see streamcache.cache.app


def _wait_budget(ctx) -> float | None:
    """Seconds this call may wait for the cold start: until its Fn-Deadline, less a margin."""
    try:
        deadline = datetime.fromisoformat(str(ctx.Deadline()).replace("Z", "+00:00"))
        left = (deadline - datetime.now(timezone.utc)).total_seconds()
    except (TypeError, ValueError):  # unparsable, or without a zone: wait the default budget
        return None
    return max(0.0, left - DEADLINE_MARGIN_S)


def _get_app() -> CacheApp:
    global _app
    if _app is None:
        _app = build_from_env()
    return _app


def _request(ctx, data: io.BytesIO | None) -> HttpRequest:
    headers = {}
    for name, value in (ctx.HTTPHeaders() or {}).items():
        # The FDK gives a list when a header was repeated; HTTP allows joining them with commas.
        headers[name.lower()] = ", ".join(value) if isinstance(value, list) else str(value)
    body = data.getvalue() if data is not None else b""
    return HttpRequest(ctx.Method() or "", ctx.RequestURL() or "", headers, body, ctx.CallID() or "")


def _answer(ctx, answer: HttpResponse) -> response.Response:
    return response.Response(ctx, response_data=answer.body, headers=answer.headers, status_code=answer.status)


def handler(ctx, data: io.BytesIO = None):
    direct = ctx.Method() is None  # no API Gateway in front: a JSON operation, its status in the answer
    try:
        app = _get_app()
    except ConfigError as exc:
        misconfigured = misconfigured_response(exc)
        if direct:
            body = orjson.dumps({"status": misconfigured.status, **orjson.loads(misconfigured.body)})
            return response.Response(ctx, response_data=body, headers={"Content-Type": "application/json"})
        return _answer(ctx, misconfigured)
    if direct:
        body = data.getvalue() if data is not None else b""
        answer = app.invoke(body, ctx.CallID() or "", _wait_budget(ctx))
        return response.Response(ctx, response_data=answer, headers={"Content-Type": "application/json"})
    return _answer(ctx, app.handle(_request(ctx, data), _wait_budget(ctx)))
