"""The HTTP API through CacheApp over a memory:// log: every route and status of issue 2, and every
answer checked against the OpenAPI document functions/cache/openapi.yaml (status declared, declared
headers present and well-formed, JSON bodies valid against the declared schema, no body on HEAD)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from openapi_spec_validator import validate as validate_openapi

from streamcache.adapters.memory_log import MemoryLog
from streamcache.cache.app import CacheApp
from streamcache.core.records import format_time
from streamcache.cache.http_api import HttpApi, HttpRequest, HttpResponse
from streamcache.cache.service import CacheService
from streamcache.settings import Settings
from streamcache.statuses import ErrorCode
from support.openapi import SPEC, check_against_openapi
from support.clock import Clock

# ---- the document -------------------------------------------------------------------------------


def test_the_openapi_document_is_valid_openapi_3_1():
    assert SPEC["openapi"].startswith("3.1")
    validate_openapi(SPEC)


def test_every_error_code_the_http_api_uses_is_documented():
    package = Path(__file__).resolve().parents[2] / "functions" / "streamcache"
    used = {code.value for code in ErrorCode}
    for path in [package / "cache" / "http_api.py", package / "cache" / "service.py", package / "cache" / "app.py",
                 package / "core" / "errors.py"]:
        text = path.read_text()
        used |= set(re.findall(r'(?:HttpError|error_response)\(\s*\d+,\s*"(\w+)"', text))
        used |= set(re.findall(r'^\s+code = "(\w+)"', text, re.M))
    documented = set(SPEC["components"]["schemas"]["ErrorCode"]["enum"]) | {"precondition_failed", "invalid_request"}
    assert used and used <= documented, f"undocumented error codes: {sorted(used - documented)}"


# ---- fixtures -----------------------------------------------------------------------------------


@pytest.fixture
def make_app():
    """A factory of cache instances over a fresh memory:// log (or a given one). With ``clock``, the
    service reads that wall clock: its default is bound when the module loads, out of freezegun's reach."""
    names = []

    def make(log_url: str | None = None, clock: Clock | None = None, **settings) -> CacheApp:
        if log_url is None:
            names.append(f"http-{uuid.uuid4().hex}")
            log_url = f"memory://{names[-1]}?partitions=3"
        env = {"STREAMCACHE_LOG_URL": log_url, "STREAMCACHE_INSTANCE_ID": f"test-{len(names)}"}
        env.update({f"STREAMCACHE_{name.upper()}": str(value) for name, value in settings.items()})
        app = CacheApp(Settings.from_env(env))
        app.log_url = log_url  # type: ignore[attr-defined]  # for a second instance of the same stream
        if clock is not None:
            app.service = CacheService(app.replica, app.service.limits, clock=clock)
            app.http = HttpApi(app.service, app.health_json, app.http.prefix)
        return app

    yield make
    for name in names:
        MemoryLog.forget(name)


@pytest.fixture
def app(make_app) -> CacheApp:
    return make_app()


def call(app: CacheApp, method: str, url: str, body: bytes = b"", **headers: str) -> HttpResponse:
    """One request through the app, its answer checked against the OpenAPI document."""
    names = {name.replace("_", "-").lower(): value for name, value in headers.items()}
    response = app.handle(HttpRequest(method, url, names, body))
    check_against_openapi(method, url, *response)
    return response


def as_json(response: HttpResponse):
    assert response.headers["Content-Type"] == "application/json"
    return orjson.loads(response.body)


def log_end(app: CacheApp) -> dict[int, int]:
    return app.replica.log.bounds().next


def error_of(response: HttpResponse) -> str:
    body = as_json(response)
    assert set(body) >= {"error", "message"} and body["message"]
    return body["error"]


# ---- PUT, GET, HEAD -----------------------------------------------------------------------------


