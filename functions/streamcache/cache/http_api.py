"""The HTTP API of the cache function: an HTTP request in, an HTTP answer out; no FDK types.

Routes (``P`` is the route prefix, ``/cache`` by default; the OpenAPI document is
``functions/cache/openapi.yaml``):

    GET    P/{key}  or  P?key=K          the value (ETag, Content-Type, Cache-Control: max-age, Expires)
    GET    P?prefix=&limit=&cursor=       a page of keys
    PUT    P/{key}?ttl=S  or  P?key=K&ttl=S   store the body (If-Match, If-None-Match: *)
    POST   P  or  PUT P                   {"key", "value": <JSON>, "ttl"?} stores the JSON value
    POST   P                              {"operation": ...} or {"operations": [...]}: the direct-invoke
                                          API, answered 200 with each operation's status inside
    DELETE P/{key}  or  P?key=K           remove (If-Match)
    POST   P/{key}?increment=N&ttl=S      add to a counter atomically; answers its new value
    PATCH  P/{key}?ttl=S                  a new TTL (``ttl=`` empty: none), the value untouched (If-Match)
    GET    /health                        instance status
    GET    /changes?after=&prefix=&limit=&wait=   the change feed (cache/changes.py)
    GET    /console                       the console page and its files (cache/console.py)

Every write answers ``Streamcache-Position``; a read or listing with ``Streamcache-After`` (or
``?after=``) sees those writes on any instance.

With ``?key=``, a parameter the same method on ``P/{key}`` does not take is refused (400), never
ignored. Unknown fields of a JSON body are refused too, by name.

Every error is a JSON body ``{"error": CODE, "message": ...}``; client mistakes are 4xx and change
nothing, an unreachable stream is 503 ``stream_unavailable`` with Retry-After (a write so answered did
not happen), and a write whose append may or may not have landed is 503 ``outcome_unknown`` with
Retry-After (docs/unknown-outcomes.md).
"""

from __future__ import annotations

import logging
import time
from email.utils import formatdate
from typing import Callable, Mapping, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

import orjson

from streamcache.auth import ApiKey, ApiKeys
from streamcache.logs import AccessLog
from streamcache.cache.changes import changes
from streamcache.cache.console import console_asset, console_response
from streamcache.cache.invoke_api import handle_invoke
from streamcache.cache.service import CacheService, ListPage, parse_consistency, parse_positions, parse_ttl
from streamcache.core import records
from streamcache.core.records import Precondition, parse_precondition
from streamcache.core.table import Entry, Outcome, OutcomeKind
from streamcache.statuses import INTERNAL, Problem, for_error, for_outcome, not_found

log = logging.getLogger("streamcache.access")

JSON = "application/json"
#: The fields of a POST/PUT JSON body on the collection.
BODY_FIELDS = frozenset({"key", "value", "ttl"})
#: What ``/cache?key=K`` accepts per method: the parameters of the same method on ``/cache/{key}``.
KEY_QUERY = {"GET": {"key", "consistency", "after"}, "HEAD": {"key", "consistency", "after"}, "PUT": {"key", "ttl"},
             "DELETE": {"key"}}
#: Listing parameters at their empty or default value, accepted with ``?key=`` (they change nothing).
LIST_DEFAULTS = {"prefix": ("",), "cursor": ("",), "limit": ("100",)}
#: A write's answer carries the session position; a read that sends it back sees the write.
POSITION_HEADER, AFTER_HEADER = "Streamcache-Position", "streamcache-after"


class HttpRequest(NamedTuple):
    method: str
    url: str  # path and query, or a full URL
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    request_id: str = ""  # the platform's call id (Fn-Call-Id; OCI's opc-request-id), for the logs


