"""Checking the secured link to the Kafka endpoint once, before the clients use it, so that a wrong
setting fails at once and says which setting to fix.

kafka-python treats an untrusted certificate or a refused password like an unreachable broker: it
retries its bootstrap until ``bootstrap_timeout_ms`` and then reports "Unable to bootstrap", which
names neither the cause nor the setting. :func:`check_link` opens one connection the way the clients
will (TLS against the configured CA, then SaslHandshake and SaslAuthenticate with kafka-python's own
mechanisms) and raises :class:`~streamcache.core.errors.LogUnavailable` naming
``STREAMCACHE_KAFKA_SSL_CA_FILE``, ``STREAMCACHE_KAFKA_SASL_MECHANISM`` or the SASL username and
password. A network failure is not judged here: the clients meet it and report it as before.

It also counts the read answers the broker throttled (:func:`throttled_reads`). kafka-python honours
``throttle_time_ms`` itself (it holds the connection that long) but tells its user only through its
metrics (off here: they cost every request) and one WARNING line per throttled answer on
``kafka.net.connection``. :class:`_ThrottleCounter`, a filter on that logger, counts those lines
and drops them: the replica paces its reads by the count and logs one line per episode instead
(:mod:`streamcache.cache.read_pacing`), where a fleet over its budget would write a line per request.

And it closes a producer whose broker went away (:func:`close_producer`), which kafka-python's own
``close`` cannot do cleanly.
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
from typing import Mapping

from kafka import KafkaProducer
from kafka import errors as kafka_errors
from kafka.net.sasl import get_sasl_mechanism
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.sasl import (SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
                                 SaslHandshakeResponse)

from streamcache.core.errors import LogUnavailable

class _ThrottleCounter(logging.Filter):
    """Counts kafka-python's "<conn>: <Response> throttled by broker (<ms> ms)" lines of read answers
    (Fetch, ListOffsets), and drops every throttle line (the pacing logs the episode)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if "throttled by broker" not in str(record.msg):
            return True
        answer = str(record.args[1]) if isinstance(record.args, tuple) and len(record.args) > 1 else ""
        if answer.startswith(("Fetch", "ListOffsets")):
            with self._lock:
                self.reads += 1
        return False


_THROTTLES = _ThrottleCounter()
logging.getLogger("kafka.net.connection").addFilter(_THROTTLES)


def throttled_reads() -> int:
    """Read answers (Fetch, ListOffsets) the broker throttled in this process so far. One count for
    the process: an instance has one reading client (a second one in the process shares the count)."""
    return _THROTTLES.reads


_CA = "STREAMCACHE_KAFKA_SSL_CA_FILE"
_CREDENTIALS = ("STREAMCACHE_KAFKA_SASL_USERNAME and STREAMCACHE_KAFKA_SASL_PASSWORD (or the Vault secret "
                "STREAMCACHE_KAFKA_SASL_PASSWORD_SECRET_ID names)")


def check_link(bootstrap: str, security: Mapping[str, object], timeout_s: float) -> None:
    """Connect to the first bootstrap address as the clients will and authenticate; raise
    LogUnavailable naming the setting when the certificate or the credentials are refused."""
    protocol = str(security.get("security_protocol", "PLAINTEXT"))
    if protocol == "PLAINTEXT":
        return
    host, port = bootstrap.split(",")[0].strip().rsplit(":", 1)
    try:
        raw = socket.create_connection((host, int(port)), timeout=timeout_s)
    except OSError:
        return  # unreachable: the clients say so in their own words
    try:
        sock = _tls(raw, host, security) if protocol.endswith("SSL") else raw
        if protocol.startswith("SASL"):
            _authenticate(sock, host, security)
    except (OSError, EOFError):
        return  # the network failed mid-check: not a verdict on the settings
    finally:
        raw.close()


def _tls(raw: socket.socket, host: str, security: Mapping[str, object]) -> socket.socket:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # as kafka-python builds it
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = bool(security.get("ssl_check_hostname", True))
    cafile = security.get("ssl_cafile")
    if cafile:
        context.load_verify_locations(str(cafile))
    else:
        context.load_default_certs()
    try:
        return context.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        trusted = f"the CA file {cafile}" if cafile else "the system's CAs"
        raise LogUnavailable(f"the Kafka endpoint's TLS certificate is not trusted by {trusted} "
                             f"({exc.verify_message}): set {_CA} to the CA that signed it") from None


def _authenticate(sock: socket.socket, host: str, security: Mapping[str, object]) -> None:
    mechanism_name = str(security.get("sasl_mechanism", "PLAIN"))
    versions = _call(sock, ApiVersionsRequest(version=0), ApiVersionsResponse, 0)
    keys = {key.api_key: key.max_version for key in versions.api_keys}
    if SaslAuthenticateRequest.API_KEY not in keys:
        return  # an old broker (raw SASL bytes): leave it to the clients
    handshake = _call(sock, SaslHandshakeRequest(mechanism=mechanism_name), SaslHandshakeResponse, 1)
    if handshake.error_code != 0 or mechanism_name not in handshake.mechanisms:
        raise LogUnavailable(f"the Kafka endpoint does not offer SASL mechanism {mechanism_name} (it offers "
                             f"{', '.join(handshake.mechanisms) or 'none'}): set STREAMCACHE_KAFKA_SASL_MECHANISM")
    mechanism = get_sasl_mechanism(mechanism_name)(host=host, **security)
    version = min(1, keys[SaslAuthenticateRequest.API_KEY])
    while not mechanism.is_done():
        answer = _call(sock, SaslAuthenticateRequest(auth_bytes=mechanism.auth_bytes()), SaslAuthenticateResponse,
                       version)
        if answer.error_code != 0:
            raise LogUnavailable(f"the Kafka endpoint refused the SASL {mechanism_name} credentials "
                                 f"({answer.error_message}): check {_CREDENTIALS}")
        mechanism.receive(answer.auth_bytes)
    if not mechanism.is_authenticated():
        raise LogUnavailable(f"SASL {mechanism_name} authentication with the Kafka endpoint did not complete: "
                             f"check {_CREDENTIALS}")


def _call(sock: socket.socket, request, response_class, version: int):
    request.API_VERSION = version
    request.with_header(correlation_id=1, client_id="streamcache-link-check")
    sock.sendall(request.encode(header=True, framed=True))
    (size,) = struct.unpack(">i", _read(sock, 4))
    return response_class.decode(_read(sock, size), version=version, header=True)


def _read(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the Kafka endpoint closed the connection")
        data += chunk
    return data


def close_producer(producer: KafkaProducer) -> None:
    """Close a producer even when records are stuck in it (broker gone).

    kafka-python's ``close`` flushes first and raises if the flush times out, before marking the
    producer closed; its ``__del__`` then raises again during garbage collection. Force-close the
    sender and mark it closed ourselves in that case.
    """
    try:
        producer.close(timeout=1)
    except kafka_errors.KafkaTimeoutError:
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
        producer._closed = True
