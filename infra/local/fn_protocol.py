"""Fn's invoke protocol, client side: what the Fn agent and OCI API Gateway send to a function's
unix socket, and how the answer maps back (runtime-facts.md §1.4-1.5).

- ``POST /call`` with ``Fn-Call-Id``, ``Fn-Deadline`` (RFC 3339), ``Fn-Invoke-Type: sync`` and, for an
  HTTP request from API Gateway, ``Fn-Intent: httprequest``, ``Fn-Http-Method``,
  ``Fn-Http-Request-Url`` and one ``Fn-Http-H-<Name>`` per client header;
- the FDK's own status is 200, 502 (the handler raised) or 504; in gateway mode the handler's status
  travels in ``Fn-Http-Status`` and its headers as ``Fn-Http-H-*`` (``Content-Type`` unprefixed);
- the agent keeps one connection per container and sends one request at a time: :class:`FnClient`
  holds one keep-alive connection and a lock.
"""

from __future__ import annotations

import http.client
import re
import secrets
import select
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Iterable, Mapping, NamedTuple

DEFAULT_CALL_TIMEOUT_S = 30.0  # OCI Functions' default function timeout

# Headers that describe one hop of a connection; a gateway never forwards them (RFC 9110 §7.6.1).
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
     "content-length", "expect"}
)


class FnUnavailable(Exception):
    """The instance could not be reached, or it closed the connection without answering."""


class FnRefused(FnUnavailable):
    """The instance's socket refused the connection: nothing was sent, so any request may go elsewhere."""


class FnTimeout(Exception):
    """The instance did not answer before the call's deadline."""


class FnAnswer(NamedTuple):
    """The FDK's answer on the socket: its own status (200/502/504) and raw headers (lower-case)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k == name), None)


class HttpAnswer(NamedTuple):
    """A gateway-mode answer mapped back to plain HTTP, as API Gateway would send it to the client."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    fdk_status: int  # 200, or 502/504 when the handler raised or timed out

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), None)


_OBS_FOLD = re.compile(r"\r?\n[ \t]+")


def new_call_id() -> str:
    """A ULID (Fn's call-id format): 48-bit milliseconds and 80 random bits, Crockford base32."""
    number = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(alphabet[(number >> shift) & 31] for shift in range(125, -1, -5))


def deadline_header(timeout_s: float) -> str:
    """``Fn-Deadline``: RFC 3339 in UTC, as the agent writes it."""
    deadline = datetime.now(timezone.utc) + timedelta(seconds=timeout_s)
    return deadline.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def gateway_headers(method: str, url: str, headers: Iterable[tuple[str, str]], call_id: str,
                    timeout_s: float) -> dict[str, str]:
    """The headers API Gateway sends with an HTTP request turned into an invoke.

    Repeated client headers are joined with ", " (the FDK keeps only the last of repeated headers)."""
    joined: dict[str, tuple[str, str]] = {}
    for name, value in headers:
        value = _OBS_FOLD.sub(" ", value)  # RFC 9112 5.2: a recipient replaces obs-fold with a space
        lower = name.lower()
        if lower in HOP_BY_HOP:
            continue
        if lower in joined:
            joined[lower] = (joined[lower][0], joined[lower][1] + ", " + value)
        else:
            joined[lower] = (name, value)
    out = {"Fn-Call-Id": call_id, "Fn-Deadline": deadline_header(timeout_s), "Fn-Intent": "httprequest",
           "Fn-Invoke-Type": "sync", "Fn-Http-Method": method, "Fn-Http-Request-Url": url}
    for name, value in joined.values():
        out["Fn-Http-H-" + name] = value
    if "content-type" in joined:
        out["Content-Type"] = joined["content-type"][1]
    return out


