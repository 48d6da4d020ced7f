"""The local Object Storage server's per-connection bandwidth cap (infra/local/bandwidth.py): bytes
are counted and the waits the cap asks for are checked on an injected clock, never measured."""

from __future__ import annotations

import os
import threading

import pytest
from support.oci_fakes import no_retries, write_api_key_profile

from streamcache.adapters.urls import open_snapshot_store
from streamcache_local.bandwidth import Bandwidth, Pacer
from streamcache_local.object_storage import start_object_storage


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def clock(self) -> float:
        with self.lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_a_pacer_sends_no_faster_than_its_cap():
    fake = FakeTime()
    pacer = Pacer(Bandwidth(100_000, fake.clock, fake.sleep))
    out = bytearray()
    pacer.write(out.extend, b"x" * 250_000)
    pacer.write(out.extend, b"y" * 50_000)
    assert out == b"x" * 250_000 + b"y" * 50_000 and pacer.sent == 300_000
    assert fake.now == pytest.approx(3.0)  # 300 kB at 100 kB/s: the waits add up to exactly that


def test_time_a_connection_spent_idle_is_no_credit_for_a_burst():
    fake = FakeTime()
    pacer = Pacer(Bandwidth(100_000, fake.clock, fake.sleep))
    pacer.write(bytearray().extend, b"x" * 100_000)
    fake.now += 30.0  # the keep-alive connection waits for its next request (an upload, say)
    pacer.write(bytearray().extend, b"y" * 100_000)
    assert fake.now == pytest.approx(32.0)  # the second response took its full second too


def test_a_pacer_does_not_wait_when_the_link_is_slower_than_its_cap():
    fake = FakeTime()
    pacer = Pacer(Bandwidth(1_000_000, fake.clock, fake.sleep))

    def slow_write(piece):
        fake.now += len(piece) / 500_000  # the socket itself takes longer than the cap allows

    pacer.write(slow_write, b"x" * 200_000)
    assert pacer.waited_s == 0


def test_a_pacer_refuses_a_cap_of_nothing():
    with pytest.raises(ValueError):
        Pacer(Bandwidth(0))


def test_the_server_caps_what_each_connection_sends(tmp_path):
    fake = FakeTime()
    api_key = write_api_key_profile(tmp_path)
    with start_object_storage(bandwidth=Bandwidth(1_000_000, fake.clock, fake.sleep)) as server:
        server.trust_key(api_key.key_id, api_key.private_key.public_key())
        url = server.url("snapshots")
        options = dict(oci_endpoint=server.endpoint, oci_config_file=str(api_key.config_file),
                       oci_profile=api_key.profile, **no_retries())
        data = os.urandom(2_000_000)
        writer = open_snapshot_store(url, **options)
        writer.put_new("big", data)
        writer.close()
        reader = open_snapshot_store(url, oci_connections=1, **options)
        sent_before = sum(p.sent for p in server.pacers)
        now_before = fake.now
        out = bytearray(len(data))
        assert reader.read_into("big", memoryview(out)) == len(data) and out == data
        reader.close()
        body_bytes = sum(p.sent for p in server.pacers) - sent_before
        assert body_bytes == len(data)  # one connection, one range: the body, counted once
        assert fake.now - now_before == pytest.approx(len(data) / 1_000_000, rel=0.05)
