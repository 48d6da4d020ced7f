"""What OCI does around the functions, played on one machine by ``streamcache dev``.

- the **Resource Scheduler** invokes the compactor every ``--compact-every`` seconds, as a plain Fn
  invoke with ``{"action": "compact"}``;
- a **health check** (OCI offers every 10, 30 or 60 s) sends ``GET /health`` through the gateway
  every ``--warm-every`` seconds; like on OCI, it counts as a request and keeps an instance warm;
- **idle reclaim**: an instance without a request for ``--idle-timeout`` seconds is stopped; the
  gateway's pool cold-starts a fresh one when a request needs it;
- **Object Storage events**: a file that lands in ``<data-dir>/imports/`` becomes a
  ``com.oraclecloud.objectstorage.createobject`` event delivered to the compactor (see
  :class:`ImportWatcher` for when a file counts as complete).

Jobs run in a :class:`Schedule`, which only acts when :meth:`Schedule.tick` is called: tests call it
with a hand-driven clock, ``streamcache dev`` calls it from a background thread
(:class:`BackgroundTicker`). The compactor's jobs and the gateway's jobs are two schedules on two
threads, so a long compaction or import never delays the health checks.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

import orjson

from streamcache.compactor.object_events import object_created_event

from .fn_protocol import FnTimeout, FnUnavailable, new_call_id
from .invoke_endpoint import FunctionBusy, InvokeTarget

Say = Callable[[str], None]
COMPACT_REQUEST = {"action": "compact"}
POLL_S = 0.2  # how often a background ticker looks at its schedule
IMPORT_POLL_S = 1.0
REAP_CHECK_S = 1.0
IGNORED_SUFFIXES = (".tmp", ".part", ".partial")  # still being written: renamed when complete
LOCAL_NAMESPACE, LOCAL_BUCKET = "local", "streamcache-dev"


@dataclass
class Job:
    name: str
    every_s: float
    action: Callable[[], object]
    due_at: float


class Schedule:
    """Jobs that run every so many seconds of ``clock``. :meth:`tick` runs each job whose time has
    come, once, in order, on the calling thread; a job that falls behind (a long compaction, a
    laptop asleep) runs once when it can, not once per missed interval, as a scheduler skips
    missed runs. A job's exception is reported through ``say`` and does not stop the others."""

    def __init__(self, clock: Callable[[], float], say: Say) -> None:
        self.clock = clock
        self.say = say
        self.jobs: list[Job] = []
        self._lock = threading.Lock()  # a manual tick and the background ticker never overlap

    def every(self, every_s: float, name: str, action: Callable[[], object], first_in_s: float | None = None) -> None:
        """Run ``action`` every ``every_s`` seconds, the first time after ``first_in_s`` (default
        ``every_s``). An interval of 0 or less means never."""
        if every_s > 0:
            delay = every_s if first_in_s is None else first_in_s
            self.jobs.append(Job(name, every_s, action, self.clock() + delay))

    def tick(self) -> list[str]:
        """Run the jobs that are due; return their names."""
        ran = []
        with self._lock:
            for job in self.jobs:
                now = self.clock()
                if now < job.due_at:
                    continue
                try:
                    job.action()
                except Exception as exc:  # a broken job is reported, the schedule goes on
                    self.say(f"{job.name}: failed: {type(exc).__name__}: {exc}")
                # On time: keep the cadence. Behind: the next run is a whole interval from now.
                job.due_at += job.every_s
                if job.due_at <= self.clock():
                    job.due_at = self.clock() + job.every_s
                ran.append(job.name)
        return ran


