"""Bulk-import lines: split a stream of byte chunks into numbered lines, and turn one JSON Lines line
into a value to put. Pure: no I/O, no clock (the importer adds the request id and the time).

One line, one key::

    {"key": "user/1", "value": {"any": "JSON"}, "ttl": 3600}
    {"key": "greeting", "value": "hello", "content_type": "text/plain"}
    {"key": "blob", "value_base64": "AAEC", "content_type": "image/png"}
    {"key": "session/9", "value": "x", "content_type": "text/plain", "expires_at": "2026-11-27T09:00:00.000Z"}

The value rules are the direct-invoke API's (``invoke_api.py``): ``value`` is any JSON and is stored
as ``application/json``, unless ``content_type`` names a non-JSON type and ``value`` is a string,
which is then stored as that text; ``value_base64`` stores bytes (``content_type`` default
``application/octet-stream``). ``ttl`` is in seconds from the import; ``expires_at`` (RFC 3339) is an
absolute expiry instead, which is what an export writes (:func:`export_line`), so that an export
imported again gives the same entries byte for byte, content types and expiries included. Any other
field makes the line bad, so that a typo (``"vlaue"``) is reported instead of silently storing
nothing useful.

Line numbers count every physical line (blank ones too, which are skipped), from 1, as editors do.
A line longer than the limit is reported bad without ever being held whole.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Iterable, Iterator

import orjson

from streamcache.core.errors import InvalidKey
from streamcache.core.records import DEFAULT_CONTENT_TYPE, format_time, is_json_type, parse_time, validate_key
from streamcache.core.value_refs import REF_CONTENT_TYPE

#: Longest line accepted: 4 MiB, four times the largest record OCI Streaming takes (an imported value
#: travels inline, so its record bounds it; JSON escapes can make its line several times longer).
MAX_LINE_BYTES = 4 * 1024 * 1024
_FIELDS = frozenset({"key", "value", "value_base64", "content_type", "ttl", "expires_at"})
_BOM = b"\xef\xbb\xbf"


class TooLong:
    """Stands in for a line that was longer than the limit (its bytes were dropped while reading)."""

    def __repr__(self) -> str:
        return "TOO_LONG"


TOO_LONG = TooLong()


def split_lines(chunks: Iterable[bytes], max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | TooLong]]:
    """``(line number, line)`` for every line of the concatenated ``chunks``, without its ``\\n`` (or
    ``\\r\\n``), blank lines included. A line over ``max_line_bytes`` comes out as ``TOO_LONG``; what
    is held at any time is bounded by a few times ``max_line_bytes`` plus a chunk, whatever the
    object's size."""
    number = 0
    pending = b""
    dropping = False  # inside an over-long line: discard until its end
    for chunk in chunks:
        if b"\n" not in chunk:  # the middle of a line: grow it, or drop it once it is too long
            if not dropping and len(pending) + len(chunk) > max_line_bytes:
                dropping, pending = True, b""
            elif not dropping:
                pending += chunk
            continue
        buffer = pending + chunk if pending else chunk
        pieces = buffer.split(b"\n")
        pending = pieces.pop()
        for piece in pieces:
            number += 1
            if dropping or len(piece) > max_line_bytes:
                dropping = False
                yield number, TOO_LONG
            else:
                yield number, _clean(piece, number)
        if len(pending) > max_line_bytes:
            dropping, pending = True, b""
    if pending or dropping:
        number += 1
        yield number, TOO_LONG if dropping else _clean(pending, number)


def _clean(line: bytes, number: int) -> bytes:
    if number == 1:
        line = line.removeprefix(_BOM)  # some editors start UTF-8 files with a byte order mark
    return line[:-1] if line.endswith(b"\r") else line


def is_blank(line: bytes) -> bool:
    return not line.strip()


class BadLine(ValueError):
    """A line that cannot be imported; the message is the reason, for the report."""


@dataclass(frozen=True, slots=True)
class ImportItem:
    """One valid line: what to put. ``ttl_ms`` is relative (the importer adds its clock);
    ``expires_at_ms`` is absolute. At most one of them is set."""

    key: str
    value: bytes
    content_type: str
    ttl_ms: int | None
    expires_at_ms: int | None = None

    def expiry(self, now_ms: int) -> int | None:
        """The absolute expiry of this item imported at ``now_ms``."""
        return self.expires_at_ms if self.ttl_ms is None else now_ms + self.ttl_ms


