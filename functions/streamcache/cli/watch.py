"""``streamcache watch``: print the cache's changes as they happen, until Ctrl-C.

    streamcache watch [--from earliest|latest|POSITIONS] [--prefix P] [--json] [--log-url URL]

It reads the stream itself (``streamcache.client.subscribe.Subscription``), not the cache's HTTP API. Which
stream: ``--log-url kafka://HOST:PORT/TOPIC`` (OCI Streaming: set ``STREAMCACHE_KAFKA_SECURITY_PROTOCOL``,
``..._SASL_USERNAME`` and ``..._SASL_PASSWORD`` as for the functions); without it, the ``streamcache
dev`` at ``--url`` (default ``$STREAMCACHE_URL`` or http://127.0.0.1:8080) is asked for its stream
(``GET /_local/stack``, which only the local gateway answers).

Output: one line per change, ``time position kind key`` (the time is the writer's clock, in UTC; the
kind ``put``, ``delete`` or ``increment``), then a put's ``size content-type preview``, an
increment's ``by N``, any precondition and expiry; or with ``--json`` one JSON object per line
(``ChangeEvent.as_json()``: an increment has ``by``).
Records of one key come in log order; keys in different partitions interleave. On Ctrl-C it prints
(on stderr) the ``--from`` value that resumes exactly where it stopped.

Exit status: 0 stopped by Ctrl-C (or the reader went away); 2 a usage error, or the stream cannot be
found or reached.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Callable
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import ProxyHandler, build_opener

import orjson

DEFAULT_URL = "http://127.0.0.1:8080"
STACK_PATH = "/_local/stack"  # infra/local/stack_info.py serves it
DISCOVERY_TIMEOUT_S = 3.0
PREVIEW_CHARS = 60
EXIT_OK, EXIT_USAGE = 0, 2


class WatchError(Exception):
    """Something to tell the user on one line, then exit 2."""


def register(subparsers, url_parent: argparse.ArgumentParser) -> None:
    """Add ``watch`` to the ``streamcache`` command (``url_parent`` gives it ``--url``)."""
    watch = subparsers.add_parser(
        "watch", parents=[url_parent], help="print changes as they happen, until Ctrl-C",
        description="Print every change on the stream as it happens, until Ctrl-C. Finds the streamcache dev "
                    "at --url by itself; --log-url reads any other stream.")
    watch.add_argument("--from", dest="start", default="latest", metavar="earliest|latest|POSITIONS",
                       help="where to start: earliest, latest (default), or POSITIONS as watch prints them when "
                            "stopped (P-O[,P-O...]: the next offset per partition; partitions not named start "
                            "at the earliest)")
    watch.add_argument("--prefix", default="", help="only keys starting with this")
    watch.add_argument("--json", action="store_true", help="one JSON object per change")
    watch.add_argument("--log-url", help="the stream, kafka://HOST:PORT[,HOST:PORT...]/TOPIC "
                                         "(default: ask the streamcache dev at --url)")
    watch.set_defaults(run=lambda client, args: cmd_watch(args), needs_url=False)


def cmd_watch(args, out=None, err=None, stop: threading.Event | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    from streamcache.core.errors import InvalidRequest, LogUnavailable
    from streamcache.client.subscribe import Subscription, parse_resume_token

    subscription = None
    own_stop, previous = _stop_on_signals() if stop is None else (stop, {})
    try:
        start = args.start if args.start in ("earliest", "latest") else parse_resume_token(args.start)
        bootstrap, topic, security = find_stream(args.log_url, getattr(args, "url", None))
        subscription = Subscription(bootstrap, topic, start=start, prefix=args.prefix, security=security,
                                    client_id="streamcache-watch")
        watch(subscription, out.write, out.flush, args.json, own_stop)
        return EXIT_OK
    except (WatchError, InvalidRequest, LogUnavailable) as exc:
        print(f"streamcache watch: {exc}".replace("\n", " "), file=err)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:  # `streamcache watch | head`: the reader is gone, which is a normal end
        if out is sys.stdout:  # keep the interpreter's own flush at exit from failing again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if subscription is not None:
            try:
                print(f"streamcache watch: stopped; resume with --from {subscription.resume_token()}", file=err)
            except Exception:  # the broker may be gone: the hint is a courtesy
                pass
            subscription.close()


def _stop_on_signals() -> tuple[threading.Event | None, dict]:
    """SIGINT and SIGTERM end the watch cleanly (the resume token is printed either way). Set here
    explicitly: a process started in the background by a shell inherits SIGINT *ignored*, and would
    otherwise go on after Ctrl-C or ``kill -INT``. Only the main thread may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        return None, {}
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    return stop, previous


def watch(subscription, write: Callable[[str], object], flush: Callable[[], object], as_json: bool,
          stop: threading.Event | None = None) -> None:
    """Print changes until ``stop`` is set (or forever: Ctrl-C ends it)."""
    while stop is None or not stop.is_set():
        events = subscription.poll(timeout_ms=200)
        for event in events:
            write((orjson.dumps(event.as_json()).decode() if as_json else format_change(event)) + "\n")
        if events:
            flush()


# ---- which stream ---------------------------------------------------------------------------------


