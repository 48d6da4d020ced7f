"""Metrics of one process, aggregated per minute, ready to post to OCI Monitoring (pure: no clock).

A function instance counts what it does (:meth:`Aggregator.count`), observes durations and ages
(:meth:`Aggregator.observe`) and sets levels (:meth:`Aggregator.gauge`); every call takes the time
as an argument. :meth:`Aggregator.take` hands over what was gathered as :class:`Point` values, one
per metric stream (name + dimensions) and minute, and starts afresh; :func:`streams` groups them
into the batches one PostMetricData call takes (at most :data:`MAX_STREAMS_PER_POST`).

How each kind becomes datapoints (OCI Monitoring aggregates datapoints of a minute itself):

- a count: one datapoint, the sum of the minute, ``count`` 1: MQL ``.sum()`` is the total;
- an observation: the mean with ``count`` = how many were observed (so ``.sum()``, ``.mean()`` and
  ``.count()`` are right), plus ``<name>Max``, the largest: an alarm on the worst case needs it;
- a gauge: the last value set in the minute.

Dimensions stay few and of low cardinality (function, deployment, operation, status class): never a
key or an instance id, which would make a metric stream per key or per container.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Iterable, Mapping

#: PostMetricData takes at most 50 metric streams per call.
MAX_STREAMS_PER_POST = 50
#: The suffix of the companion metric that carries an observation's maximum.
MAX_SUFFIX = "Max"

Dimensions = tuple[tuple[str, str], ...]


class Kind(StrEnum):
    COUNT = "count"
    OBSERVATION = "observation"
    GAUGE = "gauge"


@dataclass(frozen=True)
class Point:
    """One datapoint of one metric stream: ``value`` occurred ``count`` times in the minute
    that starts at ``minute_ms`` (UTC, epoch milliseconds)."""

    name: str
    dimensions: Dimensions
    minute_ms: int
    value: float
    count: int = 1


@dataclass
class _Cell:
    kind: Kind
    total: float = 0.0
    n: int = 0
    largest: float = float("-inf")
    last: float = 0.0

    def add(self, value: float) -> None:
        self.total += value
        self.n += 1
        self.largest = max(self.largest, value)
        self.last = value

    def merge(self, n: int, total: float, largest: float) -> None:
        self.total += total
        self.n += n
        self.largest = max(self.largest, largest)


@dataclass
class Aggregator:
    """Per-minute aggregates of one process. Not thread-safe by itself: the caller holds the lock
    (in a function instance, one request runs at a time)."""

    #: Dimensions every metric of this process carries (function, deployment).
    base: Mapping[str, str] = field(default_factory=dict)
    _cells: dict[tuple[str, Dimensions, int], _Cell] = field(default_factory=dict)

    def _cell(self, kind: Kind, name: str, now_s: float, dims: Mapping[str, str]) -> _Cell:
        key = (name, _dimensions(self.base, dims), minute_ms(now_s))
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = _Cell(kind)
        return cell

    def count(self, name: str, now_s: float, n: float = 1, **dims: str) -> None:
        self._cell(Kind.COUNT, name, now_s, dims).add(n)

    def observe(self, name: str, value: float, now_s: float, **dims: str) -> None:
        self._cell(Kind.OBSERVATION, name, now_s, dims).add(value)

    def gauge(self, name: str, value: float, now_s: float, **dims: str) -> None:
        self._cell(Kind.GAUGE, name, now_s, dims).add(value)

    def observe_many(self, name: str, n: int, total: float, largest: float, now_s: float, **dims: str) -> None:
        """``n`` observations at once, summing to ``total``, the largest ``largest`` (a caller that
        tallies on its hot path and hands the tally over once a minute)."""
        if n:
            self._cell(Kind.OBSERVATION, name, now_s, dims).merge(n, total, largest)

    def __len__(self) -> int:
        return len(self._cells)

    def drop_before(self, oldest_ms: int) -> int:
        """Forget the minutes before ``oldest_ms`` (OCI refuses datapoints over 2 hours old); how many
        cells went. Bounds what piles up while posts cannot go out."""
        old = [key for key in self._cells if key[2] < oldest_ms]
        for key in old:
            del self._cells[key]
        return len(old)

    def take(self) -> list[Point]:
        """Everything gathered so far, as datapoints; the aggregator is empty afterwards."""
        cells, self._cells = self._cells, {}
        points: list[Point] = []
        for (name, dims, minute), cell in sorted(cells.items(), key=lambda item: item[0]):
            if cell.kind is Kind.COUNT:
                points.append(Point(name, dims, minute, cell.total))
            elif cell.kind is Kind.GAUGE:
                points.append(Point(name, dims, minute, cell.last))
            else:
                points.append(Point(name, dims, minute, cell.total / cell.n, cell.n))
                points.append(Point(name + MAX_SUFFIX, dims, minute, cell.largest))
        return points


def minute_ms(now_s: float) -> int:
    """The start of the UTC minute ``now_s`` falls in, in epoch milliseconds."""
    return int(now_s // 60) * 60_000


def status_class(status: int) -> str:
    """``2xx``, ``4xx``, ``5xx``...: the status dimension (the exact status would multiply streams)."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def streams(points: Iterable[Point], per_post: int = MAX_STREAMS_PER_POST) -> list[list[tuple[str, Dimensions, list[Point]]]]:
    """Points grouped by metric stream (name + dimensions), in batches of at most ``per_post``
    streams: one batch is one PostMetricData call."""
    grouped: dict[tuple[str, Dimensions], list[Point]] = {}
    for point in points:
        grouped.setdefault((point.name, point.dimensions), []).append(point)
    items = [(name, dims, pts) for (name, dims), pts in grouped.items()]
    return [items[i : i + per_post] for i in range(0, len(items), per_post)]


def _dimensions(base: Mapping[str, str], extra: Mapping[str, str]) -> Dimensions:
    # OCI refuses empty dimension values: an unset one is left out rather than sent empty.
    merged = {**base, **extra}
    return tuple(sorted((k, str(v)) for k, v in merged.items() if str(v)))
