"""A snapshot store on OCI Object Storage, through the ``oci`` SDK: ``oci://BUCKET@NAMESPACE/PREFIX``.

Signing: inside OCI Functions (``OCI_RESOURCE_PRINCIPAL_VERSION`` set) the function's resource
principal; elsewhere a profile of ``~/.oci/config`` (API key, or a session token from
``oci session authenticate``). ``endpoint`` overrides the service URL (the local server in tests).

Writes are create-only (``if-none-match: *``) and carry ``content-md5`` so that the service rejects
a body damaged in transit. SDK errors are translated here and nowhere else: 404 ``ObjectNotFound``
is :class:`SnapshotNotFound` (or nothing, for delete), 409/412 on create is :class:`SnapshotExists`,
every other refusal and every transport error is :class:`SnapshotStoreUnavailable`.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator, Mapping

import oci

# The vendored requests' base exception: the SDK's RequestException and ConnectTimeout derive from
# it, and reading a response body raises it directly (outside the SDK's own wrapping).
from oci._vendor.requests.exceptions import RequestException as TransportError

from streamcache.adapters.oci_auth import bounded_retries, client_options, oci_credentials, parse_oci_url
from streamcache.core.errors import ConfigError
from streamcache.ports import DEFAULT_CHUNK_BYTES, SnapshotExists, SnapshotNotFound, SnapshotStoreUnavailable, check_name

#: (connect, read) seconds. A snapshot of 1M keys is ~110 MB: a read timeout is per socket read.
DEFAULT_TIMEOUT = (10.0, 60.0)
#: Ranged GETs a big read runs at once (one object stream moves tens of MB/s on OCI, so a few in
#: parallel multiply what a cold start downloads per second); 1 reads in order on one connection.
DEFAULT_CONNECTIONS = 4
#: The size of each ranged GET of a read (the last one is shorter).
DEFAULT_RANGE_BYTES = 16 << 20
#: Objects at least this big are uploaded in parts (the SDK's UploadManager switches at 128 MiB; OCI
#: recommends multipart above 100 MiB), ``connections`` parts at a time.
DEFAULT_MULTIPART_MIN_BYTES = 128 << 20
#: The size of each part (OCI: at least 10 MiB except the last, at most 10,000 parts).
DEFAULT_PART_BYTES = 32 << 20
#: How much of a range is copied at a time from the socket into the caller's buffer.
_COPY_BYTES = 1 << 20


def default_retry_strategy() -> object:
    """Bounded retries for throttling, 5xx and transport errors: at most 4 attempts within 30 s, so a
    function invocation fails (503) well inside its timeout instead of the SDK's default 10 minutes."""
    return bounded_retries(max_attempts=4, total_s=30, max_wait_s=8)