def test_put_creates_then_replaces(app):
    created = call(app, "PUT", "/cache/user/1", b"hello", content_type="text/plain")
    assert created.status == 201
    body = as_json(created)
    partition = app.replica.log.partition_for("user/1")
    assert body == {"key": "user/1", "version": f"{partition}-0", "expires_at": None}
    assert created.headers["ETag"] == f'"{partition}-0"'
    replaced = call(app, "PUT", "/cache/user/1", b"again", content_type="text/plain")
    assert replaced.status == 200 and as_json(replaced)["version"] == f"{partition}-1"


def test_get_answers_the_bytes_with_their_content_type_and_etag(app):
    value = bytes(range(256))
    etag = call(app, "PUT", "/cache/img", value, content_type="image/png").headers["ETag"]
    got = call(app, "GET", "/cache/img")
    assert (got.status, got.body, got.headers["Content-Type"], got.headers["ETag"]) == (200, value, "image/png", etag)
    assert "Cache-Control" not in got.headers and "Streamcache-Stale" not in got.headers


def test_a_put_without_content_type_is_octet_stream(app):
    call(app, "PUT", "/cache/k", b"x")
    assert call(app, "GET", "/cache/k").headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    "path_key, key",
    [("a%2Fb", "a/b"), ("a/b/c", "a/b/c"), ("%C3%A9t%C3%A9", "été"), ("with%20space", "with space"), ("%F0%9F%98%80", "😀")],
)
def test_keys_in_the_path_are_percent_decoded_and_equal_the_query_style(app, path_key, key):
    call(app, "PUT", f"/cache/{path_key}", b"v")
    by_query = call(app, "GET", f"/cache?key={quote(key, safe='')}")
    assert by_query.status == 200 and by_query.body == b"v"
    assert [k["key"] for k in as_json(call(app, "GET", "/cache"))["keys"]] == [key]


def test_query_style_put_and_delete(app):
    assert call(app, "PUT", "/cache?key=q", b"1").status == 201
    assert call(app, "GET", "/cache/q").body == b"1"
    assert call(app, "DELETE", "/cache?key=q").status == 204


def test_head_answers_the_headers_of_get_without_the_body(make_app):
    app = make_app(clock=Clock(1_790_000_000.0))
    call(app, "PUT", "/cache/k?ttl=60", b"value", content_type="text/plain")
    got, head = call(app, "GET", "/cache/k"), call(app, "HEAD", "/cache/k")
    assert head.status == 200 and head.body == b"" and head.headers == got.headers


@pytest.mark.parametrize(
    "url, status",
    [("/cache/missing", 404), ("/cache/a%00", 400), ("/cache/k?consistency=strong", 503), ("/cache?limit=0", 400), ("/health", 200)],
)
def test_no_answer_to_head_has_a_body(app, url, status):
    """RFC 9110 9.3.2: a HEAD answer has no content. A body here would be read by the client as the
    start of the next answer on a keep-alive connection."""
    call(app, "PUT", "/cache/k", b"1")
    app.replica.log.available = status != 503
    response = call(app, "HEAD", url)
    assert response.status == status and response.body == b""


def test_get_of_a_missing_key_is_404(app):
    response = call(app, "GET", "/cache/missing")
    assert response.status == 404 and error_of(response) == "not_found"


def test_if_none_match_answers_304_when_the_client_holds_the_version(app):
    etag = call(app, "PUT", "/cache/k?ttl=60", b"v").headers["ETag"]
    bare = etag.strip('"')
    for held in (etag, bare, f"W/{etag}", f'"0-999999", {etag}', "*"):
        for method in ("GET", "HEAD"):
            response = call(app, method, "/cache/k", if_none_match=held)
            assert response.status == 304 and response.body == b"" and response.headers["ETag"] == etag
    assert call(app, "GET", "/cache/k", if_none_match='"0-999999"').status == 200


def test_if_none_match_on_a_missing_key_is_404(app):
    assert call(app, "GET", "/cache/k", if_none_match="*").status == 404


# ---- TTL ----------------------------------------------------------------------------------------