class BackgroundTicker:
    """Ticks a schedule every :data:`POLL_S` on a daemon thread until :meth:`stop`."""

    def __init__(self, schedule: Schedule, name: str) -> None:
        self.schedule = schedule
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> "BackgroundTicker":
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(POLL_S):
            self.schedule.tick()

    def stop(self, timeout_s: float) -> None:
        """Stop ticking; wait (bounded) for a job that is running to finish."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)


# ---- the compactor, invoked as the Resource Scheduler and Events would ----------------------------


def invoke_json(target: InvokeTarget, payload: dict) -> dict:
    """A plain Fn invoke of ``target`` with a JSON body; always a dict with a ``status``.

    Directly invoked functions answer 200 with their outcome in the body, so the body's ``status``
    is the outcome; the platform's failures (busy, timeout, crashed) become 5xx dicts here."""
    try:
        answer = target(orjson.dumps(payload), "application/json", new_call_id())
    except FunctionBusy:
        return {"status": 503, "error": "busy", "message": "the compactor stayed busy"}
    except FnTimeout as exc:
        return {"status": 504, "error": "function_timeout", "message": str(exc)}
    except FnUnavailable as exc:
        return {"status": 502, "error": "function_unavailable", "message": str(exc)}
    text = answer.body.decode("utf-8", errors="replace")
    if answer.status != 200:
        return {"status": 502, "error": "function_failed", "message": text[:300]}
    try:
        body = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        return {"status": 502, "error": "not_json", "message": text[:300]}
    return body if isinstance(body, dict) else {"status": 200, "answer": body}


def summary(answer: dict, limit: int = 400) -> str:
    """One line for a person: the status, then what a compaction or an import did (the fields the
    compactor's answers carry), or every field for an answer of another shape."""
    status = answer.get("status", "?")
    if "error" in answer:
        line = f"{status} {answer['error']}: {answer.get('message', '')}"
    elif answer.get("action") == "compact" and "outcome" in answer:
        folded = f"{answer.get('entries')} entries, {answer.get('records_folded')} records folded"
        if answer["outcome"] == "written":
            name = str(answer.get("object", "")).rsplit("/", 1)[-1]
            line = f"{status} written {name} ({folded}, {answer.get('bytes')} bytes)"
        else:
            line = f"{status} {answer['outcome']} ({folded})"
    elif answer.get("action") == "import" and "imported" in answer:
        bad = answer.get("bad_lines") or []
        shown = "; ".join(f"line {b.get('line')}: {b.get('reason')}" for b in bad[:3] if isinstance(b, dict))
        line = (f"{status} imported {answer['imported']} records, {answer.get('bad_count', len(bad))} bad lines"
                + (f" ({shown}{'; ...' if len(bad) > 3 else ''})" if shown else "")
                + (", a duplicate event: already imported" if answer.get("skipped_duplicate") else ""))
    else:
        line = " ".join([str(status), *(f"{name}={_short(value)}" for name, value in answer.items()
                                         if name not in ("status", "action"))])
    if answer.get("warning"):
        line += f" WARNING: {answer['warning']}"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _short(value: object) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 120 else text[:117] + "..."


def compact(target: InvokeTarget, say: Say, why: str = "scheduled") -> dict:
    """Invoke the compactor once, as the Resource Scheduler does, and report its answer."""
    started = time.perf_counter()
    answer = invoke_json(target, COMPACT_REQUEST)
    elapsed = (time.perf_counter() - started) * 1000
    say(f"compactor {why} compaction: {summary(answer)} ({elapsed:.0f} ms)")
    return answer


# ---- health checks and idle reclaim ---------------------------------------------------------------


def warm(gateway_url: str, say: Say, timeout_s: float = 30.0) -> int:
    """``GET /health`` through the gateway, as an OCI health check would; reports only trouble
    (the gateway's access log shows every request)."""
    parts = urlsplit(gateway_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout_s)
    try:
        conn.request("GET", "/health", headers={"User-Agent": "streamcache-dev-health-check"})
        response = conn.getresponse()
        response.read()
        status = response.status
    except OSError as exc:
        say(f"warmer: GET /health failed: {exc}")
        return 0
    finally:
        conn.close()
    if status != 200:
        say(f"warmer: GET /health answered {status}")
    return status


def reap(pools: Iterable, idle_s: float, say: Say) -> list:
    """Stop every instance that had no request for ``idle_s`` seconds (SIGTERM, socket files
    removed); the pools start fresh ones on demand. Returns the stopped instances."""
    stopped = []
    for pool in pools:
        for instance in pool.retire_idle(idle_s):
            instance.stop()
            stopped.append(instance)
            say(f"pool {instance.name} stopped after {idle_s:g} s without a request (OCI reclaims idle "
                "instances); the next request that needs one cold-starts a fresh instance")
    return stopped


