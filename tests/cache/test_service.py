"""CacheService over the in-memory log: read-your-writes, the staleness bound, strong reads, answers
when the stream is unreachable, TTLs, limits and listings. Several instances share one log, as cache
function instances share one stream. Wall and monotonic clocks are injected; nothing sleeps."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from streamcache.adapters.memory_log import MemoryLog
from streamcache.core.errors import InvalidKey, InvalidTTL, LogUnavailable, ValueTooLarge
from streamcache.core.records import IF_ABSENT, DEFAULT_CONTENT_TYPE, Position, if_match
from streamcache.core.table import OutcomeKind
from streamcache.cache.replica import Replica
from streamcache.cache.service import CacheService, InvalidCursor, InvalidLimit, Limits, parse_ttl
from support.clock import Clock

WALL_START = 1_790_000_000.0


@dataclass
class Instance:
    service: CacheService
    replica: Replica
    monotonic: Clock

    def value(self, key: str, strong: bool = False) -> bytes | None:
        entry = self.service.get(key, strong=strong).entry
        return None if entry is None else entry.value


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog(partitions=3)


@pytest.fixture
def wall() -> Clock:
    return Clock(WALL_START)


@pytest.fixture
def instance(log, wall):
    """A factory of cache instances sharing ``log`` and the wall clock, each with its own monotonic clock."""

    def make(**limits) -> Instance:
        monotonic = Clock(0.0)
        replica = Replica(log, monotonic=monotonic)
        return Instance(CacheService(replica, Limits(**limits), clock=wall), replica, monotonic)

    return make


def appended(log: MemoryLog) -> int:
    return sum(log.bounds().next.values())


# ---- read-your-writes and apply-time outcomes --------------------------------------------------


def test_a_write_is_read_back_at_once_by_its_instance(log, instance):
    a = instance(staleness_ms=3_600_000)
    assert a.value("k") is None  # the first read catches up; the next hour's reads will not
    outcome = a.service.put("k", b"1", "text/plain")
    assert outcome.kind is OutcomeKind.CREATED
    assert outcome.version == Position(log.partition_for("k"), 0)
    assert a.value("k") == b"1"
    assert a.service.delete("k").kind is OutcomeKind.DELETED
    assert a.value("k") is None


def test_a_write_reports_the_outcome_of_applying_it_after_others_writes(instance):
    a, b = instance(), instance()
    b.service.put("k", b"from b")
    outcome = a.service.put("k", b"from a")  # a never read b's write, yet it was applied first
    assert outcome.kind is OutcomeKind.REPLACED


def test_concurrent_if_match_writes_one_wins_and_the_loser_learns_the_winner(instance):
    a, b = instance(staleness_ms=3_600_000), instance(staleness_ms=3_600_000)
    version = a.service.put("k", b"0").version
    assert b.value("k") == b"0"
    won = a.service.put("k", b"a", precondition=if_match(version))
    lost = b.service.put("k", b"b", precondition=if_match(version))
    assert won.kind is OutcomeKind.REPLACED
    assert lost.kind is OutcomeKind.PRECONDITION_FAILED and lost.version == won.version
    assert a.value("k", strong=True) == b.value("k", strong=True) == b"a"


def test_a_write_brings_its_own_partition_up_to_date_only(log, instance):
    a, b = instance(staleness_ms=3_600_000), instance(staleness_ms=3_600_000)
    same = [k for k in (f"k{i}" for i in range(1000)) if log.partition_for(k) == 0][:2]
    other = next(k for k in (f"o{i}" for i in range(1000)) if log.partition_for(k) == 1)
    a.service.put(other, b"old")
    assert b.value(other) == b"old"  # b's first read catches up
    a.service.put(same[0], b"a")
    a.service.put(other, b"new")
    b.service.put(same[1], b"b")
    assert b.value(same[0]) == b"a", "applied on the way to b's own record"
    assert b.value(other) == b"old", "another partition waits for the staleness bound"


def test_a_miss_is_checked_against_the_stream_before_it_is_answered(instance):
    a, b = instance(staleness_ms=3_600_000), instance(staleness_ms=3_600_000)
    assert b.value("warm-up") is None
    a.service.put("new-key", b"v")
    assert b.value("new-key") == b"v", "a default read of a missing key catches up first"


# ---- the staleness bound and strong reads ------------------------------------------------------


@pytest.mark.parametrize("bound_ms", [1000, 250])
def test_reads_catch_up_once_the_last_catch_up_is_older_than_the_bound(instance, bound_ms):
    a, b = instance(), instance(staleness_ms=bound_ms)
    a.service.put("k", b"0")
    assert b.value("k") == b"0"
    a.service.put("k", b"1")
    b.monotonic.now = bound_ms / 1000 - 0.001
    assert b.value("k") == b"0" and b.service.get("k").stale is False
    b.monotonic.now = bound_ms / 1000
    assert b.value("k") == b"1"


def test_a_zero_bound_catches_up_on_every_read(instance):
    a, b = instance(), instance(staleness_ms=0)
    b.value("k")
    a.service.put("k", b"1")
    assert b.value("k") == b"1"


def test_a_strong_read_sees_every_acknowledged_write(instance):
    a, b = instance(), instance(staleness_ms=3_600_000)
    a.service.put("k", b"0")
    assert b.value("k") == b"0"
    a.service.put("k", b"1")
    assert b.value("k") == b"0"
    assert b.value("k", strong=True) == b"1"
    a.service.put("j", b"2")
    assert [i.key for i in b.service.list(strong=True).items] == ["j", "k"]


# ---- an unreachable stream ---------------------------------------------------------------------


def test_when_the_stream_is_unreachable_default_reads_answer_stale(log, instance):
    a, b = instance(), instance()
    b.value("k")
    a.service.put("k", b"1")
    log.available = False
    b.monotonic.now = 5.0
    result = b.service.get("k")
    assert result.stale is True and result.entry is None, "the last state this instance knew"
    page = b.service.list()
    assert page.stale is True and page.items == []
    log.available = True
    result = b.service.get("k")
    assert result.stale is False and result.entry.value == b"1"


def test_within_the_bound_a_read_needs_no_stream(log, instance):
    a = instance()
    a.service.put("k", b"1")
    a.value("k")  # caught up at monotonic 0; the bound is 1 s
    log.available = False
    result = a.service.get("k")
    assert result.stale is False and result.entry.value == b"1"


def test_strong_reads_and_writes_fail_when_the_stream_is_unreachable(log, instance):
    a = instance()
    a.service.put("k", b"1")
    log.available = False
    with pytest.raises(LogUnavailable):
        a.service.get("k", strong=True)
    with pytest.raises(LogUnavailable):
        a.service.list(strong=True)
    with pytest.raises(LogUnavailable):
        a.service.put("k", b"2")
    with pytest.raises(LogUnavailable):
        a.service.delete("k")
    log.available = True
    assert appended(log) == 1 and a.value("k", strong=True) == b"1"


def test_client_mistakes_are_reported_even_when_the_stream_is_unreachable(log, instance):
    a = instance()
    log.available = False
    with pytest.raises(InvalidKey):
        a.service.get("")
    with pytest.raises(InvalidKey):
        a.service.put("a\nb", b"1")
    with pytest.raises(InvalidLimit):
        a.service.list(limit=0)


# ---- TTL ----------------------------------------------------------------------------------------


def test_a_ttl_sets_an_absolute_expiry_from_the_writers_clock(instance, wall):
    a = instance()
    outcome = a.service.put("k", b"1", ttl_seconds=10)
    assert outcome.expires_at_ms == int(WALL_START * 1000) + 10_000
    wall.now = WALL_START + 9.999
    assert a.value("k") == b"1" and [i.key for i in a.service.list().items] == ["k"]
    wall.now = WALL_START + 10
    assert a.value("k") is None and a.service.list().items == []


@pytest.mark.parametrize("ttl, ms", [(1.5, 1500), (0.0001, 1), (315_360_000, 315_360_000_000), (7, 7000)])
def test_valid_ttls_in_milliseconds(instance, ttl, ms):
    assert instance().service.ttl_ms(ttl) == ms


@pytest.mark.parametrize("ttl", [0, -1, 0.0, float("nan"), float("inf"), 315_360_001, True, "5", [5]])
def test_invalid_ttls_are_rejected_and_write_nothing(log, instance, ttl):
    with pytest.raises(InvalidTTL) as raised:
        instance().service.put("k", b"1", ttl_seconds=ttl)
    assert (raised.value.status, raised.value.code) == (400, "invalid_ttl")
    assert appended(log) == 0


def test_parse_ttl():
    assert parse_ttl("1.5") == 1.5 and parse_ttl("60") == 60.0
    for raw in ("", "abc", "1s", "0x10"):
        with pytest.raises(InvalidTTL):
            parse_ttl(raw)


# ---- limits and keys ---------------------------------------------------------------------------


def test_a_value_at_the_limit_fits_and_one_byte_more_does_not(log, instance):
    a = instance(max_value_bytes=1000)
    assert a.service.put("k", b"x" * 1000).kind is OutcomeKind.CREATED
    with pytest.raises(ValueTooLarge) as raised:
        a.service.put("k", b"x" * 1001)
    assert raised.value.status == 413
    assert appended(log) == 1


def test_the_encoded_record_limit_is_enforced_too(log, instance):
    a = instance(max_value_bytes=1000, max_record_bytes=600)
    with pytest.raises(ValueTooLarge):
        a.service.put("k", b"\xff" * 500)  # base64 in the envelope: over 600 bytes
    assert appended(log) == 0


@pytest.mark.parametrize("key", ["", "a\x00b", "\x7f", "x" * 513, "\ud800"])
def test_invalid_keys_are_rejected_by_every_operation_and_write_nothing(log, instance, key):
    a = instance()
    for operation in (lambda: a.service.get(key), lambda: a.service.put(key, b"1"), lambda: a.service.delete(key)):
        with pytest.raises(InvalidKey):
            operation()
    assert appended(log) == 0


def test_a_missing_content_type_is_stored_as_octet_stream(instance):
    a = instance()
    a.service.put("k", b"1", "")
    assert a.service.get("k").entry.content_type == DEFAULT_CONTENT_TYPE


def test_deletes(instance):
    a = instance()
    assert a.service.delete("k").kind is OutcomeKind.NOT_FOUND
    old = a.service.put("k", b"1").version
    a.service.put("k", b"2")
    assert a.service.delete("k", if_match(old)).kind is OutcomeKind.PRECONDITION_FAILED
    assert a.service.delete("k").kind is OutcomeKind.DELETED
    assert a.service.put("k", b"3", precondition=IF_ABSENT).kind is OutcomeKind.CREATED


# ---- listings -----------------------------------------------------------------------------------


def pages(service: CacheService, prefix: str = "", limit: int = 3) -> list[list[str]]:
    result, cursor = [], None
    while True:
        page = service.list(prefix, limit, cursor)
        result.append([item.key for item in page.items])
        cursor = page.cursor
        if cursor is None:
            return result


@pytest.mark.parametrize("count, sizes", [(7, [3, 3, 1]), (6, [3, 3]), (1, [1]), (0, [0])])
def test_listing_pages_through_sorted_keys_with_cursors(instance, count, sizes):
    a = instance()
    keys = [f"p/{i:02d}" for i in range(count)]
    for key in reversed(keys):
        a.service.put(key, b"1")
    a.service.put("q", b"outside the prefix")
    got = pages(a.service, "p/", limit=3)
    assert [len(page) for page in got] == sizes
    assert sum(got, []) == keys


def test_a_cursor_survives_changes_between_pages(instance):
    a = instance()
    for key in "abcdef":
        a.service.put(key, b"1")
    first = a.service.list(limit=2)
    assert [i.key for i in first.items] == ["a", "b"]
    a.service.delete("b")  # the cursor's own key
    a.service.put("aa", b"1")  # before the cursor: not listed again
    a.service.put("bb", b"1")  # after it: listed
    rest = a.service.list(limit=10, cursor=first.cursor)
    assert [i.key for i in rest.items] == ["bb", "c", "d", "e", "f"] and rest.cursor is None


def test_list_items_carry_the_entry(instance):
    a = instance()
    version = a.service.put("k", b"abc", "text/plain", ttl_seconds=60).version
    (item,) = a.service.list().items
    assert (item.key, item.entry.version, item.entry.value, item.entry.expires_at_ms) == (
        "k", version, b"abc", int(WALL_START * 1000) + 60_000,
    )


@pytest.mark.parametrize("limit", [0, -1, 1001])
def test_invalid_limits(instance, limit):
    with pytest.raises(InvalidLimit) as raised:
        instance().service.list(limit=limit)
    assert (raised.value.status, raised.value.code) == (400, "invalid_limit")


def test_the_largest_limit_is_allowed(instance):
    assert instance(max_list_limit=5).service.list(limit=5).items == []


@pytest.mark.parametrize("cursor", ["a", "é", "_w", "@@@@", "!!!!!!!!", "YQ==="], ids=["length", "non-ascii", "not-utf8", "no-base64-chars", "punctuation", "over-padded"])
def test_invalid_cursors(instance, cursor):
    """A cursor this API never returned is a 400, never a silent restart from the first page (a
    client paging with it would loop forever)."""
    a = instance()
    a.service.put("k", b"1")
    with pytest.raises(InvalidCursor) as raised:
        a.service.list(cursor=cursor)
    assert (raised.value.status, raised.value.code) == (400, "invalid_cursor")


# ---- foreign records on the stream --------------------------------------------------------------


def test_foreign_records_on_the_stream_are_skipped(log, instance):
    a = instance(staleness_ms=0)
    a.service.put("k", b"1")
    log.append("k", b"\x00 not ours")
    log.append("j", b'{"hello": "world"}')
    b = instance()
    assert b.value("k") == b"1" and b.replica.records_skipped == 2
    assert a.service.put("k", b"2").kind is OutcomeKind.REPLACED
    assert b.value("k", strong=True) == b"2"
