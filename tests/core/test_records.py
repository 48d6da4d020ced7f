"""The record codec, key validation, versions and timestamps (core/records.py).

Records are the contract between every writer, every replica and the compactor, so the codec must
round-trip every value byte for byte and reject anything that is not ours with a RecordError only.
"""

from __future__ import annotations

import base64

import orjson
import pytest
from hypothesis import given, settings, strategies as st

from streamcache.core.errors import InvalidKey, InvalidRequest, InvalidVersion, RecordError, ValueTooLarge
from streamcache.core.records import (
    DEFAULT_CONTENT_TYPE,
    DEFAULT_SOURCE,
    DELETE_TYPE,
    IF_ABSENT,
    IF_EXISTS,
    MAX_KEY_BYTES,
    PUT_TYPE,
    Delete,
    Position,
    Put,
    decode,
    encode,
    format_time,
    if_match,
    parse_time,
    parse_version,
    validate_key,
)

T0 = 1_790_000_000_123  # a writer timestamp in ms, with a non-zero millisecond part


def put(value: bytes = b"hello", content_type: str = "text/plain", **kw) -> Put:
    fields = dict(key="user/1", value=value, content_type=content_type, request_id="req-1", ts_ms=T0)
    fields.update(kw)
    return Put(**fields)


def wire(mutation, **kw) -> dict:
    """The CloudEvent as it travels on the stream."""
    return orjson.loads(encode(mutation, **kw))


# ---- codec round-trips ------------------------------------------------------------------------


PRECONDITIONS = [None, IF_EXISTS, IF_ABSENT, if_match(Position(2, 157))]


@pytest.mark.parametrize("precondition", PRECONDITIONS, ids=["none", "exists", "absent", "match"])
@pytest.mark.parametrize("expires", [None, T0 + 60_000], ids=["no-expiry", "expiry"])
def test_put_round_trips_with_every_precondition_and_expiry(precondition, expires):
    mutation = put(expires_at_ms=expires, precondition=precondition)
    assert decode(encode(mutation)) == mutation


@pytest.mark.parametrize("precondition", PRECONDITIONS, ids=["none", "exists", "absent", "match"])
def test_delete_round_trips_with_every_precondition(precondition):
    mutation = Delete(key="user/1", request_id="req-2", ts_ms=T0, precondition=precondition)
    assert decode(encode(mutation)) == mutation


def test_put_is_a_cloudevent_with_the_documented_attributes():
    event = wire(put(expires_at_ms=T0 + 60_000, precondition=if_match(Position(0, 41))), source="/instance-a")
    assert event == {
        "specversion": "1.0",
        "type": PUT_TYPE,
        "source": "/instance-a",
        "id": "req-1",
        "time": format_time(T0),
        "subject": "user/1",
        "datacontenttype": "text/plain",
        "data": "hello",
        "expiresat": format_time(T0 + 60_000),
        "ifmatch": "0-41",
    }


def test_delete_carries_no_data_and_the_default_source():
    event = wire(Delete(key="k", request_id="r", ts_ms=T0))
    assert event["type"] == DELETE_TYPE and event["source"] == DEFAULT_SOURCE
    assert not {"data", "data_base64", "datacontenttype", "expiresat", "ifmatch", "ifnonematch"} & event.keys()


@pytest.mark.parametrize(
    "precondition, attributes",
    [(IF_EXISTS, {"ifmatch": "*"}), (IF_ABSENT, {"ifnonematch": "*"}), (if_match(Position(3, 9)), {"ifmatch": "3-9"}), (None, {})],
    ids=["exists", "absent", "match", "none"],
)
def test_preconditions_travel_as_extension_attributes(precondition, attributes):
    event = wire(put(precondition=precondition))
    assert {k: event[k] for k in ("ifmatch", "ifnonematch") if k in event} == attributes


@pytest.mark.parametrize("content_type", ["application/json", "application/problem+json", "Application/JSON; charset=utf-8"])
def test_canonical_json_travels_as_data(content_type):
    value = orjson.dumps({"a": [1, 2.5, None, "é"]})
    event = wire(put(value, content_type))
    assert event["data"] == {"a": [1, 2.5, None, "é"]} and "data_base64" not in event
    assert decode(encode(put(value, content_type))).value == value


@pytest.mark.parametrize(
    "value",
    [b'{"a": 1}', b'{"a":1}\n', b"1e2", b"1.50", b"not json", b"", b'"\\u00e9"', b"184467440737095516150"],
    ids=["spaces", "newline", "exponent", "trailing-zero", "not-json", "empty", "escaped", "big-int"],
)
def test_non_canonical_json_is_kept_byte_for_byte_as_base64(value):
    mutation = put(value, "application/json")
    event = wire(mutation)
    assert "data" not in event and base64.b64decode(event["data_base64"]) == value
    assert decode(encode(mutation)).value == value


@pytest.mark.parametrize("value", [b"plain text", "héllo ✓ 😀".encode(), b"", b"{not json}"])
def test_utf8_text_travels_as_a_string(value):
    event = wire(put(value, "text/plain"))
    assert event["data"] == value.decode("utf-8")
    assert decode(encode(put(value, "text/plain"))).value == value


