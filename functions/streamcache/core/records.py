"""Mutation records and their codec: one CloudEvents 1.0 event (structured JSON mode) per stream record.

OCI Streaming's native API carries no record headers, so each event stands alone in the record
value; the record key is the cache key (UTF-8), which keeps a key in one partition.

Wire shape of a put (``data`` or ``data_base64``, never both)::

    {"specversion": "1.0", "type": "io.streamcache.put.v1", "source": "/streamcache",
     "id": "<request id>", "time": "2026-11-23T20:00:00.000Z", "subject": "<key>",
     "datacontenttype": "text/plain", "data": "hello",
     "expiresat": "2026-11-23T20:01:00.000Z", "ifmatch": "0-41"}

``data`` holds the value itself when that round-trips byte for byte: canonical JSON for a JSON
content type, a string for UTF-8 text of any other type. Everything else is ``data_base64``.
Preconditions travel as the extension attributes ``ifmatch`` (a version, or ``*`` = must exist)
and ``ifnonematch`` (``*`` = must not exist). A touch (``io.streamcache.touch.v1``) carries no data,
only ``expiresat`` (absent: the expiry is removed). A big value's put carries no data but the ``dataref``
extension with ``datasize`` and ``datadigest``; in memory it is a :class:`Put` whose value is the
reference, of the reserved content type :data:`~.value_refs.REF_CONTENT_TYPE` (see :mod:`.value_refs`).
"""

from __future__ import annotations

import base64
import binascii
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple, Union

import orjson

from streamcache.core.errors import InvalidKey, InvalidPrecondition, InvalidRequest, InvalidVersion, RecordError, ValueTooLarge
from streamcache.core.value_refs import REF_CONTENT_TYPE, decode_ref, ref_from_event

SPEC_VERSION = "1.0"
PUT_TYPE = "io.streamcache.put.v1"
DELETE_TYPE = "io.streamcache.delete.v1"
INCREMENT_TYPE = "io.streamcache.increment.v1"
TOUCH_TYPE = "io.streamcache.touch.v1"
#: A counter is a signed 64-bit integer, stored as its decimal text.
COUNTER_MIN, COUNTER_MAX = -(2**63), 2**63 - 1
DEFAULT_SOURCE = "/streamcache"
MAX_KEY_BYTES = 512
DEFAULT_CONTENT_TYPE = "application/octet-stream"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
# C0 controls, DEL and C1 controls: they break logs, headers and terminals.
_CONTROL = frozenset(chr(c) for c in [*range(0x20), *range(0x7F, 0xA0)])


class Position(NamedTuple):
    """Where a record sits in the log. A key's version is the position of its last write."""

    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.partition}-{self.offset}"


def parse_version(text: str) -> Position:
    """Parse a version as shown to clients (``"2-157"``; quotes and a ``W/`` prefix tolerated)."""
    raw = text.strip()
    if raw.startswith("W/"):
        raw = raw[2:]
    raw = raw.strip('"')
    part, sep, off = raw.partition("-")
    if not sep or not part.isdigit() or not off.isdigit() or not part.isascii() or not off.isascii():
        raise InvalidVersion(f"not a version: {text!r} (expected the ETag of an earlier answer)")
    return Position(int(part), int(off))


class PreconditionKind(StrEnum):
    MATCH = "match"  # the key's version is the one given
    EXISTS = "exists"  # the key has a value (If-Match: *)
    ABSENT = "absent"  # the key has no value (If-None-Match: *)


@dataclass(frozen=True, slots=True)
class Precondition:
    """A condition checked at apply time: ``match`` a version, the key must ``exist``, or be ``absent``."""

    kind: PreconditionKind
    version: Position | None = None


IF_EXISTS = Precondition(PreconditionKind.EXISTS)
IF_ABSENT = Precondition(PreconditionKind.ABSENT)
#: If-Match with an entity-tag no record ever had: fails whatever the key holds. Never written to
#: the stream (the writer answers 412 without appending; see CacheService).
NEVER = Precondition(PreconditionKind.MATCH, None)


