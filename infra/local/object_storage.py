"""A local stand-in for OCI Object Storage that the real ``oci`` SDK talks to (over plain HTTP).

It speaks the part of the API streamcache uses, with the headers and error bodies the SDK expects
(runtime-facts.md section 4): ``GET /n``; ``PUT``/``GET``/``HEAD``/``DELETE /n/{ns}/b/{bucket}/o/{name}``
with ``if-match``/``if-none-match`` (412 ``IfMatchFailed``/``IfNoneMatchFailed``), ``etag``,
``opc-request-id``, ``content-md5``, ``range``; ``GET /n/{ns}/b/{bucket}/o`` with ``prefix``, ``start``,
``startAfter``, ``end``, ``limit``, ``fields`` and ``nextStartWith`` pagination; multipart uploads
under ``/n/{ns}/b/{bucket}/u`` (``object_uploads.py``); JSON errors
``{"code", "message"}`` (404 ``BucketNotFound``/``ObjectNotFound``).

Every request must carry an ``authorization: Signature ...`` header (else 401 ``NotAuthenticated``),
so the SDK has to sign for real; with :meth:`LocalObjectStorage.trust_key` the RSA-SHA256 signature
is verified as well.

Objects live in memory: the server exercises the Object Storage adapter through the SDK; durable
local snapshots (``streamcache dev``) are the directory store's job.
"""

from __future__ import annotations

import base64
import hashlib
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import orjson
from streamcache_local.bandwidth import Bandwidth, Pacer
from streamcache_local.object_signing import signature_problem
from streamcache_local.object_uploads import Commit, UploadRefused, Uploads, iso_time

_LIST_FIELDS = {"size", "etag", "md5", "timeCreated", "timeModified"}


@dataclass
class StoredObject:
    data: bytes
    etag: str
    md5: str  # base64, as the content-md5 header carries it
    content_type: str
    metadata: dict[str, str]
    created: float


