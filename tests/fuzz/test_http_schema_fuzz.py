"""Schema-driven fuzzing of the HTTP API through the gateway: schemathesis generates requests
from functions/cache/openapi.yaml, both ones the document allows (positive) and ones it does not
(negative: wrong types, missing or extra parameters, keys with control characters, bodies that do
not match), for every operation. Every answer must be one the document declares for the request
(status, headers, body schema; tests/support/openapi.py), never a 5xx; the module's fixture then
checks that no instance died and the canary keys are intact."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from fuzzing import TRIED, assert_sane, examples
from support.openapi import SPEC_PATH, check_against_openapi

SCHEMA = schemathesis.openapi.from_path(str(SPEC_PATH))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
# (operation, mode): an operation without parameters or body (/health, /console) has no negative inputs.
CASES = [(op, mode) for op in OPERATIONS for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or op.path not in ("/health", "/console")]


@pytest.fixture(scope="module")
def session():
    with requests.Session() as http:
        yield http


@pytest.mark.parametrize(("operation", "mode"), CASES, ids=[f"{op.label}-{mode.value}" for op, mode in CASES])
def test_generated_requests_get_declared_answers(fuzz_stack, session, operation, mode):
    @settings(max_examples=examples(20), deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy(generation_mode=mode))
    def one(case):
        _short_long_poll(case)
        try:
            response = case.call(base_url=fuzz_stack.url, session=session, timeout=30)
        except (ValueError, requests.exceptions.InvalidHeader, UnicodeEncodeError):
            TRIED[f"schema {mode.value}: refused by the HTTP client library"] += 1
            return  # a header or URL no HTTP client will send (e.g. a newline in a header value)
        TRIED[f"schema {mode.value}"] += 1
        parts = urlsplit(response.request.url)
        url = parts.path + (f"?{parts.query}" if parts.query else "")
        # schemathesis answers every header as a list of its values
        headers = {k.lower(): ", ".join(v) if isinstance(v, list) else v for k, v in response.headers.items()}
        assert_sane(case.method, url, response.status_code, headers, response.content)
        if "opc-request-id" in headers:  # answered by the function, not by the gateway's own parser
            check_against_openapi(case.method, url, response.status_code, headers, response.content)

    one()


def _short_long_poll(case) -> None:
    """A valid ``wait`` of the change feed (up to 20 s; GET /changes, or a CHANGES operation POSTed to
    /cache) becomes 0.1 s: the long poll still runs, but the quiet stack would otherwise hold each such
    case for its whole wait. Invalid values stay."""
    if case.operation.path == "/changes" and isinstance(case.query, dict) and "wait" in case.query:
        case.query["wait"] = _short(case.query["wait"])
    if case.operation.path == "/cache" and isinstance(case.body, dict):
        for op in [case.body, *(case.body.get("operations") or [])] if isinstance(case.body.get("operations"), list) \
                else [case.body]:
            if isinstance(op, dict) and "wait" in op:
                op["wait"] = _short(op["wait"])


def _short(wait: object) -> object:
    try:
        return 0.1 if 0.1 < float(wait) <= 20 else wait  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return wait