def test_ttl_shows_as_expires_at_and_max_age_then_the_value_is_gone(make_app):
    clock = Clock(1_790_000_000.0)
    app = make_app(clock=clock)
    written = call(app, "PUT", "/cache/k?ttl=10", b"v")
    assert as_json(written)["expires_at"] == format_time(1_790_000_010_000)
    assert call(app, "GET", "/cache/k").headers["Cache-Control"] == "max-age=10"
    clock.now += 1.5
    assert call(app, "GET", "/cache/k").headers["Cache-Control"] == "max-age=8"
    listed = as_json(call(app, "GET", "/cache"))["keys"]
    assert listed == [{"key": "k", "version": as_json(written)["version"], "size": 1, "expires_at": format_time(1_790_000_010_000)}]
    clock.now = 1_790_000_010.0
    assert call(app, "GET", "/cache/k").status == 404
    assert as_json(call(app, "GET", "/cache"))["keys"] == []


def test_fractional_ttls_are_accepted(make_app):
    clock = Clock(1_790_000_000.0)
    app = make_app(clock=clock)
    assert as_json(call(app, "PUT", "/cache/k?ttl=0.25", b"v"))["expires_at"] == format_time(1_790_000_000_250)


# ---- preconditions ------------------------------------------------------------------------------


def test_if_match_the_current_version_replaces(app):
    etag = call(app, "PUT", "/cache/k", b"1").headers["ETag"]
    for form in (lambda tag: tag, lambda tag: tag.strip('"'), lambda tag: f"W/{tag}"):
        response = call(app, "PUT", "/cache/k", b"2", if_match=form(etag))
        assert response.status == 200
        etag = response.headers["ETag"]


def test_if_match_a_stale_version_is_412_naming_the_current_one(app):
    stale = call(app, "PUT", "/cache/k", b"1").headers["ETag"]
    current = call(app, "PUT", "/cache/k", b"2").headers["ETag"]
    before = log_end(app)
    response = call(app, "PUT", "/cache/k", b"3", if_match=stale)
    assert response.status == 412 and response.headers["ETag"] == current
    assert as_json(response) == {
        "error": "precondition_failed", "message": as_json(response)["message"], "key": "k", "current_version": current.strip('"'),
    }
    assert call(app, "GET", "/cache/k").body == b"2"
    assert log_end(app) != before, "the conditional record is on the stream; it was rejected when applied"


def test_if_match_on_a_missing_key_is_412_with_no_current_version(app):
    for header in ('"0-0"', "*"):
        response = call(app, "PUT", "/cache/k", b"1", if_match=header)
        assert response.status == 412 and "ETag" not in response.headers
        assert as_json(response)["current_version"] is None


def test_if_match_star_replaces_an_existing_key(app):
    call(app, "PUT", "/cache/k", b"1")
    assert call(app, "PUT", "/cache/k", b"2", if_match="*").status == 200


def test_if_none_match_star_creates_only(app):
    assert call(app, "PUT", "/cache/k", b"1", if_none_match="*").status == 201
    response = call(app, "PUT", "/cache/k", b"2", if_none_match=" * ")
    assert response.status == 412 and call(app, "GET", "/cache/k").body == b"1"


def test_two_instances_if_match_the_same_version_one_wins_and_both_agree(make_app):
    a = make_app(staleness_ms=3_600_000)
    b = make_app(log_url=a.log_url, staleness_ms=3_600_000)
    etag = call(a, "PUT", "/cache/k", b"0").headers["ETag"]
    assert call(b, "GET", "/cache/k").headers["ETag"] == etag
    won = call(a, "PUT", "/cache/k", b"a", if_match=etag)
    lost = call(b, "PUT", "/cache/k", b"b", if_match=etag)
    assert (won.status, lost.status) == (200, 412)
    assert lost.headers["ETag"] == won.headers["ETag"]
    for instance in (a, b):
        read = call(instance, "GET", "/cache/k?consistency=strong")
        assert (read.body, read.headers["ETag"]) == (b"a", won.headers["ETag"])