def if_match(version: Position) -> Precondition:
    return Precondition(PreconditionKind.MATCH, version)


def parse_precondition(match: object, none_match: object, *, allow_absent: bool = True) -> Precondition | None:
    """The one reading of If-Match / If-None-Match, wherever they arrive: HTTP headers, the fields of
    a direct invoke, the attributes of a record. ``*`` may be surrounded by spaces; If-Match takes
    one version (an ETag we issued); If-None-Match takes only ``*``, and only where ``allow_absent``."""
    if match is not None and none_match is not None:
        # RFC 9110 13.2.2: If-Match is evaluated first, then If-None-Match. "*" or a version means the
        # key exists, and If-None-Match: * means it does not: together they can never both hold.
        parse_precondition(match, None)
        parse_precondition(None, none_match, allow_absent=allow_absent)
        return NEVER
    if none_match is not None:
        if not isinstance(none_match, str) or none_match.strip() != "*":
            raise InvalidPrecondition("only If-None-Match: * (create if absent) is supported")
        if not allow_absent:
            raise InvalidPrecondition("this operation supports If-Match only")
        return IF_ABSENT
    if match is None:
        return None
    if not isinstance(match, str):
        raise InvalidPrecondition("If-Match must be a version string or *")
    if not match.strip():
        raise InvalidPrecondition("If-Match is empty: give the version (ETag) to match, or *")
    if match.strip() == "*":
        return IF_EXISTS
    if "," in match:
        raise InvalidPrecondition("If-Match takes one version")
    try:
        return if_match(parse_version(match))
    except InvalidVersion:
        if _ENTITY_TAG.fullmatch(match.strip()):
            return NEVER  # a well-formed entity-tag we never issued: it can match no version (RFC 9110)
        raise


#: ``W/"..."`` or ``"..."`` (RFC 9110 entity-tag): a well-formed tag that is not a version never matches.
_ENTITY_TAG = re.compile(r'(?:W/)?"[\x21\x23-\x7e\x80-\uffff]*"')


