"""The client's HTTP transport: operations become requests to the cache's HTTP API (behind OCI API
Gateway, or the local gateway of ``streamcache dev``), answers come back in the direct-invoke shape.

Standard library only (``http.client``). Connections are kept alive and reused, a few idle ones at a
time so that threads sharing a client do not queue; a connection that failed is closed, and an idle
one the server closed meanwhile (the gateway drops idle clients after a while) is never reused, so a
request is not sent into a dead socket. Keys are percent-encoded whole (``/`` too) in the path.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
from email.utils import parsedate_to_datetime
from urllib.parse import quote, urlencode, urlsplit

import orjson

from streamcache import __version__
from streamcache.client.models import TransportError
from streamcache.client.ops import from_wire, invalid_answer, to_wire

DEFAULT_ROUTE = "/cache"
MAX_IDLE_CONNECTIONS = 4


class HttpTransport:
    """``url``: scheme, host and port, plus the route prefix as its path (``/cache`` when absent)."""

    def __init__(self, url: str, timeout: float, api_key: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the cache URL must be http(s)://HOST[:PORT][/ROUTE], not {url!r}")
        self.url = url
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname, parts.port
        self.route = parts.path.rstrip("/") or DEFAULT_ROUTE
        # /health sits beside the route: /cache -> /health, /v1/cache (a gateway deployment) -> /v1/health
        self.health_path = self.route.rsplit("/", 1)[0] + "/health"
        self.changes_path = self.route.rsplit("/", 1)[0] + "/changes"
        self.timeout = timeout
        self._headers = {"User-Agent": f"streamcache-client/{__version__}"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    # ---- operations to requests, answers back -------------------------------------------------

    def send(self, op: dict) -> dict:
        name = op["operation"]
        if name == "health":
            status, headers, body = self._exchange("GET", self.health_path, None, {})
            return {"status": 200, "health": _json(body)} if status == 200 else _error_answer(status, headers, body)
        if name == "changes":
            query = {k: str(op[k]) for k in ("after", "prefix", "limit", "wait") if op.get(k) is not None}
            return self._json_answer(*self._exchange("GET", f"{self.changes_path}?{urlencode(query)}", None, {}))
        if name == "list":
            query = {"prefix": op.get("prefix", ""), "limit": str(op.get("limit", 100))}
            for optional in ("cursor", "consistency"):
                if op.get(optional):
                    query[optional] = op[optional]
            return self._json_answer(*self._exchange("GET", f"{self.route}?{urlencode(query)}", None, _session(op)))
        key = op["key"]
        if not key:  # "/cache/" is the listing: never let an empty key turn into another request
            return {"status": 400, "error": "invalid_key", "message": "the key is empty"}
        path = f"{self.route}/{quote(key, safe='', errors='surrogatepass')}"
        headers: dict[str, str] = _session(op)
        if op.get("if_match"):
            headers["If-Match"] = "*" if op["if_match"] == "*" else f'"{op["if_match"]}"'
        if op.get("if_none_match"):
            headers["If-None-Match"] = "*"
        if name == "get":
            if op.get("consistency"):
                path += "?" + urlencode({"consistency": op["consistency"]})
            status, answer_headers, body = self._exchange("GET", path, None, headers)
            if status != 200:
                return _error_answer(status, answer_headers, body)
            return _drop_none({"status": 200, "key": key, "value": body,
                               "content_type": answer_headers.get("content-type", "application/octet-stream"),
                               "version": _etag(answer_headers.get("etag")),
                               "expires_at": _http_date(answer_headers.get("expires")),
                               "stale": answer_headers.get("streamcache-stale") == "true" or None})
        if name == "incr":
            query = {"increment": str(op.get("by", 1)), **({"ttl": str(op["ttl"])} if op.get("ttl") is not None else {})}
            status, answer_headers, body = self._exchange("POST", f"{path}?{urlencode(query)}", None, headers)
            return _with_position(self._json_answer(status, answer_headers, body), answer_headers)
        if name == "touch":  # PATCH ?ttl=S; an empty ttl removes the expiry
            ttl = "" if op.get("ttl") is None else str(op["ttl"])
            status, answer_headers, body = self._exchange("PATCH", f"{path}?{urlencode({'ttl': ttl})}", None, headers)
            return _with_position(self._json_answer(status, answer_headers, body), answer_headers)
        if name == "delete":
            status, answer_headers, body = self._exchange("DELETE", path, None, headers)
            answer = {"status": 204, "key": key} if status == 204 else _error_answer(status, answer_headers, body)
            return _with_position(answer, answer_headers)
        if op.get("ttl") is not None:
            path += "?" + urlencode({"ttl": str(op["ttl"])})
        headers["Content-Type"] = op.get("content_type") or "application/octet-stream"
        status, answer_headers, body = self._exchange("PUT", path, op["value"], headers)
        return _with_position(self._json_answer(status, answer_headers, body), answer_headers)

    def send_batch(self, ops: list[dict]) -> list[dict] | dict:
        """One ``POST /cache {"operations": [...]}`` for the whole list (its writes are appended
        together): a list of answers, or one answer if the request as a whole failed."""
        status, headers, body = self._exchange("POST", self.route, orjson.dumps({"operations": [to_wire(op) for op in ops]}),
                                               {"Content-Type": "application/json"})
        if status != 200:
            return _error_answer(status, headers, body)
        answer = _json(body)
        if not isinstance(answer, list) or len(answer) != len(ops):
            return invalid_answer(f"expected a list of {len(ops)} answers")
        return [from_wire(a) if isinstance(a, dict) else invalid_answer("an answer is not an object") for a in answer]

    def _json_answer(self, status: int, headers: dict[str, str], body: bytes) -> dict:
        if not 200 <= status < 300:
            return _error_answer(status, headers, body)
        doc = _json(body)
        return {**(doc if isinstance(doc, dict) else {}), "status": status}

    # ---- connections --------------------------------------------------------------------------

    def _exchange(self, method: str, path: str, body: bytes | None,
                  headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        conn = self._checkout()
        if conn.sock is None:
            try:
                conn.connect()
            except (OSError, http.client.HTTPException) as exc:  # refused, unresolvable: nothing was sent
                conn.close()
                raise TransportError(f"{method} {self.url}: {type(exc).__name__}: {exc}", sent=False) from exc
        try:
            conn.request(method, path, body=body, headers={**self._headers, **headers})
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timed out, garbled
            conn.close()
            raise TransportError(f"{method} {self.url}: {type(exc).__name__}: {exc}") from exc
        if response.will_close:
            conn.close()
        else:
            self._checkin(conn)
        return response.status, {name.lower(): value for name, value in response.getheaders()}, data

    def _checkout(self) -> http.client.HTTPConnection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if conn.sock is not None and not _readable(conn.sock):
                    return conn
                conn.close()  # the server closed it (or sent something unasked): start afresh
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if len(self._idle) < MAX_IDLE_CONNECTIONS:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _readable(sock) -> bool:
    """An idle keep-alive connection is readable only if the server closed it (EOF) or broke it."""
    try:
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _session(op: dict) -> dict[str, str]:
    """A read's session positions travel as a header (a cache behind a gateway keeps its query)."""
    return {"Streamcache-After": op["after"]} if op.get("after") else {}


def _with_position(answer: dict, headers: dict[str, str]) -> dict:
    """A write's session position, from its answer's header, as a direct invoke answers it."""
    position = headers.get("streamcache-position")
    return {**answer, "position": position} if position else answer


def _error_answer(status: int, headers: dict[str, str], body: bytes) -> dict:
    doc = _json(body)
    doc = doc if isinstance(doc, dict) else {}
    answer = {"status": status, "error": doc.get("error") or doc.get("code") or f"http_{status}",
              "message": doc.get("message") or body[:200].decode("utf-8", errors="replace").strip()}
    if "current_version" in doc:
        answer["current_version"] = doc["current_version"]
    retry_after = headers.get("retry-after", "").strip()
    if retry_after:
        try:
            answer["retry_after"] = float(retry_after)
        except ValueError:
            pass  # an HTTP-date: rare enough to fall back on our own backoff
    return answer


def _json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _etag(value: str | None) -> str | None:
    return None if value is None else value.strip().removeprefix("W/").strip('"')


def _http_date(value: str | None):
    if not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None


def _drop_none(answer: dict) -> dict:
    return {name: value for name, value in answer.items() if value is not None}
