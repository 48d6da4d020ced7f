"""The local stand-in for OCI API Gateway: plain HTTP in, an Fn invoke of one instance, HTTP out.

Each request becomes ``POST /call`` on one function instance's unix socket with the headers API
Gateway sends (``Fn-Intent: httprequest``, ``Fn-Http-Method``, ``Fn-Http-Request-Url``,
``Fn-Http-H-*``), and the answer's ``Fn-Http-Status`` and ``Fn-Http-H-*`` headers become the HTTP
answer. Like OCI, the gateway itself answers some requests without the function, always with a JSON
body ``{"error", "message"}``:

- 413 for a body over 6 MB (OCI API Gateway's and OCI Functions' request limit);
- 503 (Retry-After) when every instance stayed busy for ``busy_wait_s`` (an instance takes one
  request at a time, as the Fn contract says);
- 502 when the instance died or crashed on the request (it is then taken out of rotation), 504 when
  it did not answer within the function timeout;
- 400/431/501 for requests the HTTP parser rejects.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, TextIO
from urllib.parse import urlsplit

import orjson

from .fn_protocol import DEFAULT_CALL_TIMEOUT_S, FnRefused, FnTimeout, FnUnavailable, new_call_id
from .invoke_endpoint import handle_invoke_request, is_invoke_path, pool_functions
from .monitoring import LOCAL_PATH as LOCAL_METRICS_PATH, relay as relay_metrics
from .stack_info import is_stack_path, stack_answer
from .pool import Pool

__all__ = ["DEFAULT_BUSY_WAIT_S", "MAX_BODY_BYTES", "GatewayServer", "Pool"]

MAX_BODY_BYTES = 6 * 1024 * 1024
DRAIN_LIMIT_BYTES = 64 * 1024 * 1024  # read and drop an oversized body up to this, so the client sees the 413
DEFAULT_BUSY_WAIT_S = 10.0
CLIENT_IDLE_TIMEOUT_S = 60.0  # a client connection that sends nothing for this long is closed

#: Instances a request is offered to when each refuses the connection (nothing was sent to them).
CONNECT_ATTEMPTS = 3


def _json_error(code: str, message: str) -> bytes:
    return orjson.dumps({"error": code, "message": message})


class _GatewayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like API Gateway
    server_version = "streamcache-local-gateway"
    sys_version = ""
    timeout = CLIENT_IDLE_TIMEOUT_S
    disable_nagle_algorithm = True  # headers and body are separate writes: Nagle + delayed ACK add 40 ms
    server: "GatewayServer"

    # ---- the parts of http.server we change ---------------------------------------------------

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The parser's own errors (bad request line, headers too large...) as JSON, not HTML."""
        status = HTTPStatus(code)
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # unparseable request line: still answer with a status line
        code_name = re.sub(r"[^a-z0-9]+", "_", status.phrase.lower())
        self._reply(code, [("Content-Type", "application/json")], _json_error(code_name, message or status.description),
                    close=True)

    def handle_expect_100(self) -> bool:
        # Reject an oversized body before the client sends it (curl sends Expect for large uploads).
        length = self._content_length()
        if length is not None and length > MAX_BODY_BYTES:
            self._too_large(length, drain=False)
            return False
        return super().handle_expect_100()

    def log_message(self, format: str, *args) -> None:
        self.server.log(f"{self.address_string()} {format % args}")

    def log_request(self, code="-", size="-") -> None:
        pass  # _reply writes one compact access line instead

    # ---- forwarding ---------------------------------------------------------------------------

    def _forward(self) -> None:
        started = time.perf_counter()
        self._instance_name = "-"
        body = self._read_body()
        if body is None:
            return
        if is_stack_path(self.path):  # streamcache watch finds the local stream here
            answer = stack_answer(self.command, self.server.stack_info)
            return self._reply(answer.status, answer.headers, answer.body, started=started)
        if urlsplit(self.path).path.rstrip("/") == LOCAL_METRICS_PATH:  # the console's metrics panel
            status, headers, payload = relay_metrics(self.command, self.path, self.server.stack_info)
            return self._reply(status, headers, payload, started=started)
        if is_invoke_path(self.path):  # the OCI Functions invoke API (direct invokes), not API Gateway
            answer = handle_invoke_request(self.command, self.path, self.headers, body, self.server.functions)
            return self._reply(answer.status, answer.headers, answer.body, started=started)
        pool = self.server.pool
        call_id = new_call_id()
        request_id = [("opc-request-id", call_id)]  # as OCI API Gateway answers
        for attempt in range(1, CONNECT_ATTEMPTS + 1):
            try:
                instance = pool.acquire(self.server.busy_wait_s)
            except FnUnavailable as exc:
                return self._error(502, "bad_gateway", str(exc), started)
            if instance is None:
                return self._error(503, "busy", f"every function instance stayed busy for {self.server.busy_wait_s} s",
                                   started, [("Retry-After", "1")])
            self._instance_name = instance.name
            try:
                answer = instance.client.http_call(self.command, self.path, body, self.headers.items(),
                                                   call_id=call_id, timeout_s=self.server.call_timeout_s)
            except FnRefused as exc:
                # Refused at connect: nothing was sent, so another instance may take it, even a write.
                pool.release(instance, dead=instance.exited_within(0.5))
                if attempt < CONNECT_ATTEMPTS:
                    continue
                return self._error(502, "bad_gateway", f"function instance {instance.name} failed: {exc}", started,
                                   request_id)
            except FnTimeout as exc:
                pool.release(instance)
                return self._error(504, "function_timeout", str(exc), started, request_id)
            except (FnUnavailable, ValueError) as exc:
                # A connection that broke because the process died takes the instance out of rotation;
                # the request may have run, so it is not sent again.
                pool.release(instance, dead=instance.exited_within(0.5))
                return self._error(502, "bad_gateway", f"function instance {instance.name} failed: {exc}", started,
                                   request_id)
            except BaseException:
                pool.release(instance)
                raise
            pool.release(instance)
            break
        if answer.fdk_status != 200:
            # The handler raised (502) or timed out (504): the FDK's body is a bare message.
            code = "function_timeout" if answer.fdk_status == 504 else "function_error"
            message = answer.body.decode("utf-8", errors="replace")[:500]
            return self._error(answer.fdk_status, code, f"function instance {instance.name}: {message}", started,
                               request_id)
        self._reply(answer.status, [*answer.headers, *request_id], answer.body, started=started)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _forward

    def __getattr__(self, name: str):
        # Any other method (TRACE, PROPFIND, FOO...) goes to the function too, which answers 405 JSON,
        # as API Gateway does; http.server would answer a 501 itself.
        if name.startswith("do_"):
            return self._forward
        raise AttributeError(name)

    def _content_length(self) -> int | None:
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        raw = raw.strip()
        return int(raw) if raw.isdigit() else -1

    def _read_body(self) -> bytes | None:
        """The request body, or ``None`` after answering 400/413 for it."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked()
        length = self._content_length()
        if length is None:
            return b""
        if length < 0:
            self._error(400, "bad_request", "Content-Length is not a whole number", close=True)
            return None
        if length > MAX_BODY_BYTES:
            self._too_large(length, drain=True)
            return None
        body = self.rfile.read(length)
        if len(body) < length:
            self.close_connection = True
            return None  # the client went away mid-body: nobody to answer
        return body

    def _read_chunked(self) -> bytes | None:
        chunks, size = [], 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk_size = int(line.split(b";")[0].strip(), 16)
                if chunk_size < 0:
                    raise ValueError("negative chunk size")
            except ValueError:
                self._error(400, "bad_request", "malformed chunked body", close=True)
                return None
            if chunk_size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers: dropped, like every hop-by-hop field
                return b"".join(chunks)
            size += chunk_size
            if size > MAX_BODY_BYTES:
                self._too_large(size, drain=False)
                return None
            chunks.append(self.rfile.read(chunk_size))
            self.rfile.readline(1024)

    def _too_large(self, length: int, drain: bool) -> None:
        if drain and length <= DRAIN_LIMIT_BYTES:
            remaining = length
            while remaining > 0:
                piece = self.rfile.read(min(remaining, 1 << 20))
                if not piece:
                    break
                remaining -= len(piece)
        self._error(413, "payload_too_large",
                    f"the request body is {length} bytes; the gateway accepts at most {MAX_BODY_BYTES}", close=True)

    def _error(self, status: int, code: str, message: str, started: float | None = None,
               headers: list[tuple[str, str]] | None = None, close: bool = False) -> None:
        self._reply(status, [("Content-Type", "application/json"), *(headers or [])],
                    _json_error(code, message), close=close, started=started)

    def _reply(self, status: int, headers, body: bytes, close: bool = False, started: float | None = None) -> None:
        if close:
            self.close_connection = True
        self.send_response_only(status)
        self.send_header("Date", self.date_time_string())
        for name, value in headers:
            self.send_header(name, value)
        if status not in (204, 304) and not 100 <= status < 200 and self.command != "HEAD":
            self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)
        elapsed = "" if started is None else f" {(time.perf_counter() - started) * 1000:.1f}ms"
        request = f"{self.command} {self.path}" if getattr(self, "command", None) else "-"
        self.server.log(f'{self.client_address[0]} "{request}" {status} {len(body)}B{elapsed} '
                        f"{getattr(self, '_instance_name', '-')}")


class GatewayServer(ThreadingHTTPServer):
    """The gateway. ``serve_forever()`` in a thread, then :meth:`stop`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, pool: Pool, host: str = "127.0.0.1", port: int = 8080,
                 busy_wait_s: float = DEFAULT_BUSY_WAIT_S, call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S,
                 access_log: TextIO | Callable[[str], None] | None = None) -> None:
        self.pool = pool
        self.busy_wait_s = busy_wait_s
        self.call_timeout_s = call_timeout_s
        self.stack_info: dict | None = None  # set by DevStack; served at /_local/stack
        self.functions = pool_functions(pool, "cache", busy_wait_s, call_timeout_s)
        self._access_log = access_log
        self._log_lock = threading.Lock()
        self._connections: set = set()
        self._connections_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _GatewayHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def log(self, line: str) -> None:
        sink = self._access_log
        if sink is None:
            return
        line = f"{time.strftime('%H:%M:%S')} gateway {line}"
        if callable(sink):
            sink(line)
            return
        with self._log_lock:
            sink.write(line + "\n")
            sink.flush()

    def track(self, connection, open_: bool) -> None:
        with self._connections_lock:
            (self._connections.add if open_ else self._connections.discard)(connection)

    def start(self) -> "GatewayServer":
        """Serve in a background thread."""
        # A short poll interval: stop() (shutdown) waits for at most one interval.
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), name="gateway", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop accepting, close open client connections, close the listening socket."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout_s)
            self._thread = None
        with self._connections_lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            try:
                connection.shutdown(2)  # wakes the handler thread blocked on a keep-alive read
            except OSError:
                pass
        self.server_close()

    def handle_error(self, request, client_address) -> None:
        # A client that vanished mid-answer is not an error worth a traceback; anything else is.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)
