"""The cache function's logic: one instance's table kept up to date from the stream, and the two ways
requests arrive.

- :mod:`.app`: assembles an instance from settings (the only place here that sees them).
- :mod:`.cold_start`: newest valid snapshot plus the stream's tail, in a thread requests wait for.
- :mod:`.replica` (with :mod:`.log_watch`): the table and how far it has applied the stream.
- :mod:`.service`: get, put, delete and list, whatever the transport.
- :mod:`.http_api` (API Gateway) and :mod:`.invoke_api` (direct invokes): requests in, answers out;
  statuses and error codes come from :mod:`streamcache.statuses`.
- :mod:`.health`: the typed ``/health`` value.
"""
