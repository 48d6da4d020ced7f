"""``streamcache dev``: the whole topology on one machine, as it runs on OCI.

    client --HTTP--> gateway (127.0.0.1:PORT) --Fn invoke over a unix socket--> fdk instances fn1..fnN
                                                                                  |  append / read
                                                                                  v
                                                     Tansu, a Kafka-protocol broker (the OCI Stream)

:class:`DevStack` starts the parts in order (gateway port first, so a taken port fails before anything
runs), and :meth:`DevStack.stop` stops them in reverse: no process and no socket file is left behind.
Tests use it directly; :func:`run` is the command, which also stops everything on SIGINT/SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from typing import Callable, Mapping, TextIO
from urllib.parse import urlsplit

from .broker import LocalBroker, start_broker
from .fn_runner import FnInstance, LogSink, start_instances
from .invoke_endpoint import function_ocid
from .gateway import DEFAULT_BUSY_WAIT_S, GatewayServer, Pool

DEFAULT_TOPIC = "streamcache"
WARM_UP_TIMEOUT_S = 30.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, the terminal closing


class DevStack:
    """Broker (unless ``log_url`` is given), topic, ``instances`` function instances and a gateway.

    ``with DevStack(port=0) as stack: ...`` or ``stack = DevStack(...).start(); ...; stack.stop()``.
    ``config`` is extra function config (``STREAMCACHE_*`` names) given to every instance."""

    def __init__(self, port: int = 8080, instances: int = 2, partitions: int = 3, log_url: str | None = None,
                 topic: str = DEFAULT_TOPIC, config: Mapping[str, str] | None = None, host: str = "127.0.0.1",
                 busy_wait_s: float = DEFAULT_BUSY_WAIT_S, warm_up: bool = True,
                 log_sink: LogSink | None = None, access_log: TextIO | Callable[[str], None] | None = None) -> None:
        if instances < 1 or partitions < 1:
            raise ValueError("instances and partitions must be at least 1")
        if log_url is not None and log_url.startswith("memory:") and instances > 1:
            raise ValueError("a memory:// log lives inside one process, so instances would not share it; "
                             "use --instances 1 or a kafka:// log")
        self.port, self.host, self.instance_count, self.partitions = port, host, instances, partitions
        self.topic = topic
        self.requested_log_url = log_url
        self.config = dict(config or {})
        self.busy_wait_s = busy_wait_s
        self.warm_up = warm_up
        self.log_sink = log_sink
        self.access_log = access_log
        self.broker: LocalBroker | None = None
        self.log_url: str | None = log_url
        self.instances: list[FnInstance] = []
        self.gateway: GatewayServer | None = None
        self.socket_dir: str | None = None
        self.cold_starts_ms: dict[str, float] = {}  # the first call: imports func.py, replays the log
        self._stopped = False

    @property
    def url(self) -> str:
        if self.gateway is None:
            raise RuntimeError("the stack is not running")
        return self.gateway.url

    def start(self) -> "DevStack":
        try:
            pool = Pool([])
            # Bind first: a port already in use should fail before any process starts.
            self.gateway = GatewayServer(pool, self.host, self.port, busy_wait_s=self.busy_wait_s,
                                         access_log=self.access_log)
            if self.requested_log_url is None:
                self.broker = start_broker(self.host)
                self.broker.create_topic(self.topic, self.partitions)
                self.log_url = self.broker.log_url(self.topic)
            # Short on purpose: a unix socket path must fit in 107 bytes.
            self.socket_dir = tempfile.mkdtemp(prefix="sc-", dir="/tmp")
            config = {**self.config, "STREAMCACHE_LOG_URL": self.log_url}
            self.instances = start_instances(self.instance_count, self.socket_dir, config, self.log_sink)
            pool.instances.extend(self.instances)
            if self.warm_up:
                self._warm_up()
            self.gateway.start()
        except BaseException:
            self.stop()
            raise
        return self

    def _warm_up(self) -> None:
        """Send ``GET /health`` to each instance: the first call imports func.py and replays the log
        (a cold start), so the first user request is fast and a broken config shows up now."""
        for instance in self.instances:
            started = time.perf_counter()
            answer = instance.client.http_call("GET", "/health", timeout_s=WARM_UP_TIMEOUT_S)
            if answer.status != 200:
                raise RuntimeError(f"instance {instance.name} is not healthy: {answer.status} "
                                   f"{answer.body.decode('utf-8', errors='replace')}")
            self.cold_starts_ms[instance.name] = (time.perf_counter() - started) * 1000

    def stop(self) -> None:
        """Stop the gateway, the instances and the broker; remove the socket directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.gateway is not None:
            self.gateway.stop()
        for instance in self.instances:
            instance.stop()
        if self.broker is not None:
            self.broker.stop()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def __enter__(self) -> "DevStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def describe(self) -> str:
        """What runs where, for the terminal."""
        lines = ["streamcache dev: a local cache, every write a record on a Kafka-protocol stream", ""]
        if self.broker is not None:
            lines.append(f"  stream    Tansu broker pid {self.broker.process.pid} on {self.broker.bootstrap}, "
                         f"topic {self.topic!r} with {self.partitions} partitions")
        else:
            lines.append(f"  stream    {self.log_url} (not started here)")
        lines.append(f"            STREAMCACHE_LOG_URL={self.log_url}")
        for instance in self.instances:
            cold = self.cold_starts_ms.get(instance.name)
            warm = f", warmed up (first call {cold:.0f} ms)" if cold is not None else ""
            lines.append(f"  function  {instance.name} pid {instance.pid}, socket {instance.socket_path}{warm}")
        lines += [f"  gateway   {self.url} -> {len(self.instances)} instance(s), one request at a time each",
                  f"  invoke    POST {self.url}/20181201/functions/cache/actions/invoke "
                  f"(function id {function_ocid('cache')})", "",
                  "Try:",
                  f"  curl -X PUT {self.url}/cache/a -d 1",
                  f"  curl -i {self.url}/cache/a",
                  f"  curl '{self.url}/cache?prefix='",
                  f"""  curl -X POST {self.url}/20181201/functions/cache/actions/invoke -d '{{"operation":"GET","key":"a"}}'""",
                  f"  STREAMCACHE_URL={self.url} streamcache get a", "",
                  "Ctrl-C stops everything."]
        return "\n".join(lines)


