"""The operations :class:`~streamcache.client.cache_client.Client` sends, in the direct-invoke API's
shape (:mod:`streamcache.cache.invoke_api`, values as bytes), and which of them are safe to repeat."""

from __future__ import annotations

import base64

import orjson


class Op:
    """Operations for :meth:`Client.batch`: ``Op.put("k", b"v")``, ``Op.get("k")``, ``Op.delete("k")``."""

    @staticmethod
    def get(key: str, consistency: str | None = None) -> dict:
        return _drop_none({"operation": "get", "key": key, "consistency": consistency})

    @staticmethod
    def put(key: str, value: bytes | str, ttl: float | None = None, if_match: str | None = None,
            if_none_match: bool = False, content_type: str | None = None) -> dict:
        if isinstance(value, str):
            value, content_type = value.encode("utf-8"), content_type or "text/plain; charset=utf-8"
        elif not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"value must be bytes or str, not {type(value).__name__}")
        return _drop_none({"operation": "put", "key": key, "value": bytes(value), "ttl": ttl,
                           "content_type": content_type or "application/octet-stream",
                           "if_match": _unquoted(if_match), "if_none_match": "*" if if_none_match else None})

    @staticmethod
    def increment(key: str, by: int = 1, ttl: float | None = None) -> dict:
        return _drop_none({"operation": "incr", "key": key, "by": by, "ttl": ttl})

    @staticmethod
    def touch(key: str, ttl: float | None, if_match: str | None = None) -> dict:
        """A new TTL for the value held (``None``: no expiry), the value and its version unchanged."""
        return {"operation": "touch", "key": key, "ttl": ttl, **_drop_none({"if_match": _unquoted(if_match)})}

    @staticmethod
    def delete(key: str, if_match: str | None = None) -> dict:
        return _drop_none({"operation": "delete", "key": key, "if_match": _unquoted(if_match)})

    @staticmethod
    def list(prefix: str = "", limit: int = 100, cursor: str | None = None, consistency: str | None = None) -> dict:
        return _drop_none({"operation": "list", "prefix": prefix, "limit": limit, "cursor": cursor,
                           "consistency": consistency})


def is_write(op: dict) -> bool:
    """Changes the cache if it runs: a put, a delete, an increment or a touch. Sent without an answer,
    its outcome is unknown (:class:`UnansweredWrite`), never a plain :class:`Unreachable`."""
    return op.get("operation") in ("put", "delete", "incr", "touch")


def idempotent(op: dict) -> bool:
    """Safe to send twice: reads, and writes without a precondition (the second leaves the same state)."""
    if op["operation"] == "incr":  # adds again: never safe to repeat
        return False
    return op["operation"] in ("get", "list", "health", "changes") or ("if_match" not in op and "if_none_match" not in op)


def _unquoted(version: str | None) -> str | None:
    """Versions are accepted as the ETag too (``"2-15"`` with quotes)."""
    return None if version is None else version.strip().removeprefix("W/").strip('"')


def _drop_none(op: dict) -> dict:
    return {name: value for name, value in op.items() if value is not None}


# ---- the wire: the direct-invoke JSON (a direct invoke, and a batch POSTed over HTTP) ---------------


def to_wire(op: dict) -> dict:
    """An operation as JSON: bytes as base64; gets ask for base64 so every value comes back exact."""
    wire = dict(op)
    if "value" in wire:
        wire["value_base64"] = base64.b64encode(wire.pop("value")).decode("ascii")
    if wire["operation"] == "get":
        wire["value_encoding"] = "base64"
    return wire


def from_wire(answer: dict) -> dict:
    if "value_base64" in answer:
        answer = dict(answer)
        answer["value"] = base64.b64decode(answer.pop("value_base64"))
    elif "value" in answer and answer.get("status") == 200:
        # A function older than "value_encoding" answers JSON as JSON and text as text.
        answer = dict(answer)
        value, media = answer["value"], str(answer.get("content_type", "")).split(";")[0].strip().lower()
        json_type = media == "application/json" or media.endswith("+json")
        answer["value"] = value.encode("utf-8") if isinstance(value, str) and not json_type else orjson.dumps(value)
    return answer


def invalid_answer(message: str) -> dict:
    return {"status": 502, "error": "invalid_answer", "message": message}
