"""De-duplication of bulk-imported records (core/import_dedup.py): one row per partition and imported
object keeps the highest line applied; copies of applied lines change nothing, in every replica."""

from __future__ import annotations

from streamcache.core.records import Position, Put
from streamcache.core.snapshot import decode_snapshot, encode_snapshot
from streamcache.core.table import DEDUP_WINDOW_MS, Table

T0 = 1_700_000_000_000


class Log:
    """One partition's records, applied to any number of tables alike."""

    def __init__(self, *tables: Table) -> None:
        self.tables, self.offset = list(tables), 0

    def put(self, key: str, value: bytes, request_id: str, ts_ms: int = T0):
        outcomes = [t.apply(Position(0, self.offset), Put(key, value, "text/plain", request_id, ts_ms)) for t in self.tables]
        self.offset += 1
        return outcomes[0]

    def line(self, number: int, ts_ms: int = T0, obj: str = "0123abcd"):
        return self.put(f"k{number}", f"line {number}".encode(), f"import-{obj}-{number}", ts_ms)


def test_an_import_keeps_one_row_per_object_not_one_per_record():
    table = Table()
    log = Log(table)
    for number in range(1, 1001):
        log.line(number)
    log.line(1, obj="other")
    assert len(table) == 1000
    assert table.db.execute("SELECT count(*) FROM requests").fetchone()[0] == 2


def test_copies_of_applied_lines_change_nothing_even_after_a_client_write():
    table = Table()
    log = Log(table)
    for number in range(1, 6):
        log.line(number)
    first = table.get("k3", T0).version
    log.put("k3", b"the client's", "client-1")  # lands between the import's batch and its retry
    assert [log.line(number) for number in (3, 4, 5)] == [None, None, None]  # the retried batch
    assert table.get("k3", T0).value == b"the client's"
    assert table.get("k4", T0).value == b"line 4" and table.get("k3", T0).version != first


def test_a_run_again_from_line_one_applies_only_the_lines_not_applied_yet():
    table = Table()
    log = Log(table)
    for number in range(1, 4):
        log.line(number)
    outcomes = [log.line(number) for number in range(1, 7)]  # the compactor ran the import again
    assert outcomes[:3] == [None] * 3 and all(o is not None for o in outcomes[3:])
    assert len(table) == 6


def test_past_the_window_lines_apply_again_whether_or_not_the_row_was_swept():
    swept, kept = Table(), Table()
    log = Log(swept, kept)
    for number in range(1, 11):
        log.line(number)
    later = T0 + DEDUP_WINDOW_MS + 1_000
    for n, ts in enumerate(range(T0, later + 10_000, 5_000)):  # log time moves past the import's row
        log.put("tick", b"-", f"client-tick-{n}", ts)
    assert swept.clock_ms(0) >= later
    swept.flush()  # a sweep deletes the row in one replica only (sweeps are not in step)
    assert swept.db.execute("SELECT count(*) FROM requests WHERE key = ''").fetchone()[0] == 0
    assert kept.db.execute("SELECT count(*) FROM requests WHERE key = ''").fetchone()[0] == 1
    log.put("k5", b"client", "client-5", later)
    log.line(1, later)  # the import run again, long after
    log.line(5, later)  # its line 5 must apply in both: the expired row's highest line (10) is gone
    assert swept.get("k5", later).value == kept.get("k5", later).value == b"line 5"
    assert swept.export_state() == kept.export_state()


def test_the_row_survives_a_snapshot():
    table = Table()
    log = Log(table)
    for number in range(1, 4):
        log.line(number)
    restored = decode_snapshot(encode_snapshot(table, "s")).table
    log.tables = [restored]
    assert log.line(2) is None and log.line(4) is not None
