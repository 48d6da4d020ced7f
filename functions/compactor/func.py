"""The compactor function: the FDK entry point the OCI Resource Scheduler (and OCI Events, for
Object Storage imports) invoke directly.

A thin adapter: the container-scoped :class:`~streamcache.compactor.app.CompactorApp` (built on the
first call, kept with its stream and Object Storage clients while the container is hot) answers the
body; the answer is JSON with its own ``status`` because the platform answers 200 to direct invokes.
All logic lives in ``streamcache``.
"""

from __future__ import annotations

import io

from fdk import response

from streamcache import logs
from streamcache.compactor.app import CompactorApp, answer_invoke, build_from_env

logs.configure()
_app: CompactorApp | None = None


def _get_app() -> CompactorApp:
    global _app
    if _app is None:
        _app = build_from_env()
    return _app


def handler(ctx, data: io.BytesIO = None):
    body = data.getvalue() if data is not None else b""
    answer = answer_invoke(_get_app, body, ctx.CallID() or "")
    return response.Response(ctx, response_data=answer, headers={"Content-Type": "application/json"})
