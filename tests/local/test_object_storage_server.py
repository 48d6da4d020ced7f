"""The local Object Storage server answers the real SDK the way the service does (runtime-facts.md 4.3):
status codes, error codes, headers and pagination as the SDK parses them, and it insists on signatures."""

from __future__ import annotations

import base64
import hashlib
import http.client
import socket

import oci
import orjson
import pytest
from support.oci_fakes import REGION, new_rsa_key

from streamcache_local.object_storage import start_object_storage

BUCKET = "snapshots"


@pytest.fixture
def server():
    with start_object_storage(namespace="testns", buckets=(BUCKET,)) as running:
        yield running


@pytest.fixture
def client(server):
    key = new_rsa_key()
    signer = oci.auth.signers.SecurityTokenSigner(token="token-1", private_key=key)
    server.trust_key("ST$token-1", key.public_key())
    sdk = oci.object_storage.ObjectStorageClient(
        {"region": REGION},
        signer=signer,
        service_endpoint=server.endpoint,
        retry_strategy=oci.retry.NoneRetryStrategy(),
        circuit_breaker_strategy=oci.circuit_breaker.NoCircuitBreakerStrategy(),
    )
    yield sdk
    sdk.base_client.session.close()


def service_error(call) -> oci.exceptions.ServiceError:
    with pytest.raises(oci.exceptions.ServiceError) as caught:
        call()
    return caught.value


def test_unsigned_requests_get_401_with_a_json_error_body(server):
    connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
    connection.request("GET", f"/n/testns/b/{BUCKET}/o", headers={"opc-request-id": "REQ1"})
    response = connection.getresponse()
    body = response.read()
    connection.close()
    assert response.status == 401
    assert orjson.loads(body)["code"] == "NotAuthenticated"
    assert response.getheader("opc-request-id") == "REQ1"
    assert response.getheader("content-length") == str(len(body))


def test_a_bad_signature_gets_401(server, client):
    impostor = oci.object_storage.ObjectStorageClient(
        {"region": REGION},
        signer=oci.auth.signers.SecurityTokenSigner(token="token-1", private_key=new_rsa_key()),
        service_endpoint=server.endpoint,
        retry_strategy=oci.retry.NoneRetryStrategy(),
    )
    error = service_error(lambda: impostor.list_objects("testns", BUCKET))
    impostor.base_client.session.close()
    assert (error.status, error.code) == (401, "NotAuthenticated")


def test_namespace_put_get_head_and_etags(client):
    assert client.get_namespace().data == "testns"
    put = client.put_object(
        "testns", BUCKET, "dir/obj", b"hello", content_type="application/octet-stream", opc_meta={"writer": "w1"}
    )
    assert put.data is None and put.headers["etag"] and put.headers["opc-request-id"]
    got = client.get_object("testns", BUCKET, "dir/obj")
    assert got.data.content == b"hello"
    assert got.headers["etag"] == put.headers["etag"]
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["opc-meta-writer"] == "w1"
    head = client.head_object("testns", BUCKET, "dir/obj")
    assert head.headers["content-length"] == "5" and head.headers["etag"] == put.headers["etag"]
    assert head.headers["content-md5"] == base64.b64encode(hashlib.md5(b"hello").digest()).decode()


def test_conditional_writes_and_reads(client):
    first = client.put_object("testns", BUCKET, "o", b"1", if_none_match="*").headers["etag"]
    error = service_error(lambda: client.put_object("testns", BUCKET, "o", b"2", if_none_match="*"))
    assert (error.status, error.code) == (412, "IfNoneMatchFailed")
    error = service_error(lambda: client.put_object("testns", BUCKET, "o", b"2", if_match="stale-etag"))
    assert (error.status, error.code) == (412, "IfMatchFailed")
    second = client.put_object("testns", BUCKET, "o", b"2", if_match=first).headers["etag"]
    assert second != first
    assert service_error(lambda: client.get_object("testns", BUCKET, "o", if_none_match=second)).status == 304
    assert client.get_object("testns", BUCKET, "o", if_match=second).data.content == b"2"
    error = service_error(lambda: client.delete_object("testns", BUCKET, "o", if_match=first))
    assert (error.status, error.code) == (412, "IfMatchFailed")
    assert client.delete_object("testns", BUCKET, "o", if_match=second).status == 204


def test_not_found_errors(client):
    error = service_error(lambda: client.get_object("testns", BUCKET, "missing"))
    assert (error.status, error.code) == (404, "ObjectNotFound")
    error = service_error(lambda: client.get_object("testns", "nobucket", "x"))
    assert (error.status, error.code) == (404, "BucketNotFound")
    error = service_error(lambda: client.delete_object("testns", BUCKET, "missing"))
    assert (error.status, error.code) == (404, "ObjectNotFound")
    error = service_error(lambda: client.head_object("testns", BUCKET, "missing"))
    assert (error.status, error.code) == (404, None)  # HEAD answers carry no body, as in OCI


def test_a_body_that_does_not_match_its_content_md5_is_refused(client):
    wrong = base64.b64encode(b"0123456789abcdef").decode()
    error = service_error(lambda: client.put_object("testns", BUCKET, "o", b"data", content_md5=wrong))
    assert error.status == 400
    assert service_error(lambda: client.get_object("testns", BUCKET, "o")).status == 404


def test_ranged_reads(client):
    client.put_object("testns", BUCKET, "r", b"0123456789")
    assert client.get_object("testns", BUCKET, "r", range="bytes=2-5").data.content == b"2345"
    assert client.get_object("testns", BUCKET, "r", range="bytes=7-").data.content == b"789"
    assert client.get_object("testns", BUCKET, "r", range="bytes=-2").data.content == b"89"
    assert service_error(lambda: client.get_object("testns", BUCKET, "r", range="bytes=20-")).status == 416


def test_listing_pages_with_next_start_with_and_requested_fields(client):
    names = sorted(f"p/{i:02d}" for i in range(7)) + ["q/other"]
    for name in names:
        client.put_object("testns", BUCKET, name, name.encode())
    page = client.list_objects("testns", BUCKET, prefix="p/", limit=3, fields="name,size,etag,timeCreated").data
    assert [o.name for o in page.objects] == ["p/00", "p/01", "p/02"]
    assert page.next_start_with == "p/03"
    assert page.objects[0].size == 4 and page.objects[0].etag and page.objects[0].time_created.year >= 2024
    everything = oci.pagination.list_call_get_all_results(
        client.list_objects, "testns", BUCKET, prefix="p/", limit=2
    ).data.objects
    assert [o.name for o in everything] == names[:-1]
    last = client.list_objects("testns", BUCKET, prefix="p/", start="p/05").data
    assert [o.name for o in last.objects] == ["p/05", "p/06"] and last.next_start_with is None
    assert client.list_objects("testns", BUCKET, prefix="p/", start_after="p/05").data.objects[0].name == "p/06"


def test_stop_closes_the_port_and_open_connections(server, client):
    client.list_objects("testns", BUCKET)  # leaves a keep-alive connection open
    host, port = server.host, server.port
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=1).close()