def http_answer(answer: FnAnswer) -> HttpAnswer:
    """Map a gateway-mode FDK answer back to the HTTP answer it carries.

    Raises :class:`ValueError` when the answer has no usable ``Fn-Http-Status``."""
    raw_status = answer.header("fn-http-status")
    if raw_status is None or not raw_status.strip().isdigit() or not 100 <= int(raw_status) <= 599:
        raise ValueError(f"the function's answer has no valid Fn-Http-Status (got {raw_status!r})")
    headers = []
    for name, value in answer.headers:
        if name.startswith("fn-http-h-"):
            headers.append((_canonical(name[len("fn-http-h-"):]), value))
        elif name == "content-type":
            headers.append(("Content-Type", value))
        # everything else (fn-fdk-*, keep-alive, ...) belongs to the socket hop
    return HttpAnswer(int(raw_status), headers, answer.body, answer.status)


def _canonical(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:] for part in name.split("-"))


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class FnClient:
    """Invokes one instance over its unix socket, like the agent: one keep-alive connection, one
    call at a time (the lock makes concurrent callers queue)."""

    def __init__(self, socket_path: str, timeout_s: float = DEFAULT_CALL_TIMEOUT_S) -> None:
        self.socket_path = socket_path
        self.timeout_s = timeout_s
        self._conn: _UnixConnection | None = None
        self._lock = threading.Lock()

    def http_call(self, method: str, url: str, body: bytes = b"",
                  headers: Iterable[tuple[str, str]] | Mapping[str, str] = (), call_id: str | None = None,
                  timeout_s: float | None = None) -> HttpAnswer:
        """An HTTP request as API Gateway sends it (``Fn-Intent: httprequest``), answer mapped back.

        A handler crash (FDK status 502/504) comes back as that status with the FDK's body."""
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        timeout = timeout_s or self.timeout_s
        fn_headers = gateway_headers(method, url, pairs, call_id or new_call_id(), timeout)
        answer = self.call(body, fn_headers, timeout)
        if answer.status != 200 and answer.header("fn-http-status") is None:
            return HttpAnswer(answer.status, [("Content-Type", answer.header("content-type") or "text/plain")],
                              answer.body, answer.status)
        return http_answer(answer)

    def invoke(self, body: bytes = b"", content_type: str = "application/json",
               call_id: str | None = None, timeout_s: float | None = None) -> FnAnswer:
        """A plain invoke (``fn invoke`` / the OCI invoke API): no ``Fn-Intent``, raw answer."""
        timeout = timeout_s or self.timeout_s
        headers = {"Fn-Call-Id": call_id or new_call_id(), "Fn-Deadline": deadline_header(timeout),
                   "Fn-Invoke-Type": "sync", "Content-Type": content_type}
        return self.call(body, headers, timeout)

    def call(self, body: bytes, headers: Mapping[str, str], timeout_s: float) -> FnAnswer:
        """``POST /call`` with exactly these headers. Raises FnUnavailable or FnTimeout."""
        with self._lock:
            conn = self._connection(timeout_s)
            try:
                conn.request("POST", "/call", body=body, headers=dict(headers))
                response = conn.getresponse()
                data = response.read()
            except (socket.timeout, TimeoutError) as exc:
                self._drop()
                raise FnTimeout(f"no answer within {timeout_s:.1f} s from {self.socket_path}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                raise FnUnavailable(f"{self.socket_path}: {exc.__class__.__name__}: {exc}") from exc
            if response.will_close:
                self._drop()
            return FnAnswer(response.status, [(k.lower(), v) for k, v in response.getheaders()], data)

    def _connection(self, timeout_s: float) -> _UnixConnection:
        conn = self._conn
        if conn is not None and conn.sock is not None and _peer_closed(conn.sock):
            # The FDK closes idle keep-alive connections (after 75 s) or died: never send a request
            # into a closed connection, where it would be unclear whether it ran.
            self._drop()
            conn = None
        if conn is None:
            conn = self._conn = _UnixConnection(self.socket_path, timeout_s)
            try:
                conn.connect()
            except OSError as exc:
                self._drop()
                raise FnRefused(f"cannot connect to {self.socket_path}: {exc}") from exc
        conn.timeout = timeout_s
        if conn.sock is not None:
            conn.sock.settimeout(timeout_s)
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        with self._lock:
            self._drop()


def _peer_closed(sock: socket.socket) -> bool:
    """True when the idle connection was closed by the other side (EOF or error waiting to be read)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if not readable:
            return False
        return sock.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True
