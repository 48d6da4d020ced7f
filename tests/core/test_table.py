"""The table state machine (core/table.py): versions, outcomes, preconditions, TTL, de-duplication
and listings, fed record by record as a replica would feed it."""

from __future__ import annotations

import itertools
from collections import defaultdict

import pytest
from hypothesis import given, settings, strategies as st

from streamcache.core.records import IF_ABSENT, IF_EXISTS, Delete, Position, Put, if_match
from streamcache.core.table import DEDUP_WINDOW_MS, Entry, Outcome, OutcomeKind, Table

T0 = 1_790_000_000_000
_ids = itertools.count()


def put(key, value=b"v", *, ts=T0, expires=None, pre=None, rid=None, content_type="text/plain") -> Put:
    return Put(key, value, content_type, rid or f"r{next(_ids)}", ts, expires, pre)


def delete(key, *, ts=T0, pre=None, rid=None) -> Delete:
    return Delete(key, rid or f"r{next(_ids)}", ts, pre)


class Feed:
    """Applies mutations to a table at consecutive offsets per partition, as the log would."""

    def __init__(self, table: Table | None = None) -> None:
        self.table = table or Table()
        self.next = defaultdict(int)

    def __call__(self, mutation, partition: int = 0) -> tuple[Position, Outcome]:
        position = Position(partition, self.next[partition])
        self.next[partition] += 1
        outcome = self.table.apply(position, mutation)
        assert outcome is not None
        return position, outcome


@pytest.fixture
def feed() -> Feed:
    return Feed()


def live_keys(table: Table, now: int = T0) -> list[str]:
    return [key for key, _ in table.scan("", None, now)]


# ---- versions, create, replace, delete ---------------------------------------------------------


def test_a_put_creates_and_its_position_is_the_version(feed):
    pos, outcome = feed(put("k", b"one", content_type="application/json"))
    assert outcome == Outcome(OutcomeKind.CREATED, "k", pos, None)
    assert feed.table.get("k", T0) == Entry(b"one", "application/json", pos, None)


def test_a_second_put_replaces_with_a_new_version(feed):
    first, _ = feed(put("k", b"one"))
    second, outcome = feed(put("k", b"two"))
    assert outcome == Outcome(OutcomeKind.REPLACED, "k", second, None)
    assert second != first and feed.table.get("k", T0).value == b"two"
    assert feed.table.get("k", T0).version == second


def test_versions_are_the_log_positions_even_with_offset_gaps():
    table = Table()
    outcome = table.apply(Position(2, 157), put("k"))
    assert outcome.version == Position(2, 157) and table.get("k", T0).version == Position(2, 157)
    assert table.next_offsets() == {2: 158}


def test_delete_removes_and_reports_no_version(feed):
    feed(put("k"))
    _, outcome = feed(delete("k"))
    assert outcome == Outcome(OutcomeKind.DELETED, "k", None)
    assert feed.table.get("k", T0) is None and len(feed.table) == 0


def test_deleting_an_absent_key_is_not_found_and_changes_nothing(feed):
    feed(put("other"))
    before = dict(feed.table.items())
    _, outcome = feed(delete("k"))
    assert outcome == Outcome(OutcomeKind.NOT_FOUND, "k", None)
    assert dict(feed.table.items()) == before


# ---- preconditions ----------------------------------------------------------------------------

def _precondition(kind, versions):
    if kind == "match-current":
        return if_match(versions["current"])
    if kind == "match-stale":
        return if_match(versions["stale"])
    if kind == "match-never":
        return if_match(Position(0, 999))
    return {"exists": IF_EXISTS, "absent": IF_ABSENT}[kind]


