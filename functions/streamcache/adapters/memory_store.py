"""An in-process snapshot store: the fast stand-in for Object Storage in core and scenario tests.

Stores are shared by name inside one process (``memory://NAME``), like :class:`MemoryLog`, so a
compactor and a cache instance in one test see the same snapshots.
"""

from __future__ import annotations

import threading
from typing import ClassVar, Iterator

from streamcache.ports import DEFAULT_CHUNK_BYTES, SnapshotExists, SnapshotNotFound, SnapshotStoreUnavailable, check_name


class MemoryStore:
    """A thread-safe dict of immutable objects. Set ``available = False`` to simulate an outage."""

    _registry: ClassVar[dict[str, "MemoryStore"]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self.available = True

    @classmethod
    def named(cls, name: str) -> "MemoryStore":
        """The process-wide store called ``name``, created on first use."""
        with cls._registry_lock:
            store = cls._registry.get(name)
            if store is None:
                store = cls._registry[name] = cls()
            return store

    @classmethod
    def forget(cls, name: str) -> None:
        with cls._registry_lock:
            cls._registry.pop(name, None)

    def _check(self) -> None:
        if not self.available:
            raise SnapshotStoreUnavailable("the in-memory snapshot store is marked unavailable")

    def put_new(self, name: str, data: bytes) -> None:
        check_name(name)
        self._check()
        data = bytes(data)
        with self._lock:
            current = self._objects.get(name)
            if current is None:
                self._objects[name] = data
            elif current != data:
                raise SnapshotExists(f"snapshot store: {name!r} already exists")

    def get(self, name: str) -> bytes:
        check_name(name)
        self._check()
        with self._lock:
            data = self._objects.get(name)
        if data is None:
            raise SnapshotNotFound(f"snapshot store: no object {name!r}")
        return data

    def open_stream(self, name: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
        data = self.get(name)
        return (data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes))

    def read_into(self, name: str, buffer: memoryview, offset: int = 0) -> int:
        data = self.get(name)
        part = memoryview(data)[offset : offset + len(buffer)]
        buffer[: len(part)] = part
        return len(data)

    def list(self, prefix: str = "") -> list[str]:
        self._check()
        with self._lock:
            return sorted(name for name in self._objects if name.startswith(prefix))

    def delete(self, name: str) -> None:
        check_name(name)
        self._check()
        with self._lock:
            self._objects.pop(name, None)

    def close(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._objects)} objects)"