def test_default_reads_may_lag_within_the_bound_and_strong_reads_do_not(make_app):
    a = make_app()
    b = make_app(log_url=a.log_url, staleness_ms=3_600_000)
    call(a, "PUT", "/cache/k", b"0")
    assert call(b, "GET", "/cache/k").body == b"0"
    call(a, "PUT", "/cache/k", b"1")
    assert call(b, "GET", "/cache/k").body == b"0"
    assert call(b, "GET", "/cache/k?consistency=strong").body == b"1"
    assert [k["key"] for k in as_json(call(b, "GET", "/cache?consistency=strong"))["keys"]] == ["k"]


# ---- POST (the article's style) -----------------------------------------------------------------


def test_post_stores_the_json_value(make_app):
    clock = Clock(1_790_000_000.0)
    app = make_app(clock=clock)
    body = orjson.dumps({"key": "cfg", "value": {"b": [1, 2], "a": None}, "ttl": 30})
    response = call(app, "POST", "/cache", body, content_type="application/json")
    assert response.status == 201 and as_json(response)["expires_at"] == format_time(1_790_000_030_000)
    got = call(app, "GET", "/cache/cfg")
    assert got.headers["Content-Type"] == "application/json"
    assert orjson.loads(got.body) == {"b": [1, 2], "a": None}
    again = call(app, "POST", "/cache/", orjson.dumps({"key": "cfg", "value": None}))
    assert again.status == 200 and call(app, "GET", "/cache/cfg").body == b"null"


def test_post_honours_preconditions(app):
    call(app, "POST", "/cache", orjson.dumps({"key": "k", "value": 1}))
    refused = call(app, "POST", "/cache", orjson.dumps({"key": "k", "value": 2}), if_none_match="*")
    assert refused.status == 412 and "already exists" in as_json(refused)["message"]


def test_if_match_on_a_missing_key_says_it_does_not_exist(app):
    refused = call(app, "PUT", "/cache/k", b"1", if_match="*")
    assert refused.status == 412 and "does not exist" in as_json(refused)["message"]


@pytest.mark.parametrize("tag", ['"0-x"', '"abc"', 'W/"v1"', '""'])
def test_if_match_a_well_formed_tag_we_never_issued_is_412_and_writes_nothing(app, tag):
    etag = call(app, "PUT", "/cache/k", b"before").headers["ETag"]
    before = log_end(app)
    for method in ("PUT", "DELETE"):
        response = call(app, method, "/cache/k", b"after", if_match=tag)
        assert response.status == 412 and response.headers["ETag"] == etag  # RFC 9110: it cannot match
        assert as_json(response)["current_version"] == etag.strip('"')
    assert log_end(app) == before and call(app, "GET", "/cache/k").body == b"before"


def test_put_on_the_collection_takes_the_json_body_as_post_does(app):
    created = call(app, "PUT", "/cache", orjson.dumps({"key": "article", "value": "Bob"}))
    assert created.status == 201 and as_json(created)["key"] == "article"
    got = call(app, "GET", "/cache?key=article")
    assert got.status == 200 and orjson.loads(got.body) == "Bob" and got.headers["ETag"] == created.headers["ETag"]


def test_the_key_query_parameter_is_the_same_method_on_the_key(app):
    assert call(app, "PUT", "/cache?key=q%2F1&ttl=60", b"raw", content_type="text/plain").status == 201
    got = call(app, "GET", "/cache/q%2F1")
    assert (got.body, got.headers["Content-Type"]) == (b"raw", "text/plain") and "Expires" in got.headers
    assert call(app, "HEAD", "/cache?key=q/1").status == 200
    assert call(app, "DELETE", "/cache?key=q/1").status == 204
    assert call(app, "GET", "/cache?key=q/1").status == 404


