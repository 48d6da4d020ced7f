"""The JSON operations API for direct invokes (``fn invoke``, the OCI Functions invoke API, other functions).

Without API Gateway in front there is no HTTP method, path or status: the platform answers 200 to
every invoke. So the request body is a JSON operation and the answer carries its own status::

    {"operation": "put", "key": "k", "value": {"any": "JSON"}, "ttl": 60}
      -> {"status": 201, "key": "k", "version": "1-7", "expires_at": "..."}
    {"operation": "GET", "key": "k"}
      -> {"status": 200, "key": "k", "value": {"any": "JSON"}, "content_type": "application/json", ...}
    {"operation": "TOUCH", "key": "k", "ttl": 300}  -> {"status": 200, ...}   (ttl null: no expiry)
    {"operations": [op, op, ...]}  -> [answer, answer, ...]   (in order; writes pipelined)

In a batch, consecutive writes (put, delete, incr, touch) are appended together (cache/pipeline.py)
and each is answered with the outcome of its own record; a read waits for the writes before it.

Operation names are case-insensitive. Statuses and error codes are the HTTP API's. Values: a JSON
value is stored as ``application/json`` and comes back as JSON; with ``"content_type"`` naming a
non-JSON type, a string ``value`` is stored as that text; ``"value_base64"`` stores bytes. On the way
out, a non-JSON value is ``value`` (UTF-8 text) or ``value_base64`` (anything else); a get with
``"value_encoding": "base64"`` always answers ``value_base64``, the stored bytes exactly.
"""

from __future__ import annotations

import base64
import binascii
from typing import Callable

import orjson

from streamcache.cache.changes import changes
from streamcache.cache.pipeline import write_many
from streamcache.cache.service import CacheService, parse_consistency, parse_positions
from streamcache.core import records
from streamcache.core.errors import InvalidKey, InvalidRequest, InvalidTTL, LogUnavailable, ValueUnavailable
from streamcache.core.records import Increment, Mutation, Precondition, parse_precondition
from streamcache.core.table import Entry, Outcome, OutcomeKind
from streamcache.ports import SnapshotStoreUnavailable
from streamcache.statuses import Problem, for_error, for_outcome, not_found

MAX_BATCH = 100
#: A function invoke answers at most 6 MB (the platform's limit, as for its request body).
MAX_ANSWER_BYTES = 6 * 1024 * 1024
OPERATIONS = ("get", "put", "delete", "list", "health", "incr", "changes", "touch")
WRITES = frozenset({"put", "delete", "incr", "touch"})


class OperationError(InvalidRequest):
    code = "invalid_operation"


