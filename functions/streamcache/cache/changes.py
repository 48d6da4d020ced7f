"""The change feed over plain HTTP: ``GET /changes?after=TOKEN&prefix=P&limit=N&wait=S``.

For clients without a Kafka client or a stream auth token (a browser, a webhook, a function in
another cloud): the change records already on the stream after a resume token, as JSON, with the next
token. A token is what ``streamcache watch`` prints: the next offset of every partition
(``0-120,1-98,2-77``; partitions not named start at the oldest record still held), or ``earliest`` /
``latest``. With ``wait``, a request with nothing new long-polls the stream's end for up to that many
seconds (bounded by :data:`MAX_WAIT_S`, well inside the function's and the gateway's timeouts), and
never holds the instance longer than asked.

Each change is ``{"position": "P-O", "event": <the CloudEvent as it is on the stream>}``: a big value's
put carries its ``dataref`` (and ``datasize``, ``datadigest``) instead of data (docs/api.md, "Big values"). Records the
instances skip (not ours, or misplaced: see replay/fold.py) are skipped here too, so the feed shows
exactly what the table applied. A token older than the stream's retention answers 410 with the
oldest position that can be read.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping

import orjson

from streamcache.cache.service import InvalidLimit
from streamcache.core.errors import InvalidRequest, RecordError
from streamcache.ports import MutationLog
from streamcache.replay.fold import decode_placed

MAX_WAIT_S = 20.0
MAX_LIMIT = 1000
POLL_S = 0.05  # how often a long poll looks at the stream's end (a ListOffsets round trip)


class InvalidToken(InvalidRequest):
    code = "invalid_token"


class InvalidWait(InvalidRequest):
    code = "invalid_query"


class TokenGone(InvalidRequest):
    """The token names records the stream's retention already dropped."""

    code = "token_gone"
    status = 410


def parse_token(raw: str, partitions: int, first: Mapping[int, int], end: Mapping[int, int]) -> dict[int, int]:
    """The next offset to read per partition: ``earliest``, ``latest``, or ``P-O[,P-O...]``."""
    if raw == "earliest":
        return {p: first.get(p, 0) for p in range(partitions)}
    if raw == "latest":
        return {p: end.get(p, 0) for p in range(partitions)}
    start = {p: first.get(p, 0) for p in range(partitions)}
    for part in raw.split(","):
        p, sep, o = part.strip().partition("-")
        if not sep or not (p.isascii() and p.isdigit() and o.isascii() and o.isdigit()) or int(p) >= partitions:
            raise InvalidToken(f"after {raw[:100]!r}: expected earliest, latest or P-O[,P-O...] (the next offset "
                               f"per partition, as /changes and streamcache watch answer; partitions 0 to {partitions - 1})")
        start[int(p)] = int(o)
    return start


def changes(log: MutationLog, after: str, prefix: str = "", limit: int = 100, wait_s: float = 0.0,
            monotonic: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> dict:
    """The answer to one ``GET /changes`` (see the module docstring)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidLimit(f"limit must be between 1 and {MAX_LIMIT}")
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise InvalidWait(f"wait must be between 0 and {MAX_WAIT_S:g} seconds")
    deadline = monotonic() + wait_s
    bounds = log.bounds()
    start = parse_token(after, log.partitions, bounds.first, bounds.next)
    gone = {p: bounds.first.get(p, 0) for p, o in start.items() if o < bounds.first.get(p, 0)}
    if gone:
        oldest = ",".join(f"{p}-{o}" for p, o in sorted(gone.items()))
        raise TokenGone(f"the stream's retention dropped records after {after!r}; the oldest still held: {oldest}")
    while True:
        out, cursor = _read(log, start, bounds.next, prefix, limit)
        if out or monotonic() >= deadline or cursor != start:
            return {"changes": out, "next": ",".join(f"{p}-{o}" for p, o in sorted(cursor.items()))}
        start = cursor
        sleep(min(POLL_S, max(0.0, deadline - monotonic())))  # a long poll: wait for the stream's end to move
        bounds = log.bounds()


def _read(log: MutationLog, start: dict[int, int], end: Mapping[int, int], prefix: str,
          limit: int) -> tuple[list[dict], dict[int, int]]:
    """Up to ``limit`` changes from ``start`` to ``end``, partition by partition, and where to go on."""
    out: list[dict] = []
    cursor = dict(start)
    for partition in sorted(start):
        if len(out) >= limit or start[partition] >= end.get(partition, 0):
            continue
        upto = min(end[partition], start[partition] + limit * 4)  # filtered records may not count
        for record in log.read({partition: start[partition]}, {partition: upto}):
            cursor[partition] = record.position.offset + 1
            try:
                mutation = decode_placed(record, log.partition_for)
            except RecordError:
                continue  # skipped by every instance: not a change
            if mutation.key.startswith(prefix):
                out.append({"position": str(record.position), "event": orjson.loads(record.value)})
                if len(out) >= limit:
                    break
        else:
            cursor[partition] = max(cursor[partition], upto)
    return out, cursor
