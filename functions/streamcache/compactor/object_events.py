"""OCI Object Storage events, as OCI Events delivers them to a function: build, parse and filter them.

OCI Events wraps every event in a CloudEvents **0.1** envelope ("Events uses version 0.1 specification
of the CloudEvents event envelope", docs.oracle.com .../Events/Reference/eventenvelopereference.htm),
not CloudEvents 1.0 like our own change records. An object event as observed in public code
(oci-facts.md section 4)::

    {"eventType": "com.oraclecloud.objectstorage.createobject", "cloudEventsVersion": "0.1",
     "eventTypeVersion": "2.0", "source": "ObjectStorage", "eventTime": "2020-01-21T16:26:30.849Z",
     "contentType": "application/json", "eventID": "3e47d127-...",
     "extensions": {"compartmentId": "ocid1.compartment..."},
     "data": {"compartmentId": "...", "compartmentName": "DevOps", "resourceName": "<object name>",
              "resourceId": "/n/<ns>/b/<bucket>/o/<object name>", "availabilityDomain": "FRA-AD-1",
              "freeFormTags": {}, "definedTags": {},
              "additionalDetails": {"bucketName": "<bucket>", "archivalState": "Available",
                                    "namespace": "<ns>", "bucketId": "ocid1.bucket...", "eTag": "<uuid>"}}}

Unconfirmed [U]: whether an overwrite emits ``createobject`` or ``updateobject`` (we accept both: the
eTag tells versions apart); the exact encoding of names in ``resourceId`` (we use ``resourceName``);
whether events ever carry an object size or version id (none observed: :func:`object_created_event`
takes ``size`` for the local stand-in but, to stay faithful, does not emit it); delivery semantics
(retries, duplicates, ordering) of Events -> Functions. The parser also accepts the CloudEvents 1.0
attribute names (``type``, ``id``, ``time``) in case OCI moves its envelope forward.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from streamcache.core.errors import InvalidRequest

CREATE_OBJECT = "com.oraclecloud.objectstorage.createobject"
UPDATE_OBJECT = "com.oraclecloud.objectstorage.updateobject"
DELETE_OBJECT = "com.oraclecloud.objectstorage.deleteobject"
OBJECT_EVENT_TYPES = (CREATE_OBJECT, UPDATE_OBJECT, DELETE_OBJECT)
#: Events that mean "an object now holds new content".
CONTENT_EVENT_TYPES = (CREATE_OBJECT, UPDATE_OBJECT)

# Bucket names: letters, digits, '-', '_', '.' (OCI's rule); namespaces are a subset. Checked so that a
# hostile event cannot smuggle '@', '/' or '?' into the oci://BUCKET@NAMESPACE/ URL built from them.
_NAME_PART = re.compile(r"[A-Za-z0-9._-]{1,256}")
_MAX_OBJECT_NAME = 1024


class InvalidObjectEvent(InvalidRequest):
    """The payload is not an OCI Object Storage event we can act on."""

    code = "invalid_event"


@dataclass(frozen=True)
class ObjectEvent:
    """What an object event says: which object, in which version, changed how."""

    event_type: str
    namespace: str
    bucket: str
    name: str
    etag: str | None
    event_id: str | None
    event_time: str | None

    @property
    def identity(self) -> str:
        """A stable name for this version of the object (sha256 hex of namespace, bucket, name and
        eTag, or the event id when an event has no eTag): the same for a redelivered event, different
        for a new upload under the same name."""
        version = f"etag:{self.etag}" if self.etag else f"event:{self.event_id}"
        text = "\n".join([self.namespace, self.bucket, self.name, version])
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def store_url(self) -> str:
        """The Object Storage location of the bucket, as a store URL (``oci://BUCKET@NAMESPACE/``)."""
        return f"oci://{self.bucket}@{self.namespace}/"


def parse_object_event(event: object) -> ObjectEvent:
    """Validate an OCI Object Storage event (the parsed JSON body); raise :class:`InvalidObjectEvent`
    saying what is wrong. Unknown attributes are ignored (OCI may add some)."""
    if not isinstance(event, dict):
        raise InvalidObjectEvent(f"an OCI event is a JSON object, not {type(event).__name__}")
    event_type = _first(event, "eventType", "type")
    if not isinstance(event_type, str) or not event_type:
        raise InvalidObjectEvent("eventType is missing or not a string")
    if event_type not in OBJECT_EVENT_TYPES:
        raise InvalidObjectEvent(f"eventType {event_type[:100]!r} is not an Object Storage object event")
    data = event.get("data")
    if not isinstance(data, dict):
        raise InvalidObjectEvent("data is missing or not an object")
    details = data.get("additionalDetails")
    if not isinstance(details, dict):
        raise InvalidObjectEvent("data.additionalDetails is missing or not an object")
    name = data.get("resourceName")
    if not isinstance(name, str) or not name or len(name) > _MAX_OBJECT_NAME:
        raise InvalidObjectEvent(f"data.resourceName must be an object name of 1 to {_MAX_OBJECT_NAME} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidObjectEvent("data.resourceName contains control characters")
    bucket, namespace = details.get("bucketName"), details.get("namespace")
    for label, value in (("bucketName", bucket), ("namespace", namespace)):
        if not isinstance(value, str) or not _NAME_PART.fullmatch(value):
            raise InvalidObjectEvent(f"data.additionalDetails.{label} must be 1 to 256 letters, digits, '.', '-' or '_'")
    etag = _optional_text(details.get("eTag"), "data.additionalDetails.eTag")
    event_id = _optional_text(_first(event, "eventID", "id"), "eventID")
    event_time = _optional_text(_first(event, "eventTime", "time"), "eventTime")
    if etag is None and event_id is None:
        raise InvalidObjectEvent("the event has neither an eTag nor an eventID: its object version is unknown")
    return ObjectEvent(event_type, namespace, bucket, name, etag, event_id, event_time)  # type: ignore[arg-type]


def _first(event: dict, *names: str) -> object:
    for name in names:
        if name in event:
            return event[name]
    return None


def _optional_text(value: object, label: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 1024:
        raise InvalidObjectEvent(f"{label} must be a non-empty string of at most 1024 characters")
    return value


def object_created_event(namespace: str, bucket: str, name: str, etag: str, size: int | None = None, *,
                         event_type: str = CREATE_OBJECT, event_id: str | None = None,
                         event_time: datetime | None = None, compartment_id: str = "ocid1.compartment.oc1..local",
                         compartment_name: str = "local", availability_domain: str = "LOCAL-AD-1") -> dict:
    """The event OCI Events delivers when ``name`` is created in ``bucket`` (what the local stand-in
    sends the compactor). ``size`` is accepted for callers that know it but not emitted: no observed
    OCI object event carries a size [U]."""
    del size  # see the docstring: faithful to OCI's payload rather than convenient
    when = (event_time or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return {
        "eventType": event_type,
        "cloudEventsVersion": "0.1",
        "eventTypeVersion": "2.0",
        "source": "ObjectStorage",
        "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z",
        "contentType": "application/json",
        "eventID": event_id or str(uuid.uuid4()),
        "extensions": {"compartmentId": compartment_id},
        "data": {
            "compartmentId": compartment_id,
            "compartmentName": compartment_name,
            "resourceName": name,
            "resourceId": f"/n/{namespace}/b/{bucket}/o/{name}",
            "availabilityDomain": availability_domain,
            "freeFormTags": {},
            "definedTags": {},
            "additionalDetails": {
                "bucketName": bucket,
                "archivalState": "Available",
                "namespace": namespace,
                "bucketId": f"ocid1.bucket.oc1..local{hashlib.sha256(bucket.encode()).hexdigest()[:16]}",
                "eTag": etag,
            },
        },
    }


def condition_matches(condition: object, event: object) -> bool:
    """Whether an Events rule ``condition`` (parsed JSON) matches ``event``, by OCI's filter rules
    (filterevents.htm): attributes the condition does not mention are ignored, ``{}`` matches all,
    nesting mirrors the event, a list is any-of, ``*`` is a wildcard. [I]: ``*`` matches any run of
    characters, ``/`` included, and matching is case-sensitive."""
    if isinstance(condition, dict):
        if not isinstance(event, dict):
            return False
        return all(name in event and condition_matches(want, event[name]) for name, want in condition.items())
    if isinstance(condition, list):
        return any(condition_matches(option, event) for option in condition)
    if isinstance(condition, str):
        pattern = ".*".join(re.escape(part) for part in condition.split("*"))
        return isinstance(event, str) and re.fullmatch(pattern, event, re.DOTALL) is not None
    return condition == event
