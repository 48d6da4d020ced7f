"""Pipelined writes: the writes of a batch appended together, each decided by its own record.

A batch of writes costs one wait for the stream instead of one per write: every record is sent,
then every acknowledgement awaited (:meth:`~streamcache.ports.MutationLog.append_many`: on Kafka the
producer packs the records of a partition into one batch and sends the batches of a broker in one
produce request). Each write's outcome is still the outcome of applying its own record, in log
order, exactly as a single write's (:meth:`CacheService.finish_write`), so a batch is not a
transaction: writes before and after a refused one still happen, and other clients' records may
land between the batch's. Records of one key land in the order given, so two writes of a key in
one batch keep their order.

When the append fails part-way, some records may have landed and others not: the stream is read
(one catch-up), each write found there is answered with its outcome, and each one not found raises
:class:`~streamcache.core.errors.OutcomeUnknown` for its own operation, never a guess for the batch.
"""

from __future__ import annotations

from typing import Callable, Sequence

from streamcache.cache.service import CacheService
from streamcache.core.errors import LogMismatch, LogUnavailable, OutcomeUnknown, Restoring, StreamcacheError
from streamcache.core.records import Mutation
from streamcache.core.table import Outcome

#: What becomes of one write of a batch: its outcome, or the error it met (an ``OutcomeUnknown``
#: when its record may or may not have landed; a client's mistake such as ``ValueTooLarge``).
Result = Outcome | StreamcacheError


def write_many(service: CacheService, mutations: Sequence[Mutation],
               applied: Callable[[int, Outcome], None] | None = None) -> list[Result]:
    """Append ``mutations`` together and return each one's result, in their order. ``applied(i,
    outcome)`` runs right after write ``i`` is applied, before the next one is (what the batch
    answers with a counter's value reads the table then)."""
    results: list[Result | None] = [None] * len(mutations)
    pending: list[tuple[int, bytes, Mutation]] = []  # (index, record, what replicas decode of it)
    for i, mutation in enumerate(mutations):
        try:
            prepared = service.prepare_write(mutation)
        except StreamcacheError as exc:  # too large, restoring: this write only, nothing appended
            results[i] = exc
            continue
        if isinstance(prepared, Outcome):
            results[i] = prepared
        else:
            pending.append((i, prepared[0], prepared[1]))
    if pending:
        try:
            positions = service.replica.log.append_many([(own.key, encoded) for _, encoded, own in pending])
        except OutcomeUnknown as unknown:  # any of them may have landed
            _settle(service, pending, unknown, results)
        except LogUnavailable as exc:  # none was sent: each write may be retried as it is
            for i, _, _ in pending:
                results[i] = exc
        else:
            with service.replica.table.batch():  # one SQLite transaction for the run's records
                for (i, _, own), position in zip(pending, positions):
                    try:
                        results[i] = outcome = service.finish_write(position, own)
                    except OutcomeUnknown as unknown:
                        results[i] = unknown
                        continue
                    if applied is not None:
                        applied(i, outcome)
    return [r for r in results if r is not None]


def _settle(service: CacheService, pending: list[tuple[int, bytes, Mutation]], failure: OutcomeUnknown,
            results: list[Result | None]) -> None:
    """The append failed part-way: answer each write from the stream, else its outcome is unknown."""
    try:
        service.replica.catch_up()
        found = True
    except (LogUnavailable, Restoring, LogMismatch):
        found = False
    for i, _, own in pending:
        outcome = None
        if found:
            outcome = service.replica.table.outcome_for(service.replica.log.partition_for(own.key), own.request_id)
        results[i] = outcome if outcome is not None else OutcomeUnknown(
            f"the batch's append failed part-way ({failure}); this write may or may not have been applied")
