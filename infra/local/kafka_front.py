"""OCI Streaming's front end, played locally in front of the Tansu broker.

    front = start_front(broker_bootstrap, tls=True, sasl=("SCRAM-SHA-512", "streamcache", "pw"))
    front.bootstrap, front.ca_file, front.security_settings()   # what a function needs to connect
    front.stats()                                                # read rates, throttling, recycling
    front.close_all(); front.stop()

Each part is off unless asked, with OCI's figures as defaults (docs/local.md says which are assumed):

- ``latency_s``: a round trip added to every request (half each way), as a network service costs.
- ``recycle_s``: each connection is closed after a random time in this range (OCI closes Kafka
  connections to rebalance its front ends); ``idle_close_s``: and when idle this long.
- ``read_budget``: Fetch and ListOffsets requests per partition per second, counted across all
  connections as one budget (the readers use no consumer group). The excess is answered the Kafka
  way: held until it fits the budget, then answered with ``throttle_time_ms`` saying how long.
- ``tls``: TLS with a CA and a server certificate made at start (:mod:`.kafka_tls`).
- ``sasl``: ``(mechanism, user, password)``, answered here (:mod:`.kafka_sasl`); the broker behind
  speaks plaintext.

The broker must advertise the front end's address (clients connect to the address in the metadata):
:func:`start_fronted_broker` starts Tansu that way.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import struct
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

from kafka.protocol.consumer.fetch import FetchRequest
from kafka.protocol.consumer.offsets import ListOffsetsRequest

from streamcache_local.broker import LocalBroker, free_port, start_broker
from streamcache_local.kafka_proxy import FETCH, LIST_OFFSETS, Conn, KafkaProxy
from streamcache_local.kafka_sasl import (API_VERSIONS, SASL_AUTHENTICATE, SASL_HANDSHAKE, Phase, SaslServer,
                                          admit_sasl_apis)
from streamcache_local.kafka_tls import TlsFiles, make_tls_files

#: Versions from which a response starts with throttle_time_ms, and from which its header is flexible.
_THROTTLE_FROM = {FETCH: 1, LIST_OFFSETS: 2}
_FLEXIBLE_FROM = {FETCH: 12, LIST_OFFSETS: 6}


class KafkaFront(KafkaProxy):
    """The front end. Use :func:`start_front`."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1", port: int = 0, *,
                 latency_s: float = 0.0, recycle_s: tuple[float, float] | None = None,
                 idle_close_s: float | None = None, read_budget: int | None = None,
                 tls: TlsFiles | None = None, sasl: tuple[str, str, str] | None = None) -> None:
        super().__init__(upstream, host, port, ssl_context=tls.server_context() if tls else None)
        self.latency_s = latency_s / 2  # the proxy adds its latency to each direction
        self.recycle_s, self.idle_close_s, self.read_budget = recycle_s, idle_close_s, read_budget
        self.tls, self.sasl = tls, sasl
        if sasl:
            SaslServer(*sasl)  # a wrong mechanism fails here, not at the first client
        self._reads: dict[str, deque] = {}  # partition -> times its read requests were forwarded
        self._totals: dict[str, int] = {}
        self._by_api = {"Fetch": 0, "ListOffsets": 0}  # requests (not partitions) of each kind
        self._peaks: dict[str, int] = {}
        self._counts = {"throttled": 0, "throttle_ms_max": 0, "throttle_ignored": 0, "recycled": 0,
                        "idle_closed": 0, "sasl_failures": 0, "connections_opened": 0}
        self._stats_lock = threading.Lock()

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def ca_file(self) -> str | None:
        return str(self.tls.ca_file) if self.tls else None

    def security_settings(self) -> dict[str, str]:
        """The STREAMCACHE_* settings a function needs to connect through this front end."""
        settings = {"STREAMCACHE_KAFKA_SECURITY_PROTOCOL": {(True, True): "SASL_SSL", (True, False): "SSL",
                                                             (False, True): "SASL_PLAINTEXT",
                                                             (False, False): "PLAINTEXT"}[(bool(self.tls), bool(self.sasl))]}
        if self.tls:
            settings["STREAMCACHE_KAFKA_SSL_CA_FILE"] = str(self.tls.ca_file)
        if self.sasl:
            mechanism, user, password = self.sasl
            settings.update(STREAMCACHE_KAFKA_SASL_MECHANISM=mechanism, STREAMCACHE_KAFKA_SASL_USERNAME=user,
                            STREAMCACHE_KAFKA_SASL_PASSWORD=password)
        return settings

    def client_options(self) -> dict[str, object]:
        """kafka-python's options to connect through this front end."""
        protocol = self.security_settings()["STREAMCACHE_KAFKA_SECURITY_PROTOCOL"]
        options: dict[str, object] = {"security_protocol": protocol}
        if self.tls:
            options["ssl_cafile"] = str(self.tls.ca_file)
        if self.sasl:
            options.update(sasl_mechanism=self.sasl[0], sasl_plain_username=self.sasl[1],
                           sasl_plain_password=self.sasl[2])
        return options

    def stats(self) -> dict:
        """Counters: read requests per partition (total, and the most forwarded in any second), read
        requests of each kind (Fetch, ListOffsets; requests, not partitions), throttled answers (and
        the longest hold), requests a client sent while told to wait, connections recycled and closed
        idle, failed authentications, connections open."""
        with self._stats_lock:
            return {"read_requests": dict(self._totals), "reads_per_s_peak": dict(self._peaks),
                    "read_requests_by_api": dict(self._by_api), **self._counts, "connections": self.connections()}

    def reads_per_s(self) -> dict[str, int]:
        """Read requests forwarded per partition in the last second."""
        now = time.monotonic()
        with self._stats_lock:
            return {p: sum(1 for t in times if now - 1.0 < t <= now) for p, times in self._reads.items()}

    def reset_stats(self) -> None:
        with self._stats_lock:
            self._totals.clear()
            self._peaks.clear()
            self._by_api = dict.fromkeys(self._by_api, 0)
            for name in self._counts:
                self._counts[name] = 0

    def _count(self, name: str, value: int = 1) -> None:
        with self._stats_lock:
            self._counts[name] += value

    # ---- connections ------------------------------------------------------------------------

    def _opened(self, conn: Conn) -> None:
        self._count("connections_opened")
        if self.sasl:
            conn.state["sasl"] = SaslServer(*self.sasl)
        loop = asyncio.get_running_loop()
        if self.recycle_s:
            conn.state["recycle"] = loop.call_later(random.uniform(*self.recycle_s), self._close, conn, "recycled")
        if self.idle_close_s:
            conn.state["idle"] = loop.call_later(self.idle_close_s, self._check_idle, conn)

    def _closed(self, conn: Conn) -> None:
        for name in ("recycle", "idle"):
            handle = conn.state.pop(name, None)
            if handle is not None:
                handle.cancel()

    def _close(self, conn: Conn, why: str) -> None:
        if conn in self._conns:
            self._count(why)
            for closer in conn.closers:
                closer(True)

    def _check_idle(self, conn: Conn) -> None:
        assert self.idle_close_s is not None
        idle_at = conn.last_activity + self.idle_close_s
        if time.monotonic() >= idle_at and not conn.pending:
            self._close(conn, "idle_closed")
        else:
            delay = max(0.01, idle_at - time.monotonic())
            conn.state["idle"] = asyncio.get_running_loop().call_later(delay, self._check_idle, conn)

    # ---- requests and answers ---------------------------------------------------------------

    async def _request(self, conn: Conn, frame: bytes) -> tuple[bytes | None, float]:
        api_key, version = struct.unpack(">hh", frame[4:8])
        now = time.monotonic()
        if conn.state.get("throttled_until", 0.0) > now:
            self._count("throttle_ignored")  # the client did not wait as its last answer told it to
        sasl: SaslServer | None = conn.state.get("sasl")
        if sasl is not None and sasl.phase is not Phase.DONE and api_key != API_VERSIONS:
            if api_key not in (SASL_HANDSHAKE, SASL_AUTHENTICATE):
                self._close(conn, "sasl_failures")  # Kafka closes a connection that skips authentication
                return None, 0.0
            answer, close = sasl.answer(frame)
            if self.latency_s:
                await asyncio.sleep(2 * self.latency_s)
            conn.reply(answer)  # type: ignore[operator]
            if close:
                self._close(conn, "sasl_failures")
            return None, 0.0
        hold = self._admit(api_key, version, frame, now) if api_key in _THROTTLE_FROM else 0.0
        # (ApiVersions is forwarded: the broker's answer, with the SASL APIs admitted, is the truth.)
        conn.pending.append((api_key, version, hold))
        return frame, hold

    def _admit(self, api_key: int, version: int, frame: bytes, now: float) -> float:
        """Count a read request against the budget of each partition it reads; how long to hold it
        so that no partition sees more than ``read_budget`` forwarded in any second."""
        partitions = _read_partitions(api_key, version, frame)
        with self._stats_lock:
            self._by_api["Fetch" if api_key == FETCH else "ListOffsets"] += 1
            at = now
            if self.read_budget:
                for p in partitions:
                    times = self._reads.get(p)
                    if times is not None and len(times) >= self.read_budget:
                        at = max(at, times[-self.read_budget] + 1.0)
            for p in partitions:
                times = self._reads.setdefault(p, deque())
                while times and times[0] < now - 2.0:
                    times.popleft()
                index = bisect.bisect(times, at)
                times.insert(index, at)
                self._totals[p] = self._totals.get(p, 0) + 1
                in_second = sum(1 for t in times if at - 1.0 < t <= at)
                self._peaks[p] = max(self._peaks.get(p, 0), in_second)
            hold = at - now
            if hold > 0:
                self._counts["throttled"] += 1
                self._counts["throttle_ms_max"] = max(self._counts["throttle_ms_max"], round(hold * 1000))
        return hold

    def _answer(self, conn: Conn, frame: bytes) -> bytes:
        if not conn.pending:
            return frame
        api_key, version, hold = conn.pending.popleft()
        if api_key == API_VERSIONS and self.sasl:
            return admit_sasl_apis(frame, version)
        if hold and version >= _THROTTLE_FROM[api_key]:
            throttle_ms = max(1, round(hold * 1000))
            offset = _body_offset(frame, version >= _FLEXIBLE_FROM[api_key])
            frame = frame[:offset] + struct.pack(">i", throttle_ms) + frame[offset + 4:]
            # kafka-python (as Kafka clients since 2.0) then holds the connection this long itself.
            conn.state["throttled_until"] = time.monotonic() + throttle_ms / 1000
        return frame


