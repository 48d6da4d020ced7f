"""The local stand-in for the Fn agent: runs function instances as hot containers.

Each instance is the real ``fdk`` console script (``fdk /abs/func.py handler``) with the environment
the agent sets (``FN_FORMAT=http-stream``, ``FN_LISTENER=unix:<dir>/<name>.sock``, ``FN_APP_ID``...)
plus the function's config as environment variables, which is how OCI Functions passes config.
Facts this relies on (runtime-facts.md §1-2):

- the FDK binds ``phony<name>.sock`` and only then symlinks ``<name>.sock`` to it: the symlink
  appearing (and accepting a connection) means "ready";
- the FDK removes stale files in one ``try`` block, so a leftover phony file without its symlink makes
  the restart fail with "Address already in use": we delete both files before a start and after a stop;
- SIGTERM stops the FDK's loop but leaves both socket files behind.

Invoking an instance is :mod:`.fn_protocol`'s job: ``instance.client`` is an :class:`FnClient`.
"""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

from .fn_protocol import FnClient

FUNCTION_PATH = Path(__file__).resolve().parents[2] / "functions" / "cache" / "func.py"
READY_TIMEOUT_S = 10.0  # the Fn contract allows 5 s; a loaded 2-core test machine needs slack
STOP_TIMEOUT_S = 5.0
MAX_UNIX_PATH = 107  # sockaddr_un.sun_path, as the Fn contract states

LogSink = Callable[[str, str, str], None]  # (instance name, "stdout"|"stderr", line without newline)


def fdk_script() -> str:
    """The ``fdk`` console script of the running interpreter's environment."""
    path = Path(sys.executable).parent / "fdk"
    if not path.exists():
        raise RuntimeError(f"the fdk entrypoint is missing at {path}; install the project (pip install -e .)")
    return str(path)


