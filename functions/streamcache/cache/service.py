"""The cache operations, independent of how a request arrived (API Gateway HTTP or a direct invoke).

Write path: validate, encode one record, append it (acks=all), apply this instance's replica through
that record, and report the outcome of applying it: the same outcome every replica computes. An
append whose answer was lost is looked for on the stream; if its outcome stays unknown the write
raises :class:`~streamcache.core.errors.OutcomeUnknown` (503 ``outcome_unknown``), never a guess.

Read path: catch up with the log first if the last catch-up is older than the staleness bound (or
always, for ``strong`` reads), then answer from memory. If the log cannot be reached, a default read
is answered from memory and flagged ``stale``; a strong read raises
:class:`~streamcache.core.errors.LogUnavailable`. While the broker throttles this instance's reads,
the replica's pacer (:mod:`streamcache.cache.read_pacing`) spaces catch-ups further apart than the
bound: a default read older than the bound but younger than that interval is answered from memory,
flagged ``stale`` with the data's age (``age_ms``: since the last catch-up began), and a miss is
checked against the stream only a few times per interval (otherwise every miss is). A strong read always catches up (the
broker holds it until its budget allows); one that cannot within the read deadline while throttled
raises :class:`~streamcache.core.errors.LogThrottled` (503 with Retry-After), never a stale answer.

While the replica reloads its table (see :mod:`streamcache.cache.replica`), default reads are answered
from the old table and flagged ``stale``, as when the log cannot be reached; strong reads, ``after=``
reads and writes raise :class:`~streamcache.core.errors.Restoring` at once, a write before anything
is appended. While the process refuses (the log's partition count changed), everything raises
:class:`~streamcache.core.errors.LogMismatch`.
"""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Callable, Mapping

from streamcache.core import records
from streamcache.core.errors import (InvalidConsistency, InvalidPosition, InvalidRequest, InvalidTTL, LogMismatch,
                                     LogThrottled, LogUnavailable, OutcomeUnknown, Restoring, ValueTooLarge)
from streamcache.core.records import Delete, Increment, Mutation, Position, Precondition, PreconditionKind, Put, Touch
from streamcache.core.table import Entry, Outcome, OutcomeKind
from streamcache.cache.big_values import BigValues, unresolvable
from streamcache.cache.replica import Replica
from streamcache.core.value_refs import REF_CONTENT_TYPE, decode_ref


@dataclass(frozen=True)
class Limits:
    """What the service accepts and how stale a default read may be (the settings' defaults)."""

    #: A read catches up with the log first when its last catch-up is older than this.
    staleness_ms: int = 1000
    max_value_bytes: int = 5_767_168
    #: Values above this go to the object store, and their record carries a reference (big_values).
    inline_max_bytes: int = 262_144
    max_record_bytes: int = 1_000_000
    max_ttl_seconds: int = 315_360_000
    max_list_limit: int = 1000


class Consistency(StrEnum):
    DEFAULT = "default"  # bounded staleness (a miss is checked against the stream)
    STRONG = "strong"  # catch up with the stream first: linearizable


def parse_consistency(level: object) -> bool:
    """True for a strong read; the same check for the query string and the invoke field."""
    if level is None:
        return False
    try:
        return Consistency(level) is Consistency.STRONG
    except ValueError:
        raise InvalidConsistency("consistency must be 'default' or 'strong'") from None


@dataclass(frozen=True)
class ReadResult:
    entry: Entry | None
    now_ms: int
    stale: bool = False
    age_ms: int | None = None  # stale: how long ago the data was last brought up to the log end (None: unknown)


@dataclass(frozen=True)
class KeyInfo:
    key: str
    entry: Entry

    @property
    def size(self) -> int:
        """The value's size: a big value's (its reference says), not its reference's."""
        entry = self.entry
        return decode_ref(entry.value).size if entry.content_type == REF_CONTENT_TYPE else len(entry.value)


@dataclass(frozen=True)
class ListPage:
    items: list[KeyInfo]
    cursor: str | None
    now_ms: int
    stale: bool = False
    age_ms: int | None = None


class InvalidIncrement(InvalidRequest):
    code = "invalid_increment"


class InvalidCursor(InvalidRequest):
    code = "invalid_cursor"


class InvalidLimit(InvalidRequest):
    code = "invalid_limit"


class InvalidContentType(InvalidRequest):
    code = "invalid_content_type"


