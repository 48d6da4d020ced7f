"""``GET /_local/stack`` on ``streamcache dev``'s gateway: what runs where, so that tools on this
machine (``streamcache watch``) find the local stream without flags.

Only the local stand-in answers it. OCI API Gateway routes nothing like it and the cache function
answers 404 outside its route prefix, so a production deployment never reveals its stream this way.
The answer::

    {"kind": "streamcache-dev", "log_url": "kafka://127.0.0.1:PORT/streamcache", "topic": "streamcache",
     "partitions": 3, "gateway": "http://127.0.0.1:8080", "pid": 1234, ...}

plus, when the stack has them, ``stream_id``, ``data_dir`` and ``snapshot_url`` (so that
``streamcache compact`` and ``streamcache snapshots`` find this run's snapshots without flags).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, NamedTuple
from urllib.parse import urlsplit

import orjson

STACK_PATH = "/_local/stack"
KIND = "streamcache-dev"


class StackAnswer(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def is_stack_path(path: str) -> bool:
    """Whether a request path (with or without a query) asks for the stack description."""
    return urlsplit(path).path.rstrip("/") == STACK_PATH


def describe(log_url: str, partitions: int, gateway_url: str, *, stream_id: str | None = None,
             data_dir: str | os.PathLike[str] | None = None) -> dict:
    """The stack description a :class:`~streamcache_local.dev.DevStack` publishes."""
    info: dict = {"kind": KIND, "log_url": log_url, "topic": urlsplit(log_url).path.strip("/") or None,
                  "partitions": partitions, "gateway": gateway_url, "pid": os.getpid()}
    if stream_id:
        info["stream_id"] = stream_id
    if data_dir is not None:
        info["data_dir"] = os.fspath(data_dir)
        info["snapshot_url"] = Path(data_dir).resolve().as_uri()  # as the instances get it (data_dir.py)
    return info


def stack_answer(method: str, info: Mapping[str, object] | None) -> StackAnswer:
    """The gateway's answer to a request for :data:`STACK_PATH` (JSON, ``{"error", "message"}`` on failure)."""
    json = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
    if method not in ("GET", "HEAD"):
        return StackAnswer(405, [*json, ("Allow", "GET, HEAD")],
                           orjson.dumps({"error": "method_not_allowed", "message": f"{STACK_PATH} answers GET"}))
    if info is None:
        return StackAnswer(404, json, orjson.dumps({"error": "not_found", "message": "this gateway publishes no stack"}))
    return StackAnswer(200, json, orjson.dumps(dict(info)))
