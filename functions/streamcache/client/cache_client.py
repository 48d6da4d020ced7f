"""A typed Python client of the cache, over HTTP (API Gateway, ``streamcache dev``) or a direct invoke.

    import streamcache
    cache = streamcache.Client("http://127.0.0.1:8080")          # or $STREAMCACHE_URL
    cache.put("user/1", b'{"name": "Ada"}', ttl=60, content_type="application/json")
    item = cache.get("user/1")             # Item(value=b'...', version="2-15", expires_at=datetime)
    for info in cache.list(prefix="user/"):  # follows the cursors page by page
        ...

    # From another function (or anywhere with OCI credentials): the OCI Functions invoke API.
    cache = streamcache.Client.for_function(FUNCTION_OCID, INVOKE_ENDPOINT)

Both transports speak one small interface: an operation of the direct-invoke JSON API
(:mod:`streamcache.cache.invoke_api`) in, its answer out, with the value as raw bytes both ways. This module
turns answers into typed results and errors, and retries: idempotent calls (get, list, an
unconditional put or delete) on 503 or 429 (waiting at least the server's Retry-After) and on
connection errors, with exponential backoff and full jitter. Conditional writes are never retried:
whether a lost attempt ran is unknown, and repeating it could fail its own precondition. A write whose
outcome is unknown (503 ``outcome_unknown``, a 504, or sent without an answer) is not retried either
and raises :class:`OutcomeUnknown` (:class:`UnansweredWrite`): read the key with
``consistency="strong"`` to learn what happened. So does a batch holding a write or an increment
that may have run (:meth:`Client.batch`, ``put_many``, ``delete_many``); a batch of reads raises
:class:`Unreachable`.

A client reads its own writes: every write answers a session position (``Streamcache-Position``),
and every get and listing carries the client's latest ones (``Streamcache-After``), so the instance
that answers has applied them first: values, deletes and listings alike. Other clients' writes
follow the staleness bound.

Values are bytes, kept exact over both transports. ``import streamcache`` stays cheap: the ``oci``
SDK is imported only when an invoke transport is built.
"""

from __future__ import annotations

import os
import random
import threading
import time
from datetime import datetime, timezone
from typing import Callable, Iterable, Iterator, Mapping

from streamcache.client.ops import Op, idempotent, is_write
from streamcache.client.models import (RETRYABLE_STATUSES, Transport, TransportError, BadRequest, CacheError, Change, Item,
                                       KeyInfo, NotFound, OutcomeUnknown, PreconditionFailed, ServerError,
                                       UnansweredWrite, Unavailable, Unreachable, ValueTooLarge, WriteResult, error_for)

__all__ = ["Client", "Op", "Transport", "TransportError", "Change", "Item", "WriteResult", "KeyInfo", "CacheError", "NotFound",
           "PreconditionFailed", "Unavailable", "Unreachable", "BadRequest", "ValueTooLarge", "ServerError",
           "OutcomeUnknown", "UnansweredWrite"]

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT_S = 10.0
MAX_BATCH = 100  # the function's limit on one {"operations": [...]} invoke


# ---- the client ---------------------------------------------------------------------------------


