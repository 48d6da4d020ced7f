"""``streamcache snapshots --retire-other-log``: move away the snapshots that belong to another log.

When the stream was recreated (or a local broker lost its records), the snapshots under the stream's
identity describe a log that is gone: cold starts do not load them (``snapshot_ahead_of_log``) and the
compactor refuses to fold the new log onto them. What to do with them is the operator's choice:

- start from the new log alone: retire them (this command), and the next compaction writes the first
  snapshot of the new log;
- or also seed the new log from one of them: retire them, then ``streamcache restore --from-snapshot
  NAME --yes`` writes that table back as ordinary records (see docs/history.md).

Each snapshot's header (its first pages) is checked against the log (:mod:`streamcache.replay.identity`);
only snapshots whose last records the log proves gone or different are moved (with any delta whose
chain needs one of them: core/snapshot_chain.py), to
``retired/<stream>/<retired at, ms>/<name>`` in the same store (copied, then deleted), where they stay
until an operator deletes them. Snapshots of this log, and ones that cannot be checked, stay.
"""

from __future__ import annotations

import sys
import time
from urllib.parse import quote

from streamcache.ports import MutationLog, SnapshotNotFound, SnapshotStore

EXIT_OK, EXIT_NOT_CONFIRMED = 0, 1


def retired_prefix(stream: str, at_ms: int) -> str:
    return f"retired/{quote(stream, safe='')}/{at_ms:016x}/"


def retire_other_log(store: SnapshotStore, log: MutationLog, stream: str, yes: bool, clock=time.time) -> int:
    from streamcache.core.snapshot import SnapshotError
    from streamcache.replay.catalog import list_catalog, read_header
    from streamcache.replay.identity import check_header

    catalog = list_catalog(store, stream)
    bounds = log.bounds()
    other: list[tuple[str, str]] = []
    for name in catalog.snapshots:
        try:
            header, _ = read_header(store, name)
        except (SnapshotError, SnapshotNotFound) as exc:
            print(f"  kept {name}: cannot be checked ({exc})")
            continue
        check = check_header(log, header, bounds)
        if check.other_log:
            other.append((name, check.describe()))
        else:
            print(f"  kept {name}: of this log")
    from streamcache.core.snapshot_chain import chain_of

    moving = {name for name, _ in other}
    for name in catalog.snapshots:  # a delta needs every link of its chain: it goes where they go
        links = chain_of(name, catalog.snapshots) or []
        if name not in moving and any(link in moving for link in links):
            other.append((name, "a link of its chain belongs to another log"))
            moving.add(name)
    other.sort(key=lambda item: catalog.snapshots.index(item[0]))  # newest first: a delta before its links
    if not other:
        print(f"no snapshot of stream {stream!r} belongs to another log: nothing to retire")
        return EXIT_OK
    target = retired_prefix(stream, int(clock() * 1000))
    for name, why in other:
        print(f"  retire {name}: {why}")
    if not yes:
        print(f"nothing moved; run again with --yes to move these {len(other)} snapshots under {target}")
        return EXIT_NOT_CONFIRMED
    for name, _ in other:
        store.put_new(target + name.rsplit("/", 1)[1], store.get(name))
        store.delete(name)
    print(f"retired {len(other)} snapshots under {target}; the next compaction starts from this log", file=sys.stderr)
    return EXIT_OK
