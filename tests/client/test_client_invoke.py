"""``streamcache.Client`` over direct invokes: the real ``oci`` SDK's ``FunctionsInvokeClient`` with
fake credentials, pointed at the invoke API that ``streamcache dev`` serves on its gateway port, which
delivers each body to an FDK instance as a plain Fn invoke. Every request and answer on the wire is
checked against functions/cache/operations.schema.json (the ``wire_log`` fixture)."""

from __future__ import annotations

import http.client
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from support.client_checks import unique
from support.oci_fakes import REGION, new_rsa_key, private_pem, session_token, write_api_key_profile

from streamcache import (BadRequest, CacheError, Client, Conflict, Item, KeyInfo, NotFound, Op, PreconditionFailed,
                         Unavailable, Unreachable, ValueTooLarge, WriteResult)
from streamcache_local.invoke_endpoint import function_ocid

INVOKE_PATH = "/20181201/functions/cache/actions/invoke"


def post_invoke(stack, body: bytes, path: str = INVOKE_PATH):
    host, port = stack.gateway.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        # What `curl -X POST URL -d BODY` sends: no signature, a form content type.
        conn.request("POST", path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_done_when_curl_put_then_get_answers_the_json_value(stack):
    status, headers, body = post_invoke(stack, b'{"operation":"PUT","key":"k","value":1}')
    assert status == 200 and headers["content-type"] == "application/json" and headers["opc-request-id"]
    put = orjson.loads(body)
    assert put["status"] in (200, 201) and put["key"] == "k"
    status, _, body = post_invoke(stack, b'{"operation":"GET","key":"k","consistency":"strong"}')
    got = orjson.loads(body)
    assert status == 200 and got["status"] == 200 and got["value"] == 1 and got["version"] == put["version"]


def test_the_invoke_api_answers_200_whatever_the_operation_answered(stack):
    status, _, body = post_invoke(stack, b'{"operation": "get", "key": "%s"}' % unique().encode())
    assert status == 200 and orjson.loads(body)["status"] == 404
    status, _, body = post_invoke(stack, b"not json")
    assert status == 200 and orjson.loads(body)["error"] == "invalid_json"


def test_an_unknown_function_is_the_platforms_404(stack):
    status, headers, body = post_invoke(stack, b"{}", "/20181201/functions/ocid1.fnfunc.oc1..nope/actions/invoke")
    assert status == 404 and orjson.loads(body)["code"] == "NotAuthorizedOrNotFound"


def test_values_round_trip_byte_exact_over_the_sdk(invoke_client):
    client = invoke_client()
    key = unique()
    every_byte = bytes(range(256)) * 3
    written = client.put(key, every_byte, ttl=60, content_type="image/x-test")
    assert isinstance(written, WriteResult) and written.created
    item = client.get(key)
    assert isinstance(item, Item)
    assert (item.value, item.content_type, item.version) == (every_byte, "image/x-test", written.version)
    assert item.expires_at == written.expires_at  # milliseconds, exactly
    assert timedelta(seconds=55) < item.expires_at - datetime.now(timezone.utc) <= timedelta(seconds=60)
    # JSON and text come back as the stored bytes, not re-serialised.
    client.put(key, b'{ "a": [1, 2.50] }', content_type="application/json")
    assert client.get(key).value == b'{ "a": [1, 2.50] }'
    client.put(key, "héllo wörld")
    text = client.get(key)
    assert text.text() == "héllo wörld" and text.content_type == "text/plain; charset=utf-8"


def test_typed_operations_over_the_sdk(invoke_client):
    client = invoke_client(function_ocid("cache"))  # the OCID the instances know themselves by
    prefix = unique("inv") + "/"
    with pytest.raises(NotFound):
        client.get(prefix + "missing")
    first = client.put(prefix + "a", b"1", if_none_match=True)
    with pytest.raises(PreconditionFailed) as failed:
        client.put(prefix + "a", b"2", if_none_match=True)
    assert failed.value.current_version == first.version
    client.put(prefix + "a", b"2", if_match=first.version)
    for n in range(5):
        client.put(f"{prefix}b{n}", b"x" * n)
    infos = list(client.list(prefix, page_size=2, consistency="strong"))
    assert [i.key for i in infos] == [prefix + "a"] + [f"{prefix}b{n}" for n in range(5)]
    assert all(isinstance(i, KeyInfo) for i in infos) and [i.size for i in infos[1:]] == list(range(5))
    assert client.delete(prefix + "a") is True and client.delete(prefix + "a") is False
    with pytest.raises(NotFound):
        client.get(prefix + "a")
    assert client.health()["status"] == "serving"


@pytest.mark.parametrize("call, error, code, status", [
    (lambda c: c.put(unique(), b"v", ttl=-1), BadRequest, "invalid_ttl", 400),
    (lambda c: c.get("a\x01b"), BadRequest, "invalid_key", 400),
    (lambda c: c.get(""), BadRequest, "invalid_key", 400),
    (lambda c: c.put(unique(), b"v", if_match="nope"), BadRequest, "invalid_version", 400),
    (lambda c: list(c.list(page_size=0)), BadRequest, "invalid_limit", 400),
    # Over the 5.5 MiB limit: as base64 in the envelope (7.7 MB), the invoke endpoint's own 6 MB refuses it
    # first (OCI answers that 413 itself, without our JSON body): still a ValueTooLarge.
    (lambda c: c.put(unique(), b"x" * 5_800_000), ValueTooLarge, "http_413", 413),
])
def test_refused_operations_raise_typed_errors(invoke_client, call, error, code, status):
    with pytest.raises(error) as raised:
        call(invoke_client())
    assert (raised.value.code, raised.value.status) == (code, status) and raised.value.message


def test_an_unknown_function_is_a_bad_request_not_a_missing_key(invoke_client):
    with pytest.raises(BadRequest) as raised:
        invoke_client("ocid1.fnfunc.oc1..nope").get("k")
    assert (raised.value.status, raised.value.code) == (404, "NotAuthorizedOrNotFound")


# ---- batches ------------------------------------------------------------------------------------


def test_a_batch_is_one_invoke_answered_in_order(invoke_client, wire_log):
    client = invoke_client()
    key = unique()
    results = client.batch([
        Op.put(key, b"\x00v1", ttl=30),
        Op.get(key, consistency="strong"),
        Op.put(key, b"v2", if_none_match=True),
        Op.delete(key),
        Op.delete(key),
        Op.get(key, consistency="strong"),
        Op.put("", b"v"),
        Op.list(key),
    ])
    assert len(wire_log.exchanges) == 1
    written, item, refused, deleted, absent, missing, invalid, listed = results
    assert isinstance(written, WriteResult) and written.created
    assert isinstance(item, Item) and item.value == b"\x00v1" and item.version == written.version
    assert isinstance(refused, PreconditionFailed) and refused.current_version == written.version
    assert (deleted, absent) == (True, False)
    assert isinstance(missing, NotFound) and isinstance(invalid, BadRequest) and listed == []


def test_a_long_batch_travels_in_chunks_of_100(invoke_client, wire_log):
    client = invoke_client()
    prefix = unique("chunk") + "/"
    results = client.batch(Op.put(f"{prefix}{n:03d}", str(n)) for n in range(150))
    assert all(isinstance(r, WriteResult) for r in results) and len(results) == 150
    assert [len(request["operations"]) for request, _ in wire_log.exchanges] == [100, 50]
    assert sum(1 for _ in client.list(prefix, page_size=1000, consistency="strong")) == 150


def test_a_batch_over_http_runs_one_by_one(stack):
    key = unique()
    with Client(stack.url) as client:
        written, item, deleted = client.batch([Op.put(key, b"v"), Op.get(key, "strong"), Op.delete(key)])
    assert isinstance(written, WriteResult) and item.value == b"v" and deleted is True


@pytest.mark.parametrize("transport", ["http", "invoke"])
def test_a_batch_increment_answers_the_counters_new_value(stack, invoke_client, transport):
    key = unique()
    with (invoke_client() if transport == "invoke" else Client(stack.url)) as client:
        assert client.batch([Op.increment(key, 5), Op.increment(key, -2)]) == [5, 3]
        client.put(key, b"x")
        (refused,) = client.batch([Op.increment(key)])
    assert isinstance(refused, Conflict) and refused.code == "not_a_number"


# ---- credentials --------------------------------------------------------------------------------


def test_a_profile_of_an_oci_config_file(stack, tmp_path, wire_log):
    profile = write_api_key_profile(tmp_path, "CACHE")
    with wire_log.attach(Client.for_function("cache", stack.url, config_file=str(profile.config_file),
                                             profile="CACHE")) as client:
        assert client.put(unique(), b"v").version


def test_the_default_oci_config_in_the_home_folder(stack, tmp_path, monkeypatch, wire_log):
    (tmp_path / ".oci").mkdir()
    write_api_key_profile(tmp_path / ".oci", "DEFAULT")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("OCI_CLI_PROFILE", raising=False)
    monkeypatch.delenv("OCI_RESOURCE_PRINCIPAL_VERSION", raising=False)
    with wire_log.attach(Client.for_function("cache", stack.url)) as client:
        assert client.put(unique(), b"v").version


def test_resource_principals_inside_a_function(stack, tmp_path, monkeypatch, wire_log):
    # What OCI Functions injects: a session token (RPST) and a private key, as files.
    token, key = tmp_path / "rpst", tmp_path / "rp.pem"
    token.write_text(session_token())
    key.write_bytes(private_pem(new_rsa_key()))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_RPST", str(token))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", str(key))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_REGION", REGION)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.oci/config to fall back on
    with wire_log.attach(Client.for_function("cache", stack.url)) as client:
        assert client.put(unique(), b"v").version


