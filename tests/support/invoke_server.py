"""A strict local OCI Functions invoke endpoint (infra/local/invoke_endpoint.py behind a real HTTP
server) for adapter tests: signatures required and verified against ``trusted_keys``; every request's
headers and every function call are recorded."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

from streamcache_local.invoke_endpoint import handle_invoke_request


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server = self.server
        server.requests.append({name.lower(): value for name, value in self.headers.items()})
        answer = handle_invoke_request(self.command, self.path, self.headers, body, server.functions,
                                       require_signature=True, trusted_keys=server.trusted_keys)
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST  # answered too: the endpoint says 405

    def log_message(self, *args) -> None:
        pass


class StrictInvokeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.functions: dict = {}  # name or OCID -> InvokeTarget
        self.trusted_keys: dict = {}  # signature keyId -> RSA public key
        self.requests: list[dict[str, str]] = []  # the headers of each request, lower-case names
        self.url = "http://%s:%d" % self.server_address[:2]


@contextmanager
def strict_invoke_server() -> Iterator[StrictInvokeServer]:
    server = StrictInvokeServer()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
