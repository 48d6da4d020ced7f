"""The console: one page, served by the cache function itself, over the cache's own HTTP API.

``GET /console`` (beside ``/health`` and ``/changes``: ``/v1/console`` under a gateway deployment's
prefix) answers ``console_assets/index.html``; the page loads its script and stylesheet from
``/console/`` and asks ``/console/config.json`` where the cache's routes are. Nothing comes from a
CDN and there is no build step. The assets are served without the API-key check (they are the same
for everyone and hold nothing secret); every call the page makes is checked like any other.

Keys and values are written by anyone with write access, so the page renders them as text only, and
every asset is served under a Content-Security-Policy that allows only the page's own script and
style (no inline script, nothing foreign) and no framing.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson

ASSETS = Path(__file__).with_name("console_assets")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_FILES = {"": ("index.html", "text/html; charset=utf-8"),
          "/console.js": ("console.js", "text/javascript; charset=utf-8"),
          "/console.css": ("console.css", "text/css; charset=utf-8")}
_PATH = re.compile(r"/console(|/console\.js|/console\.css|/config\.json)$")


def console_asset(path: str, cache_prefix: str) -> str | None:
    """Which console asset ``path`` asks for ("" for the page), or None when it is not the console's
    (``/cache/console`` is the key "console")."""
    if path.startswith(cache_prefix + "/"):
        return None
    match = _PATH.search(path)
    return match.group(1) if match else None


def console_response(asset: str, cache_prefix: str) -> tuple[int, dict[str, str], bytes]:
    """The status, headers and body that serve ``asset``."""
    headers = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "Cache-Control": "no-cache"}
    if asset == "/config.json":  # where the page finds the cache's routes, whatever the route prefix
        return 200, {**headers, "Content-Type": "application/json"}, orjson.dumps({"cache": cache_prefix})
    name, media_type = _FILES[asset]
    return 200, {**headers, "Content-Type": media_type}, (ASSETS / name).read_bytes()
