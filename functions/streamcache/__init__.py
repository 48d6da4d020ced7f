"""streamcache: a key/value cache for OCI Functions whose every write is a record on an OCI Stream.

The package is shared by the two deployable functions (``functions/cache`` and
``functions/compactor``), the command line (``streamcache``) and the tests. Its layers:

- :mod:`streamcache.core`: the pure part (record codec, the table state machine). No I/O, no clock.
- :mod:`streamcache.ports`: the mutation-log port; :mod:`streamcache.adapters`: its implementations.
- :mod:`streamcache.replica` and :mod:`streamcache.service`: one instance's copy of the table and
  the cache operations on top of it.
- :mod:`streamcache.http_api`: HTTP requests in, HTTP answers out, used by the FDK handler.
- :mod:`streamcache.client`: :class:`Client`, the typed client of a running cache (HTTP or a direct
  invoke), exported here: ``streamcache.Client(url)``.
"""

__version__ = "0.1.0"

from .client import (  # noqa: E402  (after __version__, which the client sends as its User-Agent)
    BadRequest,
    CacheError,
    Client,
    Item,
    KeyInfo,
    NotFound,
    Op,
    PreconditionFailed,
    ServerError,
    Unavailable,
    Unreachable,
    ValueTooLarge,
    WriteResult,
)

__all__ = [
    "__version__", "Client", "Op", "Item", "WriteResult", "KeyInfo", "CacheError", "NotFound",
    "PreconditionFailed", "Unavailable", "Unreachable", "BadRequest", "ValueTooLarge", "ServerError",
]
