"""API keys (functions/streamcache/auth.py): the settings format, the check of one request, the
hash-key command. The check through a running function is in test_api_keys_http.py."""

from __future__ import annotations

import hashlib
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamcache.auth import ApiKey, ApiKeys, hash_key, hash_key_command, new_key, parse_api_keys, presented_key

WRITER, READER = "sck_writer-key", "sck_reader-key"
KEYS = ApiKeys(parse_api_keys(f"{hash_key(WRITER)}, {hash_key(READER, read_only=True)}"))


def test_an_entry_is_the_sha256_of_the_key_and_never_the_key():
    entry = hash_key("secret")
    assert entry == "sha256:" + hashlib.sha256(b"secret").hexdigest()
    assert "secret" not in entry
    assert hash_key("secret", read_only=True) == entry + ":ro"


def test_entries_parse_with_modes_blanks_and_either_case():
    digest = hashlib.sha256(b"k").hexdigest()
    keys = parse_api_keys(f" sha256:{digest.upper()}:rw ,, sha256:{digest}:ro,")
    assert keys == (ApiKey(bytes.fromhex(digest), False), ApiKey(bytes.fromhex(digest), True))
    assert parse_api_keys("") == () and parse_api_keys(" , ") == ()


@pytest.mark.parametrize("raw", ["my-plain-key", "sha256:abc", "md5:" + "0" * 64, "sha256:" + "g" * 64,
                                 "sha256:" + "0" * 64 + ":admin", "sha256:" + "0" * 63])
def test_a_malformed_entry_is_refused_without_echoing_it(raw):
    with pytest.raises(ValueError) as error:
        parse_api_keys("sha256:" + "1" * 64 + "," + raw)
    assert "entry 2" in str(error.value)
    assert raw not in str(error.value) or len(raw) < 8  # a pasted key must not reach the logs


def test_no_keys_configured_means_no_check():
    assert not ApiKeys().enabled
    assert ApiKeys().check("DELETE", {}) is None


@pytest.mark.parametrize("headers", [{"x-api-key": WRITER}, {"authorization": f"Bearer {WRITER}"},
                                     {"authorization": f"bearer   {WRITER} "},
                                     {"x-api-key": WRITER, "authorization": "Bearer gateway-jwt"}])
def test_a_valid_key_may_write(headers):
    for method in ("GET", "HEAD", "PUT", "POST", "DELETE"):
        assert KEYS.check(method, headers) is None


def test_a_missing_key_is_401_with_a_bearer_challenge():
    for headers in ({}, {"authorization": "Basic dXNlcjpwdw=="}, {"x-api-key": "  "}, {"authorization": "Bearer"}):
        denied = KEYS.check("GET", headers)
        assert (denied.status, denied.code) == (401, "unauthorized"), headers
        assert denied.headers["WWW-Authenticate"].startswith("Bearer ")


def test_a_wrong_key_is_401_invalid_token():
    for key in ("sck_other", WRITER + "x", WRITER[:-1], WRITER.upper(), "x" * 100_000):
        denied = KEYS.check("GET", {"x-api-key": key})
        assert (denied.status, denied.code) == (401, "unauthorized")
        assert 'error="invalid_token"' in denied.headers["WWW-Authenticate"]
    # X-Api-Key wins: a valid bearer token does not rescue a wrong X-Api-Key.
    assert KEYS.check("GET", {"x-api-key": "wrong", "authorization": f"Bearer {WRITER}"}).status == 401


def test_a_read_only_key_reads_but_every_other_method_is_403():
    for method in ("GET", "HEAD", "get"):
        assert KEYS.check(method, {"x-api-key": READER}) is None
    for method in ("PUT", "POST", "DELETE", "PATCH", "OPTIONS"):
        denied = KEYS.check(method, {"authorization": f"Bearer {READER}"})
        assert (denied.status, denied.code) == (403, "forbidden"), method


def test_identify_names_the_entry_and_its_log_id():
    entry = KEYS.identify({"x-api-key": READER})
    assert entry.read_only and entry.key_id == hashlib.sha256(READER.encode()).hexdigest()[:8]
    assert KEYS.identify({"x-api-key": "nope"}) is None


def test_every_entry_is_compared_every_time(monkeypatch):
    """Constant time: compare_digest runs against each entry whether or not an earlier one matched."""
    import streamcache.auth as auth

    calls = []
    real = auth.hmac.compare_digest
    monkeypatch.setattr(auth.hmac, "compare_digest", lambda a, b: calls.append(b) or real(a, b))
    keys = ApiKeys(parse_api_keys(",".join(hash_key(f"k{n}") for n in range(5))))
    for presented in ("k0", "k4", "nope"):
        calls.clear()
        keys.identify({"x-api-key": presented})
        assert calls == [entry.digest for entry in keys.keys]


@given(st.text(min_size=1, max_size=64).filter(lambda s: s.strip() == s and "\x00" not in s))
def test_any_key_matches_its_own_entry_only(key):
    keys = ApiKeys(parse_api_keys(hash_key(key)))
    assert keys.check("PUT", {"x-api-key": key}) is None
    assert keys.check("PUT", {"x-api-key": key + "!"}).status == 401


def test_presented_key_ignores_other_schemes():
    assert presented_key({"authorization": "Token abc"}) is None
    assert presented_key({"authorization": "Bearer abc"}) == "abc"


def test_new_keys_are_long_and_distinct():
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100 and all(k.startswith("sck_") and len(k) >= 40 for k in keys)


def test_hash_key_command_prints_the_entry():
    out, err = io.StringIO(), io.StringIO()
    assert hash_key_command("s3cret", False, False, io.StringIO(), out, err) == 0
    assert out.getvalue() == hash_key("s3cret") + "\n"

    out = io.StringIO()
    assert hash_key_command("-", True, False, io.StringIO("from-stdin\nignored\n"), out, err) == 0
    assert out.getvalue() == hash_key("from-stdin", read_only=True) + "\n"

    out = io.StringIO()
    assert hash_key_command(None, False, True, io.StringIO(), out, err) == 0
    key, entry = out.getvalue().splitlines()
    assert ApiKeys(parse_api_keys(entry)).check("PUT", {"x-api-key": key}) is None

    out, err = io.StringIO(), io.StringIO()
    assert hash_key_command(None, False, False, io.StringIO(""), out, err) == 2
    assert out.getvalue() == "" and "no key" in err.getvalue()
