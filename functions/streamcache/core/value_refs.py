"""Big values by reference: a value over the inline threshold lives in an object, and the record, the
table and the snapshot carry a reference to it.

The object is content-addressed, ``values/<stream>/<sha256 hex>`` (the stream identity
percent-encoded into one segment, as snapshot names do), so writing the same value twice writes the
same object and a create-only ``put_new`` of it is idempotent.

On the stream the reference is the CloudEvents ``dataref`` extension (a URI-reference: the object's
name, relative to the cache's bucket and prefix) with two more extension attributes, ``datasize``
(bytes) and ``datadigest`` (``sha256:<hex>``); ``datacontenttype`` is the value's own type and the
event has no ``data``. In the table (and so in a snapshot) a referenced value is an entry of the
reserved content type :data:`REF_CONTENT_TYPE` whose bytes are the reference as canonical JSON: the
state machine needs no other column, and every replica stores the same bytes for the same record.
A client can never write that content type itself (the writer refuses it, a record carrying it
inline is not ours), so an entry of that type is always a reference a writer made.
"""

from __future__ import annotations

import hashlib
import re
from typing import NamedTuple
from urllib.parse import quote

import orjson

#: The content type of a table entry that holds a reference rather than the value.
REF_CONTENT_TYPE = "application/vnd.streamcache.dataref+json"
VALUES_ROOT = "values/"
_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_NAME = re.compile(r"values/([^/]+)/([0-9a-f]{64})")


class ValueRef(NamedTuple):
    """Where a big value lives and what it is."""

    name: str  # the object name (the dataref)
    size: int
    digest: str  # "sha256:<64 hex>"
    content_type: str

    @property
    def hex(self) -> str:
        return self.digest[len("sha256:"):]

    def encode(self) -> bytes:
        """The bytes a table entry of :data:`REF_CONTENT_TYPE` holds (canonical: sorted keys)."""
        return orjson.dumps({"contenttype": self.content_type, "dataref": self.name, "digest": self.digest,
                             "size": self.size}, option=orjson.OPT_SORT_KEYS)

    def event_fields(self) -> dict:
        """The CloudEvents attributes of a put that carries this reference instead of ``data``."""
        return {"datacontenttype": self.content_type, "dataref": self.name, "datasize": self.size,
                "datadigest": self.digest}


def values_prefix(stream: str) -> str:
    """The prefix under which the stream's value objects live."""
    return f"{VALUES_ROOT}{quote(stream, safe='')}/"


def ref_for(stream: str, value: bytes, content_type: str) -> ValueRef:
    """The reference of ``value`` (content-addressed: the name follows from the digest)."""
    hex_digest = hashlib.sha256(value).hexdigest()
    return ValueRef(f"{values_prefix(stream)}{hex_digest}", len(value), f"sha256:{hex_digest}", content_type)


def digest_of_name(name: str) -> str | None:
    """The hex digest a value object's name carries, ``None`` for any other name."""
    match = _NAME.fullmatch(name)
    return None if match is None else match.group(2)


def matches(ref: ValueRef, data: bytes) -> bool:
    """Whether ``data`` is the value ``ref`` names (size and digest): an object read back is checked."""
    return len(data) == ref.size and hashlib.sha256(data).hexdigest() == ref.hex


def decode_ref(raw: bytes) -> ValueRef:
    """Inverse of :meth:`ValueRef.encode`. Raises ``ValueError`` for anything else."""
    doc = orjson.loads(raw)
    return _checked(doc.get("dataref"), doc.get("size"), doc.get("digest"), doc.get("contenttype"))


def ref_from_event(event: dict) -> ValueRef:
    """The reference a put event carries (``dataref``, ``datasize``, ``datadigest``). Raises
    ``ValueError`` or ``TypeError`` when they are not a reference a writer of ours makes."""
    return _checked(event["dataref"], event.get("datasize"), event.get("datadigest"), event.get("datacontenttype"))


def _checked(name: object, size: object, digest: object, content_type: object) -> ValueRef:
    if not isinstance(name, str) or not isinstance(digest, str) or not isinstance(content_type, str) or not content_type:
        raise TypeError("a reference has a string dataref, datadigest and datacontenttype")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError("datasize must be a non-negative integer")
    found = _DIGEST.fullmatch(digest)
    if found is None or digest_of_name(name) != found.group(1):
        raise ValueError("dataref must be values/<stream>/<hex> of its datadigest sha256:<hex>")
    if content_type == REF_CONTENT_TYPE:
        raise ValueError("a reference cannot name a reference")
    return ValueRef(name, size, digest, content_type)
