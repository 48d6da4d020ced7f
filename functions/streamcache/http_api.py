"""The HTTP API of the cache function: an HTTP request in, an HTTP answer out; no FDK types.

Routes (``P`` is the route prefix, ``/cache`` by default; the OpenAPI document is
``functions/cache/openapi.yaml``):

    GET    P/{key}  or  P?key=K     the value (ETag, Content-Type, Cache-Control: max-age, Expires)
    GET    P?prefix=&limit=&cursor=  a page of keys
    PUT    P/{key}?ttl=S            store the body (If-Match, If-None-Match: *)
    POST   P                        {"key", "value": <JSON>, "ttl"?} stores the JSON value
    DELETE P/{key}  or  P?key=K     remove (If-Match)
    GET    /health                  instance status

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

from .core import records
from .core.errors import InvalidConsistency, InvalidPrecondition, InvalidRequest, LogUnavailable, OutcomeUnknown
from .core.records import IF_ABSENT, IF_EXISTS, Precondition, if_match, parse_version
from .core.table import Entry, Outcome, OutcomeKind
from .auth import ApiKeys
from .service import CacheService, ListPage, parse_ttl

log = logging.getLogger("streamcache.access")

RETRY_AFTER_SECONDS = 1
JSON = "application/json"


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


class HttpApi:
    """Routes requests to a :class:`CacheService` and maps outcomes and errors to HTTP explicitly."""

    def __init__(self, service: CacheService, health: Callable[[], dict], monotonic=time.perf_counter) -> None:
        self.service = service
        self.prefix = service.settings.route_prefix
        self._health = health
        self._monotonic = monotonic
        self.api_keys = ApiKeys(service.settings.api_keys)

    def handle(self, request: HttpRequest) -> HttpResponse:
        started = self._monotonic()
        fields: dict[str, object] = {"request_id": request.request_id, "method": request.method}
        try:
            response = self._route(request, fields)
        except HttpError as exc:
            response = error_response(exc.status, exc.code, exc.message, exc.headers)
        except InvalidRequest as exc:
            response = error_response(exc.status, exc.code, str(exc))
        except OutcomeUnknown as exc:
            # 503, not 504: the FDK turns a handler's 504 into the platform's "function timed out"
            # (its socket status), and the answer's body and code would be lost on the way.
            response = error_response(
                503, "outcome_unknown", f"the write may or may not have been applied: {exc}. Read the key "
                "with consistency=strong to find out before retrying a conditional write",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        except LogUnavailable as exc:
            response = error_response(
                503, "stream_unavailable", f"the stream cannot be reached: {exc}",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        except Exception:  # a bug: answer a JSON 500 rather than the FDK's bare 502, and log it
            log.exception("unhandled error", extra={"fields": fields})
            response = error_response(500, "internal", "internal error; see the function's logs")
        fields.update(status=response.status, duration_ms=round((self._monotonic() - started) * 1000, 3))
        log.info("request", extra={"fields": fields})
        return response

    # ---- routing ------------------------------------------------------------------------------

    def _route(self, request: HttpRequest, fields: dict) -> HttpResponse:
        parts = urlsplit(request.url)
        path = parts.path
        query = _query(parts.query)
        method = request.method.upper()
        if path == "/health" or (path.endswith("/health") and not path.startswith(self.prefix + "/")):
            _allow(method, ("GET", "HEAD"))
            return json_response(200, self._health())  # open: health checks send no credentials
        denied = self.api_keys.check(method, request.headers)
        if denied is not None:  # before anything is parsed or done: a refused request changes nothing
            raise HttpError(denied.status, denied.code, denied.message, denied.headers)
        if path == self.prefix or path == self.prefix + "/":
            key = query.get("key")
            if method in ("GET", "HEAD") and key is None:
                return self._list(query, method)
            if method == "POST":
                return self._post(request, fields)
            if key is None:  # PUT or DELETE on the collection itself
                raise _not_allowed(method, ("GET", "HEAD", "POST"))
        elif path.startswith(self.prefix + "/"):
            key = _decode_path_key(path[len(self.prefix) + 1 :])
        else:
            raise HttpError(404, "no_route", f"no route for {path!r}; the cache lives under {self.prefix}")
        fields["key"] = key
        _allow(method, ("GET", "HEAD", "PUT", "DELETE"))
        if method in ("GET", "HEAD"):
            return self._get(key, request, query, method)
        if method == "PUT":
            ttl = parse_ttl(query["ttl"]) if "ttl" in query else None
            content_type = request.headers.get("content-type") or records.DEFAULT_CONTENT_TYPE
            return self._write_answer(self.service.put(key, request.body, content_type, ttl, _precondition(request)), fields)
        return self._write_answer(self.service.delete(key, _precondition(request, allow_absent=False)), fields)

    # ---- handlers -----------------------------------------------------------------------------

    def _get(self, key: str, request: HttpRequest, query: dict, method: str) -> HttpResponse:
        result = self.service.get(key, strong=_strong(query))
        entry = result.entry
        if entry is None:
            return error_response(404, "not_found", f"no value for key {key!r}")
        headers = _entry_headers(entry, result.now_ms)
        if result.stale:
            headers["Streamcache-Stale"] = "true"
        inm = request.headers.get("if-none-match")
        if inm is not None and _etag_matches(inm, entry):
            return HttpResponse(304, headers, b"")
        headers["Content-Type"] = entry.content_type
        return HttpResponse(200, headers, b"" if method == "HEAD" else entry.value)

    def _list(self, query: dict, method: str) -> HttpResponse:
        try:
            limit = int(query.get("limit", "100"))
        except ValueError:
            raise HttpError(400, "invalid_limit", "limit must be a whole number") from None
        page = self.service.list(query.get("prefix", ""), limit, query.get("cursor"), _strong(query))
        return json_response(200, _page_body(page), {"Streamcache-Stale": "true"} if page.stale else None)

    def _post(self, request: HttpRequest, fields: dict) -> HttpResponse:
        try:
            doc = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            raise HttpError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("key"), str) or "value" not in doc:
            raise HttpError(400, "invalid_body", 'expected a JSON object {"key": "...", "value": ..., "ttl": seconds}')
        key = fields["key"] = doc["key"]
        ttl = doc.get("ttl")
        if ttl is not None:
            self.service.ttl_ms(ttl)  # validates: numbers only here, no strings
        try:
            value = orjson.dumps(doc["value"])
        except TypeError:  # nested deeper than JSON can be written back (254 levels)
            raise HttpError(400, "invalid_body", "the value is nested too deeply (at most 254 levels)") from None
        outcome = self.service.put(key, value, JSON, ttl, _precondition(request))
        return self._write_answer(outcome, fields)

    def _write_answer(self, outcome: Outcome, fields: dict) -> HttpResponse:
        fields.update(outcome=outcome.kind.value, position=str(outcome.version) if outcome.version else None)
        kind = outcome.kind
        if kind is OutcomeKind.PRECONDITION_FAILED:
            current = None if outcome.version is None else str(outcome.version)
            body = {"error": "precondition_failed", "message": "the key's current version does not match the precondition",
                    "key": outcome.key, "current_version": current}
            headers = {"ETag": f'"{current}"'} if current else {}
            return json_response(412, body, headers)
        if kind is OutcomeKind.DELETED:
            return HttpResponse(204, {}, b"")
        if kind is OutcomeKind.NOT_FOUND:
            return error_response(404, "not_found", f"no value for key {outcome.key!r}")
        body = {"key": outcome.key, "version": str(outcome.version), "expires_at": _time_or_none(outcome.expires_at_ms)}
        status = 201 if kind is OutcomeKind.CREATED else 200
        return json_response(status, body, {"ETag": f'"{outcome.version}"'})


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


def _strong(query: dict) -> bool:
    level = query.get("consistency", "default")
    if level not in ("default", "strong"):
        raise InvalidConsistency("consistency must be 'default' or 'strong'")
    return level == "strong"


def _precondition(request: HttpRequest, allow_absent: bool = True) -> Precondition | None:
    match = request.headers.get("if-match")
    none_match = request.headers.get("if-none-match")
    if match is not None and none_match is not None:
        raise InvalidPrecondition("send If-Match or If-None-Match, not both")
    if none_match is not None:
        if none_match.strip() != "*" or not allow_absent:
            raise InvalidPrecondition("writes support only If-None-Match: * (create if absent)")
        return IF_ABSENT
    if match is None:
        return None
    if match.strip() == "*":
        return IF_EXISTS
    if "," in match:
        raise InvalidPrecondition("If-Match takes one version")
    return if_match(parse_version(match))


def _etag_matches(header: str, entry: Entry) -> bool:
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or any(t.removeprefix("W/").strip('"') == str(entry.version) for t in tags)


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
        {"key": item.key, "version": str(item.entry.version), "size": len(item.entry.value),
         "expires_at": _time_or_none(item.entry.expires_at_ms)}
        for item in page.items
    ]
    return {"keys": keys, "cursor": page.cursor}
