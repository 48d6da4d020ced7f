"""The Object Storage adapter beyond the shared contract: how it signs (config profile, session token,
resource principal), what it sends, and how every failure reaches the caller. Real SDK, local server."""

from __future__ import annotations

import base64
import hashlib
import itertools
from urllib.parse import parse_qs, urlsplit

import oci
import pytest
from support.oci_fakes import (  # noqa: F401  (fixtures)
    api_key,
    new_rsa_key,
    no_retries,
    object_storage,
    private_pem,
    session_token,
    write_api_key_profile,
)

from streamcache.adapters.oci_object_store import OciObjectStore, parse_oci_url
from streamcache.adapters.urls import open_snapshot_store
from streamcache.core.errors import ConfigError
from streamcache.ports import SnapshotExists, SnapshotNotFound, SnapshotStoreUnavailable
from streamcache_local.object_storage import start_object_storage

_buckets = itertools.count()


@pytest.fixture
def bucket(object_storage):
    name = f"bucket-{next(_buckets)}"
    object_storage.create_bucket(name)
    return name


def open_with_key(server, key, url, **options):
    return open_snapshot_store(
        url,
        oci_endpoint=server.endpoint,
        oci_config_file=str(key.config_file),
        oci_profile=key.profile,
        **{**no_retries(), **options},
    )


def every_operation(store):
    return [lambda: store.get("a"), lambda: store.list(), lambda: store.put_new("a", b"x"), lambda: store.delete("a")]


@pytest.mark.parametrize(
    "url, expected",
    [
        ("oci://snaps@myns/prod/cache", ("snaps", "myns", "prod/cache")),
        ("oci://snaps@myns", ("snaps", "myns", "")),
        ("oci://snaps@myns/", ("snaps", "myns", "")),
    ],
)
def test_urls_name_bucket_namespace_and_prefix(url, expected):
    assert parse_oci_url(url) == expected


@pytest.mark.parametrize(
    "url", ["oci://snaps/prefix", "oci://@ns/p", "oci://snaps@/p", "s3://b@n/p", "oci://b@n/p?x=1"]
)
def test_malformed_urls_are_config_errors(url):
    with pytest.raises(ConfigError):
        parse_oci_url(url)


def test_writes_are_create_only_checksummed_and_signed_with_the_profile_key(object_storage, api_key, bucket):
    store = open_with_key(object_storage, api_key, object_storage.url(bucket, "env/prod"))
    store.put_new("snapshots/s/1.snap", b"payload")

    put = [r for r in object_storage.requests if r.method == "PUT" and f"/b/{bucket}/" in r.path][-1]
    assert put.path == f"/n/{object_storage.namespace}/b/{bucket}/o/env%2Fprod%2Fsnapshots%2Fs%2F1.snap"
    assert put.headers["if-none-match"] == "*"
    assert put.headers["content-md5"] == base64.b64encode(hashlib.md5(b"payload").digest()).decode()
    assert put.headers["content-type"] == "application/octet-stream"
    assert f'keyId="{api_key.key_id}"' in put.headers["authorization"]
    assert object_storage.buckets[bucket]["env/prod/snapshots/s/1.snap"].data == b"payload"
    store.close()


def test_listing_follows_next_start_with_across_pages(object_storage, api_key, bucket):
    store = open_with_key(object_storage, api_key, object_storage.url(bucket, "p"), page_size=2)
    names = [f"snapshots/s/{i}.snap" for i in range(5)]
    for name in names:
        store.put_new(name, b"x")
    before = len(object_storage.requests)

    assert store.list("snapshots/") == names

    pages = [parse_qs(urlsplit(r.path).query) for r in object_storage.requests[before:]]
    assert [page.get("start") for page in pages] == [None, ["p/snapshots/s/2.snap"], ["p/snapshots/s/4.snap"]]
    assert all(page["prefix"] == ["p/snapshots/"] and page["limit"] == ["2"] for page in pages)
    store.close()


def test_prefixes_keep_stores_in_one_bucket_apart(object_storage, api_key, bucket):
    first = open_with_key(object_storage, api_key, object_storage.url(bucket, "one"))
    second = open_with_key(object_storage, api_key, object_storage.url(bucket, "one-more"))
    first.put_new("a.snap", b"1")
    second.put_new("a.snap", b"2")
    assert (first.list(), second.list()) == (["a.snap"], ["a.snap"])
    assert (first.get("a.snap"), second.get("a.snap")) == (b"1", b"2")


def test_a_missing_bucket_makes_the_store_unavailable_and_says_why(object_storage, api_key):
    store = open_with_key(object_storage, api_key, object_storage.url("no-such-bucket"))
    for call in every_operation(store):
        with pytest.raises(SnapshotStoreUnavailable, match="404 BucketNotFound"):
            call()


def test_an_unreachable_service_is_unavailable(api_key):
    with start_object_storage() as server:
        endpoint, url = server.endpoint, server.url("snapshots")
    store = open_snapshot_store(
        url, oci_endpoint=endpoint, oci_config_file=str(api_key.config_file), timeout=(2, 2), **no_retries()
    )
    for call in every_operation(store):
        with pytest.raises(SnapshotStoreUnavailable, match="cannot"):
            call()