def test_post_with_an_operation_is_answered_as_a_direct_invoke(app):
    put = call(app, "POST", "/cache", orjson.dumps({"operation": "PUT", "key": "op", "value": {"n": 1}}))
    assert put.status == 200 and as_json(put)["status"] == 201
    got = as_json(call(app, "POST", "/cache", orjson.dumps({"operation": "get", "key": "op"})))
    assert (got["status"], got["value"]) == (200, {"n": 1})
    batch = as_json(call(app, "POST", "/cache", orjson.dumps(
        {"operations": [{"operation": "delete", "key": "op"}, {"operation": "get", "key": "op"}]})))
    assert [answer["status"] for answer in batch] == [204, 404]


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_unknown_fields_of_a_json_body_are_refused_by_name(app, method):
    before = log_end(app)
    response = call(app, method, "/cache", orjson.dumps({"key": "a", "value": 1, "tll": 5}))
    assert response.status == 400 and error_of(response) == "invalid_body" and "'tll'" in as_json(response)["message"]
    assert log_end(app) == before


@pytest.mark.parametrize(
    "body, code",
    [
        (b"{not json", "invalid_json"),
        (b"", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b"[1, 2]", "invalid_body"),
        (b'{"value": 1}', "invalid_body"),
        (b'{"key": 5, "value": 1}', "invalid_body"),
        (b'{"key": "k"}', "invalid_body"),
        (b'{"key": "", "value": 1}', "invalid_key"),
        (b'{"key": "a\\u0000", "value": 1}', "invalid_key"),
        (b'{"key": "k", "value": 1, "ttl": "60"}', "invalid_ttl"),
        (b'{"key": "k", "value": 1, "ttl": 0}', "invalid_ttl"),
        (b'{"key": "k", "value": 1, "ttl": -5}', "invalid_ttl"),
        (b'{"key": "k", "value": 1, "ttl": true}', "invalid_ttl"),
        (b'{"key": "k", "value": 1, "ttl": 1e300}', "invalid_ttl"),
    ],
)
def test_bad_post_bodies_are_400_and_change_nothing(app, body, code):
    before = log_end(app)
    response = call(app, "POST", "/cache", body, content_type="application/json")
    assert response.status == 400 and error_of(response) == code
    assert log_end(app) == before


# ---- DELETE -------------------------------------------------------------------------------------


def test_delete_then_404(app):
    call(app, "PUT", "/cache/k", b"1")
    deleted = call(app, "DELETE", "/cache/k")
    assert deleted.status == 204 and deleted.body == b""
    assert call(app, "GET", "/cache/k").status == 404
    again = call(app, "DELETE", "/cache/k")
    assert again.status == 404 and error_of(again) == "not_found"


def test_delete_if_match(app):
    stale = call(app, "PUT", "/cache/k", b"1").headers["ETag"]
    current = call(app, "PUT", "/cache/k", b"2").headers["ETag"]
    assert call(app, "DELETE", "/cache/k", if_match=stale).status == 412
    assert call(app, "DELETE", "/cache/k", if_match=current).status == 204
    assert call(app, "DELETE", "/cache/k", if_match=current).status == 412


# ---- listing ------------------------------------------------------------------------------------


def test_listing_is_sorted_and_paginated_with_cursors(app):
    keys = [f"p/{i}" for i in range(7)] + ["p", "q"]
    for key in reversed(keys):
        call(app, "PUT", f"/cache/{key}", key.encode())
    seen, cursor = [], None
    while True:
        page = as_json(call(app, "GET", "/cache?prefix=p/&limit=3" + (f"&cursor={cursor}" if cursor else "")))
        seen.append([item["key"] for item in page["keys"]])
        cursor = page["cursor"]
        if cursor is None:
            break
    assert seen == [["p/0", "p/1", "p/2"], ["p/3", "p/4", "p/5"], ["p/6"]]
    item = as_json(call(app, "GET", "/cache?prefix=p/6"))["keys"][0]
    assert item == {"key": "p/6", "version": call(app, "GET", "/cache/p/6").headers["ETag"].strip('"'), "size": 3, "expires_at": None}


def test_head_of_a_listing_has_no_body(app):
    response = call(app, "HEAD", "/cache?limit=5")
    assert response.status == 200 and response.body == b""


