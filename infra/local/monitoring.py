"""A local stand-in for OCI Monitoring's ingestion API that the real ``oci`` SDK posts to (plain HTTP).

    POST /20180401/metrics        PostMetricData: {"metricData": [...], "batchAtomicity": ...}
    GET  /_local/metrics?minutes=60&deployment=...   what it kept, and the alarms' states (local only)

It checks what OCI checks and the functions could get wrong: an ``authorization: Signature ...``
header (401 ``NotAuthenticated``), at most 50 metric streams a call, 1 to 20 dimensions with
non-empty values, a namespace not starting with ``oci_``/``oracle_``, timestamps less than 2 hours
old and at most 10 minutes ahead; a stream that fails a check is counted in ``failedMetrics`` (400
``InvalidParameter`` when the request itself is malformed). It keeps every datapoint it accepted (in
memory, and in ``<file>`` as JSON Lines when given, so that ``streamcache metrics`` sees the last hour
across restarts). :meth:`LocalMonitoring.fail_next` and :attr:`LocalMonitoring.delay_s` play a
throttled or slow endpoint. ``clock`` (wall seconds) is what "now" means for the checks and alarms.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import orjson

from .alarms import Alarm, AlarmState, Datapoint, evaluate

PATH = "/20180401/metrics"
LOCAL_PATH = "/_local/metrics"
MAX_STREAMS, MAX_AGE_S, MAX_AHEAD_S = 50, 2 * 3600, 600


class LocalMonitoring:
    def __init__(self, file: Path | None = None, clock: Callable[[], float] = time.time) -> None:
        self.file, self.clock = file, clock
        self.points: list[tuple[str, Datapoint]] = []  # (namespace, datapoint)
        self.requests = 0
        self.failures: list[tuple[int, str]] = []
        self.delay_s = 0.0
        self.alarms: list[Alarm] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        if file is not None and file.exists():
            for line in file.read_bytes().splitlines():
                doc = orjson.loads(line)
                self.points.append((doc.pop("namespace"), Datapoint(**doc)))

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, count: int = 1, status: int = 429, code: str = "TooManyRequests") -> None:
        with self.lock:
            self.failures.extend([(status, code)] * count)

    def received(self, name: str | None = None, since_s: float = 0.0) -> list[Datapoint]:
        with self.lock:
            return [p for _, p in self.points if (name is None or p.name == name) and p.timestamp_s >= since_s]

    def alarm_states(self, now_s: float | None = None) -> dict[str, AlarmState]:
        now = self.clock() if now_s is None else now_s
        points = self.received()
        return {alarm.name: evaluate(alarm.query, points, now) for alarm in self.alarms}

    def accept(self, body: bytes) -> dict:
        """Check and keep one PostMetricData body; the answer's JSON."""
        doc = orjson.loads(body)
        data = doc.get("metricData") if isinstance(doc, dict) else None
        if not isinstance(data, list) or not 1 <= len(data) <= MAX_STREAMS:
            raise _Refused(400, "InvalidParameter", f"metricData must hold 1 to {MAX_STREAMS} metric streams")
        now, failed, kept = self.clock(), [], []
        for stream in data:
            problem = _problem(stream, now)
            if problem:
                failed.append({"metricData": stream, "message": problem})
                continue
            for dp in stream["datapoints"]:
                kept.append((stream["namespace"], Datapoint(stream["name"], stream["dimensions"], _seconds(dp["timestamp"]),
                                                            float(dp["value"]), int(dp.get("count") or 1))))
        with self.lock:
            self.points.extend(kept)
            if self.file is not None and kept:
                with self.file.open("ab") as out:
                    for namespace, p in kept:
                        out.write(orjson.dumps({"namespace": namespace, **p.__dict__}) + b"\n")
        return {"failedMetricsCount": len(failed), "failedMetrics": failed}

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "LocalMonitoring":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_monitoring(file: Path | None = None, clock: Callable[[], float] = time.time, host: str = "127.0.0.1",
                     port: int = 0) -> LocalMonitoring:
    state = LocalMonitoring(file, clock)
    server = _Server((host, port), _Handler)
    server.state = state  # type: ignore[attr-defined]
    state._server = server
    state._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    state._thread.start()
    return state


#: The namespace and compartment the local functions post to.
LOCAL_NAMESPACE, LOCAL_COMPARTMENT = "streamcache", "ocid1.compartment.oc1..local"
METRICS_FILE = "metrics.jsonl"


def start_stack_monitoring(data_dir: Path | None) -> LocalMonitoring:
    """The Monitoring of ``streamcache dev``: it keeps what it receives in ``<data-dir>/metrics.jsonl``
    (from one run to the next) and evaluates the deployment's alarms (alarms.json.tftpl)."""
    from .alarms import load_alarms

    monitoring = start_monitoring(None if data_dir is None else Path(data_dir) / METRICS_FILE)
    monitoring.alarms = load_alarms("local")
    return monitoring


