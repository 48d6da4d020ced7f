"""Multipart uploads for the local Object Storage server, as the ``oci`` SDK drives them:
``POST /n/{ns}/b/{bucket}/u`` (create: ``{"object": name}``), ``PUT .../u/{object}?uploadId=&uploadPartNum=``
(a part; answers its ``etag``), ``POST .../u/{object}?uploadId=`` (commit ``partsToCommit``, in part
number order, each with the etag its upload answered) and ``DELETE .../u/{object}?uploadId=`` (abort).

Committing creates the object like a PUT does, with the commit request's ``if-match`` /
``if-none-match`` checked against the target (so ``if-none-match: *`` keeps it create-only); the
server does that part (:class:`Commit` is what it stores). Parts live in memory until the commit or
the abort, as an uncommitted upload does in OCI until a lifecycle rule removes it.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Mapping

import orjson


class UploadRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Commit:
    """An upload's assembled object, to be stored under ``name`` (conditions of the commit request)."""

    upload_id: str
    name: str
    data: bytes
    md5: str  # opc-multipart-md5: the MD5 of the parts' MD5s, with the part count


@dataclass
class _Upload:
    bucket: str
    name: str
    created: float
    parts: dict[int, tuple[bytes, str]] = field(default_factory=dict)  # number -> (bytes, etag)


class Uploads:
    """The server's uploads in progress."""

    def __init__(self) -> None:
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()
        self.committed = 0  # commits that stored an object (tests check multipart was used)

    def handle(self, method: str, namespace: str, bucket: str, name: str, query: Mapping[str, list[str]],
               body: bytes) -> tuple[int, bytes, dict[str, str]] | Commit:
        """The answer to one request under ``/u``, or the :class:`Commit` to store."""
        upload_id = (query.get("uploadId") or [None])[0]
        if not name and method == "POST":
            return self._create(namespace, bucket, body)
        with self._lock:
            upload = self._uploads.get(upload_id or "")
        if upload is None or upload.bucket != bucket or upload.name != name:
            raise UploadRefused(404, "NoSuchUpload", f"no upload {upload_id!r} of {name!r}")
        if method == "PUT":
            return self._part(upload, query, body)
        if method == "POST":
            return self._commit(upload_id or "", upload, body)
        if method == "DELETE":
            with self._lock:
                self._uploads.pop(upload_id or "", None)
            return 204, b"", {}
        raise UploadRefused(405, "MethodNotAllowed", f"{method} is not allowed on an upload")

    def _create(self, namespace: str, bucket: str, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        try:
            name = orjson.loads(body)["object"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UploadRefused(400, "InvalidParameter", "the body must be {\"object\": name}") from None
        upload_id = str(uuid.uuid4())
        created = time.time()
        with self._lock:
            self._uploads[upload_id] = _Upload(bucket, name, created)
        answer = {"namespace": namespace, "bucket": bucket, "object": name, "uploadId": upload_id,
                  "timeCreated": iso_time(created), "storageTier": "Standard"}
        return 200, orjson.dumps(answer), {"content-type": "application/json"}

    def _part(self, upload: _Upload, query: Mapping[str, list[str]], body: bytes) -> tuple[int, bytes, dict[str, str]]:
        try:
            number = int((query.get("uploadPartNum") or [""])[0])
        except ValueError:
            number = 0
        if not 1 <= number <= 10_000:
            raise UploadRefused(400, "InvalidParameter", "uploadPartNum must be 1 to 10000")
        etag = str(uuid.uuid4())
        with self._lock:
            upload.parts[number] = (body, etag)
        md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
        return 200, b"", {"etag": etag, "opc-content-md5": md5}

    def _commit(self, upload_id: str, upload: _Upload, body: bytes) -> Commit:
        try:
            wanted = [(int(p["partNum"]), str(p["etag"])) for p in orjson.loads(body)["partsToCommit"]]
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UploadRefused(400, "InvalidParameter", "the body must list partsToCommit") from None
        with self._lock:
            parts = dict(upload.parts)
        if not wanted or [n for n, _ in wanted] != sorted({n for n, _ in wanted}):
            raise UploadRefused(400, "InvalidParameter", "partsToCommit must be distinct, in ascending order")
        if any(n not in parts or parts[n][1] != etag for n, etag in wanted):
            raise UploadRefused(400, "InvalidParameter", "a part to commit was not uploaded (or has another etag)")
        digests = b"".join(hashlib.md5(parts[n][0]).digest() for n, _ in wanted)
        md5 = f"{base64.b64encode(hashlib.md5(digests).digest()).decode()}-{len(wanted)}"
        return Commit(upload_id, upload.name, b"".join(parts[n][0] for n, _ in wanted), md5)

    def finish(self, upload_id: str) -> None:
        """The commit's object was stored: the upload is over."""
        with self._lock:
            if self._uploads.pop(upload_id, None) is not None:
                self.committed += 1


def iso_time(seconds: float) -> str:
    ms = int(seconds * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
