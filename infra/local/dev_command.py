"""The ``streamcache dev`` command: start a :class:`~.dev.DevStack`, print what runs where, relay
every instance's output and the gateway's access lines to stderr and the lifecycle events (restore,
compactions, cold starts, idle stops, imports) to stdout, and on SIGINT/SIGTERM/SIGHUP stop it:
jobs first, then the gateway, a final compaction once no request is in flight, then everything else.

``--like-oci`` runs the stack the way OCI runs it (docs/local.md): the freezer (``--freeze-idle-ms
50``), Fn's scale-out (``--max-instances 16``) and the broker link through the Kafka front end
(``--front``); each is also a flag of its own, and an explicit flag wins over ``--like-oci``.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import threading
import time
from typing import Callable, Mapping, TextIO
from urllib.parse import urlsplit

from streamcache.core.errors import StreamcacheError

from .dev import DEFAULT_DATA_DIR, DEFAULT_TOPIC, STACK_SETTINGS, DevStack

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # Ctrl-C, kill, the terminal closing
#: What --like-oci sets: Fn's FN_FREEZE_IDLE_MSECS default, and the instances one function may scale to.
LIKE_OCI_FREEZE_IDLE_MS = 50.0
LIKE_OCI_MAX_INSTANCES = 16


class FrontUnavailable(RuntimeError):
    """The Kafka front end (streamcache_local.kafka_front) is not part of this build."""


def front_end() -> Callable[[str], object]:
    """The factory DevStack calls with its host to start its broker behind the Kafka front end (OCI
    Streaming's round trip, recycled connections, read budget, TLS and SASL): ``(broker, front)``."""
    try:
        from . import kafka_front
    except ImportError as exc:
        raise FrontUnavailable("the Kafka front end (streamcache_local.kafka_front) is not available in this build; "
                               "run without it: --no-front") from exc
    return kafka_front.start_fronted_broker


def register(sub, url_parent) -> None:
    """Add ``streamcache dev`` to the command line (entry point ``streamcache.commands``: the product's
    CLI finds it there and never imports the local stand-ins itself)."""
    from streamcache.cli.main import _port, _positive, _seconds

    dev = sub.add_parser("dev", help="run broker, function instances and gateway locally until Ctrl-C")
    dev.add_argument("--port", type=_port, default=8080, help="gateway port on 127.0.0.1 (default 8080)")
    dev.add_argument("--instances", type=_positive, default=2, help="function instances started at the beginning (default 2; more with --max-instances)")
    dev.add_argument("--partitions", type=_positive, default=3, help="partitions of the topic (default 3)")
    dev.add_argument("--log-url", help="use this log (kafka://HOST:PORT/TOPIC) instead of starting a broker")
    dev.add_argument("--topic", help="topic on the local broker (default streamcache)")
    dev.add_argument("--data-dir", default=".streamcache", metavar="DIR",
                     help="snapshots (DIR/snapshots/) and files to import (DIR/imports/) (default ./.streamcache)")
    dev.add_argument("--compact-every", type=_seconds, default=60.0, metavar="S",
                     help="invoke the compactor every S seconds, as the Resource Scheduler would (default 60; 0 off)")
    dev.add_argument("--warm-every", type=_seconds, default=30.0, metavar="S",
                     help="GET /health through the gateway every S seconds, as an OCI health check (default 30; 0 off)")
    dev.add_argument("--idle-timeout", type=_seconds, default=300.0, metavar="S",
                     help="stop an instance after S seconds without a request (default 300; 0 never)")
    oci = dev.add_argument_group("OCI's world (docs/local.md)")
    oci.add_argument("--like-oci", action="store_true",
                     help=f"run the stack as OCI runs it: --freeze-idle-ms {LIKE_OCI_FREEZE_IDLE_MS:g} "
                          f"--max-instances {LIKE_OCI_MAX_INSTANCES} --front (an explicit flag wins)")
    oci.add_argument("--freeze-idle-ms", type=_milliseconds, metavar="MS",
                     help="stop (SIGSTOP) an idle instance MS ms after its answer, continue it for its next request, "
                          f"as Fn does (default off; {LIKE_OCI_FREEZE_IDLE_MS:g} with --like-oci)")
    oci.add_argument("--no-freeze", dest="freeze_idle_ms", action="store_const", const=-1.0,
                     help="never freeze (with --like-oci)")
    oci.add_argument("--max-instances", type=_positive, metavar="N",
                     help="a request that finds every instance busy starts another, up to N (default --instances: "
                          f"no scale-out; {LIKE_OCI_MAX_INSTANCES} with --like-oci)")
    oci.add_argument("--front", action=argparse.BooleanOptionalAction, default=None,
                     help="reach the broker through the Kafka front end (round trip, recycled connections, read "
                          "budget, TLS and SASL) (default off; on with --like-oci)")
    dev.add_argument("--no-metrics", dest="metrics", action="store_false",
                     help="do not serve the local OCI Monitoring (the functions then post no metrics)")
    dev.set_defaults(run=lambda client, args: run(
        port=args.port, instances=args.instances, partitions=args.partitions, log_url=args.log_url,
        topic=args.topic, data_dir=args.data_dir, compact_every_s=args.compact_every,
        warm_every_s=args.warm_every, idle_timeout_s=args.idle_timeout, metrics=args.metrics, **oci_options(args)),
        needs_url=False)


def _milliseconds(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("must be a number of milliseconds, 0 or more")
    return value


def oci_options(args: argparse.Namespace) -> dict:
    """``run``'s OCI options from the parsed flags: --like-oci's defaults under the explicit flags."""
    like = args.like_oci
    freeze_ms = args.freeze_idle_ms if args.freeze_idle_ms is not None else (LIKE_OCI_FREEZE_IDLE_MS if like else -1.0)
    max_instances = args.max_instances or (max(LIKE_OCI_MAX_INSTANCES, args.instances) if like else None)
    return {"freeze_idle_s": None if freeze_ms < 0 else freeze_ms / 1000, "max_instances": max_instances,
            "front": args.front if args.front is not None else like}


def function_config_from_env(env: Mapping[str, str]) -> dict[str, str]:
    """The developer's STREAMCACHE_* settings become the function config (as app config on OCI);
    the log, the snapshot store, the stream identity and the import bucket are the stack's own."""
    from streamcache.settings import Settings

    names = set(Settings.env_names()) - STACK_SETTINGS
    return {name: value for name, value in env.items() if name in names}


def run(port: int = 8080, instances: int = 2, partitions: int = 3, log_url: str | None = None,
        topic: str | None = None, data_dir: str | None = DEFAULT_DATA_DIR, compact_every_s: float = 60.0,
        warm_every_s: float = 30.0, idle_timeout_s: float = 300.0, freeze_idle_s: float | None = None,
        max_instances: int | None = None, front: bool = False, metrics: bool = True,
        out: TextIO | None = None, err: TextIO | None = None) -> int:
    """The ``streamcache dev`` command: run until SIGINT or SIGTERM, then compact and stop everything.
    The signal handlers stay in place while stopping, so a second Ctrl-C does not cut the final
    compaction short."""
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
        if scheme == "memory" and data_dir is not None:
            print("streamcache dev: a memory:// log cannot be compacted by another process: no snapshots, "
                  "compactor or imports in this run", file=err)
            data_dir = None
    if max_instances is not None and max_instances < instances:
        print(f"streamcache dev: --max-instances {max_instances} is less than --instances {instances}", file=err)
        return 2
    try:
        front_factory = front_end() if front else None
    except FrontUnavailable as exc:
        print(f"streamcache dev: --front: {exc}", file=err)
        return 2
    stop_requested = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop_requested.set()) for sig in STOP_SIGNALS}

    lock = threading.Lock()

    def emit(stream: TextIO, line: str) -> None:
        # One write per line under one lock: instance logs, access lines and events never interleave.
        with lock:
            stream.write(line + "\n")
            stream.flush()

    stack = DevStack(port, instances, partitions, log_url, topic or DEFAULT_TOPIC,
                     config=function_config_from_env(os.environ),
                     log_sink=lambda name, stream, line: emit(err, f"{name} | {line}"),
                     access_log=lambda line: emit(err, line), data_dir=data_dir,
                     compact_every_s=compact_every_s, warm_every_s=warm_every_s, idle_timeout_s=idle_timeout_s,
                     freeze_idle_s=freeze_idle_s, max_instances=max_instances, front=front_factory,
                     say=lambda line: emit(out, f"{time.strftime('%H:%M:%S')} {line}"), metrics=metrics)
    try:
        try:
            stack.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                print(f"streamcache dev: could not start: port {port} on 127.0.0.1 is in use (another streamcache "
                      f"dev?); pick another with --port N (make dev ARGS=\"--port N\"), or --port 0 for a free one",
                      file=err)
            else:
                print(f"streamcache dev: could not start: {exc}", file=err)
            return 2
        except (RuntimeError, ValueError, StreamcacheError) as exc:
            print(f"streamcache dev: could not start: {exc}", file=err)
            return 2
        emit(out, stack.describe())
        while not stop_requested.wait(0.5):
            for instance in stack.take_out_exited():
                emit(err, f"streamcache dev: {instance.name} exited with code {instance.process.returncode}; "
                          "it is out of the pool, and the next request that needs an instance starts one")
        emit(out, "streamcache dev: stopping" + (" (final compaction first)" if stack.compactor else ""))
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
