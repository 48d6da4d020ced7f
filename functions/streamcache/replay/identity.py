"""Checking a table or a snapshot against the log: is it this log's? (see :mod:`streamcache.core.identity`).

One fetch per partition (``MutationLog.records_at``) of the record the table applied last; the
verdicts are the core's. A cold start and a compaction check the snapshot they start from before
trusting it; a running instance checks its own table before it acts on a log that looks shorter.
"""

from __future__ import annotations

from typing import Mapping

from streamcache.core.identity import Fingerprint, IdentityCheck, decode_found, judge, to_check
from streamcache.core.snapshot import SnapshotHeader
from streamcache.core.table import Table, request_hash
from streamcache.ports import LogBounds, MutationLog


def check_identity(log: MutationLog, next_offsets: Mapping[int, int], fingerprints: Mapping[int, Fingerprint | None],
                   bounds: LogBounds) -> IdentityCheck:
    """The verdicts for a table at ``next_offsets`` with ``fingerprints`` against ``log`` as it is now
    (``bounds``: its first offsets explain records retention dropped). Raises ``LogUnavailable`` when
    the log cannot answer: no verdict is ever made up."""
    partitions = log.partitions
    wanted = {p: o for p, o in to_check(next_offsets).items() if p < partitions}
    found = log.records_at(wanted) if wanted else {}
    decoded = {p: decode_found(None if record is None else record.value) for p, record in found.items()}
    return judge(next_offsets, fingerprints, decoded, bounds.first, partitions, request_hash)


def check_header(log: MutationLog, header: SnapshotHeader, bounds: LogBounds) -> IdentityCheck:
    """:func:`check_identity` for a snapshot, from its header (the fingerprints are in its first pages)."""
    return check_identity(log, header.next_offsets, header.fingerprints, bounds)


def check_table(log: MutationLog, table: Table, bounds: LogBounds) -> IdentityCheck:
    """:func:`check_identity` for a table this process holds."""
    return check_identity(log, table.next_offsets(), table.fingerprints(), bounds)
