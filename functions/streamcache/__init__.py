"""streamcache: a key/value cache for OCI Functions whose every write is a record on an OCI Stream.

The package is shared by the two deployable functions (``functions/cache`` and
``functions/compactor``), the command line (``streamcache``) and the tests. Its layers:

- :mod:`streamcache.core`: the pure part (record codec, the table state machine). No I/O, no clock.
- :mod:`streamcache.ports`: the mutation-log port; :mod:`streamcache.adapters`: its implementations.
- :mod:`streamcache.replica` and :mod:`streamcache.service`: one instance's copy of the table and
  the cache operations on top of it.
- :mod:`streamcache.http_api`: HTTP requests in, HTTP answers out, used by the FDK handler.
"""

__version__ = "0.1.0"