@dataclass
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class LocalObjectStorage:
    """A running server. Use :func:`start_object_storage`; call :meth:`stop` (or use ``with``)."""

    namespace: str
    host: str
    port: int
    buckets: dict[str, dict[str, StoredObject]] = field(default_factory=dict, repr=False)
    requests: list[SeenRequest] = field(default_factory=list, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    trusted_keys: dict[str, object] = field(default_factory=dict, repr=False)
    failures: list[tuple[int, str]] = field(default_factory=list, repr=False)
    bandwidth: Bandwidth | None = None  # a cap per connection (bandwidth.py); None: as fast as it goes
    pacers: list[Pacer] = field(default_factory=list, repr=False)  # one per connection, while capped
    uploads: Uploads = field(default_factory=Uploads, repr=False)  # multipart (object_uploads.py)
    _server: ThreadingHTTPServer | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, bucket: str, prefix: str = "") -> str:
        """The snapshot-store URL of ``bucket`` (``oci://BUCKET@NAMESPACE/PREFIX``)."""
        return f"oci://{bucket}@{self.namespace}/{prefix}"

    def create_bucket(self, name: str) -> None:
        with self.lock:
            self.buckets.setdefault(name, {})

    def trust_key(self, key_id: str, public_key: object) -> None:
        """Verify signatures from ``key_id`` (e.g. ``"<tenancy>/<user>/<fingerprint>"`` or
        ``"ST$<token>"``) with ``public_key``; once any key is trusted, unknown key ids get 401."""
        with self.lock:
            self.trusted_keys[key_id] = public_key

    def fail_next(self, count: int = 1, status: int = 503, code: str = "ServiceUnavailable") -> None:
        """Answer the next ``count`` requests with this error (to test retries and error mapping)."""
        with self.lock:
            self.failures.extend([(status, code)] * count)

    def stop(self) -> None:
        """Stop serving and drop open connections. Idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            server.close_connections()  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "LocalObjectStorage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_object_storage(
    namespace: str = "streamcache",
    buckets: tuple[str, ...] = ("snapshots",),
    host: str = "127.0.0.1",
    port: int = 0,
    bandwidth: Bandwidth | None = None,
) -> LocalObjectStorage:
    """Start a server on ``host:port`` (0 = a free port) holding the given empty buckets; what each
    connection sends is capped by ``bandwidth``."""
    state = LocalObjectStorage(namespace, host, 0, bandwidth=bandwidth)
    for bucket in buckets:
        state.create_bucket(bucket)
    server = _Server((host, port), _Handler)
    server.state = state
    state.port = server.server_address[1]
    state._server = server
    serve = {"poll_interval": 0.05}  # stop() waits up to one poll interval
    state._thread = threading.Thread(target=server.serve_forever, kwargs=serve, daemon=True)
    state._thread.start()
    return state


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: LocalObjectStorage

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def close_connections(self) -> None:
        # Keep-alive connections would otherwise hold handler threads after stop().
        with self.connections_lock:
            for connection in list(self.connections):
                try:
                    connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # needed for Expect: 100-continue, which the SDK sends on PUT
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle plus delayed ACKs add 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)
        bandwidth, self.pacer = self.server.state.bandwidth, None
        if bandwidth is not None:
            self.pacer = bandwidth.pacer()
            with self.server.state.lock:
                self.server.state.pacers.append(self.pacer)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        super().finish()

    def log_message(self, format: str, *args: object) -> None:  # requests are in state.requests
        pass

    # BaseHTTPRequestHandler dispatches on do_<METHOD>: every method goes through one handler.
    def do_GET(self) -> None: self._handle("GET")  # noqa: E704
    def do_HEAD(self) -> None: self._handle("HEAD")  # noqa: E704
    def do_PUT(self) -> None: self._handle("PUT")  # noqa: E704
    def do_POST(self) -> None: self._handle("POST")  # noqa: E704
    def do_DELETE(self) -> None: self._handle("DELETE")  # noqa: E704

    # ---- plumbing -------------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        state = self.server.state
        self.request_id = self.headers.get("opc-request-id") or uuid.uuid4().hex.upper()
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        with state.lock:
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.requests.append(SeenRequest(method, self.path, headers))
            del state.requests[:-1000]
            failure = state.failures.pop(0) if state.failures else None
        try:
            self._authenticate(method)
            if failure is not None:
                raise _ApiError(failure[0], failure[1], "injected failure")
            self._route(method, body)
        except _Answered:
            pass
        except _ApiError as error:
            payload = orjson.dumps({"code": error.code, "message": error.message})
            payload = b"" if method == "HEAD" else payload  # HEAD answers carry no body, errors neither
            self._send(error.status, payload, {"content-type": "application/json"})

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("opc-request-id", self.request_id)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body) if self.pacer is None else self.pacer.write(self.wfile.write, body)

    def _authenticate(self, method: str) -> None:
        state = self.server.state
        with state.lock:
            keys = dict(state.trusted_keys) if state.trusted_keys else None
        problem = signature_problem(self.headers, method, self.path, None if keys is None else keys.get)
        if problem is not None:
            raise _ApiError(401, "NotAuthenticated", problem)

    def _route(self, method: str, body: bytes) -> None:
        parts = urlsplit(self.path)
        segments = parts.path.split("/")
        if parts.path.rstrip("/") == "/n" and method == "GET":
            self._send(200, orjson.dumps(self.server.state.namespace), {"content-type": "application/json"})
            return
        if len(segments) < 6 or segments[1] != "n" or segments[3] != "b" or segments[5] not in ("o", "u"):
            raise _ApiError(404, "NotFound", f"no such API: {method} {parts.path}")
        namespace, bucket = unquote(segments[2]), unquote(segments[4])
        name = unquote("/".join(segments[6:]))
        state = self.server.state
        if namespace != state.namespace:
            raise _ApiError(404, "NamespaceNotFound", f"The namespace {namespace!r} was not found")
        if bucket not in state.buckets:
            message = (
                f"Either the bucket named '{bucket}' does not exist in the namespace '{namespace}' "
                "or you are not authorized to access it"
            )
            raise _ApiError(404, "BucketNotFound", message)
        if segments[5] == "u":
            return self._upload(method, namespace, bucket, name, parse_qs(parts.query), body)
        if len(segments) == 6 or (len(segments) == 7 and not name):
            if method != "GET":
                raise _ApiError(405, "MethodNotAllowed", f"{method} is not allowed on the object collection")
            self._list(bucket, parse_qs(parts.query))
            return
        handler = {"PUT": self._put, "GET": self._get, "HEAD": self._get, "DELETE": self._delete}.get(method)
        if handler is None:
            raise _ApiError(405, "MethodNotAllowed", f"{method} is not allowed on an object")
        handler(bucket, name, body)

    # ---- operations -----------------------------------------------------------------------------

    def _upload(self, method: str, namespace: str, bucket: str, name: str, query: dict, body: bytes) -> None:
        uploads = self.server.state.uploads
        try:
            answer = uploads.handle(method, namespace, bucket, name, query, body)
        except UploadRefused as exc:
            raise _ApiError(exc.status, exc.code, exc.message) from None
        if not isinstance(answer, Commit):
            return self._send(*answer)
        self._put(bucket, answer.name, answer.data, answer)  # with the commit request's conditions

    def _put(self, bucket: str, name: str, body: bytes, committed: Commit | None = None) -> None:
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        claimed = None if committed else self.headers.get("content-md5")
        if claimed is not None and claimed != md5:
            raise _ApiError(400, "UnmatchedContentMD5", "The MD5 of the body does not match Content-MD5.")
        metadata = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("opc-meta-")}
        content_type = self.headers.get("content-type", "application/octet-stream")
        state = self.server.state
        with state.lock:
            objects = state.buckets[bucket]
            self._check_conditions(name, objects.get(name), for_write=True)
            stored = StoredObject(body, str(uuid.uuid4()), md5, content_type, metadata, time.time())
            objects[name] = stored
            if committed is not None:
                state.uploads.finish(committed.upload_id)
        headers = {"etag": stored.etag, "last-modified": formatdate(stored.created, usegmt=True),
                   "version-id": str(uuid.uuid4()),
                   **({"opc-content-md5": md5} if committed is None else {"opc-multipart-md5": committed.md5})}
        self._send(200, b"", headers)

    def _get(self, bucket: str, name: str, body: bytes) -> None:
        state = self.server.state
        with state.lock:
            stored = state.buckets[bucket].get(name)
        self._check_conditions(name, stored, for_write=False)
        assert stored is not None
        headers = {
            "etag": stored.etag,
            "content-type": stored.content_type,
            "content-md5": stored.md5,
            "last-modified": formatdate(stored.created, usegmt=True),
            "accept-ranges": "bytes",
            **stored.metadata,
        }
        status, data = 200, stored.data
        byte_range = self.headers.get("range")
        if byte_range is not None:
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", byte_range.strip())
            size = len(data)
            if match is None or match.group(1) == match.group(2) == "":
                raise _ApiError(416, "InvalidRange", f"unsupported range {byte_range!r}")
            if match.group(1) == "":
                first = max(0, size - int(match.group(2)))
                last = size - 1
            else:
                first = int(match.group(1))
                last = min(size - 1, int(match.group(2))) if match.group(2) else size - 1
            if first >= size or first > last:
                raise _ApiError(416, "InvalidRange", f"range {byte_range!r} is outside the object")
            status, data = 206, data[first : last + 1]
            headers["content-range"] = f"bytes {first}-{last}/{size}"
        self._send(status, data, headers)

    def _delete(self, bucket: str, name: str, body: bytes) -> None:
        state = self.server.state
        with state.lock:
            objects = state.buckets[bucket]
            self._check_conditions(name, objects.get(name), for_write=False, deleting=True)
            del objects[name]
        self._send(204, b"", {"last-modified": formatdate(time.time(), usegmt=True)})

    def _check_conditions(self, name: str, stored: StoredObject | None, for_write: bool, deleting: bool = False) -> None:
        if_match = self.headers.get("if-match")
        if_none_match = self.headers.get("if-none-match")
        if stored is None and not for_write:
            raise _ApiError(404, "ObjectNotFound", f"The object '{name}' was not found")
        if if_match is not None and (stored is None or if_match not in ("*", stored.etag)):
            raise _ApiError(412, "IfMatchFailed", "The If-Match header does not match the current entity tag")
        if if_none_match is not None and stored is not None:
            if for_write and if_none_match == "*":
                message = "The If-None-Match header is '*' but there is an existing entity"
                raise _ApiError(412, "IfNoneMatchFailed", message)
            if not for_write and not deleting and if_none_match in ("*", stored.etag):
                self._send(304, b"", {"etag": stored.etag})
                raise _Answered()

    def _list(self, bucket: str, query: dict[str, list[str]]) -> None:
        def param(name: str) -> str | None:
            return query.get(name, [None])[0]

        if param("delimiter") is not None:
            raise _ApiError(400, "InvalidParameter", "delimiter is not supported by the local server")
        prefix = param("prefix") or ""
        start, start_after, end = param("start"), param("startAfter"), param("end")
        try:
            limit = min(1000, max(1, int(param("limit") or 1000)))
        except ValueError:
            raise _ApiError(400, "InvalidParameter", "limit must be an integer") from None
        fields = {"name"} | {f for f in (param("fields") or "").split(",") if f in _LIST_FIELDS}
        state = self.server.state
        with state.lock:
            names = sorted(
                name
                for name in state.buckets[bucket]
                if name.startswith(prefix)
                and (start is None or name >= start)
                and (start_after is None or name > start_after)
                and (end is None or name < end)
            )
            page = [(name, state.buckets[bucket][name]) for name in names[:limit]]
        objects = []
        for name, stored in page:
            described = {"name": name, "size": len(stored.data), "etag": stored.etag, "md5": stored.md5,
                         "timeCreated": iso_time(stored.created), "timeModified": iso_time(stored.created)}
            objects.append({k: v for k, v in described.items() if k in fields})
        result: dict = {"objects": objects, "prefixes": []}
        if len(names) > limit:
            result["nextStartWith"] = names[limit]
        self._send(200, orjson.dumps(result), {"content-type": "application/json"})


class _Answered(Exception):  # the response was already sent (a 304)
    pass

