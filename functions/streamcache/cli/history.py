"""``streamcache export`` and ``streamcache restore``: the table now or as it was, read from the snapshot
store and the stream (not through the cache's HTTP API; see :mod:`streamcache.replay.as_of`).

    streamcache export [--prefix P] [--as-of WHEN] [-o FILE]     JSON Lines in exactly the import format
    streamcache restore --as-of WHEN [--prefix P] [--yes]        make the live table what it was then
    streamcache restore --from-snapshot NAME [--prefix P] [--yes]   seed the stream with a snapshot's keys

``--from-snapshot`` seeds: it writes the snapshot's live keys that the stream does not hold (each
``If-None-Match: *``) and never deletes or replaces a key, so writes the stream took since it was
recreated stay. NAME may be a snapshot retired by ``streamcache snapshots --retire-other-log``.

``restore`` writes the differences as ordinary records through the stream, so every instance and
every change-feed subscriber sees them: deletes of keys created since, then puts of the values as they
were (content types and absolute expiries included). Each record is conditional on the version the
restore saw, so a write that lands meanwhile is never overwritten; the records carry the source
``<STREAMCACHE_EVENT_SOURCE>/restore``. Without ``--yes`` it only prints what it would do.

Both fold the table as every instance does, under the same quota (``STREAMCACHE_MAX_BYTES``): a put the
instances refused is not in an export, and ``restore`` reads its records back and counts every one
that did not do what it meant (a precondition that failed because the key changed meanwhile, a put
the quota refused, ...), by kind. Both find the stream and the snapshot store as ``compact`` does
(flags, environment, or a running ``streamcache dev``).

Exit status: 0 done (every key restored); 1 restore not confirmed (nothing written); 2 a usage error or
a moment that cannot be reached; 3 some restore records were refused (the summary on stderr says how
many of each kind and which keys; the others were written).
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections import defaultdict
from typing import BinaryIO

from streamcache.cli.snapshots import _fail, _settings, _store_flags

EXIT_OK, EXIT_NOT_CONFIRMED, EXIT_USAGE, EXIT_REFUSED = 0, 1, 2, 3
SHOWN_KEYS = 20  # keys of a restore plan listed one by one


def register(subparsers, url_parent: argparse.ArgumentParser) -> None:
    export = subparsers.add_parser("export", help="write the table (now, or --as-of a moment) as JSON Lines")
    _common(export)
    export.add_argument("--as-of", metavar="WHEN", help="a time (2026-11-26T09:00:00Z) or positions P-O[,P-O...]")
    export.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    export.set_defaults(run=lambda client, args: cmd_export(args), needs_url=False)

    restore = subparsers.add_parser("restore", help="make the live table (under --prefix) what it was --as-of a moment")
    _common(restore)
    source = restore.add_mutually_exclusive_group(required=True)
    source.add_argument("--as-of", metavar="WHEN", help="a time (2026-11-26T09:00:00Z) or positions P-O[,P-O...]")
    source.add_argument("--from-snapshot", metavar="NAME",
                        help="a snapshot's object name (also one retired under retired/): its live keys, as they are")
    restore.add_argument("--yes", action="store_true", help="write the changes (without it: only show them)")
    restore.set_defaults(run=lambda client, args: cmd_restore(args), needs_url=False)


def _common(parser: argparse.ArgumentParser) -> None:
    _store_flags(parser)
    parser.add_argument("--log-url", help="the stream (default $STREAMCACHE_LOG_URL), kafka://HOST:PORT/TOPIC")
    parser.add_argument("--prefix", default="", help="only keys starting with this")


def cmd_export(args, out: BinaryIO | None = None, clock=time.time) -> int:
    from streamcache import logs
    from streamcache.core.import_lines import export_line
    from streamcache.replay.as_of import Moment, parse_moment
    from streamcache.replay.progress import Progress

    logs.configure()
    try:
        settings = _settings(args, need_log=True)
        moment = parse_moment(args.as_of) if args.as_of else Moment()
        state = _open_and_load(settings, moment)
    except Exception as exc:  # settings, an unreachable moment, a store or stream that cannot be read
        return _fail("export", exc)
    at_ms = moment.time_ms if moment.time_ms is not None else int(clock() * 1000)
    progress = Progress("export")
    target = open(args.output, "wb") if args.output else (out or sys.stdout.buffer)
    count = 0
    try:
        for key, entry in state.table.scan(args.prefix, None, at_ms):
            value, content_type = _bytes_of(entry, settings)  # a big value's bytes, not its reference
            target.write(export_line(key, value, content_type, entry.expires_at_ms) + b"\n")
            count += 1
            if count % 10_000 == 0:
                progress.update(count)
    finally:
        if args.output:
            target.close()
        else:
            target.flush()
    progress.finish(f"{count:,} keys")
    print(f"streamcache export: {count:,} keys as of {moment.describe()} (from {state.snapshot or 'no snapshot'}"
          f" and {state.records_replayed:,} records)", file=sys.stderr)
    return EXIT_OK


def cmd_restore(args, clock=time.time) -> int:
    from streamcache import logs
    from streamcache.replay.as_of import Moment, parse_moment

    logs.configure()
    try:
        settings = _settings(args, need_log=True)
        moment = parse_moment(args.as_of) if args.as_of else None
        then = _open_and_load(settings, moment) if moment is not None else _load_named(settings, args.from_snapshot)
        now = _open_and_load(settings, Moment())
    except Exception as exc:
        return _fail("restore", exc)
    now_ms = int(clock() * 1000)
    then_ms = moment.time_ms if moment is not None and moment.time_ms is not None else now_ms
    plan = plan_changes(then.table, now.table, args.prefix, then_ms, now_ms)
    if moment is None:  # seeding: add what the stream lacks, never delete or replace what it holds
        plan = [(key, entry) for key, entry in plan if entry is not None and now.table.get(key, now_ms) is None]
    puts = [key for key, entry in plan if entry is not None]
    deletes = [key for key, entry in plan if entry is None]
    what = f"as of {moment.describe()}" if moment is not None else f"as snapshot {then.snapshot} holds it"
    print(f"restore under {args.prefix or '(every key)'!r} {what}: {len(puts):,} to write back, "
          f"{len(deletes):,} to delete")
    for key, entry in plan[:SHOWN_KEYS]:
        print(f"  {'put   ' if entry is not None else 'delete'} {key}")
    if len(plan) > SHOWN_KEYS:
        print(f"  ... and {len(plan) - SHOWN_KEYS:,} more")
    if not plan:
        return EXIT_OK
    if not args.yes:
        print("nothing written; run again with --yes to write these changes")
        return EXIT_NOT_CONFIRMED
    refused = _write(settings, now, plan, now_ms)
    if refused:
        _print_refused(refused, len(plan))
        return EXIT_REFUSED
    print(f"restored {len(plan):,} keys")
    return EXIT_OK


def _print_refused(refused: dict, planned: int) -> None:
    """The summary of a restore that did not write everything: how many keys of each kind, and which."""
    from streamcache.core.outcome import OutcomeKind

    labels = {
        OutcomeKind.PRECONDITION_FAILED: "changed while restoring and left as they are",
        OutcomeKind.QUOTA_EXCEEDED: "refused for the quota",
        None: "not found applied when read back",
    }
    total = sum(len(keys) for keys in refused.values())
    print(f"streamcache restore: {total:,} of {planned:,} keys were not restored (the others were):", file=sys.stderr)
    for kind, keys in sorted(refused.items(), key=lambda item: "~" if item[0] is None else item[0].value):
        more = f" and {len(keys) - SHOWN_KEYS:,} more" if len(keys) > SHOWN_KEYS else ""
        print(f"  {len(keys):,} {labels.get(kind, 'refused')} ({'not_applied' if kind is None else kind.value}): "
              f"{', '.join(keys[:SHOWN_KEYS])}{more}", file=sys.stderr)


def plan_changes(then, now, prefix: str, then_ms: int, now_ms: int) -> list:
    """``(key, entry then)`` for every key whose value, type or expiry differs; ``entry`` is ``None``
    for a key to delete. Values that would already have expired now are not written back."""
    wanted = {key: entry for key, entry in then.scan(prefix, None, then_ms)
              if entry.expires_at_ms is None or entry.expires_at_ms > now_ms}
    changes = []
    for key, entry in now.scan(prefix, None, now_ms):
        want = wanted.pop(key, None)
        if want is None:
            changes.append((key, None))
        elif (want.value, want.content_type, want.expires_at_ms) != (entry.value, entry.content_type, entry.expires_at_ms):
            changes.append((key, want))
    changes.extend(wanted.items())
    return sorted(changes, key=lambda change: change[0])


def _bytes_of(entry, settings) -> tuple[bytes, str]:
    """An entry's value and content type; a big value's fetched from the store (core/value_refs.py)."""
    from streamcache.core.value_refs import REF_CONTENT_TYPE, decode_ref

    if entry.content_type != REF_CONTENT_TYPE:
        return entry.value, entry.content_type
    ref = decode_ref(entry.value)
    store = settings.open_store()
    try:
        return store.get(ref.name), ref.content_type
    finally:
        store.close()


def _open_and_load(settings, moment):
    from streamcache.replay.as_of import table_as_of

    store, log = settings.open_store(), settings.open_log()
    try:
        return table_as_of(store, log, settings.stream_id, moment, settings.max_bytes)
    finally:
        store.close()
        log.close()


def _load_named(settings, name: str):
    """The table a snapshot object holds, verified against the checksum its name carries: any object
    of the store (a snapshot of this stream, or one retired under ``retired/``), with ``name`` or its
    last part (then looked for among this stream's snapshots). A delta is loaded with its chain,
    whose links lie beside it (retired together: cli/retire.py)."""
    from streamcache.core.snapshot import SnapshotCorrupt, newest_first, parse_name, stream_prefix
    from streamcache.replay.as_of import Moment, TableAsOf
    from streamcache.replay.chain import Unusable, load_snapshot

    if "/" not in name:
        name = stream_prefix(settings.stream_id) + name
    folder = name.rsplit("/", 1)[0] + "/"

    def canonical(object_name: str) -> str:  # the name's last part carries length, CRC-32 and parent
        return stream_prefix(settings.stream_id) + object_name.rsplit("/", 1)[1]

    store = settings.open_store()
    try:
        actual = {canonical(n): n for n in (store.list(folder) if parse_name(canonical(name)).is_delta else [name])}
        beside = _Beside(store, actual)
        try:
            got = load_snapshot(beside, canonical(name), newest_first(actual, settings.stream_id))
        except Unusable as exc:
            raise SnapshotCorrupt(f"{exc.culprit}: {exc.detail}") from exc
    finally:
        store.close()
    return TableAsOf(got.table, Moment(), name, got.table.next_offsets(), 0)


class _Beside:
    """A store read under the canonical names of objects that lie in another folder (``retired/``)."""

    def __init__(self, store, actual: dict[str, str]) -> None:
        self.store, self.actual = store, actual

    def get(self, name: str) -> bytes:
        return self.store.get(self.actual.get(name, name))


def _write(settings, now, plan, now_ms: int) -> dict:
    """Append the plan's records, each conditional on what the restore saw, then read them back
    (applying them to the table as every instance does, quota included) and return the keys whose
    record did not do what it meant, by :class:`~streamcache.core.outcome.OutcomeKind` (``None``: not
    found applied when read back)."""
    from streamcache.core import records
    from streamcache.core.records import IF_ABSENT, if_match
    from streamcache.core.table import OutcomeKind
    from streamcache.replay.fold import replay

    # Deletes first: the quota is per partition and decided in log order, so the space that deleting
    # keys created since the moment frees is there for the puts that follow in the same partition
    # (written the other way round, a put could be refused for room its own restore was about to
    # free). Deletes are never refused for the quota, so this order restores all that can be.
    ordered = [change for change in plan if change[1] is None] + [change for change in plan if change[1] is not None]
    source = settings.event_source.rstrip("/") + "/restore"
    batch, requests = [], []
    for key, entry in ordered:
        current = now.table.get(key, now_ms)
        request_id = f"restore-{uuid.uuid4().hex}"
        precondition = IF_ABSENT if current is None else if_match(current.version)
        if entry is None:
            mutation: records.Mutation = records.Delete(key, request_id, now_ms, precondition)
            meant = {OutcomeKind.DELETED}
        else:
            mutation = records.Put(key, entry.value, entry.content_type, request_id, now_ms, entry.expires_at_ms,
                                   precondition)
            meant = {OutcomeKind.CREATED, OutcomeKind.REPLACED}
        batch.append((key, records.encode(mutation, source, settings.max_record_bytes)))
        requests.append((key, request_id, meant))
    log = settings.open_log()
    try:
        positions = log.append_many(batch)
        applied = now.table.next_offsets()
        start = {p: applied.get(p, 0) for p in range(log.partitions)}
        end: dict[int, int] = {}
        for position in positions:  # up to our last record in each partition, others' records included
            end[position.partition] = max(end.get(position.partition, 0), position.offset + 1)
        replay(now.table, log, start, end)
    finally:
        log.close()
    refused: dict[OutcomeKind | None, list[str]] = defaultdict(list)
    for (key, request_id, meant), position in zip(requests, positions):
        outcome = now.table.outcome_for(position.partition, request_id)
        if outcome is None or outcome.kind not in meant:
            refused[None if outcome is None else outcome.kind].append(key)
    return {kind: sorted(keys) for kind, keys in refused.items()}