# ---- availability -------------------------------------------------------------------------------


def test_503_from_the_function_is_retried_honouring_retry_after(unreachable_stream_stack, invoke_client, sleeps):
    client = invoke_client(endpoint=unreachable_stream_stack.url, retries=2, sleep=sleeps)
    with pytest.raises(Unavailable) as raised:
        client.get("k")
    assert (raised.value.status, raised.value.code, raised.value.retry_after) == (503, "stream_unavailable", 1)
    assert len(sleeps.delays) == 2 and all(delay >= 1 for delay in sleeps.delays)
    with pytest.raises(Unavailable):
        client.delete("k", if_match="0-1")
    # An instance that cannot start answers the whole batch with one 503: retried only if every
    # operation in it is safe to repeat.
    with pytest.raises(Unavailable):
        client.batch([Op.get("k"), Op.put("k", b"v", if_none_match=True)])
    assert len(sleeps.delays) == 2
    with pytest.raises(Unavailable):
        client.batch([Op.get("k"), Op.put("k", b"v")])
    assert len(sleeps.delays) == 4


def test_the_platform_being_busy_is_503_and_retried(busy, invoke_client, sleeps):
    client = invoke_client(endpoint=busy.url, retries=1, sleep=sleeps)
    with pytest.raises(Unavailable) as raised:
        client.get("k")
    assert (raised.value.status, raised.value.code, raised.value.retry_after) == \
        (503, "FunctionInvokeServiceUnavailable", 1)
    with pytest.raises(Unavailable):
        client.batch([Op.get("k"), Op.put("k", b"v", if_match="*")])  # the whole call failed; not retried
    assert len(sleeps.delays) == 1


def test_connection_errors_are_retried_for_idempotent_calls_only(closed_port, invoke_client, sleeps):
    client = invoke_client(endpoint=f"http://127.0.0.1:{closed_port}", retries=2, sleep=sleeps)
    with pytest.raises(Unreachable) as raised:
        client.get("k")
    assert raised.value.status == 0 and len(sleeps.delays) == 2
    with pytest.raises(Unreachable):
        client.batch([Op.get("k"), Op.put("k", b"v")])  # all idempotent: retried whole
    assert len(sleeps.delays) == 4
    for conditional in (lambda: client.put("k", b"v", if_none_match=True),
                        lambda: client.batch([Op.get("k"), Op.delete("k", "1-1")])):
        with pytest.raises(Unreachable):
            conditional()
    assert len(sleeps.delays) == 4


def test_a_function_that_never_answers_times_out(silent_port, invoke_client, sleeps):
    client = invoke_client(endpoint=f"http://127.0.0.1:{silent_port}", timeout=0.3, retries=1, sleep=sleeps)
    with pytest.raises(Unreachable) as raised:
        client.get("k")
    assert "timed out" in raised.value.message.lower() and len(sleeps.delays) == 1
    assert isinstance(raised.value, CacheError)
