"""The Object Storage event contract in events/object-storage/: schema, golden examples, the parser and
builder in oci_events.py, and the Events rule, which must send imports and nothing else."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from streamcache.compactor import object_events as oci_events
from streamcache.compactor.object_events import (
    CREATE_OBJECT,
    DELETE_OBJECT,
    UPDATE_OBJECT,
    InvalidObjectEvent,
    condition_matches,
    object_created_event,
    parse_object_event,
)

FOLDER = Path(__file__).resolve().parents[2] / "events" / "object-storage"
SCHEMA = json.loads((FOLDER / "object-event.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
VALID = sorted((FOLDER / "examples" / "valid").glob("*.json"))
INVALID = sorted((FOLDER / "examples" / "invalid").glob("*.json"))


def rule(bucket: str = "streamcache-data", prefix: str = "imports/") -> dict:
    """The rule as Terraform's templatefile renders it."""
    text = (FOLDER / "import-rule.json").read_text()
    return json.loads(text.replace("${bucket_name}", bucket).replace("${import_prefix}", prefix))


def test_the_schema_is_a_valid_json_schema_and_there_are_examples_of_both_kinds():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert len(VALID) >= 5 and len(INVALID) >= 10


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_examples_match_the_schema_and_parse(path):
    event = json.loads(path.read_text())
    assert [e.message for e in VALIDATOR.iter_errors(event)] == []
    parsed = parse_object_event(event)
    assert parsed.name == event["data"]["resourceName"]
    assert parsed.bucket == event["data"]["additionalDetails"]["bucketName"]
    assert parsed.namespace == event["data"]["additionalDetails"]["namespace"]
    assert parsed.etag == event["data"]["additionalDetails"].get("eTag")
    assert parsed.event_type == event["eventType"] and parsed.event_id == event["eventID"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_examples_fail_the_schema_and_the_parser(path):
    event = json.loads(path.read_text())
    assert list(VALIDATOR.iter_errors(event)) != []
    with pytest.raises(InvalidObjectEvent) as raised:
        parse_object_event(event)
    assert raised.value.status == 400 and raised.value.code == "invalid_event"


@pytest.mark.parametrize("garbage", [None, 42, "createobject", b"{}", {}, {"eventType": CREATE_OBJECT},
                                     {"eventType": ["x"] * 3, "data": {}}, {"eventType": "x" * 100_000}])
def test_garbage_never_parses(garbage):
    with pytest.raises(InvalidObjectEvent):
        parse_object_event(garbage)


def test_the_builder_makes_what_the_schema_and_the_parser_accept_for_any_name():
    when = datetime(2026, 11, 23, 20, 0, 0, 849_000, tzinfo=timezone.utc)
    for name in ["imports/a.jsonl", "imports/ü n i/c o d e.jsonl", "imports/" + "x" * 1000]:
        event = object_created_event("ns", "bucket-1", name, "etag-1", 123, event_time=when, event_id="id-1")
        assert list(VALIDATOR.iter_errors(event)) == []
        parsed = parse_object_event(event)
        assert (parsed.namespace, parsed.bucket, parsed.name, parsed.etag) == ("ns", "bucket-1", name, "etag-1")
        assert event["eventTime"] == "2026-11-23T20:00:00.849Z" and parsed.event_id == "id-1"
        assert event["data"]["resourceId"] == f"/n/ns/b/bucket-1/o/{name}"


def test_the_builder_follows_the_documented_oci_shape_field_for_field():
    documented = json.loads((FOLDER / "examples" / "valid" / "createobject.json").read_text())
    built = object_created_event("examplens", "streamcache-data", "imports/users-2026-11-23.jsonl", "e")

    def shape(value):
        return {k: shape(v) for k, v in value.items()} if isinstance(value, dict) else type(value).__name__

    assert shape(built) == shape(documented)
    assert built["cloudEventsVersion"] == "0.1" and built["eventTypeVersion"] == "2.0"
    assert built["source"] == "ObjectStorage" and built["contentType"] == "application/json"


def test_every_event_gets_its_own_id_unless_given():
    one = object_created_event("ns", "b", "imports/a", "e")
    two = object_created_event("ns", "b", "imports/a", "e")
    assert one["eventID"] != two["eventID"]


def test_the_identity_is_stable_for_a_redelivery_and_new_for_a_new_version():
    first = parse_object_event(object_created_event("ns", "b", "imports/a.jsonl", "etag-1"))
    again = parse_object_event(object_created_event("ns", "b", "imports/a.jsonl", "etag-1"))  # new eventID
    overwritten = parse_object_event(object_created_event("ns", "b", "imports/a.jsonl", "etag-2"))
    elsewhere = parse_object_event(object_created_event("ns", "other", "imports/a.jsonl", "etag-1"))
    assert first.identity == again.identity
    assert len({first.identity, overwritten.identity, elsewhere.identity}) == 3


def test_without_an_etag_the_event_id_identifies_the_delivery():
    event = object_created_event("ns", "b", "imports/a.jsonl", "etag-1", event_id="ev-1")
    del event["data"]["additionalDetails"]["eTag"]
    assert parse_object_event(event).etag is None
    assert parse_object_event(event).identity != parse_object_event({**event, "eventID": "ev-2"}).identity
    del event["eventID"]
    with pytest.raises(InvalidObjectEvent, match="neither an eTag nor an eventID"):
        parse_object_event(event)


def test_cloudevents_1_0_attribute_names_are_understood_too():
    event = object_created_event("ns", "b", "imports/a.jsonl", "etag-1", event_id="ev-1")
    event["type"], event["id"], event["time"] = event.pop("eventType"), event.pop("eventID"), event.pop("eventTime")
    parsed = parse_object_event(event)
    assert (parsed.event_type, parsed.event_id) == (CREATE_OBJECT, "ev-1")


def test_the_store_url_is_the_bucket_root():
    parsed = parse_object_event(object_created_event("my-ns", "my.bucket_1", "imports/a", "e"))
    assert parsed.store_url == "oci://my.bucket_1@my-ns/"


# ---- the Events rule --------------------------------------------------------------------------


def test_the_rule_sends_new_and_overwritten_objects_under_imports_in_its_bucket():
    condition = rule()["condition"]
    for event_type in (CREATE_OBJECT, UPDATE_OBJECT):
        for name in ["imports/a.jsonl", "imports/nested/b.jsonl", "imports/x"]:
            event = object_created_event("ns", "streamcache-data", name, "e", event_type=event_type)
            assert condition_matches(condition, event), (event_type, name)


@pytest.mark.parametrize("bucket, name, event_type", [
    ("streamcache-data", "snapshots/streamcache/000042-a1.snap", CREATE_OBJECT),  # the compactor's own writes
    ("streamcache-data", "import-markers/0123abcd.json", CREATE_OBJECT),  # the importer's own markers
    ("streamcache-data", "imports-old/a.jsonl", CREATE_OBJECT),
    ("streamcache-data", "x/imports/a.jsonl", CREATE_OBJECT),
    ("streamcache-data", "Imports/a.jsonl", CREATE_OBJECT),
    ("another-bucket", "imports/a.jsonl", CREATE_OBJECT),
    ("streamcache-data", "imports/a.jsonl", DELETE_OBJECT),
])
def test_the_rule_sends_nothing_else(bucket, name, event_type):
    event = object_created_event("ns", bucket, name, "e", event_type=event_type)
    assert not condition_matches(rule()["condition"], event)


def test_the_rule_is_complete_for_terraform():
    rendered = rule("b", "imports/")
    assert rendered["actions"] == [{"action_type": "FAAS", "function": "compactor", "is_enabled": True,
                                    "description": rendered["actions"][0]["description"]}]
    assert rendered["is_enabled"] is True and rendered["display_name"]
    assert "${" not in json.dumps(rendered)  # every placeholder is one templatefile fills


def test_condition_matching_follows_ocis_filter_rules():
    event = object_created_event("ns", "b", "imports/a.jsonl", "e")
    assert condition_matches({}, event)  # {} matches everything
    assert condition_matches({"data": {"compartmentName": "local"}}, event)
    assert not condition_matches({"data": {"nothing": "here"}}, event)  # a named attribute must exist
    assert condition_matches({"eventType": ["x", CREATE_OBJECT]}, event)  # a list is any-of
    assert condition_matches({"data": {"resourceName": "*.jsonl"}}, event)
    assert not condition_matches({"data": {"resourceName": "imports/?.jsonl"}}, event)  # only * is a wildcard
    assert not condition_matches({"data": {"resourceName": "imports/[a].jsonl"}}, event)


def test_oci_events_has_no_unconfirmed_fields_in_what_it_builds():
    # size is accepted but not emitted: no observed OCI object event carries one.
    event = object_created_event("ns", "b", "imports/a", "e", 12345)
    assert "12345" not in json.dumps(event)
    assert oci_events.CONTENT_EVENT_TYPES == (CREATE_OBJECT, UPDATE_OBJECT)