def _read_partitions(api_key: int, version: int, frame: bytes) -> list[str]:
    """The partitions a Fetch or ListOffsets request reads, as ``topic/partition`` (``topic`` is
    the topic's id for Fetch v13 and later)."""
    if api_key == FETCH:
        fetch = FetchRequest.decode(frame[4:], version=version, header=True)
        return [f"{topic.topic if version < 13 else topic.topic_id}/{p.partition}"
                for topic in fetch.topics for p in topic.partitions]
    listing = ListOffsetsRequest.decode(frame[4:], version=version, header=True)
    return [f"{topic.name}/{p.partition_index}" for topic in listing.topics for p in topic.partitions]


def _body_offset(frame: bytes, flexible: bool) -> int:
    """Where a response's body starts: after the size, the correlation id and, in a flexible
    header, its tagged fields (a varint count, then tag, size, bytes each)."""
    offset = 8
    if flexible:
        count, offset = _uvarint(frame, offset)
        for _ in range(count):
            _tag, offset = _uvarint(frame, offset)
            size, offset = _uvarint(frame, offset)
            offset += size
    return offset


def _uvarint(data: bytes, offset: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, offset
        shift += 7


def start_front(upstream_bootstrap: str, *, latency_s: float = 0.005, recycle_s: tuple[float, float] | None = (30, 90),
                idle_close_s: float | None = 30, read_budget: int | None = 5, tls: bool = True,
                sasl: tuple[str, str, str] | None = ("SCRAM-SHA-512", "streamcache", "streamcache-local"),
                host: str = "127.0.0.1", port: int = 0, tls_dir: Path | None = None) -> KafkaFront:
    """Start a front end before the broker at ``upstream_bootstrap`` (``host:port``). The defaults
    are OCI's; pass ``0``/``None``/``False`` to turn a part off. The broker must advertise
    ``front.bootstrap``: see :func:`start_fronted_broker`."""
    upstream_host, upstream_port = upstream_bootstrap.rsplit(":", 1)
    files = make_tls_files(tls_dir or Path(tempfile.mkdtemp(prefix="sc-front-")), host) if tls else None
    front = KafkaFront((upstream_host, int(upstream_port)), host, port, latency_s=latency_s,
                       recycle_s=recycle_s or None, idle_close_s=idle_close_s or None,
                       read_budget=read_budget or None, tls=files, sasl=sasl)
    return front.start()  # type: ignore[return-value]


def start_fronted_broker(host: str = "127.0.0.1", **front_options) -> tuple[LocalBroker, KafkaFront]:
    """A Tansu broker that advertises a front end's address, and the front end before it (options
    as :func:`start_front`). ``broker.create_topic`` goes through the front end, with its TLS and SASL
    (``broker.client_options``)."""
    front_port = free_port(host)
    broker_port = free_port(host, besides=(front_port,))
    broker = start_broker(host, port=broker_port, advertise_port=front_port)
    try:
        front = start_front(f"{host}:{broker_port}", host=host, port=front_port, **front_options)
    except BaseException:
        broker.stop()
        raise
    broker.client_options = front.client_options()
    return broker, front