# ---- Object Storage events for <data-dir>/imports/ ------------------------------------------------


class ImportWatcher:
    """Plays Object Storage events for the folder ``<data-dir>/imports/``.

    A file counts as complete once two polls (about a second apart) saw the same size and
    modification time. Names starting with ``.`` or ending in ``.tmp``/``.part``/``.partial`` are
    ignored, so a writer that wants to be sure writes under such a name and renames the file when
    done (a rename within one folder is atomic). Each complete file becomes a createobject event for
    the object ``imports/<file>`` (the data dir is the bucket), delivered to the compactor; after
    its answer the file moves to ``imports/done/`` (status 200) or ``imports/failed/``, so it is
    never loaded twice, not even by the next run (which restores the data from its snapshot).
    """

    def __init__(self, data_dir: Path, deliver: Callable[[dict], dict], say: Say) -> None:
        self.folder = Path(data_dir) / "imports"
        self.folder.mkdir(parents=True, exist_ok=True)  # there from the start, for people to find
        self.deliver = deliver
        self.say = say
        self._last_seen: dict[str, tuple[int, int]] = {}
        self.answers: list[tuple[str, dict]] = []  # (file, the compactor's answer), oldest first

    def poll(self) -> list[tuple[str, dict]]:
        """One look at the folder: deliver the files that stopped changing; return (file, answer)s."""
        self.folder.mkdir(parents=True, exist_ok=True)
        current = {}
        for entry in os.scandir(self.folder):
            if entry.name.startswith(".") or entry.name.endswith(IGNORED_SUFFIXES) or not entry.is_file():
                continue
            stat = entry.stat()
            current[entry.name] = (stat.st_size, stat.st_mtime_ns)
        complete = sorted(name for name, seen in current.items() if self._last_seen.get(name) == seen)
        self._last_seen = {name: seen for name, seen in current.items() if name not in complete}
        return [(name, self._load(name, *current[name])) for name in complete]

    def _load(self, name: str, size: int, mtime_ns: int) -> dict:
        # One ETag per version of the file, as Object Storage gives each object version its own.
        etag = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.folder / name}:{size}:{mtime_ns}"))
        event = object_created_event(LOCAL_NAMESPACE, LOCAL_BUCKET, f"imports/{name}", etag, size)
        self.say(f"imports: {name} ({size} bytes) -> createobject event to the compactor")
        started = time.perf_counter()
        answer = self.deliver(event)
        self.answers.append((name, answer))
        # A file of which no line landed failed, even though the compactor answered 200 for it.
        nothing_landed = answer.get("lines", 0) > 0 and not answer.get("imported") and not answer.get("skipped_duplicate")
        outcome = "done" if answer.get("status") == 200 and not nothing_landed else "failed"
        moved = _move_aside(self.folder / name, self.folder / outcome)
        report = moved.with_name(moved.name + ".report.json")
        report.write_bytes(orjson.dumps(import_report(name, answer), option=orjson.OPT_INDENT_2) + b"\n")
        self.say(f"imports: {name}: {summary(answer)} ({(time.perf_counter() - started) * 1000:.0f} ms); "
                 f"moved to {moved.relative_to(self.folder.parent)}, report in {report.name}")
        return answer


def import_report(name: str, answer: dict) -> dict:
    """What an import did, for the person who dropped the file: lines read, landed, and each refused
    line with its number and reason (the first 100; ``bad_count`` counts them all)."""
    report = {"file": name, "status": answer.get("status"), "lines": answer.get("lines", 0),
              "imported": answer.get("imported", 0), "bad_count": answer.get("bad_count", 0),
              "bad_lines": answer.get("bad_lines", []), "skipped_duplicate": answer.get("skipped_duplicate", False)}
    if "error" in answer:
        report.update(error=answer["error"], message=answer.get("message"))
    return report


def _move_aside(path: Path, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():  # the same name imported before: keep both
        target = folder / f"{path.stem}.{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}{path.suffix}"
    path.rename(target)
    return target
