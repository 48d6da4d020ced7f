"""A framing TCP proxy for the Kafka protocol, between clients and the local Tansu broker.

    proxy = KafkaProxy(("127.0.0.1", broker_port)).start()   # listens on proxy.port
    proxy.latency_s = 0.005                 # added to every frame, each way
    proxy.drop_answers(PRODUCE, count=3)    # forward 3 produce requests, cut before their answers
    proxy.blackhole(True) ... proxy.blackhole(False)   # hold all traffic, then let it flow again
    proxy.cut_on(FETCH, client="-4242", after=2)       # cut a client's connection at a request
    proxy.drop_answers(FETCH, client="-4242", min_bytes=4096)  # ... when records are on their way
    proxy.close_all()                       # close every connection (a front end rebalancing)
    proxy.stop()

Clients only reach the broker through the proxy if the broker advertises the proxy's address
(Kafka clients connect to the address in the metadata, not the bootstrap one):
:func:`start_proxied_broker` starts Tansu that way.

The proxy frames the Kafka protocol (a 4-byte size before every request and answer) so that faults
hit whole requests: a request is forwarded whole or not at all, and answers are matched to their
requests by position (a connection answers in request order). Each connection is tagged with the
``client_id`` of its first request (``streamcache-<instance id>``), so faults can target one process.
Runs its own asyncio loop in a daemon thread; every method is safe to call from the caller's thread.

:class:`~streamcache_local.kafka_front.KafkaFront` builds OCI Streaming's front end on it (TLS, SASL,
a read budget, recycled connections) through the hooks :meth:`KafkaProxy._request` and
:meth:`KafkaProxy._answer`.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from streamcache_local.broker import LocalBroker, free_port, start_broker

PRODUCE, FETCH, LIST_OFFSETS, METADATA = 0, 1, 2, 3


@dataclass
class _Rule:
    """Cut a matching connection: when the answer to one of the next ``count`` matching requests
    comes back (``at_answer``), or when the ``after``-th matching request arrives (not forwarded)."""

    api_key: int
    count: int
    client: str | None = None
    at_answer: bool = True
    after: int = 0
    seen: int = 0
    min_bytes: int = 0  # at_answer: only an answer at least this big (one carrying records) cuts


@dataclass(eq=False)  # identity: kept in a set
class Conn:
    """One client connection and what the proxy knows of it."""

    client_id: str | None = None
    pending: deque = field(default_factory=deque)  # (api key, version, note) of forwarded requests, in order
    doomed: dict = field(default_factory=dict)  # request index -> the rule its answer may trip
    requests: int = 0
    answers: int = 0
    closers: list = field(default_factory=list)
    last_activity: float = field(default_factory=time.monotonic)
    state: dict = field(default_factory=dict)  # the front end's per-connection state (SASL, throttling)
    reply: object = None  # writes a locally made answer frame to the client (set by the proxy)
    silent: bool = False  # dead without a word: frames are read and dropped


class KafkaProxy:
    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1", port: int = 0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.upstream = upstream
        self.host = host
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self._sock.listen(128)
        self.port = self._sock.getsockname()[1]
        self.ssl_context = ssl_context
        self.latency_s = 0.0
        self._open = threading.Event()
        self._open.set()
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()
        self._conns: set[Conn] = set()
        self.cuts = 0  # connections the proxy cut on purpose
        self.requests: dict[int, int] = {}  # api key -> requests forwarded
        self.by_client: dict[tuple[str, int], int] = {}  # (client id, api key) -> requests seen
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="kafka-proxy", daemon=True)
        self._server: asyncio.AbstractServer | None = None

    # ---- the faults ---------------------------------------------------------------------------

    def drop_answers(self, api_key: int, count: int = 1, client: str | None = None, min_bytes: int = 0) -> None:
        """Forward the next ``count`` requests of ``api_key`` (from clients whose id contains
        ``client``), then cut their connection when each answer arrives, instead of passing it on.
        With ``min_bytes``, only answers at least that big count (e.g. a fetch that carries records)."""
        with self._lock:
            self._rules.append(_Rule(api_key, count, client, min_bytes=min_bytes))

    def cut_on(self, api_key: int, client: str | None = None, after: int = 0) -> None:
        """Cut the connection of a matching client when its ``after``-th next request of ``api_key``
        arrives (that request is not forwarded): e.g. a compactor's fetch, mid-fold."""
        with self._lock:
            self._rules.append(_Rule(api_key, 1, client, at_answer=False, after=after))

    def blackhole(self, on: bool) -> None:
        """While on, nothing moves either way (bytes are held, as a partition holds packets); off,
        what is held flows on for connections that are still open."""
        (self._open.clear if on else self._open.set)()

    def rules_left(self) -> int:
        with self._lock:
            return sum(rule.count for rule in self._rules)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
        self.latency_s = 0.0
        self.blackhole(False)

    def close_all(self) -> int:
        """Close every open connection now (a FIN to the client, as a front end that rebalances
        sends); returns how many were closed."""
        async def close() -> int:
            conns = list(self._conns)
            for conn in conns:
                for closer in conn.closers:
                    closer(True)
            return len(conns)
        return asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=5)

    def silence_all(self) -> int:
        """Make every open connection dead without a word: nothing more is forwarded either way and
        neither end is told (a NAT or load balancer that forgot the flows). New connections work."""
        async def silence() -> int:
            for conn in self._conns:
                conn.silent = True
            return len(self._conns)
        return asyncio.run_coroutine_threadsafe(silence(), self._loop).result(timeout=5)

    def connections(self) -> int:
        return len(self._conns)

    # ---- running --------------------------------------------------------------------------------

    def start(self) -> "KafkaProxy":
        self._thread.start()
        ready = asyncio.run_coroutine_threadsafe(self._serve(), self._loop)
        ready.result(timeout=5)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            self._sock.close()
            return
        self.blackhole(False)

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for conn in list(self._conns):
                for close in conn.closers:
                    close(False)
        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()
        self._loop.close()

    async def _serve(self) -> None:
        self._server = await asyncio.start_server(self._accept, sock=self._sock, ssl=self.ssl_context)

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            broker_r, broker_w = await asyncio.open_connection(*self.upstream)
        except OSError:
            client_w.close()
            return
        for writer in (client_w, broker_w):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = Conn()

        def close_both(polite: bool = False) -> None:
            # A fault is an RST, as a broken network shows it; a front end closing is a polite FIN.
            for writer in (client_w, broker_w):
                writer.close() if polite else writer.transport.abort()

        def reply(frame: bytes) -> None:
            client_w.write(frame)
        conn.closers.append(close_both)
        conn.reply = reply
        self._conns.add(conn)
        self._opened(conn)
        try:
            await asyncio.gather(self._pump(client_r, broker_w, conn, True, close_both),
                                 self._pump(broker_r, client_w, conn, False, close_both))
        finally:
            close_both()
            self._conns.discard(conn)
            self._closed(conn)

    async def _pump(self, reader, writer, conn: Conn, upstream: bool, close_both) -> None:
        """Move whole frames from ``reader`` to ``writer``, applying the faults and the hooks. A frame
        is read as soon as it arrives and written once its delay passed (a queue between the two), so
        that pipelined requests each wait the latency once, not one after the other."""
        queue: asyncio.Queue = asyncio.Queue()
        sender = asyncio.create_task(self._send(queue, writer, conn, close_both))
        release = 0.0
        try:
            while True:
                head = await reader.readexactly(4)
                (size,) = struct.unpack(">i", head)
                frame: bytes | None = head + await reader.readexactly(size)
                arrived = time.monotonic()
                if conn.silent:
                    continue
                conn.last_activity = arrived
                hold = 0.0
                if upstream:
                    frame, hold = await self._request(conn, frame)
                    cut = frame is not None and self._on_request(conn, frame)
                else:
                    cut = self._on_answer(conn, len(frame))
                    frame = self._answer(conn, frame)
                if cut:
                    self.cuts += 1
                    close_both()
                    return
                if frame is None:
                    continue  # answered by the proxy itself
                release = max(release, arrived + hold + self.latency_s)  # in order, as the connection is
                queue.put_nowait((release, frame))
        except (asyncio.IncompleteReadError, ConnectionError, OSError, ssl.SSLError):
            close_both()
        finally:
            if queue.empty():
                sender.cancel()
            else:
                queue.put_nowait(None)  # what was read before the end still goes out (a FIN follows data)

    async def _send(self, queue: asyncio.Queue, writer, conn: Conn, close_both) -> None:
        try:
            while (item := await queue.get()) is not None:
                release, frame = item
                if release > time.monotonic():
                    await asyncio.sleep(release - time.monotonic())
                while not self._open.is_set():
                    await asyncio.sleep(0.005)  # black-holed: hold the frame (polling a flag the test flips)
                if conn.silent:
                    continue
                writer.write(frame)
                await writer.drain()
                conn.last_activity = time.monotonic()
        except (ConnectionError, OSError, ssl.SSLError):
            close_both()

    # ---- hooks (the front end's) -------------------------------------------------------------

    def _opened(self, conn: Conn) -> None:
        """A client connected."""

    def _closed(self, conn: Conn) -> None:
        """A client's connection ended, however it ended."""

    async def _request(self, conn: Conn, frame: bytes) -> tuple[bytes | None, float]:
        """A request arrived: the frame to forward (``None``: answered here, through
        ``conn.reply``) and how long to hold it first. Records (api key, version, note) in
        ``conn.pending`` for each forwarded request."""
        api_key, version = struct.unpack(">hh", frame[4:8])
        conn.pending.append((api_key, version, None))
        return frame, 0.0

    def _answer(self, conn: Conn, frame: bytes) -> bytes:
        """An answer came back from the broker: the frame to pass on."""
        if conn.pending:
            conn.pending.popleft()
        return frame

    # ---- fault rules -------------------------------------------------------------------------

    def _on_request(self, conn: Conn, frame: bytes) -> bool:
        api_key, _version, _correlation = struct.unpack(">hhi", frame[4:12])
        if conn.client_id is None:
            (length,) = struct.unpack(">h", frame[12:14])
            conn.client_id = frame[14:14 + length].decode("utf-8", "replace") if length >= 0 else ""
        index = conn.requests
        conn.requests += 1
        with self._lock:
            self.requests[api_key] = self.requests.get(api_key, 0) + 1
            seen = (conn.client_id or "", api_key)
            self.by_client[seen] = self.by_client.get(seen, 0) + 1
            for rule in self._rules:
                if rule.count <= 0 or rule.api_key != api_key:
                    continue
                if rule.client is not None and rule.client not in (conn.client_id or ""):
                    continue
                if not rule.at_answer:
                    rule.seen += 1
                    if rule.seen <= rule.after:
                        continue
                    rule.count -= 1
                    return True
                if not rule.min_bytes:
                    rule.count -= 1  # a size-bound rule is used up by the answer that trips it
                conn.doomed[index] = rule
                break
            self._rules = [rule for rule in self._rules if rule.count > 0]
        return False

    def _on_answer(self, conn: Conn, size: int) -> bool:
        index = conn.answers
        conn.answers += 1
        rule = conn.doomed.pop(index, None)
        if rule is None or not rule.min_bytes:
            return rule is not None
        with self._lock:
            if rule.count <= 0 or size < rule.min_bytes:
                return False
            rule.count -= 1
            self._rules = [r for r in self._rules if r.count > 0]
            return True


def start_proxied_broker(host: str = "127.0.0.1") -> tuple[LocalBroker, KafkaProxy]:
    """A Tansu broker that advertises a proxy's address, and the proxy in front of it."""
    proxy = KafkaProxy((host, 0), host)  # its port is held from here on
    broker_port = free_port(host, besides=(proxy.port,))  # never the proxy's own: it would dial itself
    proxy.upstream = (host, broker_port)
    try:
        broker = start_broker(host, port=broker_port, advertise_port=proxy.port)
    except BaseException:
        proxy._sock.close()
        raise
    return broker, proxy.start()
