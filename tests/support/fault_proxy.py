"""The tests' fault proxy: the framing Kafka proxy of the local stack (streamcache_local.kafka_proxy),
under the name the fault tests use."""

from streamcache_local.kafka_proxy import FETCH, LIST_OFFSETS, METADATA, PRODUCE, start_proxied_broker
from streamcache_local.kafka_proxy import KafkaProxy as FaultProxy

__all__ = ["FETCH", "LIST_OFFSETS", "METADATA", "PRODUCE", "FaultProxy", "start_proxied_broker"]