@dataclass(frozen=True, slots=True)
class Put:
    """Set ``key`` to ``value``. ``expires_at_ms`` is absolute (the writer adds the TTL to its clock)."""

    key: str
    value: bytes
    content_type: str
    request_id: str
    ts_ms: int
    expires_at_ms: int | None = None
    precondition: Precondition | None = None


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove ``key``."""

    key: str
    request_id: str
    ts_ms: int
    precondition: Precondition | None = None


@dataclass(frozen=True, slots=True)
class Increment:
    """Add ``by`` to the integer ``key`` holds (absent: 0), decided when applied, in log order: the
    record carries the delta, never the result. ``expires_at_ms`` applies only if it creates the key."""

    key: str
    by: int
    request_id: str
    ts_ms: int
    expires_at_ms: int | None = None
    precondition: Precondition | None = None


@dataclass(frozen=True, slots=True)
class Touch:
    """Set only the expiry of the value ``key`` holds (``None``: remove it), decided when applied:
    absent (or expired) keys stay absent, and the value and its version do not change."""

    key: str
    request_id: str
    ts_ms: int
    expires_at_ms: int | None = None
    precondition: Precondition | None = None


Mutation = Union[Put, Delete, Increment, Touch]
_TYPES = {Put: PUT_TYPE, Delete: DELETE_TYPE, Increment: INCREMENT_TYPE, Touch: TOUCH_TYPE}


def validate_key(key: str) -> str:
    """Return ``key`` if it is a valid cache key, else raise :class:`InvalidKey` saying why."""
    if not key:
        raise InvalidKey("the key is empty")
    if len(key) <= MAX_KEY_BYTES and key.isascii() and key.isprintable():
        return key  # the common case, decided in C: printable ASCII has no control characters
    if len(key) * 4 > MAX_KEY_BYTES and len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"the key is longer than {MAX_KEY_BYTES} UTF-8 bytes")
    bad = next((c for c in key if c in _CONTROL or "\ud800" <= c <= "\udfff"), None)
    if bad is not None:
        raise InvalidKey(f"the key contains the character U+{ord(bad):04X}, which is not allowed")
    return key


def format_time(ms: int) -> str:
    """RFC 3339 UTC with milliseconds, as CloudEvents ``time`` wants it."""
    return _format_second(ms // 1000) + f"{ms % 1000:03d}Z"


@lru_cache(maxsize=1024)
def _format_second(seconds: int) -> str:
    # Cached: every write formats its time, and writes of one second share all but the milliseconds
    # (strftime was 2.4 us of a PUT's CPU; a cache hit is 0.4).
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.")


def parse_time(text: str) -> int:
    """Inverse of :func:`format_time`; also accepts any RFC 3339 timestamp with an offset."""
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return (dt - _EPOCH) // _MS


@lru_cache(maxsize=256)
def is_json_type(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _data_fields(value: bytes, content_type: str) -> dict:
    if is_json_type(content_type):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            parsed = _NOT_JSON
        if parsed is not _NOT_JSON and _dumps_or_none(parsed) == value:
            return {"data": parsed}
    else:
        try:
            return {"data": value.decode("utf-8")}
        except UnicodeDecodeError:
            pass
    return {"data_base64": base64.b64encode(value).decode("ascii")}


_NOT_JSON = object()


def _dumps_or_none(value: object) -> bytes | None:
    """orjson reads JSON nested up to 1024 levels but writes only 254: such a value goes as bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return None


def encode(mutation: Mutation, source: str = DEFAULT_SOURCE, max_bytes: int | None = None) -> bytes:
    """Encode a mutation as the bytes of one stream record value.

    Raises :class:`ValueTooLarge` when ``max_bytes`` is given and the record would exceed it.
    """
    event: dict = {
        "specversion": SPEC_VERSION,
        "type": _TYPES[type(mutation)],
        "source": source,
        "id": mutation.request_id,
        "time": format_time(mutation.ts_ms),
        "subject": mutation.key,
    }
    if isinstance(mutation, Put):
        if mutation.content_type == REF_CONTENT_TYPE:  # a big value: the reference, not the bytes (value_refs)
            event.update(decode_ref(mutation.value).event_fields())
        else:
            event["datacontenttype"] = mutation.content_type
            event.update(_data_fields(mutation.value, mutation.content_type))
        if mutation.expires_at_ms is not None:
            event["expiresat"] = format_time(mutation.expires_at_ms)
    elif isinstance(mutation, Increment):
        event["datacontenttype"] = "application/json"
        event["data"] = {"by": mutation.by}
        if mutation.expires_at_ms is not None:
            event["expiresat"] = format_time(mutation.expires_at_ms)
    elif isinstance(mutation, Touch) and mutation.expires_at_ms is not None:  # no expiresat: remove it
        event["expiresat"] = format_time(mutation.expires_at_ms)
    pre = mutation.precondition
    if pre is not None:
        if pre.kind is PreconditionKind.MATCH:
            if pre.version is None:
                raise InvalidPrecondition("a precondition that can never hold is not written to the stream")
            event["ifmatch"] = str(pre.version)
        elif pre.kind is PreconditionKind.EXISTS:
            event["ifmatch"] = "*"
        else:
            event["ifnonematch"] = "*"
    try:
        encoded = orjson.dumps(event)
    except TypeError:  # data nested deeper than orjson writes (254 levels): carry the bytes instead
        del event["data"]
        event["data_base64"] = base64.b64encode(mutation.value).decode("ascii")  # type: ignore[union-attr]
        encoded = orjson.dumps(event)
    if max_bytes is not None and len(encoded) > max_bytes:
        raise ValueTooLarge(
            f"the encoded record is {len(encoded)} bytes; the stream takes at most {max_bytes}"
        )
    return encoded