class CacheService:
    """Get, put, delete and list against one replica and its mutation log."""

    def __init__(
        self,
        replica: Replica,
        limits: Limits = Limits(),
        event_source: str = records.DEFAULT_SOURCE,
        clock: Callable[[], float] | None = None,
        new_request_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        values: BigValues | None = None,
    ) -> None:
        self.replica = replica
        self.limits = limits
        self.event_source = event_source
        self._clock = clock  # None: time.time, looked up at each call so that freezegun can stop it
        self._new_request_id = new_request_id
        self.values = values  # None: no object store, every value goes inline (and may not fit a record)
        self._resolve = unresolvable if values is None else values.resolve
        replica.pacer.set_bound(limits.staleness_ms / 1000)

    def now_ms(self) -> int:
        return int((self._clock or time.time)() * 1000)

    # ---- reads --------------------------------------------------------------------------------

    def _fresh(self, strong: bool, force: bool = False) -> bool:
        """Catch up as the consistency level asks. Returns True when the answer may be stale."""
        self.replica.ensure_serving(strong)
        if self.replica.reloading is not None:
            return True  # a default read during a reload: the old table, said to be stale
        age = self.replica.seconds_since_catch_up()
        if not (strong or force):
            if age is not None and age < self.limits.staleness_ms / 1000:
                return False
            if not self.replica.pacer.due(age):
                return True  # throttled: from memory, older than the bound, and said to be
        try:
            self.replica.catch_up()
        except (LogUnavailable, Restoring) as exc:  # Restoring: this catch-up found that a reload is needed
            if strong and isinstance(exc, LogUnavailable) and self.replica.pacer.throttled:
                raise LogThrottled(f"{exc}", self.replica.pacer.retry_after_s()) from exc
            if strong:
                raise
            return True
        return False

    def _age_ms(self, stale: bool) -> int | None:
        """A stale answer's data age: since the last catch-up began."""
        age = self.replica.seconds_since_catch_up() if stale else None
        return None if age is None else max(0, round(age * 1000))

    def get(self, key: str, strong: bool = False, after: Mapping[int, int] | None = None) -> ReadResult:
        """The key's entry. ``after`` (a session's positions, see :func:`parse_positions`): answer
        only once those are applied here, so a client reads its own writes on any instance."""
        records.validate_key(key)
        self.replica.ensure_serving(strong=False)
        if after:
            self.replica.apply_past(after)
        caught_up = self.replica.catch_ups
        stale = self._fresh(strong)
        now = self.now_ms()
        entry = self.replica.table.get(key, now)
        if (entry is None and not stale and self.replica.catch_ups == caught_up
                and self.replica.pacer.miss_recheck_due(self.replica.seconds_since_catch_up())):
            # A miss is checked against the stream before it is answered: a key written a moment
            # ago through another instance is found, not reported absent for up to the bound. While
            # backing off, a few times per interval only: each check is a read request per partition.
            stale = self._fresh(strong=False, force=True)
            now = self.now_ms()
            entry = self.replica.table.get(key, now)
        return ReadResult(None if entry is None else self._resolve(entry), now, stale, self._age_ms(stale))

    def list(self, prefix: str = "", limit: int = 100, cursor: str | None = None, strong: bool = False,
             after: Mapping[int, int] | None = None) -> ListPage:
        if not 1 <= limit <= self.limits.max_list_limit:
            raise InvalidLimit(f"limit must be between 1 and {self.limits.max_list_limit}")
        start_after = _decode_cursor(cursor) if cursor else None
        self.replica.ensure_serving(strong=False)
        if after:
            self.replica.apply_past(after)
        stale = self._fresh(strong)
        now = self.now_ms()
        items: list[KeyInfo] = []
        next_cursor = None
        for key, entry in self.replica.table.scan(prefix, start_after, now):
            if len(items) == limit:
                next_cursor = _encode_cursor(items[-1].key)
                break
            items.append(KeyInfo(key, entry))
        return ListPage(items, next_cursor, now, stale, self._age_ms(stale))

    # ---- writes -------------------------------------------------------------------------------

    def put(
        self,
        key: str,
        value: bytes,
        content_type: str = records.DEFAULT_CONTENT_TYPE,
        ttl_seconds: float | None = None,
        precondition: Precondition | None = None,
    ) -> Outcome:
        return self.write(self.put_record(key, value, content_type, ttl_seconds, precondition))

    def put_record(self, key: str, value: bytes, content_type: str = records.DEFAULT_CONTENT_TYPE,
                   ttl_seconds: float | None = None, precondition: Precondition | None = None) -> Put:
        """The record a put appends (validated): :meth:`put`, or a batch (cache/pipeline.py)."""
        records.validate_key(key)
        if len(value) > self.limits.max_value_bytes:
            raise ValueTooLarge(f"the value is {len(value)} bytes; the limit is {self.limits.max_value_bytes}")
        if content_type == REF_CONTENT_TYPE:
            raise InvalidContentType(f"{REF_CONTENT_TYPE} is reserved for the references of big values")
        now = self.now_ms()
        expires = None if ttl_seconds is None else now + self.ttl_ms(ttl_seconds)
        mutation = Put(key, value, content_type or records.DEFAULT_CONTENT_TYPE, self._new_request_id(), now, expires, precondition)
        if self.values is not None and self._goes_by_reference(mutation):
            self.replica.ensure_serving(strong=True)  # no object for a write that cannot happen
            reference, reserved_type = self.values.by_reference(value, mutation.content_type)
            mutation = replace(mutation, value=reference, content_type=reserved_type)
        return mutation

    def _goes_by_reference(self, put: Put) -> bool:
        """Over the threshold; or under it but escaped past the record limit (a control character is
        six bytes of JSON): a value the stream cannot carry inline goes by reference."""
        if len(put.value) > self.limits.inline_max_bytes:
            return True
        if len(put.value) * 6 + 8192 < self.limits.max_record_bytes:  # cannot be too big: skip the trial
            return False
        try:
            records.encode(put, self.event_source, self.limits.max_record_bytes)
        except ValueTooLarge:
            return True
        return False

    def increment(self, key: str, by: int, ttl_seconds: float | None = None,
                  precondition: Precondition | None = None) -> Outcome:
        """Add ``by`` (a signed 64-bit integer) to the counter ``key``, decided in log order; the TTL
        applies only if this creates the key. :meth:`counter` reads the result."""
        return self.write(self.increment_record(key, by, ttl_seconds, precondition))

    def increment_record(self, key: str, by: int, ttl_seconds: float | None = None,
                         precondition: Precondition | None = None) -> Increment:
        records.validate_key(key)
        if isinstance(by, bool) or not isinstance(by, int) or not records.COUNTER_MIN <= by <= records.COUNTER_MAX:
            raise InvalidIncrement("increment must be a signed 64-bit integer")
        now = self.now_ms()
        expires = None if ttl_seconds is None else now + self.ttl_ms(ttl_seconds)
        return Increment(key, by, self._new_request_id(), now, expires, precondition)

    def counter(self, key: str) -> int | None:
        """The counter's value right after this instance applied an increment of it: what the record
        wrote, even if its TTL has already run out by this reader's clock (the answer reports it)."""
        entry = self.replica.table.get(key, 0)  # log-time state, not the reader's clock
        return None if entry is None else int(entry.value)

    def delete(self, key: str, precondition: Precondition | None = None) -> Outcome:
        return self.write(self.delete_record(key, precondition))

    def delete_record(self, key: str, precondition: Precondition | None = None) -> Delete:
        records.validate_key(key)
        return Delete(key, self._new_request_id(), self.now_ms(), precondition)

    def touch(self, key: str, ttl_seconds: float | None, precondition: Precondition | None = None) -> Outcome:
        """Give the value ``key`` holds a new TTL (``None``: no expiry) without rewriting it, decided
        in log order: NOT_FOUND when absent or expired then; the version (ETag) stays the value's."""
        return self.write(self.touch_record(key, ttl_seconds, precondition))

    def touch_record(self, key: str, ttl_seconds: float | None, precondition: Precondition | None = None) -> Touch:
        records.validate_key(key)
        now = self.now_ms()
        expires = None if ttl_seconds is None else now + self.ttl_ms(ttl_seconds)
        return Touch(key, self._new_request_id(), now, expires, precondition)

    def position_after_write(self, key: str) -> Position | None:
        """The session position to answer a write of ``key`` with: the last record this instance has
        applied in the key's partition, which is the write's own record or a later one. A read that
        carries it (``Streamcache-After``) sees the write, on whichever instance it lands."""
        partition = self.replica.log.partition_for(key)
        applied = self.replica.table.next_offset(partition)
        return Position(partition, applied - 1) if applied > 0 else None

    def ttl_ms(self, ttl_seconds: float) -> int:
        """Validate a TTL in seconds and return it in whole milliseconds."""
        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, (int, float)):
            raise InvalidTTL("ttl must be a number of seconds")
        if not 0 < ttl_seconds <= self.limits.max_ttl_seconds or ttl_seconds != ttl_seconds:
            raise InvalidTTL(f"ttl must be more than 0 and at most {self.limits.max_ttl_seconds} seconds")
        return max(1, round(ttl_seconds * 1000))

    def write(self, mutation: Mutation) -> Outcome:
        """Append ``mutation``'s record and answer the outcome of applying it (the write path above)."""
        prepared = self.prepare_write(mutation)
        if isinstance(prepared, Outcome):
            return prepared
        encoded, own = prepared
        try:
            position = self.replica.log.append(mutation.key, encoded)
        except OutcomeUnknown as unknown:
            return self._settle(mutation, unknown)
        return self.finish_write(position, own)

    def prepare_write(self, mutation: Mutation) -> tuple[bytes, Mutation] | Outcome:
        """The record to append for ``mutation`` and what every replica decodes of it, or the
        outcome when nothing is to be appended."""
        self.replica.ensure_serving(strong=True)  # nothing is appended while reloading or refusing
        pre = mutation.precondition
        if pre is not None and pre.kind is PreconditionKind.MATCH and pre.version is None:
            # If-Match with a tag we never issued fails whatever the key holds: answer the 412 from a
            # linearizable read, with the key's current version, and write nothing.
            entry = self.get(mutation.key, strong=True).entry
            return Outcome(OutcomeKind.PRECONDITION_FAILED, mutation.key, entry and entry.version,
                           entry and entry.expires_at_ms)
        encoded = records.encode(mutation, self.event_source, self.limits.max_record_bytes)
        # Decoded now, as every replica decodes it from the log: the CPU is warm before the wait for
        # the broker and cold after it, where the same work costs about three times as long.
        return encoded, records.decode(encoded)

    def finish_write(self, position: Position, own: Mutation) -> Outcome:
        """The outcome of our record ``own``, acknowledged at ``position``, applied in log order."""
        try:
            return self.replica.apply_own(position, own, own.request_id)
        except (LogUnavailable, Restoring, LogMismatch) as exc:
            # The record is on the stream; only its outcome (created or replaced, 412 or not) is
            # unknown here. Never "stream_unavailable": that promises nothing happened.
            raise OutcomeUnknown(f"the record landed at {position}, but its outcome could not be read "
                                 f"back: {exc}", position) from exc

    def _settle(self, mutation: Mutation, unknown: OutcomeUnknown) -> Outcome:
        """An append whose answer was lost: look for the record on the stream. Found, its outcome
        in log order is the answer (it landed); not found, the outcome stays unknown (it may not
        have landed, or still be on its way), and so does the answer: never a guess."""
        try:
            self.replica.catch_up()
        except (LogUnavailable, Restoring, LogMismatch):
            raise unknown from None
        partition = self.replica.log.partition_for(mutation.key)
        outcome = self.replica.table.outcome_for(partition, mutation.request_id)
        if outcome is None:
            raise unknown
        return outcome


def parse_positions(raw: str) -> dict[int, int]:
    """A session's positions, ``P-O[,P-O...]`` (what writes answer in ``Streamcache-Position``):
    partition -> the offset that must be applied. The same partition twice keeps the larger."""
    positions: dict[int, int] = {}
    for part in raw.split(","):
        p, sep, o = part.strip().partition("-")
        if not sep or not (p.isascii() and p.isdigit() and o.isascii() and o.isdigit()):
            raise InvalidPosition(f"not a position list: {raw[:100]!r} (expected P-O[,P-O...], as "
                                  "Streamcache-Position answers)")
        positions[int(p)] = max(int(o), positions.get(int(p), -1))
    return positions


def format_positions(positions: Mapping[int, int]) -> str:
    return ",".join(f"{p}-{o}" for p, o in sorted(positions.items()))


def parse_ttl(raw: str) -> float:
    """Parse a TTL given as text (query string, CLI) into seconds."""
    try:
        value = float(raw)
    except ValueError:
        raise InvalidTTL(f"ttl must be a number of seconds, not {raw!r}") from None
    return value


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidCursor("the cursor is not one this API returned") from None
