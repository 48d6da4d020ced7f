"""streamcache: a key/value cache for OCI Functions whose every write is a record on an OCI Stream.

One room per role; the boundaries between them are checked by ``make check`` (import-linter):

- :mod:`streamcache.core`: pure (records, the table state machine, snapshot format and names, restore
  planning, import lines). No I/O, no clock, no environment.
- :mod:`streamcache.ports`: the mutation log and the snapshot store, side by side, with their errors;
  :mod:`streamcache.adapters`: one file per backend, opened from a URL by :mod:`.adapters.urls`.
- :mod:`streamcache.replay`: what both functions share (folding the log into a table, the snapshot
  catalog, progress).
- :mod:`streamcache.cache` and :mod:`streamcache.compactor`: the two functions' logic.
- :mod:`streamcache.settings` (parsed once, at each edge), :mod:`streamcache.statuses` (the one table
  of statuses and error codes), :mod:`streamcache.auth` (API keys), :mod:`streamcache.logs`.
- :mod:`streamcache.client` and :mod:`streamcache.cli`: the Python client and the command line, never
  staged into a function image. :class:`Client` and its results and errors are exported here:
  ``streamcache.Client(url)``.
"""

__version__ = "0.1.0"

__all__ = [
    "__version__", "Client", "Op", "Change", "ChangeKind", "Item", "WriteResult", "KeyInfo", "CacheError", "NotFound",
    "PreconditionFailed", "Unavailable", "Unreachable", "BadRequest", "ValueTooLarge", "QuotaExceeded", "Conflict", "ServerError",
    "OutcomeUnknown", "UnansweredWrite",
]


def __getattr__(name: str):
    # The client is loaded on first use (PEP 562): the functions import this package on every cold
    # start and have no use for the client's modules (their images do not even carry them).
    if name in __all__:
        import streamcache.client

        return getattr(streamcache.client, name)
    raise AttributeError(f"module 'streamcache' has no attribute {name!r}")