@pytest.mark.parametrize(
    "value",
    [b"\xff\xfe\x00", b"\xc3", b"\xed\xa0\x80", bytes(range(256))],
    ids=["bom-ish", "truncated", "encoded-surrogate", "every-byte"],
)
@pytest.mark.parametrize("content_type", ["text/plain", DEFAULT_CONTENT_TYPE, "application/json"])
def test_invalid_utf8_travels_as_base64(value, content_type):
    mutation = put(value, content_type)
    assert "data_base64" in wire(mutation)
    assert decode(encode(mutation)) == mutation


_keys = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\x7f"), min_size=1, max_size=40
)
_content_types = st.sampled_from(
    ["text/plain", "text/plain; charset=utf-8", "application/json", "application/vnd.x+json", DEFAULT_CONTENT_TYPE, "image/png"]
)
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(st.characters(blacklist_categories=("Cs",))),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
_values = st.binary(max_size=64) | st.text(max_size=32).map(lambda s: s.encode("utf-8", "surrogatepass")) | _json_values.map(orjson.dumps)
_preconditions = st.sampled_from([None, IF_EXISTS, IF_ABSENT]) | st.builds(
    lambda p, o: if_match(Position(p, o)), st.integers(0, 300), st.integers(0, 2**62)
)
_times = st.integers(0, 253_402_300_799_999)  # 1970 .. 9999-12-31T23:59:59.999Z


@settings(max_examples=300, deadline=None)
@given(
    key=_keys,
    value=_values,
    content_type=_content_types,
    request_id=st.text(min_size=1, max_size=20).filter(lambda s: not any("\ud800" <= c <= "\udfff" for c in s)),
    ts=_times,
    expires=st.none() | _times,
    precondition=_preconditions,
    is_delete=st.booleans(),
)
def test_any_mutation_round_trips(key, value, content_type, request_id, ts, expires, precondition, is_delete):
    if is_delete:
        mutation = Delete(key, request_id, ts, precondition)
    else:
        mutation = Put(key, value, content_type, request_id, ts, expires, precondition)
    assert decode(encode(mutation)) == mutation


# ---- size limit -------------------------------------------------------------------------------


def test_size_limit_is_on_the_encoded_record():
    mutation = put(b"x" * 100)
    size = len(encode(mutation))
    assert encode(mutation, max_bytes=size) == encode(mutation)
    with pytest.raises(ValueTooLarge) as raised:
        encode(mutation, max_bytes=size - 1)
    assert raised.value.status == 413 and raised.value.code == "value_too_large"
    assert str(size) in str(raised.value)


def test_base64_counts_against_the_limit():
    binary, text = put(b"\xff" * 300, DEFAULT_CONTENT_TYPE), put(b"a" * 300, DEFAULT_CONTENT_TYPE)
    limit = len(encode(text))
    encode(text, max_bytes=limit)
    with pytest.raises(ValueTooLarge):
        encode(binary, max_bytes=limit)


# ---- decoding what is not ours ----------------------------------------------------------------


def _event(**changes) -> bytes:
    event = orjson.loads(encode(put(precondition=if_match(Position(0, 1)), expires_at_ms=T0 + 1)))
    for name, value in changes.items():
        if value is _DROP:
            event.pop(name)
        else:
            event[name] = value
    return orjson.dumps(event)


_DROP = object()

GARBAGE = {
    "not-json": b"\x00\xffgarbage",
    "empty": b"",
    "json-array": b"[1, 2]",
    "json-number": b"42",
    "json-null": b"null",
    "json-string": b'"io.streamcache.put.v1"',
    "truncated": encode(put())[:-5],
    "no-type": _event(type=_DROP),
    "no-subject": _event(subject=_DROP),
    "no-id": _event(id=_DROP),
    "no-time": _event(time=_DROP),
    "unknown-type": _event(type="com.example.other"),
    "type-not-a-string": _event(type=["io.streamcache.put.v1"]),
    "subject-not-a-string": _event(subject=7),
    "id-not-a-string": _event(id={"a": 1}),
    "time-not-a-string": _event(time=17),
    "time-unparseable": _event(time="yesterday"),
    "time-without-zone": _event(time="2026-11-23T20:00:00.000"),
    "put-without-data": _event(data=_DROP),
    "text-data-not-a-string": _event(data=[1]),
    "bad-base64": orjson.dumps({**orjson.loads(_event(data=_DROP)), "data_base64": "***"}),
    "base64-not-a-string": orjson.dumps({**orjson.loads(_event(data=_DROP)), "data_base64": 5}),
    "expiry-unparseable": _event(expiresat="soon"),
    "expiry-not-a-string": _event(expiresat=12),
    "ifmatch-not-a-version": _event(ifmatch="latest"),
    "wrong-specversion": _event(specversion="0.3"),
    "no-specversion": _event(specversion=_DROP),
    "empty-id": _event(id=""),
    "invalid-key": _event(subject="a\x00b"),
    "empty-key": _event(subject=""),
    "both-data-kinds": orjson.dumps({**orjson.loads(_event()), "data_base64": "aGVsbG8="}),
    "delete-with-data": _event(type=DELETE_TYPE, ifmatch=_DROP, expiresat=_DROP),
    "delete-with-expiry": orjson.dumps({**orjson.loads(encode(Delete("k", "r", T0))), "expiresat": format_time(T0)}),
    "ifnonematch-not-star": _event(ifmatch=_DROP, ifnonematch="0-1"),
    "both-preconditions": _event(ifnonematch="*"),
    # Foreign producers can put any JSON type in any attribute; these must not escape as other errors
    # (an escaping error would stop every replica at this record).
    "ifmatch-not-a-string": _event(ifmatch=41),
    "content-type-not-a-string": _event(datacontenttype=5),
    "no-content-type": _event(datacontenttype=_DROP),
    # These decode without error today but must not: the stored content type would be answered as
    # a Content-Type header (events/schemas/put.v1.json: a string, minLength 1).
    "base64-with-content-type-not-a-string": orjson.dumps(
        {**orjson.loads(_event(data=_DROP)), "data_base64": "aGVsbG8=", "datacontenttype": 5}
    ),
    "empty-content-type": _event(datacontenttype=""),
}


