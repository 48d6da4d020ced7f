"""``streamcache compact`` and ``streamcache snapshots``: the compactor and the snapshot store by hand.

Both read the function settings from the environment (``STREAMCACHE_LOG_URL``,
``STREAMCACHE_SNAPSHOT_URL``, ``STREAMCACHE_STREAM_ID``, ``STREAMCACHE_OCI_*``...), as the functions
do; flags override them. They run in this process, against the log and the store directly.

    streamcache compact [--log-url URL] [--snapshot-url URL] [--stream-id ID] [--keep N] [--json]
    streamcache snapshots [NAME] [--snapshot-url URL] [--stream-id ID] [--json] [--acknowledge-data-loss]
    streamcache snapshots --retire-other-log [--yes]      (see cli/retire.py)

Exit status of ``compact``: 0 done (a snapshot written, or nothing new to fold); 2 a usage or settings
error, or the stream or the store cannot be reached; 3 refused (the snapshots are ahead of the log:
the stream was recreated); 4 done, but this run found data loss (retention dropped records no
snapshot covered). ``snapshots``: 0 ok; 1 NAME does not exist or does not verify, or snapshots to
retire were shown without ``--yes``; 2 as above.
"""

from __future__ import annotations

import argparse
import os
import sys

import orjson

EXIT_OK, EXIT_BAD_OBJECT, EXIT_USAGE, EXIT_REFUSED, EXIT_DATA_LOSS = 0, 1, 2, 3, 4


def register(subparsers, url_parent: argparse.ArgumentParser) -> None:
    """Add ``compact`` and ``snapshots`` to the ``streamcache`` command (``url_parent`` is unused:
    neither command talks to a cache over HTTP)."""
    compact = subparsers.add_parser("compact", help="run one compaction: fold the stream's tail into a new snapshot")
    _store_flags(compact)
    compact.add_argument("--log-url", help="the stream (default $STREAMCACHE_LOG_URL), kafka://HOST:PORT/TOPIC")
    compact.add_argument("--keep", type=_positive, help="snapshots to keep (default $STREAMCACHE_SNAPSHOTS_KEEP or 3)")
    compact.add_argument("--json", action="store_true", help="print the summary as JSON")
    compact.set_defaults(run=lambda client, args: cmd_compact(args), needs_url=False)

    snapshots = subparsers.add_parser("snapshots", help="list snapshots, or show and verify one")
    snapshots.add_argument("name", nargs="?", help="a snapshot's object name (or its last part): show and verify it")
    _store_flags(snapshots)
    snapshots.add_argument("--log-url", help="the stream whose topic is the default stream id (default $STREAMCACHE_LOG_URL)")
    snapshots.add_argument("--json", action="store_true", help="print JSON")
    snapshots.add_argument("--acknowledge-data-loss", action="store_true",
                           help="show the data-loss records, then delete them: cold starts stop reporting degraded")
    snapshots.add_argument("--retire-other-log", action="store_true",
                           help="move the snapshots that belong to another log (a recreated stream) under retired/; "
                                "shows them unless --yes")
    snapshots.add_argument("--yes", action="store_true", help="with --retire-other-log: move them")
    snapshots.set_defaults(run=lambda client, args: cmd_snapshots(args), needs_url=False)


def _store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--snapshot-url", help="where snapshots live (default $STREAMCACHE_SNAPSHOT_URL): "
                                               "oci://BUCKET@NAMESPACE/PREFIX, file:///DIR or a path")
    parser.add_argument("--stream-id", help="the stream's identity (default $STREAMCACHE_STREAM_ID, else the log's topic)")


