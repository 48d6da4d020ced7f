"""The change-record contract in events/: schemas, golden examples, and the codec agree."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import orjson
import pytest
from referencing import Registry, Resource

from streamcache.core import records
from streamcache.core.errors import RecordError
from streamcache.core.value_refs import REF_CONTENT_TYPE, ref_for

EVENTS = Path(__file__).resolve().parents[2] / "events"
SCHEMAS = {p.name: json.loads(p.read_text()) for p in (EVENTS / "schemas").glob("*.json")}
REGISTRY = Registry().with_resources(
    [(name, Resource.from_contents(schema)) for name, schema in SCHEMAS.items()]
    + [(schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()]
)
BY_TYPE = {records.PUT_TYPE: "put.v1.json", records.DELETE_TYPE: "delete.v1.json", records.INCREMENT_TYPE: "increment.v1.json",
           records.TOUCH_TYPE: "touch.v1.json"}
VALID = sorted((EVENTS / "examples" / "valid").glob("*.json"))
INVALID = sorted((EVENTS / "examples" / "invalid").glob("*.json"))


def schema_errors(event: dict) -> list[str]:
    schema_name = BY_TYPE.get(event.get("type"))
    if schema_name is None:
        return [f"no schema for type {event.get('type')!r}"]
    validator = jsonschema.Draft202012Validator(SCHEMAS[schema_name], registry=REGISTRY)
    return [e.message for e in validator.iter_errors(event)]


def test_the_schemas_are_valid_json_schemas():
    for schema in SCHEMAS.values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_there_are_golden_examples_of_both_kinds():
    assert len(VALID) >= 5 and len(INVALID) >= 10


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_examples_match_their_schema_and_round_trip_through_the_codec(path):
    raw = path.read_bytes()
    event = orjson.loads(raw)
    assert schema_errors(event) == []
    mutation = records.decode(raw)
    assert mutation.key == event["subject"] and mutation.request_id == event["id"]
    assert orjson.loads(records.encode(mutation, source=event["source"])) == event


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_examples_fail_the_schema_and_the_codec(path):
    raw = path.read_bytes()
    assert schema_errors(orjson.loads(raw)) != []
    with pytest.raises(RecordError):
        records.decode(raw)


@pytest.mark.parametrize(
    "mutation",
    [
        records.Put("k", b"\x00\xff", "application/octet-stream", "r1", 1_700_000_000_000),
        records.Put("k", b'{"a": 1}', "application/json", "r2", 1_700_000_000_000, 1_700_000_060_000),
        records.Put("ключ/1", "héllo".encode(), "text/plain; charset=utf-8", "r3", 1, None, records.IF_ABSENT),
        records.Put("k", b"[1,2]", "application/problem+json", "r4", 2, None, records.if_match(records.Position(3, 9))),
        records.Delete("k", "r5", 3, records.IF_EXISTS),
        # A big value by reference (core/value_refs.py): the event carries dataref, not data.
        records.Put("k", ref_for("cache", b"x" * 300_000, "image/png").encode(), REF_CONTENT_TYPE, "r6", 4),
    ],
)
def test_everything_the_codec_writes_matches_the_schema(mutation):
    encoded = records.encode(mutation)
    assert schema_errors(orjson.loads(encoded)) == []
    assert records.decode(encoded) == mutation


def test_a_reference_whose_digest_is_not_its_names_is_not_ours():
    event = orjson.loads((EVENTS / "examples" / "valid" / "put-by-reference.json").read_bytes())
    event["datadigest"] = "sha256:" + "0" * 64
    with pytest.raises(RecordError):
        records.decode(orjson.dumps(event))


def test_a_put_of_the_reserved_reference_type_carrying_data_is_not_ours():
    """Only a dataref makes a reference entry: inline bytes of that type would let a writer point
    every replica at any object."""
    event = orjson.loads((EVENTS / "examples" / "valid" / "put-text.json").read_bytes())
    event["datacontenttype"] = REF_CONTENT_TYPE
    with pytest.raises(RecordError):
        records.decode(orjson.dumps(event))
