"""The deployment's alarms, evaluated locally on what the local Monitoring server received.

The alarms live in one place, ``infra/terraform/alarms.json.tftpl``: Terraform renders it with
``templatefile`` into ``oci_monitoring_alarm`` resources, and :func:`load_alarms` renders the same
file here with local values. :func:`evaluate` understands the part of MQL those queries use:

    Metric[Nm]{dim = "v", ...}.grouping().STAT() OP NUMBER      STAT: max min sum mean count
    Metric[Nm]{dim = "v", ...}.groupBy(dim).absent(Nm)

Each datapoint is a minute's aggregate, stamped with the start of its minute and posted during it or
just after it. A threshold alarm looks at the datapoints of the interval's minutes (``[Nm]``) ending
with ``now``'s minute, or with the minute before while nothing of ``now``'s has arrived (else a
point posted at 12:00:59 would be "no data" at 12:01:00); with none, it is not firing (OCI says "no
data"). An absence alarm fires when no datapoint's minute overlaps its detection period. ``now`` is
an argument: tests move time by hand.
"""

from __future__ import annotations

import json
import operator
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Iterable, Mapping

TEMPLATE = Path(__file__).resolve().parents[1] / "terraform" / "alarms.json.tftpl"
_QUERY = re.compile(r"^(?P<name>\w+)\[(?P<interval>\d+)m\]\{(?P<dims>[^}]*)\}\.(?:grouping\(\)|groupBy\([\w, ]*\))\."
                    r"(?:(?P<stat>max|min|sum|mean|count)\(\) *(?P<op>>=|<=|>|<|==) *(?P<threshold>-?[\d.]+)"
                    r"|absent\((?P<absent>\d+)m\))$")
_DIM = re.compile(r'(\w+) *= *"([^"]*)"')
_OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le, "==": operator.eq}
_INTERPOLATION = re.compile(r"\$\{(\w+)\}")

#: Local values of the template's variables (Terraform's defaults, with a short stream retention).
LOCAL_VALUES = {"snapshot_age_limit_s": 3600, "no_compaction_minutes": 10, "stale_reads_limit": 0,
                "errors_5xx_limit": 0, "quota_percent": 80}


MINUTE_S = 60  # what one datapoint aggregates


class AlarmState(StrEnum):
    OK = "OK"
    FIRING = "FIRING"
    NO_DATA = "NO_DATA"


@dataclass(frozen=True)
class Alarm:
    name: str
    query: str
    summary: str
    severity: str
    runbook: str


@dataclass(frozen=True)
class Datapoint:
    name: str
    dimensions: Mapping[str, str]
    timestamp_s: float
    value: float
    count: int = 1


def render(text: str, values: Mapping[str, object]) -> str:
    """Replace ``${name}`` as templatefile does; an unknown name fails loudly."""
    return _INTERPOLATION.sub(lambda m: str(values[m.group(1)]), text)


def load_alarms(deployment: str, values: Mapping[str, object] | None = None,
                template: Path = TEMPLATE) -> list[Alarm]:
    rendered = json.loads(render(template.read_text(), {**LOCAL_VALUES, **(values or {}), "deployment": deployment}))
    return [Alarm(name, a["query"], a["summary"], a["severity"], a["runbook"]) for name, a in rendered.items()]


def evaluate(query: str, points: Iterable[Datapoint], now_s: float) -> AlarmState:
    match = _QUERY.match(query.strip())
    if match is None:
        raise ValueError(f"not an MQL query this evaluator understands: {query!r}")
    wanted = dict(_DIM.findall(match["dims"]))
    mine = [p for p in points if p.name == match["name"] and p.timestamp_s <= now_s
            and all(p.dimensions.get(k) == v for k, v in wanted.items())]
    if match["absent"]:
        since_s = now_s - int(match["absent"]) * MINUTE_S
        return AlarmState.OK if any(p.timestamp_s + MINUTE_S > since_s for p in mine) else AlarmState.FIRING
    last_minute_s = now_s // MINUTE_S * MINUTE_S
    if not any(p.timestamp_s >= last_minute_s for p in mine):
        last_minute_s -= MINUTE_S  # this minute's aggregates have not arrived yet: the one before is the newest
    first_minute_s = last_minute_s - (int(match["interval"]) - 1) * MINUTE_S
    seen = [p for p in mine if first_minute_s <= p.timestamp_s < last_minute_s + MINUTE_S]
    if not seen:
        return AlarmState.NO_DATA
    stat = match["stat"]
    total, n = sum(p.value * p.count for p in seen), sum(p.count for p in seen)
    value = {"max": max(p.value for p in seen), "min": min(p.value for p in seen), "sum": total,
             "mean": total / n if n else 0.0, "count": float(n)}[stat]
    return AlarmState.FIRING if _OPS[match["op"]](value, float(match["threshold"])) else AlarmState.OK
