"""The peer: Debian's ``redis-server``, started by the bench on a free loopback port in a temporary
directory, and stopped (and its directory removed) afterwards.

:func:`find_redis` runs ``bench/setup_redis.sh`` (which installs the package when it is missing) and
says why the Redis half must be skipped when it cannot be had.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

SETUP_SCRIPT = Path(__file__).resolve().parents[1] / "setup_redis.sh"
START_TIMEOUT_S = 10.0
LOAD_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class RedisAvailability:
    binary: str | None
    version: str | None
    reason: str | None  # why the Redis half is skipped (None when it runs)

    @property
    def available(self) -> bool:
        return self.binary is not None


def find_redis(install: bool = True, timeout_s: float = 300.0) -> RedisAvailability:
    """redis-server and redis-py, installing redis-server first when ``install`` (root, apt-get)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        return RedisAvailability(None, None, "redis-py is not installed (pip install -e '.[dev]')")
    binary = shutil.which("redis-server")
    if binary is None and install:
        try:
            done = subprocess.run(["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=timeout_s)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return RedisAvailability(None, None, f"bench/setup_redis.sh failed: {exc}")
        binary = shutil.which("redis-server")
        if binary is None:
            detail = (done.stderr or done.stdout).strip().splitlines()
            return RedisAvailability(None, None, f"redis-server could not be installed: {detail[-1] if detail else done.returncode}")
    if binary is None:
        return RedisAvailability(None, None, "redis-server is not on PATH (bench/setup_redis.sh installs it)")
    try:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return RedisAvailability(None, None, f"redis-server does not run: {exc}")
    short = next((part[2:] for part in version.split() if part.startswith("v=")), version)
    return RedisAvailability(binary, short, None)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server on 127.0.0.1. ``config`` holds extra directives, e.g. ``{"appendonly": "yes",
    "appendfsync": "always"}``. Persistence is off unless asked for. Use ``with``."""

    def __init__(self, binary: str, config: dict[str, str] | None = None, directory: str | None = None) -> None:
        self.binary = binary
        self.config = {"save": "", "appendonly": "no", **(config or {})}
        self._own_dir = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="sc-bench-redis-")
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0  # perf_counter just before the process was spawned

    def spawn(self) -> "RedisServer":
        """Start the process and return at once (cold-start timing polls for the first answer)."""
        self.port = free_port()
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.directory,
                "--daemonize", "no", "--protected-mode", "yes", "--logfile", "", "--loglevel", "warning"]
        for name, value in self.config.items():
            args += [f"--{name}", value]
        self.started_at = time.perf_counter()
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        return self

    def start(self) -> "RedisServer":
        self.spawn()
        try:
            self.wait_until_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, timeout_s: float = 10.0):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout_s,
                           socket_connect_timeout=timeout_s)

    def wait_until_serving(self, key: str | None = None, timeout_s: float = START_TIMEOUT_S) -> float:
        """Poll until the server answers (a GET of ``key`` with a value, when given: an RDB is loaded
        only then). Returns seconds since the spawn. Bounded by ``timeout_s``."""
        import redis

        deadline = time.perf_counter() + timeout_s
        client = None
        while True:
            if self.process is not None and self.process.poll() is not None:
                error = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {error.strip()[-500:]}")
            try:
                if client is None:
                    client = self.client(timeout_s=1.0)
                if key is None:
                    client.ping()
                    break
                if client.get(key) is not None:
                    break
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError, redis.exceptions.TimeoutError):
                client = None
            if time.perf_counter() > deadline:
                raise RuntimeError(f"redis-server did not serve within {timeout_s} s")
            time.sleep(0.001)  # polling a server that is starting; bounded by the deadline
        elapsed = time.perf_counter() - self.started_at
        client.close()
        return elapsed

    def stop(self) -> None:
        """Stop (no RDB is written: ``save`` is off); remove the directory if this object made it."""
        if self.process is not None and self.process.poll() is None:
            # SIGTERM: Redis exits cleanly, and with `save ""` writes no RDB (redis-py's SHUTDOWN
            # would wait through its reconnect retries for seconds).
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGKILL)
                self.process.wait(timeout=5)
        if self.process is not None and self.process.stderr:
            self.process.stderr.close()
        if self._own_dir:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_for_aof_rewrite(client, timeout_s: float = LOAD_TIMEOUT_S) -> None:
    """Return when no background AOF rewrite or RDB save is running (bounded)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = client.info("persistence")
        if not info.get("aof_rewrite_in_progress") and not info.get("rdb_bgsave_in_progress"):
            return
        time.sleep(0.01)  # polling Redis's own status; bounded by the deadline
    raise RuntimeError("Redis kept rewriting its AOF")


def directory_size(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total