class HttpResponse(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes


class HttpError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def json_response(status: int, payload: object, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status, {"Content-Type": JSON, **(headers or {})}, orjson.dumps(payload))


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> HttpResponse:
    return json_response(status, {"error": code, "message": message}, headers)


def problem_response(problem: Problem) -> HttpResponse:
    return error_response(problem.status, problem.code, problem.message, problem.headers())


def is_health_path(path: str, prefix: str) -> bool:
    """``/health``, also under a gateway deployment's path (``/v1/health``), but never a key under
    the cache's own routes (``/cache/health`` is the key "health")."""
    return _beside_the_cache(path, "/health", prefix)


def _beside_the_cache(path: str, route: str, prefix: str) -> bool:
    return path == route or (path.endswith(route) and not path.startswith(prefix + "/"))


class HttpApi:
    """Routes requests to a :class:`CacheService` and maps outcomes and errors to HTTP explicitly."""

    def __init__(self, service: CacheService, health: Callable[[], dict], prefix: str = "/cache",
                 api_keys: tuple[ApiKey, ...] = (), monotonic=time.perf_counter,
                 access_log: AccessLog = AccessLog.PROBLEMS) -> None:
        self.service = service
        self.access_log = access_log
        self.prefix = prefix
        self._health = health
        self._monotonic = monotonic
        self.api_keys = ApiKeys(api_keys)

    def is_health(self, request: HttpRequest) -> bool:
        return is_health_path(urlsplit(request.url).path, self.prefix)

    def handle(self, request: HttpRequest) -> HttpResponse:
        started = self._monotonic()
        fields: dict[str, object] = {"request_id": request.request_id, "method": request.method}
        try:
            response = self._route(request, fields)
        except HttpError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.headers)
        except Exception as exc:  # the one table decides; a bug is a JSON 500, not the FDK's bare 502
            problem = for_error(exc)
            if problem is INTERNAL:
                log.exception("unhandled error", extra={"fields": fields})
            response = problem_response(problem)
        duration_ms = round((self._monotonic() - started) * 1000, 3)
        if self.access_log.wants(response.status, duration_ms):
            fields.update(status=response.status, duration_ms=duration_ms)
            log.info("request", extra={"fields": fields})
        return response

    # ---- routing ------------------------------------------------------------------------------

    def _route(self, request: HttpRequest, fields: dict) -> HttpResponse:
        parts = urlsplit(request.url)
        path = parts.path
        query = _query(parts.query)
        method = request.method.upper()
        if is_health_path(path, self.prefix):
            _allow(method, ("GET", "HEAD"))
            return json_response(200, self._health())  # open: health checks send no credentials
        asset = console_asset(path, self.prefix)
        if asset is not None:  # the page and its files: the same for everyone, nothing secret
            _allow(method, ("GET", "HEAD"))
            return HttpResponse(*console_response(asset, self.prefix))
        denied = self.api_keys.check(method, request.headers)
        if denied is not None:  # before anything is parsed or done: a refused request changes nothing
            raise HttpError(denied.status, denied.code, denied.message, denied.headers)
        if _beside_the_cache(path, "/changes", self.prefix):
            _allow(method, ("GET", "HEAD"))
            return self._changes(query)
        if path == self.prefix or path == self.prefix + "/":
            key = query.get("key")
            _allow(method, ("GET", "HEAD", "POST", "PUT", "DELETE"))
            if key is None:
                if method in ("GET", "HEAD"):
                    return self._list(request, query, method)
                if method in ("POST", "PUT"):  # a JSON body: {"key", "value"} or {"operation": ...}
                    return self._post(request, fields, method)
                raise HttpError(400, "invalid_query", "DELETE on the collection needs ?key=K (or use /cache/{key})")
            if method == "POST":
                raise HttpError(400, "invalid_query", "POST takes the key in its JSON body, not in ?key=")
            # A listing's parameter given with its empty or default value changes nothing; any other is refused.
            extra = sorted(n for n in set(query) - KEY_QUERY[method] if query[n] not in LIST_DEFAULTS.get(n, ()))
            if extra:  # a listing's parameters with ?key= would be silently meaningless: refuse them
                raise HttpError(400, "invalid_query", f"with ?key=, {', '.join(map(repr, extra))} cannot be given "
                                f"({method} ?key= takes only {', '.join(sorted(KEY_QUERY[method]))})")
        elif path.startswith(self.prefix + "/"):
            key = _decode_path_key(path[len(self.prefix) + 1 :])
        else:
            raise HttpError(404, "no_route", f"no route for {path!r}; the cache lives under {self.prefix}")
        fields["key"] = key
        _allow(method, ("GET", "HEAD", "PUT", "DELETE", "POST", "PATCH"))
        if method in ("GET", "HEAD"):
            return self._get(key, request, query, method)
        if method == "POST":  # POST P/{key}?increment=N: an atomic counter
            if "increment" not in query:
                raise HttpError(400, "invalid_query", "POST on a key takes ?increment=N (a signed 64-bit integer)")
            by = _integer(query["increment"])
            ttl = parse_ttl(query["ttl"]) if "ttl" in query else None
            precondition = _precondition(request)
            outcome = self.service.increment(key, by, ttl, precondition)
            return self._write_answer(outcome, fields, precondition, counter=True)
        if method == "PUT":
            ttl = parse_ttl(query["ttl"]) if "ttl" in query else None
            content_type = request.headers.get("content-type") or records.DEFAULT_CONTENT_TYPE
            precondition = _precondition(request)
            outcome = self.service.put(key, request.body, content_type, ttl, precondition)
            return self._write_answer(outcome, fields, precondition)
        precondition = _precondition(request, allow_absent=False)
        if method == "PATCH":  # a touch: the expiry alone, decided in log order (core/table_touch.py)
            if "ttl" not in query:
                raise HttpError(400, "invalid_query", "PATCH on a key takes ?ttl=S (seconds; empty: no expiry)")
            ttl = parse_ttl(query["ttl"]) if query["ttl"] else None
            return self._write_answer(self.service.touch(key, ttl, precondition), fields, precondition)
        return self._write_answer(self.service.delete(key, precondition), fields, precondition)

    # ---- handlers -----------------------------------------------------------------------------

    def _get(self, key: str, request: HttpRequest, query: dict, method: str) -> HttpResponse:
        result = self.service.get(key, strong=_strong(query), after=_after(request, query))
        entry = result.entry
        if entry is None:  # absent here: from older memory too, and said to be
            problem = not_found(key)
            stale = _stale_headers(result.age_ms) if result.stale else {}
            return error_response(problem.status, problem.code, problem.message, stale or None)
        headers = _entry_headers(entry, result.now_ms)
        if result.stale:
            headers.update(_stale_headers(result.age_ms))
        inm = request.headers.get("if-none-match")
        if inm is not None and _etag_matches(inm, entry):
            return HttpResponse(304, headers, b"")
        headers["Content-Type"] = entry.content_type
        return HttpResponse(200, headers, b"" if method == "HEAD" else entry.value)

    def _list(self, request: HttpRequest, query: dict, method: str) -> HttpResponse:
        try:
            limit = int(query.get("limit", "100"))
        except ValueError:
            raise HttpError(400, "invalid_limit", "limit must be a whole number") from None
        page = self.service.list(query.get("prefix", ""), limit, query.get("cursor"), _strong(query),
                                 _after(request, query))
        return json_response(200, _page_body(page), _stale_headers(page.age_ms) if page.stale else None)

    def _changes(self, query: dict) -> HttpResponse:
        unknown = sorted(set(query) - {"after", "prefix", "limit", "wait"})
        if unknown:
            raise HttpError(400, "invalid_query", f"/changes takes after, prefix, limit and wait, not {', '.join(unknown)}")
        try:
            limit, wait = int(query.get("limit", "100")), float(query.get("wait", "0"))
        except ValueError:
            raise HttpError(400, "invalid_query", "limit must be a whole number and wait a number of seconds") from None
        answer = changes(self.service.replica.log, query.get("after", "latest"), query.get("prefix", ""), limit, wait)
        return json_response(200, answer)

    def _post(self, request: HttpRequest, fields: dict, method: str) -> HttpResponse:
        try:
            doc = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise HttpError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
        if method == "POST" and isinstance(doc, dict) and ("operation" in doc or "operations" in doc):
            # The direct-invoke JSON operations over HTTP: 200 with the invoke's answer (each operation's
            # status inside), except a request refused as malformed (an invalid operation or batch),
            # which is that 4xx, as any other malformed request is.
            fields["operation"] = doc.get("operation", "batch")
            if "if-match" in request.headers or "if-none-match" in request.headers:
                raise HttpError(400, "invalid_precondition", "with operations, give if_match / if_none_match in "
                                "each operation, not as headers")
            answer = handle_invoke(self.service, request.body, self._health)
            if isinstance(answer, dict) and answer.get("status") in (400, 413):
                raise HttpError(answer["status"], answer["error"], answer["message"])
            return json_response(200, answer)
        if not isinstance(doc, dict) or not isinstance(doc.get("key"), str) or "value" not in doc:
            raise HttpError(400, "invalid_body", 'expected a JSON object {"key": "...", "value": ..., "ttl": seconds}')
        unknown = sorted(set(doc) - BODY_FIELDS)
        if unknown:
            raise HttpError(400, "invalid_body", f"unknown field{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))}; the body takes key, value and ttl")
        key = fields["key"] = doc["key"]
        ttl = doc.get("ttl")
        if ttl is not None:
            self.service.ttl_ms(ttl)  # validates: numbers only here, no strings
        try:
            value = orjson.dumps(doc["value"])
        except TypeError:  # nested deeper than JSON can be written back (254 levels)
            raise HttpError(400, "invalid_body", "the value is nested too deeply (at most 254 levels)") from None
        precondition = _precondition(request)
        return self._write_answer(self.service.put(key, value, JSON, ttl, precondition), fields, precondition)

    def _write_answer(self, outcome: Outcome, fields: dict, precondition: Precondition | None = None,
                      counter: bool = False) -> HttpResponse:
        fields.update(outcome=outcome.kind.value, position=str(outcome.version) if outcome.version else None)
        status, problem = for_outcome(outcome, precondition)
        position = self.service.position_after_write(outcome.key)
        session = {POSITION_HEADER: str(position)} if position is not None else {}
        if outcome.kind is OutcomeKind.PRECONDITION_FAILED and problem is not None:
            current = None if outcome.version is None else str(outcome.version)
            body = {"error": problem.code, "message": problem.message, "key": outcome.key, "current_version": current}
            return json_response(status, body, {**session, **({"ETag": f'"{current}"'} if current else {})})
        if outcome.kind is OutcomeKind.QUOTA_EXCEEDED and problem is not None and outcome.quota is not None:
            body = {"error": problem.code, "message": problem.message, **outcome.quota.to_json()}
            return json_response(status, body, session)
        if problem is not None:
            return error_response(problem.status, problem.code, problem.message, {**problem.headers(), **session})
        if outcome.kind is OutcomeKind.DELETED:
            return HttpResponse(status, session, b"")
        body = {"key": outcome.key, "version": str(outcome.version), "expires_at": _time_or_none(outcome.expires_at_ms)}
        if counter:
            body["value"] = self.service.counter(outcome.key)
        return json_response(status, body, {"ETag": f'"{outcome.version}"', **session})