def metrics_config(monitoring: LocalMonitoring, config: dict[str, str]) -> dict[str, str]:
    """The functions' metrics settings under ``streamcache dev``: post to the local server, under
    the ``local`` deployment, as often as the developer's config says (default: once a minute)."""
    return {"STREAMCACHE_METRICS_NAMESPACE": LOCAL_NAMESPACE, "STREAMCACHE_METRICS_COMPARTMENT_ID": LOCAL_COMPARTMENT,
            "STREAMCACHE_METRICS_ENDPOINT": monitoring.endpoint, "STREAMCACHE_METRICS_DEPLOYMENT": "local",
            "STREAMCACHE_METRICS_INTERVAL_S": config.get("STREAMCACHE_METRICS_INTERVAL_S", "60")}


def relay(method: str, path: str, stack_info: dict | None) -> tuple[int, list[tuple[str, str]], bytes]:
    """The gateway's answer to ``/_local/metrics``: what this server answers, so that the console
    (whose page may only call its own origin) shows the local metrics."""
    from urllib.error import HTTPError, URLError
    from urllib.request import ProxyHandler, build_opener

    json = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    where = (stack_info or {}).get("metrics")
    if method not in ("GET", "HEAD") or not where:
        return 404, json, orjson.dumps({"error": "not_found", "message": "this stack serves no metrics"})
    query = urlsplit(path).query
    try:
        with build_opener(ProxyHandler({})).open(where + (f"?{query}" if query else ""), timeout=5) as answer:
            return 200, json, answer.read()
    except (HTTPError, URLError, OSError) as exc:
        return 502, json, orjson.dumps({"error": "bad_gateway", "message": f"the local metrics: {exc}"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        # A client that gave up on a slow answer (its timeout) is expected here, not a server error.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code = status, code


def _seconds(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _problem(stream: object, now: float) -> str | None:
    if not isinstance(stream, dict):
        return "not an object"
    namespace, dims, points = stream.get("namespace"), stream.get("dimensions"), stream.get("datapoints")
    if not isinstance(namespace, str) or not namespace or namespace.startswith(("oci_", "oracle_")):
        return "namespace must be set and must not start with oci_ or oracle_"
    if not stream.get("compartmentId") or not stream.get("name"):
        return "compartmentId and name are required"
    if not isinstance(dims, dict) or not 1 <= len(dims) <= 20 or not all(isinstance(v, str) and v for v in dims.values()):
        return "dimensions: 1 to 20, each with a non-empty value"
    if not isinstance(points, list) or not points:
        return "datapoints: at least one"
    for dp in points:
        ts = _seconds(dp["timestamp"])
        if ts < now - MAX_AGE_S or ts > now + MAX_AHEAD_S:
            return "timestamp: must be less than 2 hours old and at most 10 minutes ahead"
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ThreadingHTTPServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, payload: object) -> None:
        body = orjson.dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("opc-request-id", f"local-{time.monotonic_ns():x}")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        state: LocalMonitoring = self.server.state  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        if parts.path.rstrip("/") != LOCAL_PATH:
            return self._send(404, {"code": "NotFound", "message": "no such path"})
        query = parse_qs(parts.query)
        minutes = int(query.get("minutes", ["60"])[0])
        now = state.clock()
        points = [p.__dict__ for p in state.received(since_s=now - minutes * 60)]
        alarms = [{"name": a.name, "severity": a.severity, "summary": a.summary, "query": a.query,
                   "runbook": a.runbook, "state": s.value}
                  for a, s in zip(state.alarms, state.alarm_states(now).values())]
        self._send(200, {"now": now, "datapoints": points, "alarms": alarms})

    def do_POST(self) -> None:
        state: LocalMonitoring = self.server.state  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        with state.lock:
            state.requests += 1
            failure = state.failures.pop(0) if state.failures else None
        if state.delay_s:
            time.sleep(state.delay_s)  # a slow endpoint, as tests ask for
        if urlsplit(self.path).path.rstrip("/") != PATH:
            return self._send(404, {"code": "NotFound", "message": "no such path"})
        if not (self.headers.get("authorization") or "").startswith("Signature "):
            return self._send(401, {"code": "NotAuthenticated", "message": "the request is not signed"})
        if failure is not None:
            return self._send(failure[0], {"code": failure[1], "message": "failed as the test asked"})
        try:
            self._send(200, state.accept(body))
        except _Refused as exc:
            self._send(exc.status, {"code": exc.code, "message": str(exc)})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            self._send(400, {"code": "InvalidParameter", "message": f"malformed body: {exc}"})
