"""A control for the bench: an FDK function that does nothing but the stream append alone
(:meth:`KafkaLog.append`, acks=all, with the cache function's adapter, logging and interpreter setting) and
answers 200. Through the FDK socket it shows what the FDK and kafka-python's threads cost a write
before any of the cache's own work: the cache's PUT is compared with it (bench/harness/write_floor.py).
"""

from __future__ import annotations

import io
import os
import sys

from fdk import response

from streamcache import logs
from streamcache.adapters.kafka_log import KafkaLog
from streamcache.cache.app import SWITCH_INTERVAL_S

logs.configure()  # as the cache function: the FDK's root logger would print kafka-python's debug lines
sys.setswitchinterval(SWITCH_INTERVAL_S)
_log: KafkaLog | None = None


def handler(ctx, data: io.BytesIO = None):
    global _log
    if _log is None:
        _log = KafkaLog(os.environ["BENCH_BOOTSTRAP"], os.environ["BENCH_TOPIC"])
    body = data.getvalue() if data is not None else b""
    position = _log.append("append-alone", body)
    return response.Response(ctx, response_data=str(position).encode(), status_code=200)