class Client:
    """The cache's client. Thread-safe; ``close()`` (or ``with``) releases its connections.

    ``url``: the cache's HTTP URL (default ``$STREAMCACHE_URL`` or http://127.0.0.1:8080); without a
    path the routes are under ``/cache``, with one (an API Gateway deployment) the path is the route.
    ``api_key`` is sent as ``Authorization: Bearer`` over HTTP (direct invokes are authorized by OCI
    IAM instead). ``retries`` extra attempts for idempotent calls, waiting ``backoff * 2**n`` at most
    (full jitter, capped by ``max_backoff``) or the server's Retry-After if longer; a Retry-After over
    ``max_backoff`` ends the retries. ``timeout`` bounds each attempt."""

    def __init__(self, url: str | None = None, *, api_key: str | None = None, timeout: float = DEFAULT_TIMEOUT_S,
                 retries: int = 3, backoff: float = 0.1, max_backoff: float = 5.0,
                 transport: Transport | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        if transport is None:
            from streamcache.client.http import HttpTransport

            transport = HttpTransport(url or os.environ.get("STREAMCACHE_URL") or DEFAULT_URL, timeout, api_key)
        elif url is not None:
            raise ValueError("give url or transport, not both")
        if retries < 0 or backoff < 0 or max_backoff < 0:
            raise ValueError("retries, backoff and max_backoff must not be negative")
        self.transport, self.timeout = transport, timeout
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self._sleep = sleep
        # The session: per partition, the latest position a write of this client was answered with.
        # Reads carry it ("after"), so they see this client's writes on whichever instance answers.
        self._session: dict[int, int] = {}
        self._session_lock = threading.Lock()

    @classmethod
    def for_function(cls, function_id: str, endpoint: str, *, config: dict | None = None,
                     profile: str | None = None, config_file: str | None = None, signer: object | None = None,
                     timeout: float = DEFAULT_TIMEOUT_S, **options) -> "Client":
        """A client that invokes the cache function directly (``FunctionsInvokeClient``).

        ``endpoint`` is the function's invoke endpoint (``oci fn function get`` shows it as
        ``invoke-endpoint``; ``streamcache dev`` prints its own). Credentials: ``signer`` (+ ``config``)
        if given; else ``config``; else Resource Principals when ``OCI_RESOURCE_PRINCIPAL_VERSION`` is
        set (inside OCI Functions); else ``profile`` of ``config_file`` (``~/.oci/config``, DEFAULT)."""
        from streamcache.client.invoke import InvokeTransport

        transport = InvokeTransport(function_id, endpoint, config=config, profile=profile, config_file=config_file,
                                    signer=signer, timeout=timeout)
        return cls(transport=transport, **options)

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- operations ---------------------------------------------------------------------------

    def get(self, key: str, consistency: str | None = None) -> Item:
        """The key's value; raises :class:`NotFound`. ``consistency="strong"`` catches up first.

        Every read carries this client's session position, so it sees the client's own writes
        (deletes included) whichever instance answers; others' writes follow the staleness bound."""
        op = self._in_session(Op.get(key, consistency))
        return _result(op, self._call(op))  # type: ignore[return-value]

    def put(self, key: str, value: bytes | str, ttl: float | None = None, if_match: str | None = None,
            if_none_match: bool = False, content_type: str | None = None) -> WriteResult:
        """Store ``value`` (a str is stored as UTF-8 text). ``ttl`` in seconds; ``if_match`` a version
        (or ``"*"``: only if the key has a value); ``if_none_match=True``: only if it has none. A
        failed precondition raises :class:`PreconditionFailed` with the current version."""
        op = Op.put(key, value, ttl, if_match, if_none_match, content_type)
        answer = self._call(op)
        self._remember(answer)  # a refused write (412) still moves the session: the client saw that state
        return _result(op, answer)  # type: ignore[return-value]

    def increment(self, key: str, by: int = 1, ttl: float | None = None) -> int:
        """Add ``by`` to the counter ``key`` (absent: 0; ``ttl`` only when this creates it) and return
        its new value. Atomic across instances. Never retried: a lost answer raises
        :class:`OutcomeUnknown` (read the counter to learn whether it counted). A value that is not
        a counter, or a sum outside the signed 64-bit range, raises :class:`Conflict`."""
        op = Op.increment(key, by, ttl)
        answer = self._attempts(lambda: self.transport.send(op), False, True)
        self._remember(answer)
        if answer.get("status") not in (200, 201):
            raise error_for(answer, writes=True)
        return int(answer["value"])

    def touch(self, key: str, ttl: float | None, if_match: str | None = None) -> WriteResult:
        """Give the value ``key`` holds a new TTL (seconds from now; ``None``: no expiry) without
        rewriting it. Its version stays the value's. Raises :class:`NotFound` if the key has no
        value, :class:`PreconditionFailed` if ``if_match`` names another version."""
        op = Op.touch(key, ttl, if_match)
        answer = self._call(op)
        self._remember(answer)
        return _result(op, answer)  # type: ignore[return-value]

    # ---- many keys in one round trip (pipelined: see docs/api.md#batches) -----------------------

    def get_many(self, keys: Iterable[str], consistency: str | None = None) -> dict[str, Item | None]:
        """The values of ``keys`` (``None`` for a key without one), 100 keys per call. Raises the
        first error other than not found (reads are safe to repeat)."""
        keys = list(keys)
        results = self.batch([self._in_session(Op.get(key, consistency)) for key in keys])
        out: dict[str, Item | None] = {}
        for key, result in zip(keys, results):
            if isinstance(result, NotFound):
                out[key] = None
            elif isinstance(result, CacheError):
                raise result
            else:
                out[key] = result
        return out

    def put_many(self, items: Mapping[str, bytes | str] | Iterable[tuple[str, bytes | str]], ttl: float | None = None,
                 content_type: str | None = None) -> list[WriteResult | CacheError]:
        """Store many values, 100 per call, their writes appended to the stream together. Not a
        transaction: one result per item in order, a failed one as its :class:`CacheError`,
        returned (the others still happened). Raises :class:`OutcomeUnknown` when a call's answer
        is lost once its writes were sent (read the keys to learn what ran)."""
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        return self.batch([Op.put(key, value, ttl, content_type=content_type) for key, value in pairs])

    def delete_many(self, keys: Iterable[str]) -> list[bool | CacheError]:
        """Remove many keys, 100 per call: per key True if it had a value, False if not, or its
        :class:`CacheError`, as :meth:`put_many` answers."""
        return self.batch([Op.delete(key) for key in keys])

    def delete(self, key: str, if_match: str | None = None) -> bool:
        """Remove the key. True if it had a value, False if it had none (so a retried delete is quiet)."""
        op = Op.delete(key, if_match)
        answer = self._call(op)
        self._remember(answer)
        return _result(op, answer)  # type: ignore[return-value]

    def list(self, prefix: str = "", page_size: int = 100, consistency: str | None = None) -> Iterator[KeyInfo]:
        """Every key under ``prefix`` in key order, fetched ``page_size`` at a time as you iterate."""
        cursor = None
        while True:
            op = self._in_session(Op.list(prefix, page_size, cursor, consistency))
            page = self._call(op)
            for info in _result(op, page):  # type: ignore[union-attr]
                yield info
            cursor = page.get("cursor")
            if not cursor:
                return

    def changes(self, after: str = "latest", prefix: str = "", *, wait: float | None = None,
                follow: bool = True, page_size: int = 100) -> Iterator[Change]:
        """The change feed after ``after`` (a token a :class:`Change` carries, ``earliest`` or ``latest``),
        page by page as you iterate, each page long-polled up to ``wait`` seconds (default: within the
        client's timeout, at most 20). With ``follow=False`` it stops at the stream's end. A token
        older than the stream's retention raises :class:`BadRequest` 410 ``token_gone``."""
        if wait is None:
            wait = max(0.0, min(20.0, self.timeout - 2.0))
        while True:
            op = {"operation": "changes", "after": after, "prefix": prefix, "limit": page_size,
                  "wait": wait if follow else 0}
            page = self._call(op)
            if page.get("status") != 200:
                raise error_for(page, writes=False)
            for change in page["changes"]:
                yield Change(change["position"], change["event"], page["next"])
            after = page["next"]
            if not follow and not page["changes"]:
                return

    def health(self) -> dict:
        """The answering instance's status (``/health``)."""
        op = {"operation": "health"}
        return _result(op, self._call(op))  # type: ignore[return-value]

    def batch(self, ops: Iterable[dict]) -> list:
        """Run :class:`Op` operations in order, each 100 in one call (over HTTP, ``POST /cache``), the
        writes of a call appended together and each decided by its own record. Answers a list of results (Item, WriteResult, True/False for a
        delete, the new value of an increment, a list of KeyInfo): a failed operation is its
        :class:`CacheError`, returned, not raised (later operations still ran).

        Raises when a call as a whole fails. A batch of reads raises :class:`Unreachable` (or the
        call's error) and is safe to repeat. Once a batch's write or increment may have run (sent
        without an answer, or answered but lost with the rest of the batch), it raises
        :class:`OutcomeUnknown` (:class:`UnansweredWrite` when nothing answered) and is never
        retried: repeating it could count an increment twice. Read the keys to learn what ran."""
        ops = list(ops)
        send_batch = getattr(self.transport, "send_batch", None)
        answers: list[dict] = []
        try:
            if send_batch is None:
                for op in ops:
                    answers.append(self._attempts(lambda op=op: self.transport.send(op), idempotent(op), is_write(op),
                                                  retry_unanswered=not is_write(op)))
            else:
                for start in range(0, len(ops), MAX_BATCH):
                    chunk = ops[start:start + MAX_BATCH]
                    has_writes = any(map(is_write, chunk))
                    got = self._attempts(lambda chunk=chunk: send_batch(chunk), all(map(idempotent, chunk)), has_writes,
                                         retry_unanswered=not has_writes)
                    if isinstance(got, dict):  # the whole call failed (the platform, or an invalid batch)
                        raise error_for(got, writes=has_writes)
                    answers.extend(got)
        except CacheError as exc:
            failed = _failed_batch(exc, ops, len(answers))
            if failed is exc:
                raise
            raise failed from exc
        finally:
            for answer in answers:
                self._remember(answer)
        return [_batch_result(op, answer) for op, answer in zip(ops, answers)]

    # ---- read your own writes: the session -----------------------------------------------------

    @property
    def session(self) -> str | None:
        """This client's session position (``P-O[,P-O...]``), as reads send it; ``None`` before a write."""
        with self._session_lock:
            return ",".join(f"{p}-{o}" for p, o in sorted(self._session.items())) or None

    def reset_session(self) -> None:
        """Forget the session (reads no longer wait for this client's earlier writes)."""
        with self._session_lock:
            self._session.clear()

    def join_session(self, positions: str) -> None:
        """Read at least as late as ``positions`` (``P-O[,P-O...]``: another client's :attr:`session`,
        or what a write answered in ``Streamcache-Position``) from now on."""
        for position in positions.split(","):
            partition, _, offset = position.strip().partition("-")
            if not (partition.isdigit() and offset.isdigit()):
                raise ValueError(f"not a session position: {positions!r} (expected P-O[,P-O...])")
            with self._session_lock:
                p, o = int(partition), int(offset)
                self._session[p] = max(o, self._session.get(p, -1))

    def _remember(self, answer: object) -> None:
        """Keep the position a write was answered with (the latest per partition)."""
        raw = answer.get("position") if isinstance(answer, dict) else None
        if isinstance(raw, str):
            try:
                self.join_session(raw)
            except ValueError:
                pass  # not ours to judge: the read simply goes without it

    def _in_session(self, op: dict) -> dict:
        session = self.session
        return {**op, "after": session} if session else op

    # ---- retries ------------------------------------------------------------------------------

    def _call(self, op: dict) -> dict:
        return self._attempts(lambda: self.transport.send(op), idempotent(op), is_write(op))

    def _attempts(self, send: Callable[[], object], may_retry: bool, writes: bool = False,
                  retry_unanswered: bool = True):
        """``send`` until it answers, retrying what ``may_retry`` (429/503 and connection errors);
        a request that was sent and got no answer is retried only if ``retry_unanswered``."""
        attempt, lost = 0, False
        while True:
            try:
                answer = send()
            except TransportError as exc:
                lost = lost or exc.sent  # an earlier attempt that was sent may have run, whatever this one did
                if not may_retry or attempt >= self.retries or (exc.sent and not retry_unanswered):
                    if writes and lost:  # it may have run: say so, as a 503 outcome_unknown does
                        raise UnansweredWrite(0, "outcome_unknown", f"no answer to a write that was sent: {exc}") from exc
                    raise Unreachable(0, "unreachable", str(exc)) from exc
                retry_after = None
            else:
                status = answer.get("status") if isinstance(answer, dict) else None
                if status not in RETRYABLE_STATUSES or not may_retry or attempt >= self.retries:
                    return answer
                if answer.get("error") == "outcome_unknown":
                    return answer  # it may have run: the caller must learn what happened first
                retry_after = answer.get("retry_after")
                if retry_after is not None and retry_after > self.max_backoff:
                    return answer  # longer than we are willing to wait: the caller decides
            self._sleep(self._delay(attempt, retry_after))
            attempt += 1

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        jittered = random.uniform(0, min(self.max_backoff, self.backoff * 2 ** attempt))
        return max(jittered, retry_after or 0.0)


# ---- answers to results -------------------------------------------------------------------------


def _result(op: dict, answer: dict) -> object:
    """The typed result of a success answer to ``op``; raises the typed error of any other answer."""
    status, name = answer.get("status"), op["operation"]
    if status not in (200, 201, 204):
        if name == "delete" and status == 404 and answer.get("error") == "not_found":
            return False
        raise error_for(answer, writes=is_write(op))
    try:
        if name == "get":
            return Item(answer["key"], bytes(answer["value"]), answer["content_type"], answer["version"],
                        _when(answer.get("expires_at")), bool(answer.get("stale")))
        if name in ("put", "touch"):
            return WriteResult(answer["key"], answer["version"], _when(answer.get("expires_at")), status == 201)
        if name == "list":
            return [KeyInfo(k["key"], k["version"], k["size"], _when(k.get("expires_at"))) for k in answer["keys"]]
        if name == "health":
            return dict(answer["health"])
        if name == "incr":
            return int(answer["value"])
        return status == 204  # a delete
    except (KeyError, TypeError, ValueError) as exc:
        message = f"the answer does not have the expected shape: {exc}"
        raise CacheError(int(status or 0), "invalid_answer", message) from exc


def _failed_batch(exc: CacheError, ops: list[dict], answered: int) -> CacheError:
    """What a batch that failed as a whole raises, its first ``answered`` operations having run.
    Their answers are lost with the batch: if a write is among them, repeating the batch repeats it,
    so the outcome is unknown, never a plain Unreachable (which says "safe to retry")."""
    if isinstance(exc, OutcomeUnknown) or not any(map(is_write, ops[:answered])):
        return exc
    message = (f"the batch's first {answered} operation(s) ran, writes among them, and their answers are lost "
               f"with the rest: {exc.message}")
    if isinstance(exc, Unreachable):
        return UnansweredWrite(0, "outcome_unknown", message)
    return OutcomeUnknown(exc.status, "outcome_unknown", message, getattr(exc, "retry_after", None))


def _batch_result(op: dict, answer: dict) -> object:
    try:
        return _result(op, answer)
    except CacheError as exc:
        return exc


def _when(value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    moment = datetime.fromisoformat(str(value))
    return moment.astimezone(timezone.utc) if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
