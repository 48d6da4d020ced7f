"""The pure part of bulk import: splitting chunks into numbered lines, and parsing one line."""

from __future__ import annotations

import base64
import tracemalloc

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamcache.core.import_lines import TOO_LONG, BadLine, ImportItem, export_line, parse_line, split_lines

LIMITS = dict(max_value_bytes=1000, max_ttl_seconds=3600)


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` in chunks of the given sizes (cycled), as a store would deliver it."""
    chunks, at, i = [], 0, 0
    while at < len(data):
        size = sizes[i % len(sizes)]
        chunks.append(data[at : at + size])
        at, i = at + size, i + 1
    return chunks


@given(st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=30),
       st.lists(st.integers(1, 17), min_size=1, max_size=5), st.booleans())
def test_lines_come_out_whole_and_numbered_whatever_the_chunking(lines, sizes, trailing_newline):
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()  # a final newline ends the last line; it does not start another
    expected = [line.removesuffix(b"\r") for line in expected]
    if expected:
        expected[0] = expected[0].removeprefix(b"\xef\xbb\xbf")  # a byte order mark is dropped
    assert list(split_lines(cut(data, sizes))) == list(enumerate(expected, start=1))


def test_crlf_endings_and_a_bom_are_accepted():
    data = b'\xef\xbb\xbf{"a":1}\r\n\r\n{"b":2}\r\n'
    assert list(split_lines([data[:2], data[2:9], data[9:]])) == [(1, b'{"a":1}'), (2, b""), (3, b'{"b":2}')]


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64, 10_000])
def test_an_over_long_line_is_reported_and_the_next_lines_survive(chunk_size):
    data = b"short\n" + b"x" * 100 + b"\nafter\n" + b"y" * 50 + b"\n" + b"z" * 40
    out = list(split_lines(iter(cut(data, [chunk_size])), max_line_bytes=45))
    assert out == [(1, b"short"), (2, TOO_LONG), (3, b"after"), (4, TOO_LONG), (5, b"z" * 40)]


def test_memory_stays_bounded_by_the_line_limit_not_the_object_size():
    chunk = b"x" * (1 << 20)

    def object_of_256_mib_in_one_line_then_a_good_one():
        for _ in range(256):
            yield chunk
        yield b'\n{"key": "k", "value": 1}\n'

    tracemalloc.start()
    try:
        lines = list(split_lines(object_of_256_mib_in_one_line_then_a_good_one(), max_line_bytes=4 << 20))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == [(1, TOO_LONG), (2, b'{"key": "k", "value": 1}')]
    assert peak < 16 << 20  # a few times the line limit, not 256 MiB


def test_an_over_long_last_line_without_newline_is_reported():
    assert list(split_lines([b"ok\n", b"w" * 30, b"w" * 30], max_line_bytes=20)) == [(1, b"ok"), (2, TOO_LONG)]


def test_nothing_gives_no_lines():
    assert list(split_lines([])) == []
    assert list(split_lines([b""])) == []


# ---- one line ---------------------------------------------------------------------------------


def parse(obj) -> ImportItem:
    return parse_line(orjson.dumps(obj), **LIMITS)


def test_any_json_value_is_stored_as_json():
    assert parse({"key": "k", "value": {"a": [1, 2.5, None]}}) == ImportItem("k", b'{"a":[1,2.5,null]}', "application/json", None)
    assert parse({"key": "k", "value": "text"}) == ImportItem("k", b'"text"', "application/json", None)
    assert parse({"key": "k", "value": None}).value == b"null"


def test_a_string_with_a_non_json_content_type_is_stored_as_that_text():
    assert parse({"key": "k", "value": "héllo", "content_type": "text/plain; charset=utf-8"}) == \
        ImportItem("k", "héllo".encode(), "text/plain; charset=utf-8", None)
    # a JSON content type or a non-string value stays JSON, as the invoke API does it
    assert parse({"key": "k", "value": [1], "content_type": "text/plain"}).content_type == "application/json"
    assert parse({"key": "k", "value": "x", "content_type": "application/ld+json"}).value == b'"x"'


def test_value_base64_stores_bytes():
    raw = bytes(range(256))
    item = parse({"key": "k", "value_base64": base64.b64encode(raw).decode(), "content_type": "image/png"})
    assert item == ImportItem("k", raw, "image/png", None)
    assert parse({"key": "k", "value_base64": ""}).content_type == "application/octet-stream"


def test_ttl_is_seconds_to_milliseconds():
    assert parse({"key": "k", "value": 1, "ttl": 60}).ttl_ms == 60_000
    assert parse({"key": "k", "value": 1, "ttl": 0.0001}).ttl_ms == 1
    assert parse({"key": "k", "value": 1, "ttl": 3600}).ttl_ms == 3_600_000


@pytest.mark.parametrize("line, reason", [
    (b"not json", "invalid JSON"),
    (b'{"key": "k", "value": 1', "invalid JSON"),
    (b'\xff\xfe{"key": "k"}', "invalid JSON"),
    (b"[1, 2]", "not an array"),
    (b'"just a string"', "not a string"),
    (b"42", "not a number"),
    (b'{"value": 1}', "key is missing"),
    (b'{"key": 7, "value": 1}', "key is missing or not a string"),
    (b'{"key": "", "value": 1}', "key: the key is empty"),
    (b'{"key": "a\\u0000b", "value": 1}', "U+0000"),
    (b'{"key": "' + b"k" * 513 + b'", "value": 1}', "longer than 512"),
    (b'{"key": "k"}', "exactly one of value"),
    (b'{"key": "k", "value": 1, "value_base64": "AA=="}', "exactly one of value"),
    (b'{"key": "k", "value_base64": "***"}', "not valid base64"),
    (b'{"key": "k", "value_base64": 5}', "must be a string"),
    (b'{"key": "k", "vlaue": 1}', "unknown field 'vlaue'"),
    (b'{"key": "k", "value": 1, "ttl": 0}', "ttl must be"),
    (b'{"key": "k", "value": 1, "ttl": -5}', "ttl must be"),
    (b'{"key": "k", "value": 1, "ttl": 3601}', "ttl must be"),
    (b'{"key": "k", "value": 1, "ttl": "60"}', "ttl must be"),
    (b'{"key": "k", "value": 1, "ttl": true}', "ttl must be"),
    (b'{"key": "k", "value": 1, "content_type": ""}', "content_type must be"),
    (b'{"key": "k", "value": 1, "content_type": 3}', "content_type must be"),
    (b'{"key": "k", "value": 1, "content_type": "text/plain\\r\\nX: y"}', "content_type must be"),
    (b'{"key": "k", "value": "' + b"v" * 1001 + b'", "content_type": "text/plain"}', "1001 bytes; the limit is 1000"),
])
def test_bad_lines_say_why(line, reason):
    with pytest.raises(BadLine) as raised:
        parse_line(line, **LIMITS)
    assert reason in str(raised.value)


@given(st.binary(max_size=200))
def test_no_line_crashes_the_parser(line):
    try:
        item = parse_line(line, **LIMITS)
    except BadLine:
        return
    assert isinstance(item.value, bytes) and item.key


# ---- export lines: what an import stores again exactly ---------------------------------------------

_CONTENT_TYPES = st.sampled_from(["application/json", "application/vnd.x+json", "text/plain", "text/csv; charset=utf-8",
                                  "application/octet-stream", "image/png"])
_VALUES = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=32).map(lambda s: s.encode("utf-8")),
    st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=8),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                 max_leaves=8).map(orjson.dumps),
    st.just(b'{ "spaced": true }'),  # JSON, but not as the importer writes it: must come back byte for byte
)


@given(key=st.text(min_size=1, max_size=20).filter(lambda k: not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in k)),
       value=_VALUES, content_type=_CONTENT_TYPES,
       expires=st.none() | st.integers(0, 4_000_000_000_000))
def test_an_export_line_imports_as_the_same_entry_byte_for_byte(key, value, content_type, expires):
    line = export_line(key, value, content_type, expires)
    assert b"\n" not in line
    item = parse_line(line, max_value_bytes=10**6, max_ttl_seconds=10**9)
    assert (item.key, item.value, item.content_type, item.expiry(now_ms=123)) == (key, value, content_type, expires)


def test_expires_at_is_absolute_and_excludes_ttl():
    item = parse_line(b'{"key": "k", "value": 1, "expires_at": "2026-11-27T09:00:00.000Z"}', 100, 100)
    assert item.expiry(now_ms=0) == item.expiry(now_ms=10**12) == 1_795_770_000_000
    for bad in (b'{"key": "k", "value": 1, "expires_at": "tomorrow"}', b'{"key": "k", "value": 1, "expires_at": 5}',
                b'{"key": "k", "value": 1, "ttl": 5, "expires_at": "2026-11-27T09:00:00Z"}'):
        with pytest.raises(BadLine):
            parse_line(bad, 100, 100)


def test_the_reserved_reference_type_is_a_bad_line():
    """Only a cache instance makes references (core/value_refs.py): an imported line of that type
    would point every replica at whatever object it names."""
    line = orjson.dumps({"key": "k", "value": {"dataref": "values/s/x"},
                         "content_type": "application/vnd.streamcache.dataref+json"})
    with pytest.raises(BadLine, match="reserved"):
        parse_line(line, **LIMITS)
