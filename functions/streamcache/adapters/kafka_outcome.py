"""Did a failed append reach the broker? The difference between "unavailable" and "unknown outcome".

A producer's ``send().get()`` that raises tells nothing by itself: the record may still sit in the
producer's accumulator (never sent: the broker was unreachable), or its produce request may have
left and the answer been lost (a connection cut after the request was forwarded, a timeout). Only
the second may have landed. kafka-python marks a batch ``drained`` when the sender thread takes it
for a produce request, and counts ``attempts`` when it is retried; so after a failure:

1. :func:`abandon` the producer: force-close its sender thread and wait for it to end. Nothing of
   it can go out afterwards, so a retry cannot land the record after the caller was answered, and
   the batch's state is final;
2. :func:`may_have_landed`: the batch was drained (or retried) at least once.

This reads two attributes of kafka-python's ``ProducerBatch`` and its accumulator's set of
incomplete batches (``kafka-python==3.0.12``, pinned); tests/contracts/test_kafka_outcome.py fails
loudly if a new version changes them. A batch that cannot be found counts as possibly landed.
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer

#: How long to wait for an abandoned producer's sender thread to end.
ABANDON_WAIT_S = 2.0


def find_batch(producer: KafkaProducer, future: Any) -> Any | None:
    """The accumulator batch that carries the record of ``future`` (just returned by ``send``)."""
    produce_future = getattr(future, "_produce_future", None)
    accumulator = getattr(producer, "_accumulator", None)
    incomplete = getattr(accumulator, "_incomplete", None)
    if produce_future is None or incomplete is None:
        return None
    for batch in incomplete.all():
        if batch.produce_future is produce_future:
            return batch
    return None  # already completed: it was sent and answered


def abandon(producer: KafkaProducer, wait_s: float = ABANDON_WAIT_S) -> bool:
    """Stop ``producer`` without sending anything more; True once its sender thread has ended."""
    sender = getattr(producer, "_sender", None)
    if sender is None:
        return False
    sender.force_close()  # pending batches are failed, not sent
    sender.join(wait_s)
    producer._closed = True  # its close() would flush first and raise; __del__ must not try again
    return not sender.is_alive()


def may_have_landed(batch: Any | None) -> bool:
    """False only for a batch the (stopped) sender never took for a produce request."""
    if batch is None:
        return True
    return getattr(batch, "drained", True) is not None or getattr(batch, "attempts", 1) > 0
