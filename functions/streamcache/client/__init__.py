"""The client side of streamcache, never staged into a function image.

- :class:`Client` (:mod:`.cache_client`): the typed client of a running cache, over HTTP
  (:mod:`.http`) or the OCI Functions invoke API (:mod:`.invoke`); results and errors in :mod:`.models`,
  the operations it sends (:class:`Op`) in :mod:`.ops`.
- :mod:`.subscribe`: the change feed, read straight from the stream with a Kafka consumer
  (:meth:`Client.changes` reads it over HTTP or invokes instead, from ``/changes``).
"""

from streamcache.client.cache_client import Client, Op
from streamcache.client.models import (BadRequest, CacheError, Change, ChangeKind, Item, KeyInfo, NotFound, OutcomeUnknown,
                                       PreconditionFailed, QuotaExceeded, Conflict, ServerError, Transport, TransportError, UnansweredWrite,
                                       Unavailable, Unreachable, ValueTooLarge, WriteResult)

__all__ = [
    "Client", "Op", "Transport", "TransportError", "Change", "ChangeKind", "Item", "WriteResult", "KeyInfo", "CacheError", "NotFound",
    "PreconditionFailed", "Unavailable", "Unreachable", "BadRequest", "ValueTooLarge", "QuotaExceeded", "Conflict", "ServerError",
    "OutcomeUnknown", "UnansweredWrite",
]
