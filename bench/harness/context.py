"""What a measurement receives: the mode, the shared Tansu broker, whether Redis can run, and a way
to tell the person at the terminal what is going on."""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

from streamcache_local.broker import LocalBroker

from .common import Mode
from .redis_server import RedisAvailability

PARTITIONS = 3  # `streamcache dev`'s default


class Skipped(Exception):
    """A measurement that cannot run here (its reason goes into the results)."""


@dataclass
class BenchContext:
    mode: Mode
    broker: LocalBroker
    redis: RedisAvailability
    started: float = field(default_factory=time.monotonic)
    out: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr, flush=True))
    partitions: int = PARTITIONS
    _topics: itertools.count = field(default_factory=itertools.count)
    shared: dict = field(default_factory=dict)  # results one measurement leaves for a later one

    def say(self, line: str) -> None:
        self.out(f"[{time.monotonic() - self.started:6.1f}s] {line}")

    def new_topic(self, purpose: str) -> tuple[str, str]:
        """A fresh topic on the broker: (name, log URL)."""
        name = f"bench-{purpose}-{next(self._topics)}"
        self.broker.create_topic(name, self.partitions)
        return name, self.broker.log_url(name)

    def require_redis(self) -> str:
        if not self.redis.available:
            raise Skipped(f"Redis half skipped: {self.redis.reason}")
        return self.redis.binary  # type: ignore[return-value]
