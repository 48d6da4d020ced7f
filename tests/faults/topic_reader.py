"""Reading a whole topic with a plain kafka-python consumer (not the project's adapter), to count
what really landed on the stream."""

from __future__ import annotations

import orjson
from kafka import KafkaConsumer, TopicPartition

from support.waiting import wait_for


def read_topic(bootstrap: str, topic: str, partitions: int, timeout_s: float = 20.0) -> list[dict]:
    """Every record of ``topic`` as its decoded CloudEvent (plus ``_position``), up to the high
    watermark each partition reports."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        events: list[dict] = []

        def at_end() -> bool:
            for _tp, records in consumer.poll(timeout_ms=200).items():
                for record in records:
                    event = orjson.loads(record.value)
                    event["_position"] = f"{record.partition}-{record.offset}"
                    events.append(event)
            return all(consumer.highwater(tp) is not None and consumer.position(tp) >= consumer.highwater(tp)
                       for tp in tps)

        wait_for(at_end, timeout_s=timeout_s, what=f"the whole of topic {topic}")
        return events
    finally:
        consumer.close()