# ---- helpers ----------------------------------------------------------------------------------


def _query(raw: str) -> dict[str, str]:
    try:
        parsed = parse_qs(raw, keep_blank_values=True, strict_parsing=False, errors="strict")
    except UnicodeDecodeError:
        raise HttpError(400, "invalid_query", "the query string is not valid UTF-8") from None
    query = {}
    for name, values in parsed.items():
        if len(values) > 1:
            raise HttpError(400, "invalid_query", f"the query parameter {name!r} is given more than once")
        query[name] = values[0]
    return query


def _decode_path_key(raw: str) -> str:
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise HttpError(400, "invalid_key", "the key in the path is not valid UTF-8 once percent-decoded") from None


def _not_allowed(method: str, allowed: tuple[str, ...]) -> HttpError:
    return HttpError(405, "method_not_allowed", f"{method} is not allowed here; use {', '.join(allowed)}",
                     {"Allow": ", ".join(allowed)})


def _allow(method: str, allowed: tuple[str, ...]) -> None:
    if method not in allowed:
        raise _not_allowed(method, allowed)


def _after(request: HttpRequest, query: dict) -> dict[int, int] | None:
    """The session positions a read must see: ``Streamcache-After`` and/or ``?after=`` (merged)."""
    raw = [v for v in (request.headers.get(AFTER_HEADER), query.get("after")) if v is not None]
    if not raw:
        return None
    merged: dict[int, int] = {}
    for positions in map(parse_positions, raw):
        for p, o in positions.items():
            merged[p] = max(o, merged.get(p, -1))
    return merged


