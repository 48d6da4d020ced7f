"""One table for every entry point: what each outcome and each error is answered with.

The HTTP API, the direct-invoke JSON API, the cold start in front of both, and the compactor all
answer through :func:`for_outcome` and :func:`for_error`, so a status, an error code and a
Retry-After mean the same thing wherever a client meets them. Client mistakes
(:class:`~streamcache.core.errors.InvalidRequest`) carry their own 4xx status and code; everything
else is listed in :data:`ERRORS`, most specific class first.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from streamcache.core.errors import (ConfigError, InvalidRequest, LogMismatch, LogThrottled, LogUnavailable, OutcomeUnknown,
                                     Restoring, StreamcacheError, ValueUnavailable)
from streamcache.core.records import Precondition, PreconditionKind
from streamcache.core.table import Outcome, OutcomeKind
from streamcache.ports import SnapshotStoreUnavailable

#: Seconds a client is asked to wait before retrying a 503.
RETRY_AFTER_SECONDS = 1


class ErrorCode(StrEnum):
    """The stable, machine-readable ``error`` of an answer that is not one of the client's mistakes
    (those carry their own: ``invalid_key``, ``invalid_ttl``, …)."""

    NOT_FOUND = "not_found"
    PRECONDITION_FAILED = "precondition_failed"
    QUOTA_EXCEEDED = "quota_exceeded"
    NOT_A_NUMBER = "not_a_number"
    OVERFLOW = "overflow"
    RESTORING = "restoring"
    LOG_MISMATCH = "log_mismatch"
    STREAM_UNAVAILABLE = "stream_unavailable"
    LOG_THROTTLED = "log_throttled"
    OUTCOME_UNKNOWN = "outcome_unknown"
    SNAPSHOT_STORE_UNAVAILABLE = "snapshot_store_unavailable"
    VALUE_UNAVAILABLE = "value_unavailable"
    MISCONFIGURED = "misconfigured"
    INTERNAL = "internal"


class Problem(NamedTuple):
    """An error answer: HTTP status, error code, message, and seconds to wait before a retry."""

    status: int
    code: str
    message: str
    retry_after: int | None = None

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


#: Errors that are not the client's, most specific class first: (class, status, code, message
#: prefix, retryable). The message is the prefix followed by the error's own text.
ERRORS: tuple[tuple[type[BaseException], int, ErrorCode, str, bool], ...] = (
    (Restoring, 503, ErrorCode.RESTORING, "the instance is restoring its data; retry shortly", True),
    (LogMismatch, 503, ErrorCode.LOG_MISMATCH, "the stream no longer matches its data; an operator must act", True),
    # 503, not 504: the FDK turns a handler's 504 into the platform's "function timed out" (its
    # socket status), and the answer's body and code would be lost on the way. A subclass of
    # LogUnavailable, so listed first: "stream_unavailable" promises that nothing was written.
    (OutcomeUnknown, 503, ErrorCode.OUTCOME_UNKNOWN, "the write may or may not have been applied; read the key "
     "with consistency=strong to learn what happened before retrying", True),
    (LogThrottled, 503, ErrorCode.LOG_THROTTLED, "the stream throttles this instance's reads (its read limit "
     "per partition is used up); retry after Retry-After seconds", True),
    (LogUnavailable, 503, ErrorCode.STREAM_UNAVAILABLE, "the stream cannot be reached", True),
    (SnapshotStoreUnavailable, 503, ErrorCode.SNAPSHOT_STORE_UNAVAILABLE, "the snapshot store cannot be used", True),
    # The object a big value's reference names is gone (value_refs). 500, with its own code: 502 and
    # 504 are the FDK's own statuses (the platform would drop the body), and 503 invites retries.
    (ValueUnavailable, 500, ErrorCode.VALUE_UNAVAILABLE, "the stored value cannot be read", False),
    (ConfigError, 500, ErrorCode.MISCONFIGURED, "", False),
)

#: What every error nobody planned for (a bug) is answered with; the details go to the log only.
INTERNAL = Problem(500, ErrorCode.INTERNAL.value, "internal error; see the function's logs")


def for_error(exc: BaseException, context: str = "") -> Problem:
    """The answer to ``exc``. ``context`` (``"starting"``) prefixes the message of errors raised
    outside a request's own work, so a client can tell a cold start's failure from its request's."""
    if isinstance(exc, InvalidRequest):
        return Problem(exc.status, exc.code, str(exc))
    for cls, status, code, prefix, retryable in ERRORS:
        if isinstance(exc, cls):
            text = f"{prefix}: {exc}" if prefix and str(exc) else (prefix or str(exc))
            if context:
                text = f"{context}: {text}"
            # An error that knows how long to wait (a throttled read: the instance's interval) says so.
            wait = getattr(exc, "retry_after_s", None) or RETRY_AFTER_SECONDS
            return Problem(status, code.value, text, wait if retryable else None)
    if isinstance(exc, StreamcacheError):
        return Problem(500, ErrorCode.INTERNAL.value, f"{type(exc).__name__}: {exc}")
    return INTERNAL