# (key present?, precondition, operation) -> expected outcome kind
PRECONDITION_CASES = [
    (True, "match-current", "put", OutcomeKind.REPLACED),
    (True, "match-stale", "put", OutcomeKind.PRECONDITION_FAILED),
    (True, "match-never", "put", OutcomeKind.PRECONDITION_FAILED),
    (True, "exists", "put", OutcomeKind.REPLACED),
    (True, "absent", "put", OutcomeKind.PRECONDITION_FAILED),
    (False, "match-stale", "put", OutcomeKind.PRECONDITION_FAILED),
    (False, "match-never", "put", OutcomeKind.PRECONDITION_FAILED),
    (False, "exists", "put", OutcomeKind.PRECONDITION_FAILED),
    (False, "absent", "put", OutcomeKind.CREATED),
    (True, "match-current", "delete", OutcomeKind.DELETED),
    (True, "match-stale", "delete", OutcomeKind.PRECONDITION_FAILED),
    (True, "exists", "delete", OutcomeKind.DELETED),
    (False, "match-stale", "delete", OutcomeKind.PRECONDITION_FAILED),
    (False, "exists", "delete", OutcomeKind.PRECONDITION_FAILED),
]


@pytest.mark.parametrize("present, kind, operation, expected", PRECONDITION_CASES)
def test_every_precondition_outcome(feed, present, kind, operation, expected):
    stale, _ = feed(put("k", b"old", expires=T0 + 10**9))
    current, _ = feed(put("k", b"current", expires=T0 + 10**9))
    if not present:
        feed(delete("k"))
    before = dict(feed.table.items())
    pre = _precondition(kind, {"stale": stale, "current": current})
    mutation = put("k", b"new", pre=pre) if operation == "put" else delete("k", pre=pre)
    position, outcome = feed(mutation)
    assert outcome.kind is expected and outcome.key == "k"
    if expected is OutcomeKind.PRECONDITION_FAILED:
        # The answer names the key's current version (and expiry) so a client can retry; nothing changed.
        assert outcome.version == (current if present else None)
        assert outcome.expires_at_ms == (T0 + 10**9 if present else None)
        assert dict(feed.table.items()) == before
    elif operation == "put":
        assert outcome.version == position and feed.table.get("k", T0).value == b"new"
    else:
        assert feed.table.get("k", T0) is None


def test_a_deleted_version_no_longer_matches(feed):
    version, _ = feed(put("k"))
    feed(delete("k"))
    feed(put("k"))  # recreated: a new version
    _, outcome = feed(put("k", pre=if_match(version)))
    assert outcome.kind is OutcomeKind.PRECONDITION_FAILED


def test_a_version_of_another_key_does_not_match(feed):
    other, _ = feed(put("a"))
    feed(put("b"))
    _, outcome = feed(put("b", pre=if_match(other)))
    assert outcome.kind is OutcomeKind.PRECONDITION_FAILED


def test_preconditions_see_an_entry_expired_in_log_time_as_absent(feed):
    version, _ = feed(put("k", expires=T0 + 1000))
    _, still_there = feed(put("k", ts=T0 + 999, pre=IF_ABSENT))
    assert still_there.kind is OutcomeKind.PRECONDITION_FAILED
    _, gone = feed(put("k", ts=T0 + 1000, pre=if_match(version)))
    assert gone == Outcome(OutcomeKind.PRECONDITION_FAILED, "k", None)
    _, created = feed(put("k", ts=T0 + 1000, pre=IF_ABSENT))
    assert created.kind is OutcomeKind.CREATED


# ---- TTL --------------------------------------------------------------------------------------


def test_an_entry_reads_as_absent_from_its_expiry_on_for_any_reader(feed):
    pos, outcome = feed(put("k", expires=T0 + 5000))
    assert outcome.expires_at_ms == T0 + 5000
    assert feed.table.get("k", T0 + 4999) == Entry(b"v", "text/plain", pos, T0 + 5000)
    assert feed.table.get("k", T0 + 5000) is None
    assert live_keys(feed.table, T0 + 4999) == ["k"] and live_keys(feed.table, T0 + 5000) == []
    # Reading does not purge: the entry is held until log time passes it.
    assert len(feed.table) == 1


