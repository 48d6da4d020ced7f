"""A frozen FDK instance whose connections the front end closed meanwhile answers promptly when it
is continued: its first request costs a reconnect (TLS and SASL included), not a request timeout."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time

import pytest

from streamcache_local.fn_runner import start_instance


@pytest.fixture
def sockets():
    path = tempfile.mkdtemp(prefix="sc-t-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_thawed_instance_answers_its_first_requests_without_waiting_for_dead_connections(fronted, front_topic,
                                                                                           sockets):
    _broker, front = fronted
    config = {"STREAMCACHE_LOG_URL": f"kafka://{front.bootstrap}/{front_topic(3)}", **front.security_settings(),
              "STREAMCACHE_STALENESS_MS": "0"}  # every read catches up: it needs the broker
    instance = start_instance("fn1", sockets, config)
    try:
        assert instance.client.http_call("PUT", "/cache/k", b"v1").status == 201
        assert instance.client.http_call("GET", "/cache/k").body == b"v1"
        for round_ in range(2):
            os.kill(instance.pid, signal.SIGSTOP)  # as Fn freezes an idle container
            try:
                assert front.close_all() >= 2  # the front end rebalances meanwhile
            finally:
                os.kill(instance.pid, signal.SIGCONT)
            started = time.monotonic()
            read = instance.client.http_call("GET", "/cache/k?consistency=strong")
            took_read = time.monotonic() - started
            started = time.monotonic()
            written = instance.client.http_call("PUT", "/cache/k", f"v{round_ + 2}".encode())
            took_write = time.monotonic() - started
            assert (read.status, written.status) == (200, 200)
            assert took_read < 1.0 and took_write < 1.0, (took_read, took_write)  # the request timeout is 5 s
    finally:
        instance.stop()
