"""The compactor function's logic: fold the stream into snapshots, and import files dropped in the bucket.

- :mod:`.app`: one compactor container; parses a body into an action and answers JSON.
- :mod:`.compaction`: newest valid snapshot + the log since it -> a new snapshot, then pruning.
- :mod:`.importer` and :mod:`.object_events`: Object Storage events -> records on the stream.
"""
