"""The error tree of streamcache. Every error the core or an adapter raises on purpose is one of these.

    StreamcacheError
    ├── InvalidRequest            a client mistake; maps to a 4xx, never changes anything
    │   ├── InvalidKey            empty, over 512 UTF-8 bytes, or a control character
    │   ├── InvalidTTL
    │   ├── InvalidVersion        an If-Match value that is not a version we issued
    │   ├── InvalidPrecondition   preconditions that cannot be combined or are not supported
    │   ├── InvalidConsistency    a consistency level other than default or strong
    │   ├── InvalidPosition       a session position that is malformed, or (PositionNotReached) beyond the log
    │   └── ValueTooLarge         the value (or its encoded record) exceeds the limit
    ├── RecordError               a stream record that cannot be decoded (a foreign or corrupt record)
    ├── LogUnavailable            the stream cannot be reached now; retry later (maps to 503)
    │   └── OutcomeUnknown        an append may or may not have landed; re-read to learn (maps to 503
    │                             ``outcome_unknown``, never retried by the client)
    ├── LogTruncated              the records asked for are gone (retention); not transient
    ├── Restoring                 the instance is still loading its table (maps to 503)
    └── ConfigError               settings are missing or invalid; lists every problem at once
"""

from __future__ import annotations


class StreamcacheError(Exception):
    """Base class of every error streamcache raises on purpose."""


class InvalidRequest(StreamcacheError):
    """The client asked for something invalid. ``code`` is the stable machine-readable name."""

    code = "invalid_request"
    status = 400


class InvalidKey(InvalidRequest):
    code = "invalid_key"


class InvalidTTL(InvalidRequest):
    code = "invalid_ttl"


class InvalidVersion(InvalidRequest):
    code = "invalid_version"


class InvalidPrecondition(InvalidRequest):
    code = "invalid_precondition"


class InvalidConsistency(InvalidRequest):
    code = "invalid_consistency"


class InvalidPosition(InvalidRequest):
    """A session position (``P-O[,P-O...]``) that is malformed."""

    code = "invalid_position"


class PositionNotReached(InvalidPosition):
    """A session position beyond the stream's end: no write of this stream was answered with it. A
    conflict with the stream's state (409), not a malformed request: the same token may be fine on
    the stream it came from."""

    code = "position_not_reached"
    status = 409


class ValueTooLarge(InvalidRequest):
    code = "value_too_large"
    status = 413


class RecordError(StreamcacheError):
    """A record on the stream could not be decoded."""


class LogUnavailable(StreamcacheError):
    """The mutation log cannot be reached (broker down, timeout). Safe to retry later."""


class LogThrottled(LogUnavailable):
    """A read of the log that had to happen (a strong read, a conditional write's read-back) did not
    finish within its deadline while the stream throttled this instance's reads. Maps to 503
    ``log_throttled`` with ``Retry-After`` = ``retry_after_s`` (the instance's current interval
    between log reads). Nothing was answered from stale data and nothing was written."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class OutcomeUnknown(LogUnavailable):
    """An append may or may not have landed: the record left this process and the broker's answer
    never came (a connection cut, a timeout), or it landed at ``position`` but its outcome could not
    be read back. Maps to 503 ``outcome_unknown``; see docs/unknown-outcomes.md. A subclass of
    :class:`LogUnavailable` so that callers that retry (records carry request ids) still do."""

    def __init__(self, message: str, position: object | None = None) -> None:
        super().__init__(message)
        self.position = position  # the record's Position when it is known to have landed


class ValueUnavailable(StreamcacheError):
    """A big value's object (see value_refs) is missing from the object store, or holds other bytes
    than its reference names. Maps to 500 ``value_unavailable``: retrying does not bring it back."""


class LogTruncated(StreamcacheError):
    """The log no longer holds the records asked for: retention dropped them. Retrying cannot help."""


class LogMismatch(StreamcacheError):
    """The log no longer means what the data was made from (its partition count changed): no answer
    would be right, so none is given until an operator acts. Maps to 503 ``log_mismatch``."""


class Restoring(StreamcacheError):
    """The cold start is still running when the caller's wait budget ran out. Retry shortly."""


class ConfigError(StreamcacheError):
    """Settings are missing or invalid. ``problems`` lists every one of them."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("invalid settings:\n  - " + "\n  - ".join(self.problems))
