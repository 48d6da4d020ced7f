"""A snapshot store in a local directory (``file:///path`` or a plain path): ``streamcache dev`` keeps
its snapshots here so that stopping and starting it keeps the data.

Object ``a/b/c.snap`` is the file ``<root>/a/b/c.snap``. A write goes to a temporary file beside
its target (``.tmp-*``, never listed), is fsynced, then hard-linked to its name (``link`` fails if
the name exists, which is what makes writes create-only, even between processes), and the directory
is fsynced so that the name survives a power cut. A writer killed half-way leaves at most a
``.tmp-*`` file, never a partial object. Needs a file system with hard links (any local one).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from streamcache.ports import (
    DEFAULT_CHUNK_BYTES,
    InvalidSnapshotName,
    SnapshotExists,
    SnapshotNotFound,
    SnapshotStoreUnavailable,
    check_name,
)

_TEMP_PREFIX = ".tmp-"


class DirectoryStore:
    """Snapshot objects as files under ``root`` (created on the first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*check_name(name).split("/"))

    def put_new(self, name: str, data: bytes) -> None:
        path = self._path(name)
        try:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError) as exc:
                raise InvalidSnapshotName(f"{name!r}: a file stands where this store needs a folder") from exc
            fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=path.parent)
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                try:
                    os.link(temp, path)
                except FileExistsError:
                    if path.is_file() and path.read_bytes() == data:
                        return  # our own earlier attempt, or an identical twin: nothing to do
                    raise SnapshotExists(f"snapshot store {self.root}: {name!r} already exists") from None
            finally:
                os.unlink(temp)
            _fsync_directory(path.parent)
        except OSError as exc:
            raise self._unavailable("write", name, exc) from exc

    def get(self, name: str) -> bytes:
        path = self._path(name)
        try:
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise SnapshotNotFound(f"snapshot store {self.root}: no object {name!r}") from None
        except OSError as exc:
            raise self._unavailable("read", name, exc) from exc

    def open_stream(self, name: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
        path = self._path(name)
        try:
            file = path.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise SnapshotNotFound(f"snapshot store {self.root}: no object {name!r}") from None
        except OSError as exc:
            raise self._unavailable("read", name, exc) from exc
        return self._chunks(file, name, chunk_bytes)

    def _chunks(self, file: BinaryIO, name: str, chunk_bytes: int) -> Iterator[bytes]:
        with file:
            while True:
                try:
                    chunk = file.read(chunk_bytes)
                except OSError as exc:
                    raise self._unavailable("read", name, exc) from exc
                if not chunk:
                    return
                yield chunk

    def read_into(self, name: str, buffer: memoryview, offset: int = 0) -> int:
        path = self._path(name)
        try:
            with path.open("rb", buffering=0) as file:
                size = os.fstat(file.fileno()).st_size
                file.seek(offset)
                filled, want = 0, max(0, min(len(buffer), size - offset))
                while filled < want:
                    got = file.readinto(buffer[filled:want])
                    if not got:
                        break  # shrunk while read: cannot happen to an immutable object, but never loop
                    filled += got
                return size
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise SnapshotNotFound(f"snapshot store {self.root}: no object {name!r}") from None
        except OSError as exc:
            raise self._unavailable("read", name, exc) from exc

    def list(self, prefix: str = "") -> list[str]:
        folder = prefix.rpartition("/")[0]
        if folder:
            try:
                check_name(folder)
            except InvalidSnapshotName:
                return []  # no valid name starts with this prefix (and it must not escape root)
        top = self.root.joinpath(*folder.split("/")) if folder else self.root
        names: list[str] = []
        try:
            if not top.is_dir():
                return []
            for directory, subdirectories, files in os.walk(top, onerror=_raise_unless_gone):
                subdirectories[:] = [d for d in subdirectories if not d.startswith(".")]
                relative = Path(directory).relative_to(self.root).as_posix()
                base = "" if relative == "." else relative + "/"
                names.extend(base + f for f in files if not f.startswith("."))
        except OSError as exc:
            raise self._unavailable("list", prefix, exc) from exc
        return sorted(name for name in names if name.startswith(prefix))

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            try:
                path.unlink()
            except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
                return
            _fsync_directory(path.parent)
        except OSError as exc:
            raise self._unavailable("delete", name, exc) from exc

    def close(self) -> None:
        pass

    def _unavailable(self, action: str, name: str, exc: OSError) -> SnapshotStoreUnavailable:
        return SnapshotStoreUnavailable(f"snapshot store {self.root}: cannot {action} {name!r}: {exc}")

    def __repr__(self) -> str:
        return f"DirectoryStore({str(self.root)!r})"


def _fsync_directory(path: Path) -> None:
    if not hasattr(os, "O_DIRECTORY"):  # Windows: directories cannot be opened, renames are durable
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _raise_unless_gone(exc: OSError) -> None:
    if not isinstance(exc, FileNotFoundError):  # a folder removed while listing has nothing to list
        raise exc
