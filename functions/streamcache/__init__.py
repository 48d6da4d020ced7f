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

__all__ = [
    "__version__", "Client", "Op", "Item", "WriteResult", "KeyInfo", "CacheError", "NotFound",
    "PreconditionFailed", "Unavailable", "Unreachable", "BadRequest", "ValueTooLarge", "ServerError",
    "OutcomeUnknown", "UnansweredWrite",
]


def __getattr__(name: str):
    # The client is loaded on first use (PEP 562): the functions import this package on every cold
    # start and have no use for the client's modules.
    if name in __all__:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'streamcache' has no attribute {name!r}")
