"""A concurrent workload for the fault tests: client threads send strong reads, writes, conditional
writes and deletes on a few keys through the gateway (or straight to an instance) and record every
operation in a :class:`~support.history.History` for the linearizability checker.

Every write carries a value no other write uses, so a read names the write it saw. How an answer
is recorded:

- a definite answer (2xx, 404, 412) is the operation's output;
- the gateway's own 503 ``busy`` never reached a function: the operation did not happen;
- a function's 503 ``stream_unavailable``: the record never left the instance, so the write did not
  happen (the checker holds the function to that promise: a write that did land would show); the
  same for 503 ``restoring`` (an instance reloading its table refuses a write before appending it);
- a 503 ``outcome_unknown``, a 502/504 (the gateway's ``function_timeout``) or a broken
  connection: the append may have landed, so the write is *indeterminate*; a read without an answer
  constrains nothing;
- anything else (a 500, a 4xx we did not expect) is kept in ``Workload.unexpected`` for the test
  to fail on.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote

import orjson

from support.history import CAS, DELETE, READ, WRITE, History

DEFINITE = {READ: (200, 404), WRITE: (200, 201), CAS: (200, 201, 412), DELETE: (204, 404)}
TIMEOUT_S = 30.0


class GatewayClient:
    """One keep-alive HTTP connection to the gateway, reopened after a failure."""

    def __init__(self, address: tuple[str, int], timeout_s: float = TIMEOUT_S) -> None:
        self.address, self.timeout_s = address, timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict[str, str], bytes]:
        """Raises OSError or http.client.HTTPException when no answer came (the connection is dropped)."""
        if self._conn is None:
            self._conn = http.client.HTTPConnection(*self.address, timeout=self.timeout_s)
        try:
            self._conn.request(method, path, body=body, headers=headers or {})
            response = self._conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def etag_version(headers: dict[str, str]) -> str:
    return headers["etag"].strip('"')


@dataclass
class Workload:
    """``clients`` threads, each running ``ops_per_client`` operations on ``keys`` (or until
    ``stop`` is set). ``mix`` weighs the kinds of operation."""

    address: tuple[str, int]
    keys: list[str]
    clients: int = 4
    ops_per_client: int = 60
    mix: dict[str, int] = field(default_factory=lambda: {READ: 4, WRITE: 3, CAS: 2, DELETE: 1})
    seed: int = 0
    history: History = field(default_factory=History)
    statuses: Counter = field(default_factory=Counter)  # (kind, status or "no answer") -> count
    codes: Counter = field(default_factory=Counter)  # (kind, status, error code) of error answers
    unexpected: list[str] = field(default_factory=list)
    acknowledged: list[tuple[str, str]] = field(default_factory=list)  # (key, value) of acked writes
    attempted: list[tuple[str, str]] = field(default_factory=list)  # (key, value) of every write sent
    indeterminate: list[tuple[str, str]] = field(default_factory=list)  # writes whose answer never came
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, during: Callable[["Workload"], None] | None = None, timeout_s: float = 120.0) -> None:
        """Run the clients to the end; ``during(self)`` runs meanwhile on this thread (a fault)."""
        threads = [threading.Thread(target=self._client, args=(n,), name=f"client-{n}", daemon=True)
                   for n in range(self.clients)]
        for thread in threads:
            thread.start()
        try:
            if during is not None:
                during(self)
        except BaseException:
            self.stop.set()  # the fault failed: stop the clients now rather than after timeout_s
            raise
        finally:
            deadline = time.monotonic() + timeout_s
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            self.stop.set()
        stuck = [t.name for t in threads if t.is_alive()]
        assert not stuck, f"clients still running after {timeout_s} s: {stuck}"

    def done(self) -> int:
        """Operations answered so far (any answer)."""
        return sum(self.statuses.values())

    def _client(self, number: int) -> None:
        rng = random.Random(self.seed * 1000 + number)
        client = GatewayClient(self.address)
        last_version: dict[str, str | None] = {}  # what this client last saw of each key
        kinds = list(self.mix)
        weights = [self.mix[k] for k in kinds]
        try:
            for count in range(self.ops_per_client):
                if self.stop.is_set():
                    break
                key = rng.choice(self.keys)
                kind = rng.choices(kinds, weights)[0]
                value = f"c{number}-{count}-{rng.getrandbits(32):08x}"
                self._one(client, number, kind, key, value, last_version)
        finally:
            client.close()

    def _one(self, client: GatewayClient, number: int, kind: str, key: str, value: str,
             last_version: dict[str, str | None]) -> None:
        path = f"/cache/{quote(key, safe='')}"
        headers: dict[str, str] = {}
        expected = None
        if kind == READ:
            method, path, body = "GET", path + "?consistency=strong", None
        elif kind == DELETE:
            method, body = "DELETE", None
        else:
            method, body = "PUT", value.encode()
            headers["Content-Type"] = "text/plain"
            if kind == CAS:
                expected = last_version.get(key)
                headers.update({"If-Match": f'"{expected}"'} if expected else {"If-None-Match": "*"})
        if kind in (WRITE, CAS):
            with self._lock:
                self.attempted.append((key, value))
        op = self.history.invoke(number, kind, key, value if kind in (WRITE, CAS) else None, expected)
        try:
            status, answer_headers, answer = client.request(method, path, body, headers)
        except (OSError, http.client.HTTPException):
            self._count(kind, "no answer")
            self._indeterminate(op, kind, key, value)
            return
        self._count(kind, status)
        if status == 503 and not answer_headers.get("retry-after", "").isdigit():
            with self._lock:
                self.unexpected.append(f"{method} {path} -> 503 without Retry-After")
        if status in DEFINITE[kind]:
            self.history.ok(op, self._output(kind, status, answer_headers, answer, op.value))
            if kind == READ:
                last_version[key] = etag_version(answer_headers) if status == 200 else None
            elif kind in (WRITE, CAS) and status in (200, 201):
                last_version[key] = etag_version(answer_headers)
                with self._lock:
                    self.acknowledged.append((key, value))
            elif kind == DELETE:
                last_version[key] = None
            return
        code = _error_code(answer)
        with self._lock:
            self.codes[(kind, status, code)] += 1
        if status == 503 and code in ("busy", "stream_unavailable", "restoring"):
            self.history.drop(op)  # refused before anything was written (see the module's docstring)
            return
        if status in (502, 504) or (status == 503 and code == "outcome_unknown"):
            self._indeterminate(op, kind, key, value)
            return
        self.history.drop(op)
        with self._lock:
            self.unexpected.append(f"{method} {path} -> {status} {answer[:200]!r}")

    def _indeterminate(self, op, kind: str, key: str, value: str) -> None:
        if kind == READ:
            self.history.drop(op)  # a read without an answer constrains nothing
            return
        self.history.unknown(op)
        if kind in (WRITE, CAS):
            with self._lock:
                self.indeterminate.append((key, value))

    def _output(self, kind: str, status: int, headers: dict[str, str], body: bytes, value: str | None):
        if kind == READ:
            return (body.decode(), etag_version(headers)) if status == 200 else None
        if kind == DELETE:
            return status
        if status == 412:
            return 412, orjson.loads(body)["current_version"]
        return status, etag_version(headers)

    def _count(self, kind: str, status) -> None:
        with self._lock:
            self.statuses[(kind, status)] += 1


def _error_code(body: bytes) -> str | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return doc.get("error") if isinstance(doc, dict) else None


def final_reads(history: History, keys: list[str], instances) -> None:
    """A strong read of every key from every instance (straight to its socket), recorded in the
    history: it must be explained, which is what "no acknowledged write is lost" means."""
    for instance in instances:
        for key in keys:
            op = history.invoke(-1, READ, key)
            answer = instance.client.http_call("GET", f"/cache/{quote(key, safe='')}?consistency=strong")
            assert answer.status in (200, 404), (instance.name, key, answer.status, answer.body[:200])
            output = (answer.body.decode(), answer.header("etag").strip('"')) if answer.status == 200 else None
            history.ok(op, output)


def checked_with_a_fresh_instance(history: History, keys: list[str], log_url: str):
    """:func:`final_reads` from a fresh instance started on ``log_url`` (nothing cached, so what it
    reads is the stream's), then the linearizability verdict of the whole history (printed)."""
    import shutil
    import tempfile

    from streamcache_local.fn_runner import start_instance
    from support.history import check

    socket_dir = tempfile.mkdtemp(prefix="sc-fresh-", dir="/tmp")
    fresh = start_instance("fresh", socket_dir, {"STREAMCACHE_LOG_URL": log_url})
    try:
        final_reads(history, keys, [fresh])
    finally:
        fresh.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)
    verdict = check(history.ops)
    print(verdict)
    return verdict
