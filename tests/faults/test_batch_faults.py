"""A batch whose acknowledgements are lost part-way, against a real Tansu broker behind the fault
proxy (tests/support/fault_proxy.py), POSTed through the gateway to an FDK instance, which appends
the batch's writes together (cache/pipeline.py); the proxy forwards the first produce request and cuts every later one
(retries included), so the records of that first request land and the others never do. Each write
is then answered on its own: with its outcome when its record is on the stream, else 503
``outcome_unknown``; never a 2xx for a record that is not there, never one answer for the batch."""

from __future__ import annotations

import uuid

import pytest

import requests

from streamcache_local.dev import DevStack
from support.fault_proxy import PRODUCE, start_proxied_broker
from topic_reader import read_topic


@pytest.fixture
def proxied():
    broker, proxy = start_proxied_broker()
    topic = f"batch-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 3)
    try:
        yield broker, proxy, topic
    finally:
        proxy.clear()
        proxy.stop()
        broker.stop()


def test_a_batch_whose_acknowledgements_are_lost_part_way_answers_each_write_on_its_own(proxied):
    broker, proxy, topic = proxied
    config = {"STREAMCACHE_APPEND_TIMEOUT_MS": "2000"}
    with DevStack(port=0, instances=1, partitions=3, log_url=broker.log_url(topic), config=config) as stack, \
            requests.Session() as http:
        assert http.put(f"{stack.url}/cache/warm", data=b"0").status_code == 201  # connected, serving
        # 100 values of 20 KB: more than one 256 KiB producer batch per partition, so more than one
        # produce request; the first is forwarded, every later one (and each retry) is cut.
        value = "x" * 20_000
        ops = [{"operation": "put", "key": f"k{n:03d}", "value": value, "content_type": "text/plain"} for n in range(100)]
        for _ in range(12):
            proxy.cut_on(PRODUCE, after=1)
        response = http.post(f"{stack.url}/cache", json={"operations": ops}, timeout=60)
        proxy.clear()
        assert response.status_code == 200  # the batch as a whole is answered; each write has its own status
        answers = response.json()
    statuses = [a["status"] for a in answers]
    assert len(answers) == 100 and set(statuses) <= {201, 503}, statuses
    landed = {event["subject"] for event in read_topic(broker.bootstrap, topic, 3)} - {"warm"}
    answered = {a["key"] for a in answers if a["status"] == 201}
    unknown = [a for a in answers if a["status"] == 503]
    assert answered and unknown  # part-way: some landed and some did not
    assert answered <= landed  # never a 2xx for a record that is not on the stream
    assert all(a["error"] == "outcome_unknown" and a["retry_after"] == 1 for a in unknown)
    assert len(landed) < 100