def _positive(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def _settings(args, need_log: bool):
    from streamcache.core.errors import ConfigError
    from streamcache.settings import PREFIX, Settings

    env = {k: v for k, v in os.environ.items() if k.startswith(PREFIX)}
    flags = {"LOG_URL": args.log_url, "SNAPSHOT_URL": args.snapshot_url, "STREAM_ID": args.stream_id,
             "SNAPSHOTS_KEEP": getattr(args, "keep", None)}
    env.update({PREFIX + name: str(value) for name, value in flags.items() if value is not None})
    _from_running_dev(env, getattr(args, "url", None))
    if not need_log and not env.get(PREFIX + "LOG_URL") and env.get(PREFIX + "STREAM_ID"):
        env[PREFIX + "LOG_URL"] = "memory://unused"  # listing reads no log; Settings wants one
    settings = Settings.from_env(env)
    if not settings.snapshot_url:
        raise ConfigError(["no snapshot store: set STREAMCACHE_SNAPSHOT_URL or --snapshot-url"])
    return settings


#: What names one stream's snapshots; all of it comes from one place, or a compaction lands beside them.
_WHICH = ("LOG_URL", "SNAPSHOT_URL", "STREAM_ID")


def _from_running_dev(env: dict[str, str], cache_url: str | None) -> None:
    """Fill in what the flags and environment left out from the ``streamcache dev`` answering at
    ``--url`` (as ``watch`` finds it), but only for that very stack: with no stream named at all, or
    with its own log. Anything else is left as given (and reported by the settings if incomplete)."""
    from streamcache.cli.watch import WatchError, fetch_stack
    from streamcache.settings import PREFIX

    missing = [name for name in _WHICH if not env.get(PREFIX + name)]
    if not missing:
        return
    url = cache_url or os.environ.get("STREAMCACHE_URL") or "http://127.0.0.1:8080"
    try:
        stack = fetch_stack(url, timeout_s=1.0)
    except WatchError:
        return  # no dev stack there: the settings say what is missing
    given_log = env.get(PREFIX + "LOG_URL")
    if given_log and given_log != stack.get("log_url"):
        return  # another stream than the running stack's: its stream id and store are not ours to lend
    found = {"LOG_URL": stack.get("log_url"), "SNAPSHOT_URL": stack.get("snapshot_url"),
             "STREAM_ID": stack.get("stream_id")}
    for name in missing:
        if isinstance(found[name], str) and found[name]:
            env[PREFIX + name] = found[name]


def _fail(command: str, exc: BaseException) -> int:
    print(f"streamcache {command}: {exc}".replace("\n", "\n  "), file=sys.stderr)
    return EXIT_USAGE


# ---- compact ---------------------------------------------------------------------------------------


def cmd_compact(args) -> int:
    from streamcache import logs
    from streamcache.compactor.compaction import CompactionOutcome, compact
    from streamcache.core.snapshot_chain import ChainPolicy
    from streamcache.core.errors import ConfigError, LogUnavailable
    from streamcache.ports import SnapshotStoreError
    from streamcache.replay.progress import Progress

    logs.configure()
    store = mutation_log = None
    try:
        settings = _settings(args, need_log=True)
        store, mutation_log = settings.open_store(), settings.open_log()
        summary = compact(mutation_log, store, settings.stream_id, settings.retention(),
                          progress=Progress("compaction"), max_bytes=settings.max_bytes,
                          chain=ChainPolicy(settings.snapshot_max_deltas, settings.snapshot_delta_percent / 100))
    except (ConfigError, LogUnavailable, SnapshotStoreError) as exc:
        return _fail("compact", exc)
    finally:
        for resource in (store, mutation_log):
            if resource is not None:
                resource.close()
    if args.json:
        print(orjson.dumps(summary.to_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        print(_describe_summary(summary))
    if summary.outcome is CompactionOutcome.REFUSED:
        print(f"streamcache compact: {summary.problem}", file=sys.stderr)
        return EXIT_REFUSED
    if summary.data_loss is not None:
        print(f"streamcache compact: {summary.data_loss.describe()}", file=sys.stderr)
        return EXIT_DATA_LOSS
    return EXIT_OK


def _describe_summary(summary) -> str:
    lines = [f"{summary.outcome}: {summary.object or '(no new snapshot)'}"]
    if summary.object:
        kind = (f"a delta, link {len(summary.chain)} of its chain" if summary.kind == "delta"
                else f"a full image ({summary.full_image_reason})")
        lines.append(f"  {summary.entries:,} entries, {summary.bytes:,} bytes: {kind}")
    lines.append(f"  folded {summary.records_folded:,} records ({summary.records_skipped:,} not ours) "
                 f"from {summary.base_snapshot or 'an empty table'} in {summary.duration_ms:,.0f} ms")
    lines.append(f"  positions {_positions(summary.positions_before)} -> {_positions(summary.positions_after)}")
    for skipped in summary.skipped_snapshots:
        lines.append(f"  skipped {skipped.name}: {skipped.reason}: {skipped.detail}")
    for name in summary.pruned:
        lines.append(f"  pruned {name}")
    if summary.prune_error:
        lines.append(f"  pruning failed (the next run retries): {summary.prune_error}")
    for name in summary.unacknowledged_losses:
        lines.append(f"  UNACKNOWLEDGED DATA LOSS: {name}")
    return "\n".join(lines)


# ---- snapshots -------------------------------------------------------------------------------------


def cmd_snapshots(args) -> int:
    from streamcache import logs
    from streamcache.core.errors import ConfigError, LogUnavailable
    from streamcache.ports import SnapshotStoreError
    from streamcache.replay.catalog import list_catalog

    logs.configure()
    store = None
    try:
        settings = _settings(args, need_log=args.retire_other_log)
        store = settings.open_store()
        if args.retire_other_log:
            return _retire(store, settings, args.yes)
        if args.name:
            return _show(store, settings.stream_id, args.name, args.json)
        catalog = list_catalog(store, settings.stream_id)
        if args.acknowledge_data_loss:
            return _acknowledge(store, catalog)
        return _list(store, catalog, args.json)
    except (ConfigError, SnapshotStoreError, LogUnavailable) as exc:
        return _fail("snapshots", exc)
    finally:
        if store is not None:
            store.close()


def _retire(store, settings, yes: bool) -> int:
    from streamcache.cli.retire import retire_other_log

    log = settings.open_log()
    try:
        return retire_other_log(store, log, settings.stream_id, yes)
    finally:
        log.close()


def _list(store, catalog, as_json: bool) -> int:
    from streamcache.core.snapshot import SnapshotError
    from streamcache.replay.progress import Progress
    from streamcache.replay.catalog import read_header, read_losses
    from streamcache.ports import SnapshotNotFound

    progress = Progress("snapshots", len(catalog.snapshots), every_records=1)
    rows = []
    for number, name in enumerate(catalog.snapshots, 1):
        progress.phase(f"reading the header of {number}/{len(catalog.snapshots)}: {name}")
        try:
            header, size = read_header(store, name)  # the first 64 KiB, not the whole object
        except SnapshotNotFound:
            continue  # pruned meanwhile
        except SnapshotError as exc:
            rows.append({"name": name, "bytes": None, "problem": str(exc)})
            continue
        rows.append({"name": name, "bytes": size, "positions": header.to_json()["next_offsets"],
                     "as_of": _time(header.as_of_ms), "entries": header.entries,
                     "kind": "full" if header.parent is None else "delta", "parent": header.parent})
    if catalog.snapshots:
        progress.finish(f"{len(rows)} snapshots")
    losses = read_losses(store, catalog)
    if as_json:
        print(orjson.dumps({"stream": catalog.stream, "snapshots": rows,
                            "data_loss_records": {name: r.to_json() for name, r in losses.items()}},
                           option=orjson.OPT_INDENT_2).decode())
        return EXIT_OK
    print("NAME\tPOSITIONS\tAS_OF\tENTRIES\tBYTES\tKIND")  # a delta's entries: its chain's, at its end
    for row in rows:
        if "problem" in row:
            print(f"{row['name']}\t-\t-\t-\t-\t-\t({row['problem']})")
        else:
            positions = ",".join(f"{p}:{o}" for p, o in row["positions"].items())
            print(f"{row['name']}\t{positions}\t{row['as_of']}\t{row['entries']}\t{row['bytes']}\t{row['kind']}")
    for name, loss in losses.items():
        print(f"DATA LOSS RECORD {name}: {loss.describe()}", file=sys.stderr)
    return EXIT_OK


def _show(store, stream: str, name: str, as_json: bool) -> int:
    from streamcache.core.snapshot import SnapshotError, decode_header, decode_snapshot, stream_prefix
    from streamcache.replay.progress import Progress
    from streamcache.ports import SnapshotNotFound

    if "/" not in name:
        name = stream_prefix(stream) + name
    progress = Progress("snapshot", every_records=1)
    progress.phase(f"downloading {name}")
    try:
        data = store.get(name)
    except SnapshotNotFound:
        progress.finish("not found")
        print(f"streamcache snapshots: no object {name!r}", file=sys.stderr)
        return EXIT_BAD_OBJECT
    progress.phase(f"verifying {len(data):,} bytes")
    shown: dict = {"name": name, "bytes": len(data)}
    try:
        shown["header"] = decode_header(data).to_json()
        shown["header"]["as_of"] = _time(shown["header"]["as_of_ms"])
        if shown["header"].get("kind") == "delta":
            from streamcache.core.snapshot_chain import chain_of
            from streamcache.core.snapshot_delta import delta_header
            from streamcache.replay.catalog import list_catalog

            delta_header(data, name)  # the whole object: checksum, schema, its links
            shown["chain"] = chain_of(name, list_catalog(store, stream).snapshots)  # None: a link is missing
        else:
            decode_snapshot(data, name).table.close()  # the whole object: checksum and contents
        shown["valid"] = True
    except SnapshotError as exc:
        shown.update(valid=False, problem=str(exc))
    progress.finish("valid" if shown["valid"] else "INVALID")
    print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())  # the header is JSON either way
    return EXIT_OK if shown["valid"] else EXIT_BAD_OBJECT


def _acknowledge(store, catalog) -> int:
    from streamcache.replay.catalog import read_losses

    losses = read_losses(store, catalog)
    if not losses:
        print(f"no data-loss records for stream {catalog.stream!r}")
        return EXIT_OK
    for name, loss in losses.items():
        print(f"acknowledged and deleted {name}: {loss.describe()}")
        store.delete(name)
    return EXIT_OK


def _positions(positions: dict[int, int]) -> str:
    return "{" + ", ".join(f"{p}: {o}" for p, o in sorted(positions.items())) + "}"


def _time(ms: int) -> str:
    from streamcache.core.records import format_time

    return format_time(ms)