def function_config_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The developer's STREAMCACHE_* settings become the function config (as app config on OCI);
    the log URL is the stack's own."""
    from streamcache.settings import Settings

    names = set(Settings.env_names()) - {"STREAMCACHE_LOG_URL"}
    return {name: value for name, value in env.items() if name in names}


def run(port: int = 8080, instances: int = 2, partitions: int = 3, log_url: str | None = None,
        topic: str | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The ``streamcache dev`` command: run until SIGINT or SIGTERM, then stop everything."""
    out, err = out or sys.stdout, err or sys.stderr
    if log_url is not None and topic is not None:
        print("streamcache dev: --topic names the local broker's topic; with --log-url put the topic in the URL",
              file=err)
        return 2
    if log_url is not None:
        scheme = urlsplit(log_url).scheme
        if scheme not in ("kafka", "memory"):
            print(f"streamcache dev: --log-url must be kafka://HOST:PORT/TOPIC or memory://NAME, not {log_url!r}",
                  file=err)
            return 2
    stop_requested = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop_requested.set()) for sig in STOP_SIGNALS}

    err_lock = threading.Lock()

    def emit(line: str) -> None:
        # One write per line under one lock: instance logs and gateway access lines never interleave.
        with err_lock:
            err.write(line + "\n")
            err.flush()

    stack = DevStack(port, instances, partitions, log_url, topic or DEFAULT_TOPIC,
                     config=function_config_from_env(os.environ),
                     log_sink=lambda name, stream, line: emit(f"{name} | {line}"), access_log=emit)
    try:
        try:
            stack.start()
        except (OSError, RuntimeError, ValueError) as exc:
            print(f"streamcache dev: could not start: {exc}", file=err)
            return 2
        print(stack.describe(), file=out, flush=True)
        reported: set[str] = set()
        while not stop_requested.wait(0.5):
            for instance in stack.instances:
                if instance.name not in reported and not instance.alive():
                    reported.add(instance.name)
                    emit(f"streamcache dev: {instance.name} exited with code {instance.process.returncode}; "
                         "the gateway no longer sends it requests")
                    stack.gateway.pool.mark_dead(instance)
        print("streamcache dev: stopping", file=out, flush=True)
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
