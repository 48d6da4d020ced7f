"""Metrics to OCI Monitoring: PostMetricData through the ``oci`` SDK's ``MonitoringClient``, off the
request's path.

:class:`MonitoringSink` posts datapoints (:class:`~streamcache.core.metrics.Point`) to the
telemetry-ingestion endpoint (``https://telemetry-ingestion.<region>.oraclecloud.com``; the SDK's
default endpoint, ``telemetry.``, serves queries, not ingestion), at most 50 metric streams a call,
``NON_ATOMIC`` so that one refused stream does not drop the others. Signing as for Object Storage
(:mod:`~streamcache.adapters.oci_auth`): the function's resource principal inside OCI Functions, a
profile of ``~/.oci/config`` elsewhere. No retries: a failed post is dropped, the next minute's
post carries the next minute.

:class:`BackgroundPoster` is how a function posts without delaying an answer: a frozen container
runs no background thread between requests, so posting rides on a request; the request hands its
batch to a short-lived daemon thread and returns. At most one post is in flight: the caller asks
:meth:`BackgroundPoster.ready` first and keeps aggregating meanwhile; a batch submitted anyway while
a post runs is dropped (and counted), never queued into a pile. Failures are
logged once (the first, then again only after a post succeeded). The ``oci`` SDK is imported on the
posting thread, never on a request's.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timezone
from typing import Callable, Mapping, Sequence

from streamcache.adapters.oci_auth import client_options, oci_credentials
from streamcache.core.errors import ConfigError
from streamcache.core.metrics import Point, streams

log = logging.getLogger("streamcache.metrics")

#: (connect, read) seconds: a post that takes longer is dropped (the next one carries on).
DEFAULT_TIMEOUT = (2.0, 5.0)
INGESTION_ENDPOINT = "https://telemetry-ingestion.{region}.oraclecloud.com"


class PostFailed(ConfigError):
    """A post was refused or could not be sent; ``problems[0]`` says why."""


class MonitoringSink:
    """Posts datapoints to one namespace and compartment of OCI Monitoring (plain values only)."""

    def __init__(self, namespace: str, compartment_id: str, endpoint: str | None = None, *,
                 environ: Mapping[str, str] | None = None, profile: str | None = None,
                 config_file: str | None = None, signer: object | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.namespace, self.compartment_id, self.endpoint = namespace, compartment_id, endpoint
        self._environ = os.environ if environ is None else environ
        self._profile, self._config_file, self._signer, self._timeout = profile, config_file, signer, timeout
        self._client: object | None = None

    def _open(self) -> object:
        import oci

        config, signer = oci_credentials(self._environ, self._profile, self._config_file, self._signer, PostFailed)
        endpoint = self.endpoint or INGESTION_ENDPOINT.format(region=config.get("region") or "us-ashburn-1")
        options = client_options(signer, endpoint, oci.retry.NoneRetryStrategy(), self._timeout)
        try:
            return oci.monitoring.MonitoringClient(config, **options)
        except (oci.exceptions.ClientError, ValueError) as exc:
            raise PostFailed([f"metrics: {exc}"]) from exc

    def post(self, points: Sequence[Point]) -> int:
        """Post ``points``; return how many metric streams were accepted. Raises :class:`PostFailed`."""
        import oci
        from oci._vendor.requests.exceptions import RequestException as TransportError

        if self._client is None:
            self._client = self._open()
        client: object = self._client
        models = oci.monitoring.models
        accepted = 0
        for batch in streams(points):
            details = models.PostMetricDataDetails(batch_atomicity="NON_ATOMIC", metric_data=[
                models.MetricDataDetails(
                    namespace=self.namespace, compartment_id=self.compartment_id, name=name,
                    dimensions=dict(dims),
                    datapoints=[models.Datapoint(timestamp=datetime.fromtimestamp(p.minute_ms / 1000, timezone.utc),
                                                 value=p.value, count=p.count) for p in pts])
                for name, dims, pts in batch])
            try:
                answer = client.post_metric_data(details)  # type: ignore[attr-defined]
            except oci.exceptions.ServiceError as exc:
                raise PostFailed([f"metrics to {self.namespace!r}: {exc.status} {exc.code}: {exc.message} "
                                  f"(opc-request-id {exc.request_id})"]) from exc
            except TransportError as exc:
                raise PostFailed([f"metrics: the ingestion endpoint cannot be reached: {exc}"]) from exc
            failed = answer.data.failed_metrics_count or 0
            accepted += len(batch) - failed
            if failed:
                first = answer.data.failed_metrics[0]
                raise PostFailed([f"metrics to {self.namespace!r}: {failed} of {len(batch)} streams refused, "
                                  f"e.g. {first.metric_data.name}: {first.message}"])
        return accepted


class BackgroundPoster:
    """Hands each batch to a short-lived daemon thread; never blocks, never raises."""

    def __init__(self, send: Callable[[Sequence[Point]], object]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._busy = False
        self._failing = False
        self.posted = 0  # batches posted
        self.failed = 0  # batches whose post failed
        self.dropped = 0  # batches dropped because the previous post was still in flight
        self.thread: threading.Thread | None = None

    def ready(self) -> bool:
        """Whether a batch handed over now would be posted (no post in flight)."""
        return not self._busy

    def submit(self, points: Sequence[Point]) -> bool:
        """Start posting ``points``; False (and the batch dropped) if a post is still in flight."""
        with self._lock:
            if self._busy:
                self.dropped += 1
                return False
            self._busy = True
        self.thread = threading.Thread(target=self._run, args=(points,), name="streamcache-metrics", daemon=True)
        self.thread.start()
        return True

    def _run(self, points: Sequence[Point]) -> None:
        try:
            self._send(points)
        except Exception as exc:  # dropped: the metrics never fail or delay an answer
            self.failed += 1
            if not self._failing:
                self._failing = True
                log.warning("metrics post failed (dropped; said once until a post succeeds): %s", exc,
                            extra={"fields": {"kind": "metrics_post_failed"}})
        else:
            self.posted += 1
            if self._failing:
                self._failing = False
                log.info("metrics posts succeed again", extra={"fields": {"kind": "metrics_post_recovered"}})
        finally:
            with self._lock:
                self._busy = False

    def wait(self, timeout_s: float) -> None:
        """Wait for the post in flight (the compactor, before its answer leaves: its container may
        be frozen right after)."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout_s)
