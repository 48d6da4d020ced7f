"""Fixtures for the client tests: a running local topology (broker, two FDK instances, gateway with
the invoke API) and broken ones, fake OCI credentials the real SDK signs with, places where nothing
answers, and a record of every direct invoke on the wire, checked against
functions/cache/operations.schema.json when the test ends (helpers in tests/support/client_checks.py)."""

from __future__ import annotations

import socket

import oci
import pytest
from support.client_checks import Sleeps, WireLog, unique
from support.oci_fakes import REGION, new_rsa_key

from streamcache import Client
from streamcache_local.broker import free_port
from streamcache_local.dev import DevStack
from streamcache_local.pool import Dispatch


@pytest.fixture(scope="session")
def stack(broker):
    """The whole local topology, shared by the client tests (each test uses its own keys)."""
    topic = unique("client")
    broker.create_topic(topic, 3)
    with DevStack(port=0, instances=2, dispatch=Dispatch.ROUND_ROBIN, log_url=broker.log_url(topic)) as running:
        yield running


@pytest.fixture
def http_client(stack):
    with Client(stack.url) as client:
        yield client


# ---- direct invokes through the real SDK ------------------------------------------------------


@pytest.fixture(scope="session")
def signer():
    """A security-token signer with a fresh RSA key: the shape of the Resource Principals signer."""
    return oci.auth.signers.SecurityTokenSigner(token="fake.session.token", private_key=new_rsa_key())


@pytest.fixture
def wire_log():
    log = WireLog()
    yield log
    log.check()


@pytest.fixture
def invoke_client(stack, signer, wire_log):
    """``invoke_client(function="cache", **options)``: a Client over the real FunctionsInvokeClient
    pointed at the stack's invoke endpoint; its traffic is checked against the schema."""
    made: list[Client] = []

    def make(function: str = "cache", endpoint: str | None = None, **options) -> Client:
        client = Client.for_function(function, endpoint or stack.url, config={"region": REGION}, signer=signer,
                                     **options)
        made.append(client)
        return wire_log.attach(client)

    yield make
    for client in made:
        client.close()


# ---- places where nothing answers ---------------------------------------------------------------


@pytest.fixture
def closed_port():
    """A port on which nothing listens (connections are refused)."""
    return free_port()


@pytest.fixture
def silent_port():
    """A port that accepts connections (the kernel's backlog) and never answers: every request times out."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


@pytest.fixture
def sleeps():
    return Sleeps()


@pytest.fixture(scope="module")
def unreachable_stream_stack():
    """A topology whose stream is not there (a closed port): the instances answer 503 with Retry-After
    to everything that needs it. Appends and bootstraps give up after 100 ms."""
    log_url = f"kafka://127.0.0.1:{free_port()}/absent"
    with DevStack(port=0, instances=1, log_url=log_url, warm_up=False,
                  config={"STREAMCACHE_APPEND_TIMEOUT_MS": "100"}) as running:
        yield running


@pytest.fixture(scope="module")
def one_instance_stack():
    """One instance on a memory log, and a gateway that gives up after 0.2 s when it is busy."""
    with DevStack(port=0, instances=1, log_url=f"memory://{unique('busy')}", busy_wait_s=0.2) as running:
        yield running


@pytest.fixture
def busy(one_instance_stack):
    """Hold the only instance (as a long request would) while the test runs."""
    pool = one_instance_stack.gateway.pool
    instance = pool.acquire(5)
    yield one_instance_stack
    pool.release(instance)