def parse_line(line: bytes, max_value_bytes: int, max_ttl_seconds: int) -> ImportItem:
    """Parse one non-blank line, or raise :class:`BadLine` with a short reason."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BadLine(f"invalid JSON: {exc}") from None
    if not isinstance(item, dict):
        raise BadLine(f"a line must be a JSON object, not {_json_kind(item)}")
    unknown = sorted(set(item) - _FIELDS)
    if unknown:
        raise BadLine(f"unknown field {unknown[0][:64]!r} (fields: key, value, value_base64, content_type, ttl, "
                      "expires_at)")
    key = item.get("key")
    if not isinstance(key, str):
        raise BadLine("key is missing or not a string")
    try:
        validate_key(key)
    except InvalidKey as exc:
        raise BadLine(f"key: {exc}") from None
    content_type = item.get("content_type")
    if content_type is not None and (not isinstance(content_type, str) or not content_type.strip()
                                     or any(ord(c) < 0x20 or ord(c) == 0x7F for c in content_type)):
        raise BadLine("content_type must be a non-empty string without control characters")
    if content_type == REF_CONTENT_TYPE:
        raise BadLine(f"content_type {REF_CONTENT_TYPE} is reserved for the references of big values")
    value, content_type = _value(item, content_type)
    if len(value) > max_value_bytes:
        raise BadLine(f"the value is {len(value)} bytes; the limit is {max_value_bytes}")
    if item.get("ttl") is not None and item.get("expires_at") is not None:
        raise BadLine("give ttl or expires_at, not both")
    return ImportItem(key, value, content_type, _ttl_ms(item.get("ttl"), max_ttl_seconds),
                      _expires_at_ms(item.get("expires_at")))


def _expires_at_ms(raw: object) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadLine("expires_at must be an RFC 3339 time such as 2026-11-27T09:00:00.000Z")
    try:
        return parse_time(raw)
    except ValueError:
        raise BadLine(f"expires_at {raw[:64]!r} is not an RFC 3339 time such as 2026-11-27T09:00:00.000Z") from None


def export_line(key: str, value: bytes, content_type: str, expires_at_ms: int | None) -> bytes:
    """The import line that stores exactly this entry again (without a newline): the value as JSON
    when it is compact JSON stored as ``application/json``, as text when it is UTF-8 of a text type,
    else as base64; the expiry as ``expires_at``."""
    line: dict = {"key": key}
    if content_type == "application/json" and _compact_json(value):
        line["value"] = orjson.loads(value)
    elif not is_json_type(content_type) and _utf8(value) is not None:
        line["value"], line["content_type"] = _utf8(value), content_type
    else:
        line["value_base64"], line["content_type"] = base64.b64encode(value).decode("ascii"), content_type
    if expires_at_ms is not None:
        line["expires_at"] = format_time(expires_at_ms)
    return orjson.dumps(line)


def _compact_json(value: bytes) -> bool:
    """True when the bytes are what the importer writes for their parsed value (orjson's output)."""
    try:
        return orjson.dumps(orjson.loads(value)) == value
    except (orjson.JSONDecodeError, TypeError):
        return False


def _utf8(value: bytes) -> str | None:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _value(item: dict, content_type: str | None) -> tuple[bytes, str]:
    has_value, has_base64 = "value" in item, "value_base64" in item
    if has_value == has_base64:
        raise BadLine("a line needs exactly one of value (any JSON) and value_base64")
    if has_base64:
        raw = item["value_base64"]
        if not isinstance(raw, str):
            raise BadLine("value_base64 must be a string")
        try:
            return base64.b64decode(raw, validate=True), content_type or DEFAULT_CONTENT_TYPE
        except (binascii.Error, ValueError):
            raise BadLine("value_base64 is not valid base64") from None
    value = item["value"]
    if content_type is not None and not is_json_type(content_type) and isinstance(value, str):
        return value.encode("utf-8"), content_type
    return orjson.dumps(value), "application/json"


def _ttl_ms(ttl: object, max_ttl_seconds: int) -> int | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not 0 < ttl <= max_ttl_seconds:
        raise BadLine(f"ttl must be a number of seconds, more than 0 and at most {max_ttl_seconds}")
    return max(1, round(ttl * 1000))


def _json_kind(value: object) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