def test_expired_entries_are_purged_by_log_time_of_their_partition_only(feed):
    feed(put("k", expires=T0 + 5000), partition=0)
    feed(put("other", ts=T0 + 60_000), partition=1)
    assert len(feed.table) == 2, "a later clock in another partition must not purge"
    feed(put("tick", ts=T0 + 4999), partition=0)
    assert len(feed.table) == 3
    feed(put("tick", ts=T0 + 5000), partition=0)
    assert sorted(k for k, _ in feed.table.items()) == ["other", "tick"]


def test_purge_spares_a_key_rewritten_since(feed):
    feed(put("k", expires=T0 + 5000))
    feed(put("k", b"forever"))
    feed(put("j", expires=T0 + 5000))
    pos, _ = feed(put("j", b"later", expires=T0 + 9000))
    feed(put("tick", ts=T0 + 6000))
    assert feed.table.get("k", T0 + 10**9).value == b"forever"
    assert feed.table.get("j", T0 + 6000) == Entry(b"later", "text/plain", pos, T0 + 9000)
    feed(put("tick", ts=T0 + 9000))
    assert "j" not in dict(feed.table.items())


def test_a_record_already_expired_in_log_time_leaves_nothing(feed):
    feed(put("tick", ts=T0 + 10_000))
    pos, outcome = feed(put("k", ts=T0, expires=T0 + 5000))
    assert outcome == Outcome(OutcomeKind.CREATED, "k", pos, T0 + 5000)
    assert feed.table.get("k", T0) is None, "gone for every reader, whatever its clock"


def test_log_time_is_the_largest_writer_timestamp(feed):
    assert feed.table.clock_ms(0) == 0
    feed(put("a", ts=T0 + 10))
    feed(put("b", ts=T0 + 5))  # a writer with a slower clock does not move log time back
    assert feed.table.clock_ms(0) == T0 + 10 and feed.table.clock_ms(1) == 0


# ---- de-duplication of retried appends ---------------------------------------------------------


def test_a_retried_append_reports_the_first_outcome_and_changes_nothing(feed):
    original = put("k", b"one", rid="req-1", pre=IF_ABSENT)
    first_pos, first = feed(original)
    feed(put("k", b"two"))  # another writer replaces the value in between
    before = dict(feed.table.items())
    _, again = feed(original)  # the producer's retry lands a second copy
    assert again == first == Outcome(OutcomeKind.CREATED, "k", first_pos, None)
    assert dict(feed.table.items()) == before
    assert feed.table.outcome_for(0, "req-1") == first


def test_a_retried_delete_still_reports_deleted(feed):
    feed(put("k"))
    original = delete("k", rid="req-d")
    _, first = feed(original)
    _, again = feed(original)
    assert first.kind is again.kind is OutcomeKind.DELETED


def test_a_retried_conditional_write_keeps_its_failure(feed):
    feed(put("k"))
    original = put("k", pre=IF_ABSENT, rid="req-c")
    _, first = feed(original)
    feed(delete("k"))  # now the precondition would hold, but the request was already decided
    _, again = feed(original)
    assert first.kind is again.kind is OutcomeKind.PRECONDITION_FAILED
    assert feed.table.get("k", T0) is None


