"""The write path at the stream's floor (issue 13): every PUT path measured right after the stream
append alone, in the same run, and the issue's targets checked against those neighbours.

- ``append alone``: :meth:`KafkaLog.append` (acks=all) in this process: the floor a PUT stands on,
  measured in turns of 50 with the path's PUTs so that both see the same machine;
- targets: PUT p50 in the handler <= 1.2x the append; through the FDK socket <= the append + the
  GET's FDK overhead (FDK GET p50 - handler GET p50) + 0.3 ms; through the gateway <= 2.5x the
  append; PUT req/s with 4 clients and 2 instances >= 2x the 196 req/s measured before the issue.

A control beside the FDK and gateway paths: a function that does nothing but the append
(``append_function/func.py``), through an FDK socket and through the gateway: what the FDK, the
gateway and kafka-python's threads cost a write before any of the cache's own work.

The gateway picks an idle instance as Fn's agent does (the one released last), so a sequential
client stays on one instance and each write is applied straight from the record it holds. Also
measured, for comparison: two instances taking turns (round-robin), where nearly every write finds
the other's record before its own and reads it back (as it must: it decides the write's outcome).
"""

from __future__ import annotations

from streamcache.adapters.kafka_log import KafkaLog
from streamcache.core import records
from streamcache.core.records import Put

from .common import Samples, key_name, summarize, value_for
from .datasets import CONTENT_TYPE

#: PUT req/s through the gateway, 4 clients, 2 instances, before issue 13 (bench/results, full mode).
BEFORE_CONCURRENT_PUT_RPS = 196.0
APPEND_WARMUP = 5


class AppendAlone:
    """The stream append alone (:meth:`KafkaLog.append`, acks=all, 100-byte values) on a topic of its
    own: the floor a PUT stands on, called in turns with one path's PUTs (:func:`.common.interleaved`)."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._log = KafkaLog(bootstrap, topic)
        self._encoded = [records.encode(Put(key_name(i), value_for(i), CONTENT_TYPE, f"floor-{i}", 0))
                         for i in range(64)]
        for i in range(APPEND_WARMUP):  # connect the producer before anything is timed
            self(i)
        self.samples = Samples()

    def __call__(self, i: int) -> None:
        self._log.append(key_name(i % 64), self._encoded[i % 64])

    def summary(self) -> dict:
        return summarize(self.samples)

    def __enter__(self) -> "AppendAlone":
        return self

    def __exit__(self, *exc) -> None:
        self._log.close()


def targets(ours: dict) -> list[dict]:
    """Each target: the path, its PUT p50, the append alone beside it, the limit, and whether it held."""
    floor = ours.get("append_alone", {})
    out = []

    def p50(section: dict | None) -> float | None:
        return None if not section else section.get("p50_ms")

    handler_put, handler_get = p50(ours.get("handler", {}).get("put")), p50(ours.get("handler", {}).get("get"))
    fdk_put, fdk_get = p50(ours.get("fdk_socket", {}).get("put")), p50(ours.get("fdk_socket", {}).get("get"))
    gateway_put = p50(ours.get("gateway", {}).get("put"))

    def add(path: str, put: float | None, append: float | None, limit: float | None, rule: str) -> None:
        met = None if put is None or limit is None else put <= limit
        out.append({"path": path, "put_p50_ms": put, "append_p50_ms": append, "limit_ms": limit, "rule": rule,
                    "x_append": None if not put or not append else round(put / append, 2), "met": met})

    a = p50(floor.get("handler"))
    add("handler", handler_put, a, None if a is None else round(1.2 * a, 4), "<= 1.2x the append")
    a = p50(floor.get("fdk_socket"))
    overhead = None if fdk_get is None or handler_get is None else fdk_get - handler_get
    add("fdk_socket", fdk_put, a, None if a is None or overhead is None else round(a + overhead + 0.3, 4),
        f"<= append + GET's FDK overhead ({'-' if overhead is None else f'{overhead:.3f}'} ms) + 0.3 ms")
    control = p50(ours.get("fdk_append_function", {}).get("put"))
    if control is not None:
        a = p50(floor.get("fdk_append_function"))
        add("fdk_socket, a function that only appends (control)", control, a,
            None if a is None or overhead is None else round(a + overhead + 0.3, 4),
            "(for comparison) the fdk_socket target")
    a = p50(floor.get("gateway"))
    add("gateway", gateway_put, a, None if a is None else round(2.5 * a, 4), "<= 2.5x the append")
    control = p50(ours.get("gateway_append_function", {}).get("put"))
    if control is not None:
        a = p50(floor.get("gateway_append_function"))
        add("gateway, a function that only appends (control)", control, a,
            None if a is None else round(2.5 * a, 4), "(for comparison) <= 2.5x the append")
    a = p50(floor.get("gateway_taking_turns"))
    turns = ours.get("gateway_taking_turns", {}).get("put")
    if turns:
        add("gateway, 2 instances taking turns", p50(turns), a, None if a is None else round(2.5 * a, 4),
            "(for comparison) <= 2.5x the append")
    conc = ours.get("gateway_concurrent", {}).get("put", {}).get("rps")
    out.append({"path": "gateway, 4 clients, 2 instances", "put_rps": conc, "rule": f">= 2x {BEFORE_CONCURRENT_PUT_RPS:.0f} req/s",
                "limit_rps": 2 * BEFORE_CONCURRENT_PUT_RPS, "met": None if conc is None else conc >= 2 * BEFORE_CONCURRENT_PUT_RPS})
    return out


def markdown(ours: dict) -> list[str]:
    rows = ours.get("targets")
    if not rows:
        return []
    out = ["### The write path at the stream's floor (issue 13's targets; each path's PUTs and the append alone in turns of 50)",
           "", "| PUT path | PUT p50 | append alone p50 | PUT / append | target | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        met = {True: "yes", False: "**no**", None: "-"}[row["met"]]
        if "put_rps" in row:
            out.append(f"| {row['path']} | {row['put_rps'] or '-'} req/s | | | {row['rule']} | {met} |")
            continue
        out.append(f"| {row['path']} | {_ms(row['put_p50_ms'])} | {_ms(row['append_p50_ms'])} | "
                   f"{row['x_append'] or '-'}x | {row['rule']} (limit {_ms(row['limit_ms'])}) | {met} |")
    return out + [""]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"