@pytest.mark.parametrize("raw", GARBAGE.values(), ids=GARBAGE.keys())
def test_decode_rejects_anything_not_ours_with_record_error_only(raw):
    with pytest.raises(RecordError):
        decode(raw)


# ---- keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["a", "user/1", "with space", "~", "\u00a0nbsp", "é" * 256, "😀" * 128, "a" * MAX_KEY_BYTES, "a" * 509 + "€", "\ufffd"],
    ids=["one", "slash", "space", "tilde", "nbsp", "2-byte-max", "4-byte-max", "ascii-max", "mixed-max", "replacement"],
)
def test_valid_keys_are_returned_unchanged(key):
    assert validate_key(key) is key


@pytest.mark.parametrize(
    "key",
    ["a" * (MAX_KEY_BYTES + 1), "é" * 257, "😀" * 129, "a" * 510 + "€", "€" * 171],
    ids=["ascii", "2-byte", "4-byte", "mixed", "3-byte"],
)
def test_keys_over_512_utf8_bytes_are_rejected(key):
    with pytest.raises(InvalidKey, match="longer than 512"):
        validate_key(key)


def test_empty_key_is_rejected():
    with pytest.raises(InvalidKey, match="empty"):
        validate_key("")


CONTROL = [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]


@pytest.mark.parametrize("code", CONTROL, ids=[f"U+{c:04X}" for c in CONTROL])
def test_control_characters_are_rejected_and_named(code):
    with pytest.raises(InvalidKey) as raised:
        validate_key(f"ab{chr(code)}c")
    assert f"U+{code:04X}" in str(raised.value)


@pytest.mark.parametrize("key", ["\ud800", "\udfff", "a\udc00b", "\ud83d"], ids=["high-first", "low-last", "inside", "half-emoji"])
def test_lone_surrogates_are_rejected(key):
    with pytest.raises(InvalidKey, match=r"U\+D[89A-F]"):
        validate_key(key)


def test_invalid_key_is_a_client_mistake():
    with pytest.raises(InvalidRequest) as raised:
        validate_key("")
    assert (raised.value.status, raised.value.code) == (400, "invalid_key")


# ---- versions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, position",
    [("2-157", Position(2, 157)), ('"2-157"', Position(2, 157)), ('W/"0-0"', Position(0, 0)), (' "10-9" ', Position(10, 9))],
)
def test_versions_parse_with_or_without_etag_quoting(text, position):
    assert parse_version(text) == position


@pytest.mark.parametrize(
    "text",
    ["", "2", "2-", "-3", "a-1", "1-b", "1-2-3", "+1-2", "1 -2", "*", "١-٢", "²-1", 'W/"', "0x1-2"],
)
def test_anything_else_is_not_a_version(text):
    with pytest.raises(InvalidVersion) as raised:
        parse_version(text)
    assert raised.value.status == 400


@given(st.integers(0, 2**31), st.integers(0, 2**63))
def test_a_version_shown_to_clients_parses_back(partition, offset):
    position = Position(partition, offset)
    assert str(position) == f"{partition}-{offset}"
    assert parse_version(str(position)) == position
    assert parse_version(f'"{position}"') == position


# ---- timestamps -------------------------------------------------------------------------------


def test_format_time_is_rfc3339_utc_with_milliseconds():
    assert format_time(0) == "1970-01-01T00:00:00.000Z"
    assert format_time(1_790_000_000_123) == "2026-09-21T14:13:20.123Z"  # date -u -d @1790000000
    assert format_time(-1) == "1969-12-31T23:59:59.999Z"  # the millisecond before the epoch


@given(_times)
def test_times_round_trip(ms):
    assert parse_time(format_time(ms)) == ms


def test_parse_time_accepts_offsets_and_rejects_naive_times():
    assert parse_time("1970-01-01T02:00:00.500+02:00") == 500
    with pytest.raises(ValueError):
        parse_time("1970-01-01T00:00:00")
