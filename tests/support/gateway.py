"""One HTTP request to a local gateway (of a DevStack, or a GatewayServer itself), for the e2e tests."""

from __future__ import annotations

import http.client


def request(target, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """One HTTP request to the gateway of ``target`` (a DevStack or a GatewayServer)."""
    host, port = getattr(target, "gateway", target).server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()