class OciObjectStore:
    """Snapshot objects in one bucket, under an optional prefix."""

    def __init__(
        self,
        client: oci.object_storage.ObjectStorageClient,
        namespace: str,
        bucket: str,
        prefix: str = "",
        page_size: int = 1000,
        connections: int = DEFAULT_CONNECTIONS,
        range_bytes: int = DEFAULT_RANGE_BYTES,
        multipart_min_bytes: int = DEFAULT_MULTIPART_MIN_BYTES,
        part_bytes: int = DEFAULT_PART_BYTES,
    ) -> None:
        self._client = client
        self.namespace, self.bucket = namespace, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.page_size = page_size
        self.connections = max(1, connections)
        self.range_bytes = max(1, range_bytes)
        self.multipart_min_bytes = multipart_min_bytes
        self.part_bytes = max(1, part_bytes, -(-multipart_min_bytes // 10_000))

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        profile: str | None = None,
        config_file: str | None = None,
        endpoint: str | None = None,
        signer: object | None = None,
        retry_strategy: object | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        environ: Mapping[str, str] | None = None,
        page_size: int = 1000,
        connections: int = DEFAULT_CONNECTIONS,
        range_bytes: int = DEFAULT_RANGE_BYTES,
        multipart_min_bytes: int = DEFAULT_MULTIPART_MIN_BYTES,
        part_bytes: int = DEFAULT_PART_BYTES,
    ) -> "OciObjectStore":
        """Open the store named by ``url``; see the module docstring for how it signs.
        ``signer`` bypasses that choice (tests); ``retry_strategy`` defaults to
        :func:`default_retry_strategy` (pass ``oci.retry.NoneRetryStrategy()`` for none)."""
        bucket, namespace, prefix = parse_oci_url(url)
        environ = os.environ if environ is None else environ
        config, signer = oci_credentials(environ, profile, config_file, signer)
        kwargs = client_options(signer, endpoint, default_retry_strategy() if retry_strategy is None else retry_strategy,
                                timeout)
        try:
            client = oci.object_storage.ObjectStorageClient(config, **kwargs)
        except (oci.exceptions.ClientError, ValueError) as exc:
            raise ConfigError([f"snapshot store {url!r}: {exc}"]) from exc
        return cls(client, namespace, bucket, prefix, page_size, connections, range_bytes, multipart_min_bytes,
                   part_bytes)

    # ---- the port -------------------------------------------------------------------------------

    def put_new(self, name: str, data: bytes) -> None:
        full = self._full(name)
        try:
            with self._errors("write", name):
                if len(data) >= self.multipart_min_bytes:
                    self._put_in_parts(full, memoryview(data))
                else:
                    self._client.put_object(self.namespace, self.bucket, full, data, if_none_match="*",
                                            content_md5=_md5(data), content_type="application/octet-stream")
        except _Conflict:
            # Taken. If by these very bytes, it was our own attempt that landed before a retry.
            try:
                if self._holds(name, data):
                    return
            except SnapshotNotFound:
                pass  # deleted in between: still not ours to claim
            raise SnapshotExists(f"{self}: {name!r} already exists") from None

    def _put_in_parts(self, full: str, data: memoryview) -> None:
        """A multipart upload, by hand: the SDK's UploadManager passes ``if_none_match`` to the upload's
        creation only, and two writers could then both commit. Here the commit carries it, so the
        object is created once (the other commit answers 412), as a single PUT is."""
        details = oci.object_storage.models.CreateMultipartUploadDetails(object=full,
                                                                          content_type="application/octet-stream")
        upload_id = self._client.create_multipart_upload(self.namespace, self.bucket, details,
                                                         if_none_match="*").data.upload_id
        try:
            def part(number: int) -> oci.object_storage.models.CommitMultipartUploadPartDetails:
                body = data[(number - 1) * self.part_bytes : number * self.part_bytes]
                answer = self._client.upload_part(self.namespace, self.bucket, full, upload_id, number, bytes(body),
                                                  content_md5=_md5(body))
                return oci.object_storage.models.CommitMultipartUploadPartDetails(part_num=number,
                                                                                  etag=answer.headers["etag"])

            numbers = range(1, -(-len(data) // self.part_bytes) + 1)
            with ThreadPoolExecutor(min(self.connections, len(numbers)), thread_name_prefix="streamcache-put") as pool:
                parts = list(pool.map(part, numbers))
            commit = oci.object_storage.models.CommitMultipartUploadDetails(parts_to_commit=parts)
            self._client.commit_multipart_upload(self.namespace, self.bucket, full, upload_id, commit,
                                                 if_none_match="*")
        except BaseException:
            try:  # nothing of a failed upload is left to pay for (a lifecycle rule would remove it later)
                self._client.abort_multipart_upload(self.namespace, self.bucket, full, upload_id)
            except (oci.exceptions.ServiceError, TransportError):
                pass
            raise

    def _holds(self, name: str, data: bytes) -> bool:
        """Whether ``name`` holds exactly ``data``, compared a range at a time (never a second copy)."""
        view, chunk = memoryview(data), bytearray(max(1, min(len(data), self.range_bytes)))
        for at in range(0, max(1, len(data)), len(chunk)):
            part = memoryview(chunk)[: min(len(chunk), len(data) - at)]
            if self.read_into(name, part, at) != len(data) or part != view[at : at + len(part)]:
                return False
        return True

    def get(self, name: str) -> bytes:
        full = self._full(name)
        with self._errors("read", name):
            response = self._client.get_object(self.namespace, self.bucket, full)
            return response.data.content

    def open_stream(self, name: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
        full = self._full(name)
        with self._errors("read", name):
            response = self._client.get_object(self.namespace, self.bucket, full)
        return self._chunks(response.data, name, chunk_bytes)

    def _chunks(self, body, name: str, chunk_bytes: int) -> Iterator[bytes]:
        # ``body`` is the SDK's unread streaming response: chunks arrive as they are consumed.
        try:
            with self._errors("read", name):
                for chunk in body.iter_content(chunk_bytes):
                    if chunk:
                        yield chunk
        finally:
            body.close()

    def read_into(self, name: str, buffer: memoryview, offset: int = 0) -> int:
        # The caller sized ``buffer`` for the object, so every range starts at once (up to
        # ``connections``), each on its own pooled connection of the one client (as the SDK's
        # UploadManager shares its client between part uploads), each written straight at its place.
        # Any answer's content-range tells the object's size; ranges past its end answer 416.
        full = self._full(name)
        starts = range(0, len(buffer), self.range_bytes)

        def fetch(at: int) -> int | None:
            return self._range(full, name, buffer, offset, at, min(len(buffer), at + self.range_bytes))

        if len(starts) <= 1 or self.connections == 1:
            sizes = [fetch(at) for at in starts]
        else:
            with ThreadPoolExecutor(min(self.connections, len(starts)), thread_name_prefix="streamcache-get") as pool:
                sizes = list(pool.map(fetch, starts))  # re-raises the first failure
        known = [size for size in sizes if size is not None]
        if known:
            return known[0]
        with self._errors("read", name):  # nothing to read there: the object is empty or ends before
            head = self._client.head_object(self.namespace, self.bucket, full)
        return int(head.headers["content-length"])

    def _range(self, full: str, name: str, buffer: memoryview, offset: int, start: int, end: int) -> int | None:
        """Fetch bytes ``offset+start .. offset+end`` of the object into ``buffer[start:end]``; the
        object's size, or ``None`` when the range starts beyond it (416)."""
        try:
            with self._errors("read", name):
                response = self._client.get_object(self.namespace, self.bucket, full,
                                                   range=f"bytes={offset + start}-{offset + end - 1}")
        except SnapshotStoreUnavailable as exc:
            if isinstance(exc.__cause__, oci.exceptions.ServiceError) and exc.__cause__.status == 416:
                return None
            raise
        body = response.data
        try:
            with self._errors("read", name):
                at = start
                for chunk in body.iter_content(_COPY_BYTES):
                    if at + len(chunk) > end:
                        raise SnapshotStoreUnavailable(f"{self}: {name!r}: the range answered more bytes than asked")
                    buffer[at : at + len(chunk)] = chunk
                    at += len(chunk)
        finally:
            body.close()
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", response.headers.get("content-range", "").strip())
        if match is None:
            raise SnapshotStoreUnavailable(f"{self}: {name!r}: a ranged GET was answered without content-range")
        return int(match.group(3))

    def list(self, prefix: str = "") -> list[str]:
        names: list[str] = []
        start = None
        with self._errors("list", prefix):
            while True:
                page = self._client.list_objects(
                    self.namespace,
                    self.bucket,
                    prefix=self.prefix + prefix,
                    start=start,
                    limit=self.page_size,
                    fields="name",
                ).data
                names.extend(o.name[len(self.prefix) :] for o in page.objects)
                start = page.next_start_with
                if not start:
                    break
        return sorted(names)

    def delete(self, name: str) -> None:
        full = self._full(name)
        try:
            with self._errors("delete", name):
                self._client.delete_object(self.namespace, self.bucket, full)
        except SnapshotNotFound:
            pass

    def close(self) -> None:
        self._client.base_client.session.close()

    def __str__(self) -> str:
        return f"oci://{self.bucket}@{self.namespace}/{self.prefix}"

    # ---- helpers --------------------------------------------------------------------------------

    def _full(self, name: str) -> str:
        return self.prefix + check_name(name)

    @contextmanager
    def _errors(self, action: str, name: str) -> Iterator[None]:
        try:
            yield
        except oci.exceptions.ServiceError as exc:
            if exc.status == 404 and exc.code == "ObjectNotFound":
                raise SnapshotNotFound(f"{self}: no object {name!r}") from None
            if action == "write" and exc.status in (409, 412):
                raise _Conflict() from exc
            detail = f"{exc.status} {exc.code}: {exc.message} (opc-request-id {exc.request_id})"
            raise SnapshotStoreUnavailable(f"{self}: cannot {action} {name!r}: {detail}") from exc
        except TransportError as exc:
            raise SnapshotStoreUnavailable(f"{self}: cannot {action} {name!r}: {exc}") from exc


def _md5(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


class _Conflict(Exception):
    """put_object found the name taken (409/412)."""
