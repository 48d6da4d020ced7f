"""Helpers of the fuzz tests: the example budget, the count of inputs tried per category, one
HTTP request to the gateway, the rule every answer must follow, and the canary keys."""

from __future__ import annotations

import http.client
import os
import uuid
from collections import Counter

import orjson

from streamcache_local.dev import DevStack

EXAMPLES = max(1, int(os.environ.get("FUZZ_EXAMPLES", "25")))
TRIED: Counter = Counter()  # inputs tried per category, printed at the end of the session


def examples(ci_default: int) -> int:
    """The example budget of one fuzz test: ``ci_default`` scaled by FUZZ_EXAMPLES / 25."""
    return max(1, ci_default * EXAMPLES // 25)


class Canaries:
    """Keys written before the fuzzing, with what they must still hold after it."""

    def __init__(self, stack: DevStack) -> None:
        self.stack = stack
        self.expected: dict[str, tuple[bytes, str]] = {}
        suffix = uuid.uuid4().hex[:6]
        for name, value in [("plain", b"canary"), ("json", b'{"a":[1,2]}'), ("ttl", b"long-lived"),
                            ("slash/and space", b"\x00\xffbinary")]:
            key = f"canary-{suffix}/{name}"
            path = f"/cache/{key.replace(' ', '%20')}" + ("?ttl=86400" if name == "ttl" else "")
            status, headers, _ = request(stack, "PUT", path, value)
            assert status == 201
            self.expected[key] = (value, headers["etag"])

    def check(self) -> None:
        for instance in self.stack.instances:
            assert instance.alive(), f"{instance.name} died during the fuzzing"
            for key, (value, etag) in self.expected.items():
                answer = instance.client.http_call("GET", f"/cache/{key.replace(' ', '%20')}?consistency=strong")
                assert (answer.status, answer.body, answer.header("etag")) == (200, value, etag), (instance.name, key)


def request(stack: DevStack, method: str, path: str, body: bytes | None = None,
            headers: dict | list | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = stack.gateway.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        pairs = headers.items() if isinstance(headers, dict) else (headers or [])
        for name, value in pairs:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def assert_sane(method: str, path: str, status: int, headers: dict[str, str], body: bytes) -> None:
    """Never a 5xx; every error a JSON body {"error", "message"} (no body for HEAD, 204, 304)."""
    assert status < 500, f"{method} {path[:200]} -> {status} {body[:300]!r}"
    if status >= 400 and method.upper() != "HEAD":
        doc = orjson.loads(body)
        assert isinstance(doc.get("error"), str) and isinstance(doc.get("message"), str), body[:300]
