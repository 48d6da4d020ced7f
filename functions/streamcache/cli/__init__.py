"""The ``streamcache`` command line, never staged into a function image.

- :mod:`.main`: the entry point and the commands that use a cache through :class:`streamcache.Client`
  (``get``, ``put``, ``delete``, ``list``, ``hash-key``), plus commands other packages register
  (``streamcache dev`` comes from the local stand-ins, ``infra/local``).
- :mod:`.snapshots`: ``compact`` and ``snapshots``, straight against the stream and the snapshot store.
- :mod:`.watch`: ``watch``, the change feed at a terminal.
"""
