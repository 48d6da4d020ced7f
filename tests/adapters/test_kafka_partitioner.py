"""Our murmur2 partitioner against kafka-python's (the reference implementation of the Java client's),
and against partitions a real Kafka-protocol client chose for records on the broker."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_murmur2

from streamcache.adapters.kafka_partitioner import key_partition, murmur2


@settings(max_examples=2_000)
@given(st.binary(max_size=64))
def test_murmur2_is_kafkas_for_any_bytes(data: bytes) -> None:
    assert murmur2(data) == kafka_murmur2(data)


@given(st.text(max_size=40), st.integers(min_value=1, max_value=64))
def test_key_partition_is_kafkas_default_partitioner(key: str, partitions: int) -> None:
    expected = (kafka_murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions
    assert key_partition(key, partitions) == expected


def test_java_clients_known_values() -> None:
    # Values from the Java client's UtilsTest.testMurmur2 (as signed 32-bit ints there).
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536,
             b"a-little-bit-longer-string": -1486304829, b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
             b"abc": 479470107}
    for data, signed in cases.items():
        assert murmur2(data) == signed & 0xFFFFFFFF