def test_request_ids_are_remembered_for_the_dedup_window_of_log_time(feed):
    original = put("k", b"one", rid="req-1", ts=T0)
    first_pos, first = feed(original)
    feed(put("tick", ts=T0 + DEDUP_WINDOW_MS // 2))  # log time moves a step (a minute) at a time
    feed(put("tick", ts=T0 + DEDUP_WINDOW_MS))
    assert feed.table.outcome_for(0, "req-1") == first
    _, again = feed(original)
    assert again == first
    feed(put("tick", ts=T0 + DEDUP_WINDOW_MS + 1))  # after the retry's old time, it takes two
    feed(put("tick", ts=T0 + DEDUP_WINDOW_MS + 2))  # records in a row to vouch for a later one
    assert feed.table.outcome_for(0, "req-1") is None
    # Past the window a copy is applied as a new write (the producer gave up long before).
    late_pos, late = feed(original)
    assert late == Outcome(OutcomeKind.REPLACED, "k", late_pos, None) and late_pos != first_pos


def test_request_ids_are_per_partition(feed):
    feed(put("a", rid="same"), partition=0)
    pos, outcome = feed(put("b", rid="same"), partition=1)
    assert outcome == Outcome(OutcomeKind.CREATED, "b", pos, None)
    assert feed.table.outcome_for(0, "same").key == "a" and feed.table.outcome_for(1, "same").key == "b"
    assert feed.table.outcome_for(2, "same") is None and feed.table.outcome_for(0, "unknown") is None


# ---- positions ---------------------------------------------------------------------------------


def test_an_already_applied_position_returns_none_and_changes_nothing(feed):
    pos, _ = feed(put("k", b"one"))
    feed(put("j"))
    before = dict(feed.table.items())
    assert feed.table.apply(pos, put("k", b"different")) is None
    assert feed.table.apply(Position(0, 0), delete("k")) is None
    assert dict(feed.table.items()) == before and feed.table.next_offsets() == {0: 2}


def test_offsets_below_a_gap_count_as_applied():
    table = Table()
    table.apply(Position(0, 10), put("k"))
    assert table.apply(Position(0, 5), put("j")) is None
    assert table.get("j", T0) is None


def test_skip_moves_past_a_foreign_record_only():
    table = Table()
    table.skip(Position(1, 4))
    assert table.next_offsets() == {1: 5} and len(table) == 0 and table.clock_ms(1) == 0
    assert table.apply(Position(1, 4), put("k")) is None
    assert table.apply(Position(1, 5), put("k")).kind is OutcomeKind.CREATED
    table.skip(Position(1, 2))  # behind: nothing moves back
    assert table.next_offsets() == {1: 6}


# ---- listings ---------------------------------------------------------------------------------

KEYS = ["b", "a/2", "a", "a/1", "ab", "é", "B", "a/10", "c"]


@pytest.fixture
def listed(feed):
    for key in KEYS:
        feed(put(key))
    return feed.table


def test_scan_is_in_code_point_order_with_entries(listed):
    items = list(listed.scan("", None, T0))
    assert [k for k, _ in items] == sorted(KEYS)
    assert all(entry == listed.get(key, T0) for key, entry in items)


@pytest.mark.parametrize(
    "prefix, start_after",
    [("a", None), ("a/", None), ("a/", "a/1"), ("a/", "a/10"), ("a/", "a/2"), ("a", "a"), ("a", "A"),
     ("a/", "a/0"), ("", "b"), ("", "zz"), ("a", "b"), ("x", None), ("a/1", "a/1")],
)
def test_scan_filters_by_prefix_and_starts_after_a_key(listed, prefix, start_after):
    expected = [k for k in sorted(KEYS) if k.startswith(prefix) and (start_after is None or k > start_after)]
    assert [k for k, _ in listed.scan(prefix, start_after, T0)] == expected


operations = st.lists(
    st.tuples(st.sampled_from(["put", "put-ttl", "delete", "scan", "tick"]), st.sampled_from(["a", "b", "ab", "b/1", "c", "é"])),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations)
def test_the_sorted_index_stays_right_after_the_first_listing(ops):
    """The sorted key index is built on the first scan and then maintained by puts, deletes and
    purges; whatever happens after that first scan, listings equal the sorted live entries."""
    feed = Feed()
    clock = T0
    for op, key in ops:
        clock += 1000
        if op == "put":
            feed(put(key, ts=clock))
        elif op == "put-ttl":
            feed(put(key, ts=clock, expires=clock + 2500))
        elif op == "delete":
            feed(delete(key, ts=clock))
        elif op == "tick":
            feed(put("tick", ts=clock))
        else:
            _check_listings(feed.table, clock)
    _check_listings(feed.table, clock)


def _check_listings(table: Table, now: int) -> None:
    for prefix in ("", "a", "b/"):
        expected = sorted(k for k, e in table.items() if k.startswith(prefix) and e.live_at(now))
        assert [k for k, _ in table.scan(prefix, None, now)] == expected