#: Applying a write record: outcome -> HTTP status (the error code, for the failures).
OUTCOMES: dict[OutcomeKind, tuple[int, ErrorCode | None]] = {
    OutcomeKind.CREATED: (201, None),
    OutcomeKind.REPLACED: (200, None),
    OutcomeKind.DELETED: (204, None),
    OutcomeKind.NOT_FOUND: (404, ErrorCode.NOT_FOUND),
    OutcomeKind.PRECONDITION_FAILED: (412, ErrorCode.PRECONDITION_FAILED),
    OutcomeKind.QUOTA_EXCEEDED: (507, ErrorCode.QUOTA_EXCEEDED),
    OutcomeKind.NOT_A_NUMBER: (409, ErrorCode.NOT_A_NUMBER),
    OutcomeKind.OVERFLOW: (409, ErrorCode.OVERFLOW),
    OutcomeKind.TOUCHED: (200, None),
}


def for_outcome(outcome: Outcome, precondition: Precondition | None = None) -> tuple[int, Problem | None]:
    """The status of a write's outcome, and the problem to answer with when it did not happen
    (``precondition``, the write's own, says which condition failed)."""
    status, code = OUTCOMES[outcome.kind]
    if code is None:
        return status, None
    if code is ErrorCode.NOT_FOUND:
        return status, Problem(status, code.value, f"no value for key {outcome.key!r}")
    if code is ErrorCode.QUOTA_EXCEEDED:
        quota = outcome.quota
        full = "" if quota is None else (f": its partition holds {quota.used_bytes:,} of {quota.limit_bytes:,} "
                                         f"accounted bytes and this value needs {quota.needed_bytes:,} more")
        return status, Problem(status, code.value, f"the cache is full{full} (STREAMCACHE_MAX_BYTES); nothing "
                                                   "changed. Delete keys or set shorter TTLs, or raise the quota")
    if code is ErrorCode.NOT_A_NUMBER:
        return status, Problem(status, code.value, f"the value of {outcome.key!r} is not a counter (the decimal text "
                                                   "of a signed 64-bit integer); nothing changed")
    if code is ErrorCode.OVERFLOW:
        return status, Problem(status, code.value, f"the counter {outcome.key!r} would leave the signed 64-bit range; "
                                                   "nothing changed")
    if precondition is not None and precondition.kind is PreconditionKind.ABSENT:
        message = f"the key {outcome.key!r} already exists (If-None-Match: *)"
    elif outcome.version is None:
        message = f"the key {outcome.key!r} does not exist"
    else:
        message = "the key's current version does not match the precondition"
    return status, Problem(status, code.value, message)


def not_found(key: str) -> Problem:
    """A read of an absent (or expired) key."""
    return Problem(404, ErrorCode.NOT_FOUND.value, f"no value for key {key!r}")