def _integer(raw: str) -> int:
    """A whole number as the query gives it (the range is the service's to check)."""
    if not raw.isascii() or not raw.lstrip("-").isdigit() or raw.count("-") > 1 or len(raw) > 21:
        raise HttpError(400, "invalid_increment", f"increment must be a whole number, not {raw[:40]!r}")
    return int(raw)


def _strong(query: dict) -> bool:
    return parse_consistency(query.get("consistency"))


def _precondition(request: HttpRequest, allow_absent: bool = True) -> Precondition | None:
    return parse_precondition(request.headers.get("if-match"), request.headers.get("if-none-match"),
                              allow_absent=allow_absent)


def _etag_matches(header: str, entry: Entry) -> bool:
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/").strip('"') == str(entry.version) for t in tags)


def _stale_headers(age_ms: int | None) -> dict[str, str]:
    """A stale answer says so, and how old its data is (HTTP's Age, in whole seconds, as well)."""
    if age_ms is None:
        return {"Streamcache-Stale": "true"}
    return {"Streamcache-Stale": "true", "Streamcache-Data-Age-Ms": str(age_ms), "Age": str(age_ms // 1000)}


def _entry_headers(entry: Entry, now_ms: int) -> dict[str, str]:
    headers = {"ETag": f'"{entry.version}"'}
    if entry.expires_at_ms is not None:
        headers["Cache-Control"] = f"max-age={max(0, (entry.expires_at_ms - now_ms) // 1000)}"
        # The absolute expiry too (whole seconds, rounded down): max-age alone loses it to latency.
        headers["Expires"] = formatdate(entry.expires_at_ms // 1000, usegmt=True)
    return headers


def _time_or_none(ms: int | None) -> str | None:
    return None if ms is None else records.format_time(ms)


def _page_body(page: ListPage) -> dict:
    keys = [
        {"key": item.key, "version": str(item.entry.version), "size": item.size,
         "expires_at": _time_or_none(item.entry.expires_at_ms)}
        for item in page.items
    ]
    return {"keys": keys, "cursor": page.cursor}