def decode(raw: bytes) -> Mutation:
    """Decode one stream record value. Raises :class:`RecordError` for anything that is not a valid
    streamcache event (see ``events/schemas``): every replica then skips it alike."""
    try:
        event = orjson.loads(raw)
        if event["specversion"] != SPEC_VERSION:
            raise ValueError(f"specversion {event['specversion']!r} is not {SPEC_VERSION}")
        kind = event["type"]
        key = event["subject"]
        request_id = event["id"]
        ts_ms = parse_time(event["time"])
        if not isinstance(key, str) or not isinstance(request_id, str) or not request_id:
            raise TypeError("subject and id must be strings")
        validate_key(key)
        if "ifmatch" in event and "ifnonematch" in event:  # the record contract allows one (events/schemas)
            raise ValueError("a record carries ifmatch or ifnonematch, not both")
        pre = parse_precondition(event.get("ifmatch"), event.get("ifnonematch")) if "ifmatch" in event or "ifnonematch" in event else None
        if kind == PUT_TYPE:
            content_type = event["datacontenttype"]
            if not isinstance(content_type, str) or not content_type or content_type == REF_CONTENT_TYPE:
                raise TypeError("datacontenttype must be a non-empty string (and not the reserved reference type)")
            content_type = sys.intern(content_type)  # one string for the few types a log holds, not one per record
            if "dataref" in event:  # a big value by reference: the table keeps the reference (value_refs)
                if "data" in event or "data_base64" in event:
                    raise ValueError("a put carries data, data_base64 or dataref, only one")
                value, content_type = ref_from_event(event).encode(), REF_CONTENT_TYPE
            elif ("data" in event) == ("data_base64" in event):
                raise ValueError("a put carries exactly one of data and data_base64")
            elif "data_base64" in event:
                value = base64.b64decode(event["data_base64"], validate=True)
            elif is_json_type(content_type):
                value = orjson.dumps(event["data"])
            elif isinstance(event["data"], str):
                value = event["data"].encode("utf-8")
            else:
                raise TypeError("data of a non-JSON content type must be a string")
            expires = event.get("expiresat")
            # Positional: this runs for every record of every replay, and keywords cost more.
            return Put(key, value, content_type, request_id, ts_ms, None if expires is None else parse_time(expires), pre)
        if kind == INCREMENT_TYPE:
            data = event["data"]
            by = data["by"] if isinstance(data, dict) and set(data) == {"by"} else None
            if not isinstance(by, int) or isinstance(by, bool) or not COUNTER_MIN <= by <= COUNTER_MAX:
                raise ValueError("an increment's data is {\"by\": a signed 64-bit integer}")
            if event.get("datacontenttype") != "application/json" or "data_base64" in event:
                raise ValueError("an increment carries its delta as JSON data")
            expires = event.get("expiresat")
            return Increment(key, by, request_id, ts_ms, None if expires is None else parse_time(expires), pre)
        if kind == DELETE_TYPE:
            if "data" in event or "data_base64" in event or "expiresat" in event:
                raise ValueError("a delete carries no data and no expiry")
            return Delete(key=key, request_id=request_id, ts_ms=ts_ms, precondition=pre)
        if kind == TOUCH_TYPE:
            if "data" in event or "data_base64" in event:
                raise ValueError("a touch carries no data: only the expiry changes")
            expires = event.get("expiresat")
            return Touch(key, request_id, ts_ms, None if expires is None else parse_time(expires), pre)
        raise RecordError(f"unknown event type {kind!r}")
    except RecordError:
        raise
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, binascii.Error, InvalidRequest) as exc:
        raise RecordError(f"not a streamcache record: {exc}") from exc