# ---- errors: 400, 404, 405, 413 -----------------------------------------------------------------

BAD_REQUESTS = [
    ("GET", "/cache?key=", {}, "invalid_key"),
    ("PUT", "/cache/" + "k" * 513, {}, "invalid_key"),
    ("PUT", "/cache/" + "%C3%A9" * 257, {}, "invalid_key"),
    ("PUT", "/cache/a%00b", {}, "invalid_key"),
    ("PUT", "/cache/a%7F", {}, "invalid_key"),
    ("PUT", "/cache/a%C2%80", {}, "invalid_key"),
    ("PUT", "/cache/a%0Ab", {}, "invalid_key"),
    ("GET", "/cache/%FF", {}, "invalid_key"),
    ("DELETE", "/cache/%C3", {}, "invalid_key"),
    ("PUT", "/cache/k?ttl=abc", {}, "invalid_ttl"),
    ("PUT", "/cache/k?ttl=", {}, "invalid_ttl"),
    ("PUT", "/cache/k?ttl=0", {}, "invalid_ttl"),
    ("PUT", "/cache/k?ttl=-1", {}, "invalid_ttl"),
    ("PUT", "/cache/k?ttl=nan", {}, "invalid_ttl"),
    ("PUT", "/cache/k?ttl=inf", {}, "invalid_ttl"),
    ("PUT", "/cache/k?ttl=1e400", {}, "invalid_ttl"),
    ("PUT", "/cache/k?ttl=315360001", {}, "invalid_ttl"),
    ("PUT", "/cache/k", {"if_match": "latest"}, "invalid_version"),
    ("PUT", "/cache/k", {"if_match": ""}, "invalid_precondition"),
    ("DELETE", "/cache/k", {"if_match": "  "}, "invalid_precondition"),
    ("PUT", "/cache/k", {"if_match": '"0-1", "0-2"'}, "invalid_precondition"),
    ("PUT", "/cache/k", {"if_none_match": '"0-1"'}, "invalid_precondition"),
    ("DELETE", "/cache/k", {"if_none_match": "*"}, "invalid_precondition"),
    ("GET", "/cache/k?consistency=eventual", {}, "invalid_consistency"),
    ("GET", "/cache?consistency=", {}, "invalid_consistency"),
    ("GET", "/cache?limit=abc", {}, "invalid_limit"),
    ("GET", "/cache?limit=0", {}, "invalid_limit"),
    ("GET", "/cache?limit=1001", {}, "invalid_limit"),
    ("GET", "/cache?limit=2.5", {}, "invalid_limit"),
    ("GET", "/cache?cursor=a", {}, "invalid_cursor"),
    ("GET", "/cache?cursor=%40%40%40%40", {}, "invalid_cursor"),
    ("GET", "/cache?prefix=a&prefix=b", {}, "invalid_query"),
    ("PUT", "/cache/k?ttl=1&ttl=2", {}, "invalid_query"),
    ("GET", "/cache?prefix=%FF", {}, "invalid_query"),
    ("GET", "/cache?key=k&prefix=a", {}, "invalid_query"),
    ("GET", "/cache?key=k&limit=5", {}, "invalid_query"),
    ("DELETE", "/cache", {}, "invalid_query"),
    ("POST", "/cache/k", {}, "invalid_query"),  # a POST on a key is an increment: ?increment=N
    ("POST", "/cache/k?increment=1.5", {}, "invalid_increment"),
    ("POST", "/cache/k?increment=9223372036854775808", {}, "invalid_increment"),
    ("POST", "/cache?key=k", {}, "invalid_query"),
    ("DELETE", "/cache?key=k&ttl=5", {}, "invalid_query"),
    ("PUT", "/cache?key=k&cursor=x", {}, "invalid_query"),
]


