"""The directory store beyond the shared contract: crash safety, durability steps, and the URL forms
that ``open_snapshot_store`` accepts."""

from __future__ import annotations

import errno
import os

import pytest

from streamcache.adapters.directory_store import DirectoryStore
from streamcache.adapters.memory_store import MemoryStore
from streamcache.adapters.urls import open_snapshot_store
from streamcache.core.errors import ConfigError
from streamcache.ports import InvalidSnapshotName, SnapshotNotFound, SnapshotStoreUnavailable


def test_objects_are_plain_files_under_the_root(tmp_path):
    store = DirectoryStore(tmp_path / "data")
    store.put_new("snapshots/orders/1.snap", b"bytes")
    assert (tmp_path / "data" / "snapshots" / "orders" / "1.snap").read_bytes() == b"bytes"


def test_a_writer_that_fails_before_publishing_leaves_nothing_visible(tmp_path, monkeypatch):
    store = DirectoryStore(tmp_path)

    def broken_link(source, target):
        raise OSError(errno.EIO, "simulated I/O error")

    monkeypatch.setattr(os, "link", broken_link)
    with pytest.raises(SnapshotStoreUnavailable, match="simulated I/O error"):
        store.put_new("snapshots/s/1.snap", b"data")
    monkeypatch.undo()

    assert store.list() == []
    with pytest.raises(SnapshotNotFound):
        store.get("snapshots/s/1.snap")
    assert os.listdir(tmp_path / "snapshots" / "s") == []  # the temporary file was removed too
    store.put_new("snapshots/s/1.snap", b"data")  # and the name is still free
    assert store.get("snapshots/s/1.snap") == b"data"


def test_leftovers_of_a_killed_writer_are_never_listed_or_read(tmp_path):
    store = DirectoryStore(tmp_path)
    store.put_new("snapshots/s/1.snap", b"complete")
    (tmp_path / "snapshots" / "s" / ".tmp-abc123").write_bytes(b"half a snap")
    (tmp_path / ".tmp-root").write_bytes(b"x")
    assert store.list() == ["snapshots/s/1.snap"]


def test_the_file_and_its_directory_entry_are_fsynced_before_put_new_returns(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        synced.append(os.path.realpath(f"/proc/self/fd/{fd}") if os.path.exists("/proc/self/fd") else fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    DirectoryStore(tmp_path).put_new("snapshots/s/1.snap", b"data")

    folder = str((tmp_path / "snapshots" / "s").resolve())
    assert len(synced) == 2
    assert os.path.dirname(synced[0]) == folder and os.path.basename(synced[0]).startswith(".tmp-")
    assert synced[1] == folder


def test_a_file_where_a_folder_is_needed_is_an_invalid_name(tmp_path):
    store = DirectoryStore(tmp_path)
    store.put_new("a", b"file")
    with pytest.raises(InvalidSnapshotName):
        store.put_new("a/b", b"x")
    with pytest.raises(SnapshotNotFound):
        store.get("a/b")
    store.delete("a/b")
    assert store.list() == ["a"]


def test_a_missing_root_is_an_empty_store(tmp_path):
    store = DirectoryStore(tmp_path / "not" / "yet")
    assert store.list() == []
    with pytest.raises(SnapshotNotFound):
        store.get("x")
    store.delete("x")


@pytest.mark.parametrize("form", ["plain", "file-absolute", "file-localhost"])
def test_paths_and_file_urls_open_a_directory_store(tmp_path, form):
    root = tmp_path / "with space"
    url = {
        "plain": str(root),
        "file-absolute": root.as_uri(),
        "file-localhost": "file://localhost" + root.as_uri().removeprefix("file://"),
    }[form]
    store = open_snapshot_store(url)
    store.put_new("x.snap", b"1")
    assert (root / "x.snap").read_bytes() == b"1"


def test_memory_urls_share_a_store_by_name():
    first, second = open_snapshot_store("memory://shared-by-name"), open_snapshot_store("memory://shared-by-name")
    assert isinstance(first, MemoryStore) and first is second
    assert open_snapshot_store("memory://another") is not first
    MemoryStore.forget("shared-by-name")
    MemoryStore.forget("another")


@pytest.mark.parametrize("url", ["", "s3://bucket/prefix", "memory://", "file://otherhost/path", "oci://nobucket"])
def test_unusable_urls_are_config_errors(url):
    with pytest.raises(ConfigError):
        open_snapshot_store(url)
