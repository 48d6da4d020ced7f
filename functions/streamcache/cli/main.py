"""The ``streamcache`` command: use a cache (``get``, ``put``, ``delete``, ``list``) through the client
library (:class:`streamcache.Client`) over its HTTP API, plus the commands other installed packages
register under the entry-point group ``streamcache.commands`` (``streamcache dev``: the local
stand-ins in ``infra/local`` register it, so the product never imports them).

The cache is found at ``--url``, default ``$STREAMCACHE_URL`` or http://127.0.0.1:8080. A URL
without a path means the routes are under ``/cache``; a URL with a path (e.g. an OCI API Gateway
deployment ``https://...apigateway.../v1/cache``) names the route prefix itself.

Exit status: 0 success; 1 the key is absent or a precondition failed (404, 412); 2 a usage error,
a request the cache rejected (other 4xx) or a cache that cannot be reached; 3 a server error (5xx).
Errors are one line on stderr, with the server's JSON ``message``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from streamcache.cli import history as cli_history
from streamcache.cli import metrics as cli_metrics
from streamcache.cli import snapshots as cli_snapshots

from streamcache.cli import watch as cli_watch

DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT_S = 30.0
EXIT_OK, EXIT_MISS, EXIT_USAGE, EXIT_SERVER = 0, 1, 2, 3
#: Packages add commands with an entry point in this group: ``register(subparsers, url_parent)``.
COMMANDS_GROUP = "streamcache.commands"


class CliError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _client(url: str):
    """The library client for ``url`` (the CLI speaks to the cache only through it)."""
    from streamcache import Client

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CliError(f"--url must be an http(s) URL, not {url!r}", EXIT_USAGE)
    return Client(url, timeout=TIMEOUT_S)


def _exit_code(error) -> int:
    from streamcache import BadRequest, NotFound, PreconditionFailed, Unreachable

    if isinstance(error, (NotFound, PreconditionFailed)):
        return EXIT_MISS
    if isinstance(error, (BadRequest, Unreachable)):
        return EXIT_USAGE
    return EXIT_SERVER


def rfc3339(moment) -> str:
    """The one timestamp format of the API, the CLI and the client: RFC 3339, UTC, milliseconds, Z."""
    from streamcache.core.records import format_time

    return format_time(round(moment.timestamp() * 1000))


def _consistency(args) -> str | None:
    return "strong" if getattr(args, "strong", False) else None


# ---- commands -----------------------------------------------------------------------------------


def cmd_get(client, args) -> int:
    _join(client, args)
    item = _with_session(client, args, lambda: client.get(args.key, consistency=_consistency(args)))
    sys.stdout.buffer.write(item.value)
    sys.stdout.buffer.flush()
    return EXIT_OK


def cmd_put(client, args) -> int:
    value = sys.stdin.buffer.read() if args.value == "-" else os.fsencode(args.value)
    ttl = None
    if args.ttl is not None:
        try:
            ttl = float(args.ttl)
        except ValueError:
            raise CliError(f"--ttl must be a number of seconds, not {args.ttl!r}", EXIT_USAGE) from None
    result = client.put(args.key, value, ttl=ttl, if_match=args.if_match, if_none_match=args.if_absent,
                        content_type=args.content_type)
    expires = rfc3339(result.expires_at) if result.expires_at else None
    print(orjson.dumps({"key": result.key, "version": result.version, "expires_at": expires,
                        "created": result.created, "position": client.session}).decode())
    _save_session(client, args)
    return EXIT_OK


def cmd_touch(client, args) -> int:
    try:
        ttl = None if args.no_expiry else float(args.ttl)
    except ValueError:
        raise CliError(f"--ttl must be a number of seconds, not {args.ttl!r}", EXIT_USAGE) from None
    result = client.touch(args.key, ttl, if_match=args.if_match)
    expires = rfc3339(result.expires_at) if result.expires_at else None
    print(orjson.dumps({"key": result.key, "version": result.version, "expires_at": expires,
                        "position": client.session}).decode())
    _save_session(client, args)
    return EXIT_OK


def cmd_incr(client, args) -> int:
    print(client.increment(args.key, args.by, ttl=args.ttl))
    _save_session(client, args)
    return EXIT_OK


def cmd_delete(client, args) -> int:
    from streamcache import NotFound

    deleted = client.delete(args.key, if_match=args.if_match)
    _save_session(client, args)
    if not deleted:
        raise NotFound(404, "not_found", f"no value for key {args.key!r}")
    return EXIT_OK


def cmd_list(client, args) -> int:
    """One line per key: key, version, size in bytes, expiry (or -), tab-separated, until ``--limit``
    keys were printed or the listing ends."""
    page_size = min(args.limit or 1000, 1000)
    _join(client, args)
    keys = _with_session(client, args, lambda: _first_page_ahead(
        client.list(args.prefix, page_size=page_size, consistency=_consistency(args))))
    for info in itertools.islice(keys, args.limit):
        expires = rfc3339(info.expires_at) if info.expires_at else "-"
        print(f"{info.key}\t{info.version}\t{info.size}\t{expires}")
    sys.stdout.flush()
    return EXIT_OK


# ---- the session: this machine's CLI reads its own writes, whichever instance answers ---------------


def session_file(url: str) -> Path:
    """Where the CLI keeps its session position for the cache at ``url`` (``$STREAMCACHE_SESSION_FILE``
    overrides): each write moves it, each read carries it, so ``put`` then ``get`` in two commands
    sees the put even through a gateway that spreads requests over instances."""
    override = os.environ.get("STREAMCACHE_SESSION_FILE")
    if override:
        return Path(override)
    state = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return state / "streamcache" / f"session-{hashlib.sha256(url.encode()).hexdigest()[:16]}"


def _join(client, args) -> None:
    for positions in (_read_session(args), getattr(args, "after", None)):
        if positions:
            try:
                client.join_session(positions)
            except ValueError as exc:
                raise CliError(str(exc), EXIT_USAGE) from None


def _with_session(client, args, read):
    """``read()``; a stored session from another stream (``streamcache dev`` restarted: a new stream
    at the same URL) is dropped and the read tried once more without it, instead of failing."""
    from streamcache import BadRequest

    try:
        return read()
    except BadRequest as exc:
        if exc.code != "position_not_reached" or getattr(args, "after", None) or not _read_session(args):
            raise
    session_file(_url(args)).unlink(missing_ok=True)
    client.reset_session()
    return read()


def _first_page_ahead(keys):
    """A listing's first page fetched now (so that its errors arise here), then the rest lazily."""
    first = next(keys, None)
    return itertools.chain(() if first is None else (first,), keys)