def find_stream(log_url: str | None, cache_url: str | None) -> tuple[str, str, dict]:
    """``(bootstrap, topic, security options)`` of the stream to watch."""
    if log_url is None:
        url = cache_url or os.environ.get("STREAMCACHE_URL") or DEFAULT_URL
        stack = fetch_stack(url)
        log_url = stack["log_url"]
        if not log_url.startswith("kafka://"):
            raise WatchError(f"the streamcache dev at {url} keeps its stream inside its own process ({log_url}); "
                             "watch needs a kafka:// stream (run streamcache dev without --log-url memory://...)")
        return *_split(log_url), {}
    from streamcache.adapters.urls import check_log_url

    problem = check_log_url(log_url)
    if problem or not log_url.startswith("kafka://"):
        raise WatchError(problem or f"--log-url must be kafka://HOST:PORT/TOPIC, not {log_url!r}")
    return *_split(log_url), _security_from_env()


def fetch_stack(url: str, timeout_s: float = DISCOVERY_TIMEOUT_S) -> dict:
    """Ask the local gateway at ``url`` for its stack (see infra/local/stack_info.py)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WatchError(f"--url must be an http(s) URL, not {url!r}")
    stack_url = f"{parts.scheme}://{parts.netloc}{STACK_PATH}"
    opener = build_opener(ProxyHandler({}))  # a local gateway: never through a proxy
    hint = "start `streamcache dev`, or point --url at one, or give --log-url kafka://HOST:PORT/TOPIC"
    try:
        with opener.open(stack_url, timeout=timeout_s) as response:
            stack = orjson.loads(response.read())
    except HTTPError as exc:
        raise WatchError(f"{parts.netloc} is not a streamcache dev (GET {STACK_PATH} answered {exc.code}); "
                         "give --log-url kafka://HOST:PORT/TOPIC") from None
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise WatchError(f"no streamcache dev answers at {parts.netloc} ({reason}); {hint}") from None
    except orjson.JSONDecodeError:
        raise WatchError(f"{stack_url} did not answer JSON; give --log-url kafka://HOST:PORT/TOPIC") from None
    if not isinstance(stack, dict) or not isinstance(stack.get("log_url"), str):
        raise WatchError(f"{stack_url} answered no log_url; give --log-url kafka://HOST:PORT/TOPIC")
    return stack


def _split(log_url: str) -> tuple[str, str]:
    parts = urlsplit(log_url)
    return parts.netloc, parts.path.strip("/")


def _security_from_env() -> dict:
    """Kafka security options from the functions' settings (as the functions' own log uses them)."""
    from streamcache.core.errors import ConfigError
    from streamcache.settings import PREFIX, Settings

    env = {k: v for k, v in os.environ.items() if k.startswith(PREFIX + "KAFKA_")}
    try:
        settings = Settings.from_env({**env, PREFIX + "LOG_URL": "memory://unused"})
    except ConfigError as exc:
        raise WatchError("; ".join(exc.problems)) from None
    return settings.kafka_security()


# ---- one line per change --------------------------------------------------------------------------


def format_change(event) -> str:
    """``2026-11-26T21:14:44.283Z  0-12      put       user/1  14 B application/json  {"n":1}``, or
    ``... increment visits  by 5`` (times in the API's one format: RFC 3339, UTC, milliseconds)."""
    from streamcache.core.records import Delete, Increment, Put, Touch, format_time

    mutation = event.mutation
    when = format_time(mutation.ts_ms)
    line = f"{when}  {str(event.position):<9} {event.kind:<9} {mutation.key}"
    ref = event.dataref
    if ref is not None:
        line += f"  {ref.size} B {ref.content_type}  dataref {ref.name}"
    elif isinstance(mutation, Put):
        line += f"  {len(mutation.value)} B {mutation.content_type}  {preview(mutation.value, mutation.content_type)}"
    elif isinstance(mutation, Increment):
        line += f"  by {mutation.by}"
    if not isinstance(mutation, Delete) and mutation.expires_at_ms is not None:
        line += "  expires " + format_time(mutation.expires_at_ms)
    elif isinstance(mutation, Touch):
        line += "  expires never"
    pre = mutation.precondition
    if pre is not None:
        line += {"match": f"  if-match {pre.version}", "exists": "  if-exists", "absent": "  if-absent"}[pre.kind]
    return line


def preview(value: bytes, content_type: str, limit: int = PREVIEW_CHARS) -> str:
    """JSON compactly, text as a quoted string (control characters escaped), anything else as its size."""
    from streamcache.core.records import is_json_type

    text = None
    if is_json_type(content_type):
        try:
            text = orjson.dumps(orjson.loads(value)).decode()
        except orjson.JSONDecodeError:
            pass
    if text is None:
        try:
            text = orjson.dumps(value.decode("utf-8")).decode()  # quoted, with \n \t \u0000 escaped
        except UnicodeDecodeError:
            return "(binary)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def main(argv: list[str] | None = None) -> int:
    """``python -m streamcache.cli.watch ...``: the command on its own (before and besides cli.py)."""
    top = argparse.ArgumentParser(prog="streamcache")
    top.add_argument("--url", default=None, help=f"the cache's URL (default: $STREAMCACHE_URL or {DEFAULT_URL})")
    url = argparse.ArgumentParser(add_help=False)
    url.add_argument("--url", default=argparse.SUPPRESS, help="the cache's URL (see above)")
    register(top.add_subparsers(dest="command", required=True), url)
    args = top.parse_args(argv)
    return args.run(None, args)


if __name__ == "__main__":
    sys.exit(main())
