"""The ``streamcache`` command: run the local topology (``dev``) and use a cache (``get``, ``put``,
``delete``, ``list``) over its HTTP API.

The cache is found at ``--url``, default ``$STREAMCACHE_URL`` or http://127.0.0.1:8080. A URL
without a path means the routes are under ``/cache``; a URL with a path (e.g. an OCI API Gateway
deployment ``https://...apigateway.../v1/cache``) names the route prefix itself.

Exit status: 0 success; 1 the key is absent or a precondition failed (404, 412); 2 a usage error,
a request the cache rejected (other 4xx) or a cache that cannot be reached; 3 a server error (5xx).
Errors are one line on stderr, with the server's JSON ``message``.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.request
from typing import NamedTuple
from urllib.parse import quote, urlencode, urlsplit

import orjson

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_ROUTE = "/cache"
TIMEOUT_S = 30.0
EXIT_OK, EXIT_MISS, EXIT_USAGE, EXIT_SERVER = 0, 1, 2, 3


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class CliError(Exception):
    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CacheHttp:
    """The only place that speaks HTTP to the cache (issue 8 replaces it with the client library)."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CliError(f"--url must be an http(s) URL, not {url!r}", EXIT_USAGE)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.route = parts.path.rstrip("/") or DEFAULT_ROUTE

    def key_path(self, key: str, query: dict[str, str] | None = None) -> str:
        path = f"{self.route}/{quote(key, safe='')}"
        return f"{path}?{urlencode(query)}" if query else path

    def list_path(self, query: dict[str, str]) -> str:
        return f"{self.route}?{urlencode(query)}"

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as response:
                return Answer(response.status, _lower(response.headers.items()), response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return Answer(exc.code, _lower(exc.headers.items()), exc.read())
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CliError(f"cannot reach the cache at {self.base}: {reason}", EXIT_USAGE) from None


def _lower(items) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def _fail(answer: Answer) -> CliError:
    """The error for a non-success answer: the server's JSON message, one line."""
    try:
        doc = orjson.loads(answer.body)
        detail = f"{doc['error']}: {doc['message']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        detail = answer.body.decode("utf-8", errors="replace").strip()[:200] or "(no body)"
    if answer.status in (404, 412):
        code = EXIT_MISS
    elif answer.status >= 500:
        code = EXIT_SERVER
    else:
        code = EXIT_USAGE
    return CliError(f"{answer.status} {detail}".replace("\n", " "), code)


def _quoted_version(version: str) -> str:
    version = version.strip()
    return version if version.startswith('"') or version == "*" else f'"{version}"'


# ---- commands -----------------------------------------------------------------------------------


def cmd_get(http: CacheHttp, args) -> int:
    query = {"consistency": "strong"} if args.strong else None
    answer = http.request("GET", http.key_path(args.key, query))
    if answer.status != 200:
        raise _fail(answer)
    sys.stdout.buffer.write(answer.body)
    sys.stdout.buffer.flush()
    return EXIT_OK


def cmd_put(http: CacheHttp, args) -> int:
    value = sys.stdin.buffer.read() if args.value == "-" else os.fsencode(args.value)
    headers = {"Content-Type": args.content_type}
    if args.if_match:
        headers["If-Match"] = _quoted_version(args.if_match)
    if args.if_absent:
        headers["If-None-Match"] = "*"
    query = {"ttl": args.ttl} if args.ttl is not None else None
    answer = http.request("PUT", http.key_path(args.key, query), value, headers)
    if answer.status not in (200, 201):
        raise _fail(answer)
    print(answer.body.decode("utf-8", errors="replace"))
    return EXIT_OK


def cmd_delete(http: CacheHttp, args) -> int:
    headers = {"If-Match": _quoted_version(args.if_match)} if args.if_match else {}
    answer = http.request("DELETE", http.key_path(args.key), headers=headers)
    if answer.status != 204:
        raise _fail(answer)
    return EXIT_OK


def cmd_list(http: CacheHttp, args) -> int:
    """One line per key: key, version, size in bytes, expiry (or -), tab-separated. Follows cursors
    until ``--limit`` keys were printed or the listing ends."""
    remaining, cursor = args.limit, None
    while remaining is None or remaining > 0:
        query = {"prefix": args.prefix, "limit": str(min(remaining or 1000, 1000))}
        if args.strong:
            query["consistency"] = "strong"
        if cursor:
            query["cursor"] = cursor
        answer = http.request("GET", http.list_path(query))
        if answer.status != 200:
            raise _fail(answer)
        page = orjson.loads(answer.body)
        for item in page["keys"]:
            print(f"{item['key']}\t{item['version']}\t{item['size']}\t{item['expires_at'] or '-'}")
        if remaining is not None:
            remaining -= len(page["keys"])
        cursor = page.get("cursor")
        if not cursor:
            break
    sys.stdout.flush()
    return EXIT_OK


def cmd_dev(args) -> int:
    from streamcache_local.dev import run  # the local stand-ins are not part of the function image

    return run(port=args.port, instances=args.instances, partitions=args.partitions, log_url=args.log_url,
               topic=args.topic)


# ---- argument parsing ---------------------------------------------------------------------------


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be a port number (0 picks a free one)")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="streamcache",
        description="Run a local streamcache (dev) or use one over its HTTP API (get, put, delete, list).",
        epilog="exit status: 0 ok, 1 absent key or failed precondition, 2 usage error, rejected request "
               "or unreachable cache, 3 server error",
    )
    top.add_argument("--url", default=None,
                     help=f"the cache's URL (default: $STREAMCACHE_URL or {DEFAULT_URL}; the routes are under /cache)")
    # --url is accepted before or after the subcommand; SUPPRESS keeps an absent one from overriding.
    url = argparse.ArgumentParser(add_help=False)
    url.add_argument("--url", default=argparse.SUPPRESS, help="the cache's URL (see above)")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = sub.add_parser("dev", help="run broker, function instances and gateway locally until Ctrl-C")
    dev.add_argument("--port", type=_port, default=8080, help="gateway port on 127.0.0.1 (default 8080)")
    dev.add_argument("--instances", type=_positive, default=2, help="function instances (default 2)")
    dev.add_argument("--partitions", type=_positive, default=3, help="partitions of the topic (default 3)")
    dev.add_argument("--log-url", help="use this log (kafka://HOST:PORT/TOPIC) instead of starting a broker")
    dev.add_argument("--topic", help="topic on the local broker (default streamcache)")
    dev.set_defaults(run=lambda http, args: cmd_dev(args), needs_url=False)

    get = sub.add_parser("get", parents=[url], help="write a key's value to stdout")
    get.add_argument("key")
    get.add_argument("--strong", action="store_true", help="catch up with the stream first (linearizable read)")
    get.set_defaults(run=cmd_get)

    put = sub.add_parser("put", parents=[url], help="store a value ('-' reads it from stdin)")
    put.add_argument("key")
    put.add_argument("value")
    put.add_argument("--ttl", help="seconds until the value expires")
    put.add_argument("--if-match", metavar="VERSION", help="write only if the key's version is VERSION")
    put.add_argument("--if-absent", action="store_true", help="write only if the key is absent")
    put.add_argument("--content-type", default="application/octet-stream", metavar="TYPE")
    put.set_defaults(run=cmd_put)

    delete = sub.add_parser("delete", parents=[url], help="remove a key")
    delete.add_argument("key")
    delete.add_argument("--if-match", metavar="VERSION", help="delete only if the key's version is VERSION")
    delete.set_defaults(run=cmd_delete)

    listing = sub.add_parser("list", parents=[url], help="list keys: key, version, size, expiry (tab-separated)")
    listing.add_argument("--prefix", default="")
    listing.add_argument("--limit", type=_positive, default=None, help="at most this many keys")
    listing.add_argument("--strong", action="store_true", help="catch up with the stream first")
    listing.set_defaults(run=cmd_list)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if getattr(args, "needs_url", True):
            http = CacheHttp(args.url or os.environ.get("STREAMCACHE_URL") or DEFAULT_URL)
        else:
            http = None
        return args.run(http, args)
    except CliError as exc:
        print(f"streamcache {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `streamcache get k | head -c1`
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
