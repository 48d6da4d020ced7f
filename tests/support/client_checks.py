"""Helpers for the client tests: the direct-invoke JSON Schema (functions/cache/operations.schema.json)
as validators, a record of an invoke client's traffic checked against it, an injected ``sleep`` that
records the client's backoff, and polling with a deadline."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import jsonschema
import orjson
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from streamcache import Client
from support.waiting import wait_for  # noqa: F401  (re-exported for the client tests)

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "functions" / "cache" / "operations.schema.json"
SCHEMA: dict = orjson.loads(SCHEMA_PATH.read_bytes())
_REGISTRY = Registry().with_resource(SCHEMA["$id"], DRAFT202012.create_resource(SCHEMA))
REQUEST_VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, registry=_REGISTRY)
OPERATION_VALIDATOR = jsonschema.Draft202012Validator({"$ref": SCHEMA["$id"] + "#/$defs/operation"}, registry=_REGISTRY)
RESPONSE_VALIDATOR = jsonschema.Draft202012Validator({"$ref": SCHEMA["$id"] + "#/$defs/response"}, registry=_REGISTRY)


def check_request(doc: object) -> None:
    REQUEST_VALIDATOR.validate(doc)


def check_response(doc: object) -> None:
    RESPONSE_VALIDATOR.validate(doc)


def check_exchange(request: object, answer: object) -> None:
    """The answer must match the schema; so must every operation the function carried out (one
    answered 2xx): the schema may not reject a request that works. (Refused requests are often
    invalid on purpose.)"""
    check_response(answer)
    if isinstance(request, dict) and isinstance(request.get("operations"), list) and isinstance(answer, list):
        pairs = list(zip(request["operations"], answer))
    else:
        pairs = [(request, answer)]
    for operation, one_answer in pairs:
        if isinstance(one_answer, dict) and 200 <= one_answer.get("status", 0) < 300:
            OPERATION_VALIDATOR.validate(operation)




def unique(prefix: str = "k") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class WireLog:
    """Every invoke body sent and every function answer received (the platform's own errors are
    not function answers and are not recorded)."""

    def __init__(self) -> None:
        self.exchanges: list[tuple[object, object]] = []
        self._lock = threading.Lock()

    def attach(self, client: Client) -> Client:
        sdk = client.transport._client  # the FunctionsInvokeClient
        original = sdk.invoke_function

        def recording(function_id, **kwargs):
            response = original(function_id, **kwargs)
            with self._lock:
                request = orjson.loads(kwargs["invoke_function_body"])
                self.exchanges.append((request, orjson.loads(response.data.content)))
            return response

        sdk.invoke_function = recording
        return client

    def check(self) -> None:
        for request, answer in self.exchanges:
            check_exchange(request, answer)


class Sleeps:
    """An injected ``sleep`` that records the client's backoff delays. It waits ``min(delay, cap)``
    (none by default: the test runs at once) and runs ``then(number of sleeps)`` on each call."""

    def __init__(self, then=None, cap: float = 0.0) -> None:
        self.delays: list[float] = []
        self.then = then
        self.cap = cap

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if self.then is not None:
            self.then(len(self.delays))
        if self.cap:
            time.sleep(min(seconds, self.cap))  # the client's own backoff, shortened