def _read_session(args) -> str | None:
    try:
        return session_file(_url(args)).read_text().strip() or None
    except OSError:
        return None  # no session yet, or a file we may not read: reads go without it


def _save_session(client, args) -> None:
    _join(client, args)  # the stored positions too: the session only ever moves forward
    session, path = client.session, session_file(_url(args))
    if not session:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f".{path.name}.{os.getpid()}")
        scratch.write_text(session + "\n")
        scratch.replace(path)  # atomic: a concurrent reader sees the old session or the new one
    except OSError:
        pass  # a read-only home: the write happened; only later reads lose the guarantee


def _url(args) -> str:
    return args.url or os.environ.get("STREAMCACHE_URL") or DEFAULT_URL


def cmd_hash_key(args) -> int:
    from streamcache.auth import hash_key_command

    return hash_key_command(args.key, args.read_only, args.new, sys.stdin, sys.stdout, sys.stderr)


# ---- argument parsing ---------------------------------------------------------------------------


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _seconds(raw: str) -> float:
    value = float(raw)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("must be a number of seconds, 0 or more")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port number (0 picks a free one)")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="streamcache",
        description="Use a streamcache over its HTTP API (get, put, delete, list), or run one locally (dev).",
        epilog="exit status: 0 ok, 1 absent key or failed precondition, 2 usage error, rejected request "
               "or unreachable cache, 3 server error",
    )
    top.add_argument("--url", default=None,
                     help=f"the cache's URL (default: $STREAMCACHE_URL or {DEFAULT_URL}; the routes are under /cache)")
    # --url is accepted before or after the subcommand; SUPPRESS keeps an absent one from overriding.
    url = argparse.ArgumentParser(add_help=False)
    url.add_argument("--url", default=argparse.SUPPRESS, help="the cache's URL (see above)")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    get = sub.add_parser("get", parents=[url], help="write a key's value to stdout")
    get.add_argument("key")
    get.add_argument("--strong", action="store_true", help="catch up with the stream first (linearizable read)")
    get.add_argument("--after", metavar="P-O[,P-O...]", help="see at least the writes answered with these positions")
    get.set_defaults(run=cmd_get)

    put = sub.add_parser("put", parents=[url], help="store a value ('-' reads it from stdin)")
    put.add_argument("key")
    put.add_argument("value")
    put.add_argument("--ttl", help="seconds until the value expires")
    put.add_argument("--if-match", metavar="VERSION", help="write only if the key's version is VERSION")
    put.add_argument("--if-absent", action="store_true", help="write only if the key is absent")
    put.add_argument("--content-type", default="application/octet-stream", metavar="TYPE")
    put.set_defaults(run=cmd_put)

    incr = sub.add_parser("incr", parents=[url], help="add to a counter atomically and print its new value")
    incr.add_argument("key")
    incr.add_argument("--by", type=int, default=1, help="what to add (default 1; negative subtracts)")
    incr.add_argument("--ttl", type=float, help="seconds until it expires, if this creates it")
    incr.set_defaults(run=cmd_incr)

    touch = sub.add_parser("touch", parents=[url], help="give a value a new TTL without rewriting it")
    touch.add_argument("key")
    expiry = touch.add_mutually_exclusive_group(required=True)
    expiry.add_argument("--ttl", help="seconds from now until the value expires")
    expiry.add_argument("--no-expiry", action="store_true", help="remove the value's expiry")
    touch.add_argument("--if-match", metavar="VERSION", help="touch only if the key's version is VERSION")
    touch.set_defaults(run=cmd_touch)

    delete = sub.add_parser("delete", parents=[url], help="remove a key")
    delete.add_argument("key")
    delete.add_argument("--if-match", metavar="VERSION", help="delete only if the key's version is VERSION")
    delete.set_defaults(run=cmd_delete)

    listing = sub.add_parser("list", parents=[url], help="list keys: key, version, size, expiry (tab-separated)")
    listing.add_argument("--prefix", default="")
    listing.add_argument("--limit", type=_positive, default=None, help="at most this many keys")
    listing.add_argument("--strong", action="store_true", help="catch up with the stream first")
    listing.add_argument("--after", metavar="P-O[,P-O...]", help="see at least the writes answered with these positions")
    listing.set_defaults(run=cmd_list)

    hashing = sub.add_parser("hash-key", help="print the STREAMCACHE_API_KEYS entry for an API key")
    hashing.add_argument("key", nargs="?", help="the key ('-' or absent: read it from stdin)")
    hashing.add_argument("--read-only", action="store_true", help="the key may only read (GET, HEAD)")
    hashing.add_argument("--new", action="store_true", help="generate a new key and print it first")
    hashing.set_defaults(run=lambda client, args: cmd_hash_key(args), needs_url=False)

    cli_snapshots.register(sub, url)  # compact, snapshots
    cli_history.register(sub, url)  # export, restore
    cli_watch.register(sub, url)  # watch
    cli_metrics.register(sub, url)  # metrics
    for plugin in entry_points(group=COMMANDS_GROUP):  # dev, from the local stand-ins
        plugin.load()(sub, url)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from streamcache.client.models import CacheError

    client = None
    try:
        if getattr(args, "needs_url", True):
            client = _client(args.url or os.environ.get("STREAMCACHE_URL") or DEFAULT_URL)
        return args.run(client, args)
    except CliError as exc:
        print(f"streamcache {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except CacheError as exc:
        if exc.status:
            detail = f"{exc.status} {exc.code}: {exc.message}"
        else:  # nothing answered
            detail = f"cannot reach the cache at {args.url or os.environ.get('STREAMCACHE_URL') or DEFAULT_URL}: {exc.message}"
        print(f"streamcache {args.command}: {detail}".replace("\n", " "), file=sys.stderr)
        return _exit_code(exc)
    except BrokenPipeError:  # e.g. `streamcache get k | head -c1`
        return EXIT_OK
    finally:
        if client is not None:
            client.close()


if __name__ == "__main__":
    sys.exit(main())