def base_env() -> dict[str, str]:
    """What a container has before the agent adds FN_* and config: a path and a locale, nothing of
    the developer's shell (in particular no STREAMCACHE_* leaking into the function's config)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
    return {name: os.environ[name] for name in keep if name in os.environ}


class FnInstance:
    """One running function instance (a hot container). Use :func:`start_instance`."""

    def __init__(self, name: str, socket_dir: str, process: subprocess.Popen, log_tail: int = 2000) -> None:
        self.name = name
        self.socket_path = os.path.join(socket_dir, f"{name}.sock")
        self.phony_path = os.path.join(socket_dir, f"phony{name}.sock")
        self.process = process
        self.client = FnClient(self.socket_path)
        self.log_lines: collections.deque[tuple[str, str]] = collections.deque(maxlen=log_tail)
        self._readers: list[threading.Thread] = []
        self.frozen = False  # stopped by the freezer (SIGSTOP); see freeze() and thaw()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def exited_within(self, timeout_s: float) -> bool:
        """True once the process has exited, waiting at most ``timeout_s`` (a killed process closes
        its sockets a moment before it can be reaped)."""
        try:
            self.process.wait(timeout=timeout_s)
            return True
        except subprocess.TimeoutExpired:
            return False

    def freeze(self) -> None:
        """Stop the process (SIGSTOP), as the Fn agent pauses an idle hot container: none of its
        threads runs until :meth:`thaw`. Its sockets stay open; what arrives waits in the kernel."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        """Continue a frozen process (SIGCONT; it also discards a stop still pending)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)
        self.frozen = False

    def stderr_lines(self) -> list[str]:
        return [line for stream, line in list(self.log_lines) if stream == "stderr"]

    def _relay(self, stream_name: str, pipe, sink: LogSink | None) -> None:
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.log_lines.append((stream_name, line))
            if sink is not None:
                try:
                    sink(self.name, stream_name, line)
                except Exception as exc:  # the pipe must keep draining, whatever the sink does
                    # A relay that stopped reading would let the pipe fill: the instance would block
                    # on its next log line, and every request after it would time out (504).
                    print(f"{self.name}: the log sink failed ({type(exc).__name__}: {exc}); lines are "
                          "still kept", file=sys.stderr)
                    sink = None
        pipe.close()

    def _start_relays(self, sink: LogSink | None) -> None:
        for stream_name, pipe in (("stdout", self.process.stdout), ("stderr", self.process.stderr)):
            thread = threading.Thread(target=self._relay, args=(stream_name, pipe, sink),
                                      name=f"{self.name}-{stream_name}", daemon=True)
            thread.start()
            self._readers.append(thread)

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Return once the symlink exists and accepts connections, as the agent waits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                self._join_readers(1.0)
                tail = "\n".join(self.stderr_lines()[-20:])
                raise RuntimeError(f"function instance {self.name} exited with {self.process.returncode}:\n{tail}")
            if os.path.islink(self.socket_path) and _connectable(self.socket_path):
                return
            time.sleep(0.005)  # polling for the symlink; bounded by the deadline
        raise RuntimeError(f"function instance {self.name} was not ready within {timeout_s} s")

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM (the FDK stops its loop), then SIGKILL after ``timeout_s``; remove both sockets."""
        self.client.close()
        if self.process.poll() is None:
            self.thaw()  # a stopped process keeps SIGTERM pending: it would only die of the SIGKILL
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout_s)
        self._join_readers(timeout_s)
        remove_socket_files(self.socket_path, self.phony_path)

    def _join_readers(self, timeout_s: float) -> None:
        for thread in self._readers:
            thread.join(timeout_s)

    def __repr__(self) -> str:
        return f"FnInstance({self.name!r}, pid={self.pid}, socket={self.socket_path!r})"


def _connectable(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        try:
            sock.connect(path)
            return True
        except OSError:
            return False


def remove_socket_files(*paths: str) -> None:
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def function_env(name: str, socket_path: str, config: Mapping[str, str], app_name: str = "streamcache",
                 fn_name: str = "cache", memory_mb: int = 256) -> dict[str, str]:
    """The environment the Fn agent gives a container: FN_* plus the app/function config."""
    return {
        **base_env(),
        **{k: str(v) for k, v in config.items()},
        "FN_FORMAT": "http-stream",
        "FN_LISTENER": f"unix:{socket_path}",
        "FN_APP_ID": f"ocid1.fnapp.oc1..local{app_name}",
        "FN_FN_ID": f"ocid1.fnfunc.oc1..local{fn_name}",
        "FN_APP_NAME": app_name,
        "FN_FN_NAME": fn_name,
        "FN_MEMORY": str(memory_mb),
        "FN_TYPE": "sync",
    }


def start_instance(name: str, socket_dir: str, config: Mapping[str, str], function_path: Path = FUNCTION_PATH,
                   log_sink: LogSink | None = None, wait: bool = True, fn_name: str = "cache") -> FnInstance:
    """Start one instance as the agent does. ``log_sink`` receives its output lines (they are also
    kept in ``instance.log_lines``); ``fn_name`` is the function it is an instance of (FN_FN_NAME)."""
    socket_dir = os.path.abspath(socket_dir)  # FN_LISTENER must be absolute (the FDK lstrips "unix:")
    socket_path = os.path.join(socket_dir, f"{name}.sock")
    if len(socket_path.encode()) > MAX_UNIX_PATH:
        raise ValueError(f"socket path {socket_path!r} is longer than {MAX_UNIX_PATH} bytes")
    remove_socket_files(socket_path, os.path.join(socket_dir, f"phony{name}.sock"))
    process = subprocess.Popen(
        [fdk_script(), str(Path(function_path).resolve()), "handler"],
        env=function_env(name, socket_path, config, fn_name=fn_name),
        cwd=str(Path(function_path).resolve().parent),  # Fn runs the function from its own directory
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a Ctrl-C at the terminal reaches only the orchestrator, which stops us
    )
    instance = FnInstance(name, socket_dir, process)
    instance._start_relays(log_sink)
    if wait:
        try:
            instance.wait_ready()
        except BaseException:
            instance.stop()
            raise
    return instance


def start_instances(count: int, socket_dir: str, config: Mapping[str, str], log_sink: LogSink | None = None,
                    function_path: Path = FUNCTION_PATH) -> list[FnInstance]:
    """Start ``count`` instances named fn1..fnN in parallel (start all, then wait for each)."""
    instances: list[FnInstance] = []
    try:
        for number in range(1, count + 1):
            instances.append(start_instance(f"fn{number}", socket_dir, config, function_path, log_sink, wait=False))
        for instance in instances:
            instance.wait_ready()
    except BaseException:
        for instance in instances:
            instance.stop()
        raise
    return instances