def test_server_errors_are_unavailable_without_retries_and_retried_with_a_strategy(object_storage, api_key, bucket):
    plain = open_with_key(object_storage, api_key, object_storage.url(bucket))
    object_storage.fail_next(1, 503, "ServiceUnavailable")
    with pytest.raises(SnapshotStoreUnavailable, match="503 ServiceUnavailable"):
        plain.put_new("a.snap", b"x")

    quick = oci.retry.RetryStrategyBuilder(max_attempts=3, retry_base_sleep_time_seconds=0, decorrelated_jitter=0)
    url = object_storage.url(bucket)
    retrying = open_with_key(object_storage, api_key, url, retry_strategy=quick.get_retry_strategy())
    object_storage.fail_next(2, 500, "InternalServerError")
    retrying.put_new("a.snap", b"x")
    assert retrying.get("a.snap") == b"x"


def test_a_conflict_on_create_is_exists_unless_the_bytes_are_ours(object_storage, api_key, bucket):
    store = open_with_key(object_storage, api_key, object_storage.url(bucket))
    store.put_new("a.snap", b"mine")
    object_storage.fail_next(1, 409, "ConcurrentObjectUpdate")
    store.put_new("a.snap", b"mine")  # 409, then the object turns out to hold our bytes
    object_storage.fail_next(1, 409, "ConcurrentObjectUpdate")
    with pytest.raises(SnapshotExists):
        store.put_new("b.snap", b"theirs?")  # 409 and nothing there: not ours to claim
    with pytest.raises(SnapshotNotFound):
        store.get("b.snap")


def test_an_untrusted_key_is_refused(object_storage, tmp_path, bucket):
    stranger = write_api_key_profile(tmp_path)  # never trusted by the server
    store = open_with_key(object_storage, stranger, object_storage.url(bucket))
    with pytest.raises(SnapshotStoreUnavailable, match="401 NotAuthenticated"):
        store.list()


def test_the_profile_setting_picks_the_key(object_storage, tmp_path, bucket):
    write_api_key_profile(tmp_path, "DEFAULT")  # untrusted
    ci = write_api_key_profile(tmp_path, "CI")
    object_storage.trust_key(ci.key_id, ci.private_key.public_key())
    config = str(ci.config_file)
    url, endpoint = object_storage.url(bucket), object_storage.endpoint

    chosen = open_snapshot_store(url, oci_endpoint=endpoint, oci_config_file=config, oci_profile="CI", **no_retries())
    default = open_snapshot_store(url, oci_endpoint=endpoint, oci_config_file=config, **no_retries())
    assert chosen.list() == []
    with pytest.raises(SnapshotStoreUnavailable, match="401"):
        default.list()


def test_a_session_token_profile_signs_with_the_token(object_storage, tmp_path, bucket):
    key = new_rsa_key()
    (tmp_path / "key.pem").write_bytes(private_pem(key))
    (tmp_path / "token").write_text("session-token-123\n")
    (tmp_path / "config").write_text(
        f"[SESSION]\nfingerprint=aa:bb\nkey_file={tmp_path / 'key.pem'}\ntenancy=ocid1.tenancy.oc1..aaaaaaaafake\n"
        f"region=us-ashburn-1\nsecurity_token_file={tmp_path / 'token'}\n"
    )
    object_storage.trust_key("ST$session-token-123", key.public_key())
    store = open_snapshot_store(
        object_storage.url(bucket),
        oci_endpoint=object_storage.endpoint,
        oci_config_file=str(tmp_path / "config"),
        oci_profile="SESSION",
        **no_retries(),
    )
    store.put_new("a.snap", b"x")
    assert 'keyId="ST$session-token-123"' in object_storage.requests[-1].headers["authorization"]


def test_inside_oci_functions_it_signs_with_the_resource_principal(object_storage, bucket, monkeypatch):
    # What the Functions runtime injects (runtime-facts.md 1.2): RP version 2.2 with the token and key inline.
    key, token = new_rsa_key(), session_token()
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_RPST", token)
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", private_pem(key).decode())
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_REGION", "us-phoenix-1")
    object_storage.trust_key(f"ST${token}", key.public_key())

    # No config file exists at this path: the resource principal must be used instead.
    store = open_snapshot_store(
        object_storage.url(bucket),
        oci_endpoint=object_storage.endpoint,
        oci_config_file="/nonexistent/config",
        **no_retries(),
    )
    store.put_new("a.snap", b"x")

    assert store.get("a.snap") == b"x"
    assert f'keyId="ST${token}"' in object_storage.requests[-1].headers["authorization"]


def test_missing_credentials_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="OCI config"):
        OciObjectStore.from_url("oci://b@n/p", config_file=str(tmp_path / "missing"), environ={})
    write_api_key_profile(tmp_path, "DEFAULT")
    with pytest.raises(ConfigError, match="NOPE"):
        OciObjectStore.from_url("oci://b@n/p", config_file=str(tmp_path / "config"), profile="NOPE", environ={})


def test_a_big_object_goes_up_in_parts_and_its_commit_is_create_only(object_storage, api_key, bucket):
    store = open_with_key(object_storage, api_key, object_storage.url(bucket), multipart_min_bytes=1 << 20,
                          part_bytes=300_000)
    committed = object_storage.uploads.committed
    data = bytes(range(256)) * 8000  # 2,048,000 bytes: 7 parts
    store.put_new("big", data)
    assert object_storage.uploads.committed == committed + 1
    parts = [r for r in object_storage.requests if r.method == "PUT" and "uploadPartNum=" in r.path]
    assert len({r.path for r in parts[-7:]}) == 7
    commits = [r for r in object_storage.requests if r.method == "POST" and "uploadId=" in r.path]
    assert commits[-1].headers.get("if-none-match") == "*"
    with pytest.raises(SnapshotExists):
        store.put_new("big", data[::-1])  # its commit is refused (412): the first object stays
    assert store.get("big") == data and object_storage.uploads.committed == committed + 1
    store.close()
