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
    ) -> None:
        self._client = client
        self.namespace, self.bucket = namespace, bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.page_size = page_size
        self.connections = max(1, connections)
        self.range_bytes = max(1, range_bytes)

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
        return cls(client, namespace, bucket, prefix, page_size, connections, range_bytes)

    # ---- the port -------------------------------------------------------------------------------

    def put_new(self, name: str, data: bytes) -> None:
        full = self._full(name)
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
        try:
            with self._errors("write", name):
                self._client.put_object(
                    self.namespace,
                    self.bucket,
                    full,
                    data,
                    if_none_match="*",
                    content_md5=md5,
                    content_type="application/octet-stream",
                )
        except _Conflict:
            # Taken. If by these very bytes, it was our own attempt that landed before a retry.
            try:
                if self.get(name) == data:
                    return
            except SnapshotNotFound:
                pass  # deleted in between: still not ours to claim
            raise SnapshotExists(f"{self}: {name!r} already exists") from None

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


class _Conflict(Exception):
    """put_object found the name taken (409/412)."""
