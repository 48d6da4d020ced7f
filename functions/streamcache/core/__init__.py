"""The pure core of streamcache: no I/O, no clock, no environment.

Design, in the order a record lives through it:

1. A client's mutation (``Put`` or ``Delete``) is encoded by :mod:`.records` into one stream record:
   a CloudEvents 1.0 event in structured JSON mode, whose Kafka key is the cache key. Every
   record carries a request id, the writer's timestamp (ms), an optional absolute expiry and an
   optional precondition (If-Match a version, must exist, must not exist).
2. The stream assigns the record a :class:`~.records.Position` ``(partition, offset)``. A key always
   hashes to the same partition, so per-key order is the partition's order.
3. :class:`~.table.Table` applies records in log order. A key's version is the position of the
   record that last wrote it. Preconditions are decided *at apply time* from the table's own state,
   so every replica and the compactor reach the same outcome without talking to each other.
4. Time inside the state machine is *log time*: per partition, a clock that follows the writers'
   timestamps but never goes more than :data:`~.log_time.MAX_CLOCK_STEP_MS` past a time two
   consecutive records agree on (:mod:`.log_time`), so one writer's clock far ahead cannot expire a
   partition. Expiry purges, the de-duplication window and snapshots' as-of times use it, never a
   wall clock, so replaying the same records always gives the same state. A record decides the key
   it writes as of the later of its writer's time and log time. Reads pass the reader's ``now_ms``.
5. A record whose request id was already applied in the same partition within
   :data:`~.table.DEDUP_WINDOW_MS` of log time is a retried append: it changes nothing and reports
   the first outcome again (OCI Streaming has no idempotent producer).
"""