@pytest.mark.parametrize("method, url, headers, code", BAD_REQUESTS, ids=[f"{m} {u[:40]} {c}" for m, u, _, c in BAD_REQUESTS])
def test_client_mistakes_are_400_with_a_json_error_and_change_nothing(app, method, url, headers, code):
    call(app, "PUT", "/cache/k", b"before")
    before = log_end(app)
    response = call(app, method, url, b"value", **headers)
    assert response.status == 400 and error_of(response) == code
    assert log_end(app) == before and call(app, "GET", "/cache/k").body == b"before"


@pytest.mark.parametrize(
    "method, url, allow",
    [
        ("OPTIONS", "/cache/k", "GET, HEAD, PUT, DELETE, POST, PATCH"),
        ("PATCH", "/cache?key=k", "GET, HEAD, POST, PUT, DELETE"),
        ("PATCH", "/cache", "GET, HEAD, POST, PUT, DELETE"),
        ("POST", "/health", "GET, HEAD"),
        ("DELETE", "/health", "GET, HEAD"),
    ],
)
def test_a_wrong_method_is_405_with_allow(app, method, url, allow):
    response = call(app, method, url, b"{}")
    assert response.status == 405 and response.headers["Allow"] == allow
    assert error_of(response) == "method_not_allowed"


def test_lower_case_methods_are_understood(app):
    assert call(app, "put", "/cache/k", b"1").status == 201
    assert call(app, "get", "/cache/k").body == b"1"


@pytest.mark.parametrize("url", ["/", "/other", "/cachex/k", "/Cache/k"])
def test_a_path_outside_the_prefix_is_404_no_route(app, url):
    response = call(app, "GET", url)
    assert response.status == 404 and error_of(response) == "no_route"


def test_a_value_over_the_limit_is_413_and_changes_nothing(make_app):
    app = make_app(max_value_bytes=100)
    before = log_end(app)
    for method, url, body in [
        ("PUT", "/cache/k", b"x" * 101),
        ("POST", "/cache", orjson.dumps({"key": "k", "value": "x" * 99})),
    ]:
        response = call(app, method, url, body)
        assert response.status == 413 and error_of(response) == "value_too_large"
    assert log_end(app) == before
    assert call(app, "PUT", "/cache/k", b"x" * 100).status == 201


def test_the_default_inline_threshold_fits_a_stream_message_with_the_worst_envelope(app):
    """256 KiB (the largest value a record carries inline) that only base64 can carry, under the
    longest key that JSON must escape; without an object store, a value whose record would pass the
    stream's 1 MB is refused (with one, it goes by reference: tests/cache/test_big_values.py)."""
    key = quote('"' * 512, safe="")
    assert call(app, "PUT", f"/cache/{key}?ttl=60", bytes(range(256)) * 1024, content_type="image/png").status == 201
    response = call(app, "PUT", f"/cache/{key}", b"\xff" * 1_000_000)
    assert response.status == 413 and error_of(response) == "value_too_large"


# ---- an unreachable stream ----------------------------------------------------------------------


def test_when_the_stream_is_down_writes_and_strong_reads_are_503_with_retry_after(make_app):
    app = make_app(staleness_ms=0)
    call(app, "PUT", "/cache/k", b"1", content_type="text/plain")
    app.replica.log.available = False
    for method, url, body, headers in [
        ("PUT", "/cache/k", b"2", {}),
        ("PUT", "/cache/k", b"2", {"if_match": "*"}),
        ("POST", "/cache", orjson.dumps({"key": "k", "value": 2}), {}),
        ("DELETE", "/cache/k", b"", {}),
        ("GET", "/cache/k?consistency=strong", b"", {}),
        ("GET", "/cache?consistency=strong", b"", {}),
    ]:
        response = call(app, method, url, body, **headers)
        assert response.status == 503, (method, url)
        assert int(response.headers["Retry-After"]) >= 1
        assert error_of(response) == "stream_unavailable"
    app.replica.log.available = True
    assert call(app, "GET", "/cache/k?consistency=strong").body == b"1"


