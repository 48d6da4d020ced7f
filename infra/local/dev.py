"""``streamcache dev``: the whole topology on one machine, as it runs on OCI.

    client --HTTP--> gateway (127.0.0.1:PORT) --Fn invoke over a unix socket--> cache instances fn1..fnN
                        |  (invoke API)                                             |  append / read
                        v                                                           v
                  compactor instance --------- reads, folds ---------> Tansu, a Kafka-protocol broker
                        |                                                  (the OCI Stream)
                        v
                  <data-dir>/snapshots/  (the bucket; see data_dir.py)

:class:`DevStack` starts the parts in order (gateway port first, so a taken port fails before anything
runs), and :meth:`DevStack.stop` stops them in reverse: no process and no socket file is left behind.
With a ``data_dir`` it also plays OCI's part around the functions (lifecycle.py: schedule, health
checks, idle reclaim, Object Storage events; data carried over by data_dir.py; a final compaction
on stop). Tests use it directly (``background=False``, :meth:`tick` with their own clock).
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, TextIO

import orjson

from . import data_dir as data
from . import dev_describe, lifecycle, stack_info
from .broker import LocalBroker, start_broker
from .fn_runner import FnInstance, LogSink, start_instance
from .freezer import Freezer
from .gateway import DEFAULT_BUSY_WAIT_S, GatewayServer
from .pool import Dispatch, Pool
from .invoke_endpoint import function_ocid, pool_functions
from .monitoring import LOCAL_PATH, metrics_config, start_stack_monitoring
from .resource_principal import LocalResourcePrincipal, write_resource_principal

DEFAULT_TOPIC = "streamcache"
DEFAULT_DATA_DIR = ".streamcache"
WARM_UP_TIMEOUT_S = 30.0
COMPACTOR_PATH = Path(__file__).resolve().parents[2] / "functions" / "compactor" / "func.py"
COMPACTOR_TIMEOUT_S = 300.0  # OCI Functions' longest function timeout: compactions and imports may be long
# Config the stack itself decides; the developer's environment does not override these.
STACK_SETTINGS = frozenset({"STREAMCACHE_LOG_URL", "STREAMCACHE_SNAPSHOT_URL", "STREAMCACHE_STREAM_ID",
                            "STREAMCACHE_IMPORT_URL", "STREAMCACHE_COMPACTOR_FUNCTION_ID",
                            "STREAMCACHE_COMPACTOR_INVOKE_ENDPOINT"})


class DevStack:
    """Broker (unless ``log_url`` is given), topic, up to ``instances`` cache instances behind a
    gateway and, with ``data_dir``, a compactor instance and the lifecycle jobs.

    ``with DevStack(port=0) as stack: ...`` or ``stack = DevStack(...).start(); ...; stack.stop()``.
    ``config`` is extra function config (``STREAMCACHE_*`` names) given to every instance. Intervals
    of 0 turn a job off. ``clock`` (monotonic seconds) dates requests and drives the jobs;
    ``background=False`` runs no job thread: call :meth:`tick`. ``say`` receives lifecycle lines.
    ``dispatch``: which idle instance takes a request (:class:`~.pool.Dispatch`).

    OCI's world (``streamcache dev --like-oci``, docs/local.md): ``max_instances`` lets the pool
    start more instances, up to that many, when a request finds every one busy (default
    ``instances``: a fixed count); ``freeze_idle_s`` freezes an idle instance that long after its
    answer (freezer.py; None: never); ``front(host)`` starts the broker behind the Kafka front end:
    ``(broker, front)`` (kafka_front.start_fronted_broker). ``metrics``: serve OCI Monitoring."""

    def __init__(self, port: int = 8080, instances: int = 2, partitions: int = 3, log_url: str | None = None,
                 topic: str = DEFAULT_TOPIC, config: Mapping[str, str] | None = None, host: str = "127.0.0.1",
                 busy_wait_s: float = DEFAULT_BUSY_WAIT_S, warm_up: bool = True,
                 log_sink: LogSink | None = None, access_log: TextIO | Callable[[str], None] | None = None,
                 data_dir: str | os.PathLike[str] | None = None, compact_every_s: float = 60.0,
                 warm_every_s: float = 30.0, idle_timeout_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, background: bool = True,
                 say: Callable[[str], None] | None = None, compactor_path: Path | None = None,
                 dispatch: Dispatch = Dispatch.MOST_RECENT, max_instances: int | None = None,
                 freeze_idle_s: float | None = None, front: Callable[[str], object] | None = None,
                 metrics: bool = False) -> None:
        if instances < 1 or partitions < 1:
            raise ValueError("instances and partitions must be at least 1")
        if max_instances is not None and max_instances < instances:
            raise ValueError(f"max_instances ({max_instances}) is less than the instances started ({instances})")
        if freeze_idle_s is not None and freeze_idle_s < 0:
            raise ValueError("freeze_idle_s must be 0 or more")
        if log_url is not None and log_url.startswith("memory:") and (instances > 1 or data_dir is not None):
            raise ValueError("a memory:// log lives inside one process, so other instances (and the compactor) "
                             "would not share it; use --instances 1 without a data dir, or a kafka:// log")
        self.port, self.host, self.instance_count, self.partitions = port, host, instances, partitions
        self.topic = topic
        self.requested_log_url = log_url
        self.config = dict(config or {})
        self.busy_wait_s, self.dispatch = busy_wait_s, dispatch
        self.max_instances = max_instances or instances
        self.freeze_idle_s = freeze_idle_s
        self.front_factory, self.front = front, None  # the front end: stopped after the instances
        self.freezers: list[Freezer] = []
        self.warm_up = warm_up
        self.log_sink = log_sink
        self.access_log = access_log
        self.data_dir = None if data_dir is None else Path(data_dir).resolve()
        self.compact_every_s, self.warm_every_s, self.idle_timeout_s = compact_every_s, warm_every_s, idle_timeout_s
        self.clock = clock
        self.background = background
        self.say = say or (lambda line: None)
        self.compactor_path = compactor_path or COMPACTOR_PATH
        self.broker: LocalBroker | None = None
        self.metrics, self.monitoring = metrics, None  # the local OCI Monitoring (monitoring.py), with metrics
        self.log_url: str | None = log_url
        self.gateway: GatewayServer | None = None
        self.pool: Pool | None = None
        self.compactor_pool: Pool | None = None
        self.compactor: lifecycle.InvokeTarget | None = None
        self.resource_principal: LocalResourcePrincipal | None = None  # the cache instances' identity
        self.imports: lifecycle.ImportWatcher | None = None
        self.socket_dir: str | None = None
        self.cold_starts_ms: dict[str, float] = {}  # the first call: imports func.py, replays the log
        self.run_id: str | None = None
        self.stream_id: str | None = None  # None: the functions' default (the topic)
        self.restored: data.RestoreSource | None = None
        self.restored_keys = 0
        self.final_compaction: dict | None = None
        self._all_instances: list[FnInstance] = []  # every instance ever started: stop() stops them all
        self._instances_lock = threading.Lock()
        self._names = itertools.count(instances + 1)  # fn3, fn4...: cold-started instances
        self._compactor_names = itertools.count(1)
        self._schedules: list[lifecycle.Schedule] = []
        self._tickers: list[lifecycle.BackgroundTicker] = []
        self._lock: data.DataDirLock | None = None
        self._serving = False
        self._stopped = False

    @property
    def url(self) -> str:
        if self.gateway is None:
            raise RuntimeError("the stack is not running")
        return self.gateway.url

    @property
    def instances(self) -> list[FnInstance]:
        """The cache instances running now (the reaper stops some, requests start new ones)."""
        return self.pool.live() if self.pool is not None else []

    def start(self) -> "DevStack":
        try:
            self.pool = Pool([], self._cold_start, self.max_instances, self.clock, self.dispatch,
                             freeze_after_s=self.freeze_idle_s)
            # Bind first: a port already in use should fail before any process starts.
            self.gateway = GatewayServer(self.pool, self.host, self.port, busy_wait_s=self.busy_wait_s,
                                         access_log=self.access_log)
            if self.data_dir is not None:
                self._lock = data.DataDirLock(self.data_dir).acquire()
            if self.requested_log_url is None:
                if self.front_factory is not None:
                    self._start_front()
                else:
                    self.broker = start_broker(self.host)
                self.broker.create_topic(self.topic, self.partitions)
                self.log_url = self.broker.log_url(self.topic)
            elif self.front_factory is not None:
                raise ValueError("the Kafka front end stands before the stack's own broker: not with --log-url")
            # Short on purpose: a unix socket path must fit in 107 bytes.
            self.socket_dir = tempfile.mkdtemp(prefix="sc-", dir="/tmp")
            if self.metrics:
                self.monitoring = start_stack_monitoring(self.data_dir)
            if self.data_dir is not None:
                self._carry_over()
            self._start_instances()
            if self.warm_up:
                self._warm_up()
            if self.data_dir is not None:
                self._start_lifecycle()
            self.gateway.stack_info = stack_info.describe(
                str(self.log_url), self.partitions, self.gateway.url, stream_id=self.stream_id,
                data_dir=None if self.data_dir is None else str(self.data_dir))
            if self.monitoring is not None:
                self.gateway.stack_info["metrics"] = self.monitoring.endpoint + LOCAL_PATH
            self.gateway.start()
            self._serving = True
            for ticker in self._tickers:
                ticker.start()
            if self.freeze_idle_s is not None:
                pools = [self.pool] + ([self.compactor_pool] if self.compactor_pool is not None else [])
                self.freezers = [Freezer(pool, f"freezer-{n}").start() for n, pool in enumerate(pools)]
        except BaseException:
            self.stop()
            raise
        return self

    # ---- starting ---------------------------------------------------------------------------------

    def function_config(self) -> dict[str, str]:
        """What every instance (cache and compactor) gets as config."""
        config = {name: value for name, value in self.config.items() if name not in STACK_SETTINGS}
        config["STREAMCACHE_LOG_URL"] = str(self.log_url)
        if self.data_dir is not None:
            bucket = data.snapshot_store_url(self.data_dir)
            config["STREAMCACHE_SNAPSHOT_URL"] = bucket
            config["STREAMCACHE_IMPORT_URL"] = bucket + "/"  # import objects are named imports/<file>
        if self.stream_id is not None:
            config["STREAMCACHE_STREAM_ID"] = self.stream_id
        if self.monitoring is not None and self.socket_dir is not None:
            if self.resource_principal is None:  # the functions sign their posts with it, as on OCI
                self.resource_principal = write_resource_principal(self.socket_dir)
            config.update({**self.resource_principal.env, **metrics_config(self.monitoring, self.config)})
        return config

    def cache_config(self) -> dict[str, str]:
        """What a cache instance gets: :meth:`function_config` and, with a compactor (a data dir), what
        it needs to ask for a compaction after a long tail, as on OCI: the compactor's OCID, the
        invoke endpoint (here the gateway's invoke API) and a resource principal to sign with."""
        config = self.function_config()
        if self.data_dir is not None and self.gateway is not None and self.socket_dir is not None:
            if self.resource_principal is None:
                self.resource_principal = write_resource_principal(self.socket_dir)
            host, port = self.gateway.server_address[:2]
            host = "127.0.0.1" if host in ("0.0.0.0", "") else host  # where a local client connects
            config["STREAMCACHE_COMPACTOR_FUNCTION_ID"] = function_ocid("compactor")
            config["STREAMCACHE_COMPACTOR_INVOKE_ENDPOINT"] = f"http://{host}:{port}"
            config.update(self.resource_principal.env)
        return config

    def _start_front(self) -> None:
        """Start the broker behind the Kafka front end (the broker advertises the front end's address,
        so every connection goes through it): the functions get its address and its security settings
        (TLS, SASL) as config, as the functions on OCI get the stream's."""
        self.broker, self.front = self.front_factory(self.host)  # type: ignore[misc]
        self.config.update(self.front.security_settings())  # type: ignore[attr-defined]

    def _carry_over(self) -> None:
        """A fresh local broker means an empty stream: give the run its own stream identity and
        seed it from the newest snapshot of an earlier run (before any instance starts)."""
        if self.broker is None:
            return  # a stream that outlives us: its snapshots go on under its own identity (the topic)
        self.run_id = data.new_run_id()
        self.stream_id = data.run_stream_id(self.topic, self.run_id)
        self.restored = data.find_restore_source(self.data_dir, self.topic, lambda m: self.say(f"restore: {m}"))
        if self.restored is None:
            return
        from streamcache.settings import Settings

        log = Settings(log_url=str(self.log_url), instance_id="dev-restore").open_log()
        try:
            self.restored_keys = data.reseed(
                log, self.restored.table, int(time.time() * 1000),
                lambda done, held: self.say(f"restore: {done} of at most {held} keys appended to the new stream"))
        finally:
            log.close()
        as_of = datetime.fromtimestamp(self.restored.header.as_of_ms / 1000, timezone.utc).isoformat(timespec="seconds")
        self.say(f"restore: {self.restored_keys} keys restored from run {self.restored.stream} (snapshot "
                 f"{self.restored.name}, log time {as_of}); versions (ETags) of that run are not valid in this one")

    def _start_instances(self) -> None:
        config = self.cache_config()
        starting = [self._start("fn" + str(n), config, wait=False) for n in range(1, self.instance_count + 1)]
        if self.data_dir is not None:
            starting.append(self._start_compactor(wait=False))
        for instance in starting:
            instance.wait_ready()
        for instance in starting[: self.instance_count]:
            self.pool.add(instance)
        if self.data_dir is not None:
            self.compactor_pool = Pool([starting[-1]], spawn=self._cold_start_compactor, capacity=1, clock=self.clock,
                                       freeze_after_s=self.freeze_idle_s)

    def _start(self, name: str, config: Mapping[str, str], wait: bool, **options) -> FnInstance:
        instance = start_instance(name, self.socket_dir, config, log_sink=self.log_sink, wait=False, **options)
        with self._instances_lock:
            self._all_instances.append(instance)
        if wait:
            instance.wait_ready()
        return instance

    def _start_compactor(self, wait: bool) -> FnInstance:
        name = f"compactor{next(self._compactor_names)}"
        return self._start(name, self.function_config(), wait, function_path=self.compactor_path,
                           fn_name="compactor")

    def _cold_start(self) -> FnInstance:
        """The gateway pool's spawn: a new cache instance for a request, as OCI starts a container."""
        started = time.perf_counter()
        instance = self._start(f"fn{next(self._names)}", self.cache_config(), wait=True)
        self._said_cold_start(instance, started, "it restores before answering its first request")
        return instance

    def _cold_start_compactor(self) -> FnInstance:
        started = time.perf_counter()
        instance = self._start_compactor(wait=True)
        self._said_cold_start(instance, started, "for the invoke that needs it")
        return instance

    def _said_cold_start(self, instance: FnInstance, started: float, note: str) -> None:
        self.say(f"pool {instance.name} cold start: process ready in {(time.perf_counter() - started) * 1000:.0f} ms "
                 f"(pid {instance.pid}); {note}")

    def _warm_up(self) -> None:
        """Send each instance a read that waits for its restore (a direct-invoke listing of one key;
        /health never waits): the first call imports func.py and replays the log (a cold start), so
        the first user request is fast and a broken config or an unreachable store shows up now."""
        for instance in self.pool.live():
            started = time.perf_counter()
            answer = instance.client.invoke(b'{"operation": "list", "limit": 1}', timeout_s=WARM_UP_TIMEOUT_S)
            status = orjson.loads(answer.body).get("status") if answer.status == 200 else answer.status
            if status != 200:
                raise RuntimeError(f"instance {instance.name} is not healthy: {status} "
                                   f"{answer.body.decode('utf-8', errors='replace')}")
            self.cold_starts_ms[instance.name] = (time.perf_counter() - started) * 1000

    def _start_lifecycle(self) -> None:
        self.compactor = pool_functions(self.compactor_pool, "compactor", self.busy_wait_s,
                                        COMPACTOR_TIMEOUT_S)["compactor"]
        self.gateway.functions.update(pool_functions(self.compactor_pool, "compactor", self.busy_wait_s,
                                                     COMPACTOR_TIMEOUT_S))
        if self.restored is not None:
            # The new run's own first snapshot; only then are the earlier runs' folders moved away.
            answer = lifecycle.compact(self.compactor, self.say, "start-up")
            if answer.get("status") == 200:
                earlier = data.earlier_runs(self.data_dir, self.topic)
                data.archive_runs(self.data_dir, self.topic, [s for s in earlier if s != self.stream_id])
            else:
                self.say("restore: the start-up compaction failed; the earlier run's snapshots stay in place")
        self.imports = lifecycle.ImportWatcher(self.data_dir, lambda event: lifecycle.invoke_json(self.compactor, event),
                                               self.say)
        compactor_jobs = lifecycle.Schedule(self.clock, self.say)
        compactor_jobs.every(self.compact_every_s, "compaction", lambda: lifecycle.compact(self.compactor, self.say))
        compactor_jobs.every(lifecycle.IMPORT_POLL_S, "imports", self.imports.poll)
        gateway_jobs = lifecycle.Schedule(self.clock, self.say)
        gateway_jobs.every(self.warm_every_s, "warmer", lambda: lifecycle.warm(self.url, self.say))
        if self.idle_timeout_s > 0:
            pools = (self.pool, self.compactor_pool)
            gateway_jobs.every(lifecycle.REAP_CHECK_S, "reaper", lambda: lifecycle.reap(pools, self.idle_timeout_s, self.say))
        self._schedules = [compactor_jobs, gateway_jobs]
        if self.background:
            self._tickers = [lifecycle.BackgroundTicker(compactor_jobs, "compactor-jobs"),
                             lifecycle.BackgroundTicker(gateway_jobs, "gateway-jobs")]

    # ---- running ----------------------------------------------------------------------------------

    def tick(self) -> list[str]:
        """Run the lifecycle jobs that are due by ``clock`` (tests drive time with this)."""
        return [name for schedule in self._schedules for name in schedule.tick()]

    def take_out_exited(self) -> list[FnInstance]:
        """Instances that exited on their own (not stopped by us): out of their pool; the next
        request that needs one starts a fresh instance."""
        exited = []
        for pool in (self.pool, self.compactor_pool):
            for instance in pool.live() if pool is not None else []:
                if not instance.alive():
                    pool.mark_dead(instance)
                    exited.append(instance)
        return exited

    # ---- stopping ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop the jobs and the gateway, let requests in flight finish, run a final compaction,
        then stop the instances and the broker and remove the socket directory. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        for freezer in self.freezers:
            freezer.stop()  # continues every frozen instance: what follows talks to them or stops them
        for ticker in self._tickers:
            ticker.stop(COMPACTOR_TIMEOUT_S)  # waits for a compaction or import in progress
        if self.gateway is not None:
            self.gateway.stop()
        if self.pool is not None:
            self.pool.close()
            self.pool.wait_idle(self.gateway.call_timeout_s if self.gateway else 30.0)
        if self._serving and self.compactor is not None:
            # After the last write was answered: the snapshot holds every acknowledged write.
            self.final_compaction = lifecycle.compact(self.compactor, self.say, "final")
        if self.compactor_pool is not None:
            self.compactor_pool.close()
        with self._instances_lock:
            started = list(self._all_instances)
        for instance in started:
            instance.stop()
        if self.front is not None:
            (getattr(self.front, "stop", None) or self.front.close)()  # type: ignore[attr-defined]
        if self.broker is not None:
            self.broker.stop()
        if self.monitoring is not None:
            self.monitoring.stop()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> "DevStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def describe(self) -> str:
        """What runs where, for the terminal (dev_describe.py)."""
        return dev_describe.describe(self)