def handle_invoke(service: CacheService, body: bytes, health: Callable[[], dict]) -> object:
    """Answer one invoke body: a JSON operation, or ``{"operations": [...]}`` (a list of answers)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _error(400, "invalid_json", f"the body is not valid JSON: {exc}")
    if isinstance(doc, dict) and "operations" in doc:
        ops = doc["operations"]
        if not isinstance(ops, list) or not 1 <= len(ops) <= MAX_BATCH:
            return _error(400, "invalid_batch", f"operations must be a list of 1 to {MAX_BATCH} operations")
        return _batch(service, ops, health)
    return _answer(service, doc, health)


def _batch(service: CacheService, ops: list, health: Callable[[], dict]) -> list[dict]:
    """Answer a batch in order; each run of writes is appended together and a read (or any other
    operation) waits for the writes before it, so it sees them."""
    answers: list[dict | None] = [None] * len(ops)
    run: list[tuple[int, Mutation, Precondition | None]] = []
    for i, op in enumerate(ops):
        name = op.get("operation") if isinstance(op, dict) else None
        if isinstance(name, str) and name.lower() in WRITES:
            try:
                mutation, precondition = _write_record(service, name.lower(), op)
                run.append((i, mutation, precondition))
            except (InvalidRequest, LogUnavailable, SnapshotStoreUnavailable) as exc:
                answers[i] = error_answer(for_error(exc))
            continue
        _run_writes(service, run, answers)
        run = []
        answers[i] = _answer(service, op, health, in_batch=True)
    _run_writes(service, run, answers)
    return [a for a in answers if a is not None]


def _run_writes(service: CacheService, run: list[tuple[int, Mutation, Precondition | None]],
                answers: list[dict | None]) -> None:
    if not run:
        return

    def applied(j: int, outcome: Outcome) -> None:  # right after its apply: the counter as it wrote it
        index, mutation, precondition = run[j]
        answers[index] = _write_answer(service, mutation, outcome, precondition)

    for (index, mutation, precondition), result in zip(run, write_many(service, [m for _, m, _ in run], applied)):
        if answers[index] is None:  # not answered on its apply: refused before, or settled, or unknown
            answers[index] = (error_answer(for_error(result)) if not isinstance(result, Outcome)
                              else _write_answer(service, mutation, result, precondition))


def fit_answer(encoded: bytes) -> bytes:
    """``encoded``, or a JSON 413 when it is more than an invoke can answer: a big binary value travels
    as base64 (4/3 of its size) and a big batch adds up; HTTP (API Gateway) carries the bytes as they are."""
    if len(encoded) <= MAX_ANSWER_BYTES:
        return encoded
    return orjson.dumps(_error(413, "answer_too_large", f"the answer is {len(encoded)} bytes; an invoke answers at "
                                                        f"most {MAX_ANSWER_BYTES}: read big values over HTTP, or fewer per batch"))


def _answer(service: CacheService, op: object, health: Callable[[], dict], in_batch: bool = False) -> dict:
    try:
        if in_batch and isinstance(op, dict) and str(op.get("operation", "")).lower() == "changes":
            # A hundred long polls in one call would outlast the function's timeout.
            raise OperationError("changes cannot be batched: send it alone")
        return _run(service, op, health)
    except (InvalidRequest, LogUnavailable, ValueUnavailable, SnapshotStoreUnavailable) as exc:  # others: JSON 500
        return error_answer(for_error(exc))


def _run(service: CacheService, op: object, health: Callable[[], dict]) -> dict:
    if not isinstance(op, dict) or not isinstance(op.get("operation"), str):
        raise OperationError('expected {"operation": "get|put|delete|list|health|incr|touch|changes", ...}')
    name = op["operation"].lower()
    if name not in OPERATIONS:
        raise OperationError(f"unknown operation {op['operation']!r}; use one of {', '.join(OPERATIONS)}")
    if name == "health":
        return {"status": 200, "health": health()}
    if name == "changes":  # the change feed (cache/changes.py), as GET /changes answers it
        limit, wait = op.get("limit", 100), op.get("wait", 0)
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise InvalidRequest("limit must be a whole number")
        if not isinstance(wait, (int, float)) or isinstance(wait, bool):
            raise InvalidRequest("wait must be a number of seconds")
        return {"status": 200, **changes(service.replica.log, _str(op, "after", "latest"), _str(op, "prefix", ""),
                                         limit, float(wait))}
    strong = _consistency(op)
    if name == "list":
        limit = op.get("limit", 100)
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise InvalidRequest("limit must be a whole number")
        cursor = _str(op, "cursor", "") or None
        page = service.list(_str(op, "prefix", ""), limit, cursor, strong, _after(op))
        keys = [{"key": i.key, "version": str(i.entry.version), "size": i.size,
                 "expires_at": _time(i.entry.expires_at_ms)} for i in page.items]
        return {"status": 200, "keys": keys, "cursor": page.cursor}
    key = op.get("key")
    if not isinstance(key, str):
        raise InvalidKey("key must be a string")
    if name == "get":
        encoding = _value_encoding(op)
        result = service.get(key, strong=strong, after=_after(op))
        if result.entry is None:
            missing = error_answer(not_found(key))
            if result.stale:  # absent here: from older memory too, and said to be
                missing["stale"] = True
                if result.age_ms is not None:
                    missing["data_age_ms"] = result.age_ms
            return missing
        value = _value_fields(result.entry, encoding)
        answer = {"status": 200, "key": key, **value, "version": str(result.entry.version),
                  "expires_at": _time(result.entry.expires_at_ms)}
        if result.stale:
            answer["stale"] = True
            if result.age_ms is not None:
                answer["data_age_ms"] = result.age_ms
        return answer
    mutation, precondition = _write_record(service, name, op)
    return _write_answer(service, mutation, service.write(mutation), precondition)


def _write_record(service: CacheService, name: str, op: dict) -> tuple[Mutation, Precondition | None]:
    """The record a write operation appends, validated, and its precondition."""
    key = op.get("key")
    if not isinstance(key, str):
        raise InvalidKey("key must be a string")
    if name == "touch":
        if "ttl" not in op:
            raise InvalidTTL("touch needs ttl: a number of seconds, or null to remove the expiry")
        precondition = parse_precondition(op.get("if_match"), op.get("if_none_match"), allow_absent=False)
        return service.touch_record(key, op["ttl"], precondition), precondition
    precondition = _precondition(op)
    if name == "incr":
        return service.increment_record(key, op.get("by", 1), op.get("ttl"), precondition), precondition
    if name == "delete":
        return service.delete_record(key, precondition), precondition
    value, content_type = _value_in(op)
    return service.put_record(key, value, content_type, op.get("ttl"), precondition), precondition


def _write_answer(service: CacheService, mutation: Mutation, outcome: Outcome, precondition: Precondition | None) -> dict:
    answer = _outcome(outcome, precondition)
    if isinstance(mutation, Increment) and answer["status"] in (200, 201):
        answer["value"] = service.counter(mutation.key)
    position = service.position_after_write(mutation.key)  # the session position: "after" sees this write
    if position is not None:
        answer["position"] = str(position)
    return answer


def _value_in(op: dict) -> tuple[bytes, str]:
    if "value_base64" in op:
        try:
            value = base64.b64decode(_str(op, "value_base64", ""), validate=True)
        except binascii.Error:
            raise OperationError("value_base64 is not valid base64") from None
        return value, _str(op, "content_type", records.DEFAULT_CONTENT_TYPE)
    if "value" not in op:
        raise OperationError("put needs value (any JSON) or value_base64")
    content_type = _str(op, "content_type", "application/json")
    if not records.is_json_type(content_type) and isinstance(op["value"], str):
        return op["value"].encode("utf-8"), content_type
    try:
        return orjson.dumps(op["value"]), "application/json"
    except TypeError:  # nested deeper than JSON can be written back (254 levels)
        raise OperationError("value is nested too deeply (at most 254 levels)") from None


def _value_encoding(op: dict) -> str | None:
    encoding = op.get("value_encoding")
    if encoding not in (None, "base64"):
        raise OperationError('value_encoding must be "base64" (or absent)')
    return encoding


def _value_fields(entry: Entry, encoding: str | None = None) -> dict:
    out: dict = {"content_type": entry.content_type}
    if encoding == "base64":
        # The exact bytes whatever the type: the client library asks for this on every get.
        out["value_base64"] = base64.b64encode(entry.value).decode("ascii")
        return out
    if records.is_json_type(entry.content_type):
        try:
            out["value"] = orjson.loads(entry.value)
            orjson.dumps([{"value": out["value"]}])  # as deep as it sits in a batch answer: writable?
            return out
        except (orjson.JSONDecodeError, TypeError):
            out.pop("value", None)
    else:
        try:
            out["value"] = entry.value.decode("utf-8")
            return out
        except UnicodeDecodeError:
            pass
    out["value_base64"] = base64.b64encode(entry.value).decode("ascii")
    return out


def _outcome(outcome: Outcome, precondition: Precondition | None = None) -> dict:
    status, problem = for_outcome(outcome, precondition)
    if problem is not None:
        answer = error_answer(problem)
        if outcome.kind is OutcomeKind.PRECONDITION_FAILED:
            answer.update(key=outcome.key, current_version=None if outcome.version is None else str(outcome.version))
        if outcome.kind is OutcomeKind.QUOTA_EXCEEDED and outcome.quota is not None:
            answer.update(outcome.quota.to_json())
        return answer
    if outcome.kind is OutcomeKind.DELETED:
        return {"status": status, "key": outcome.key}
    return {"status": status, "key": outcome.key, "version": str(outcome.version),
            "expires_at": _time(outcome.expires_at_ms)}


def _precondition(op: dict) -> Precondition | None:
    return parse_precondition(op.get("if_match"), op.get("if_none_match"))


def _after(op: dict) -> dict[int, int] | None:
    raw = _str(op, "after", "")
    return parse_positions(raw) if raw else None


def _consistency(op: dict) -> bool:
    return parse_consistency(op.get("consistency"))


def _str(op: dict, name: str, default: str) -> str:
    value = op.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise OperationError(f"{name} must be a string")
    return value


def _time(ms: int | None) -> str | None:
    return None if ms is None else records.format_time(ms)


def _error(status: int, code: str, message: str) -> dict:
    return {"status": status, "error": code, "message": message}


def error_answer(problem: Problem) -> dict:
    """A problem as a direct invoke answers it: the status in the body, Retry-After as ``retry_after``."""
    answer = _error(problem.status, problem.code, problem.message)
    if problem.retry_after is not None:
        answer["retry_after"] = problem.retry_after
    return answer