def test_when_the_stream_is_down_default_reads_answer_stale(make_app):
    app = make_app(staleness_ms=0)
    call(app, "PUT", "/cache/k", b"1")
    app.replica.log.available = False
    response = call(app, "GET", "/cache/k")
    assert (response.status, response.body, response.headers["Streamcache-Stale"]) == (200, b"1", "true")
    assert call(app, "GET", "/cache/missing").status == 404
    assert [k["key"] for k in as_json(call(app, "GET", "/cache"))["keys"]] == ["k"]
    app.replica.log.available = True
    assert "Streamcache-Stale" not in call(app, "GET", "/cache/k").headers


def test_a_cold_start_while_the_stream_is_down_is_503_then_serves(make_app):
    name = f"http-cold-{uuid.uuid4().hex}"
    log = MemoryLog.named(name, 2)
    try:
        log.available = False
        app = make_app(log_url=f"memory://{name}")
        for url in ("/cache/k", "/health"):
            response = call(app, "GET", url)
            assert response.status == 503 and response.headers["Retry-After"] == "1"
            assert error_of(response) == "stream_unavailable"
        log.available = True
        assert call(app, "GET", "/cache/k").status == 404  # a request waits for the retried restore
        assert as_json(call(app, "GET", "/health"))["status"] == "serving"
    finally:
        MemoryLog.forget(name)


# ---- /health ------------------------------------------------------------------------------------


def test_health_reports_the_instance(make_app):
    app = make_app(instance_id="cache-7", staleness_ms=1234)
    call(app, "PUT", "/cache/a", b"1")
    call(app, "PUT", "/cache/b", b"1")
    health = as_json(call(app, "GET", "/health"))
    assert health["status"] == "serving" and health["instance"] == "cache-7"
    assert health["keys"] == 2 and health["staleness_bound_ms"] == 1234
    assert health["positions"] == {str(p): n for p, n in app.replica.log.bounds().next.items()}
    assert health["records_applied"] == 2 and health["records_skipped"] == 0


# ---- no client input gives a 5xx -----------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_path_part = st.one_of(_text.map(lambda s: quote(s, safe="/")), st.sampled_from(["%FF", "%00", "%", "%C3", "a%2Fb", ""]))
_query = st.lists(
    st.tuples(st.sampled_from(["key", "ttl", "prefix", "limit", "cursor", "consistency", "x"]), _text | st.sampled_from(["1", "0", "-1", "strong", "1e999"])),
    max_size=3,
).map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs))
_headers = st.dictionaries(
    st.sampled_from(["if-match", "if-none-match", "content-type"]),
    _text | st.sampled_from(["*", '"0-0"', 'W/"1-2"', "0-0, 1-1", "application/json"]),
    max_size=2,
)
_bodies = st.binary(max_size=40) | st.builds(
    lambda key, value, ttl: orjson.dumps({"key": key, "value": value, "ttl": ttl}),
    _text, st.none() | st.integers(-(2**63), 2**63 - 1) | _text, st.none() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "get", ""]),
    prefix=st.sampled_from(["/cache", "/cache/", "/health", "/", "/x"]),
    path=_path_part,
    query=_query,
    headers=_headers,
    body=_bodies,
)
def test_no_request_gets_a_5xx_and_every_answer_matches_the_document(app, method, prefix, path, query, headers, body):
    url = prefix + (path if prefix.endswith("/") else "") + (f"?{query}" if query else "")
    response = app.handle(HttpRequest(method, url, headers, body))
    assert response.status < 500, response
    check_against_openapi(method, url, *response)


def test_if_match_and_if_none_match_together_can_never_hold_412_and_nothing_written(app):
    call(app, "PUT", "/cache/k", b"before")
    before = log_end(app)
    for if_match in ("*", call(app, "GET", "/cache/k").headers["ETag"]):
        response = call(app, "PUT", "/cache/k", b"after", if_match=if_match, if_none_match="*")
        assert response.status == 412  # RFC 9110: If-Match, then If-None-Match; both can never hold
    assert log_end(app) == before and call(app, "GET", "/cache/k").body == b"before"
