"""What the cache function and the compactor share: turning the stream and the snapshots into a table.

- :mod:`.fold`: the one loop that applies log records to a table (cold starts, catch-ups, compaction).
- :mod:`.catalog`: the snapshots a store holds for a stream, and loading the newest that verifies.
- :mod:`.progress`: progress of long work, for people at a terminal and for the logs.
"""
