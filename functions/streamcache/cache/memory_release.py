"""Handing the memory a restore freed back to the system, so that the instance holds its table and little else.

A restore allocates and frees far more than it keeps: the log's tail read (kafka-python's fetch
buffers, the records parsed from them, the records decoded), the snapshot's header read ahead, the
probe consumer of the identity check. Python gives that memory back to the C allocator, but glibc's
``malloc`` keeps freed memory in its arenas (one per thread that allocated: the restore runs in two)
for reuse, and ``free`` returns it to the system only when it sits at the top of the main heap. So
the resident memory after a cold start is the table plus what the restore once held at its peak.

``malloc_trim(0)`` walks every arena and gives back the free pages (``madvise``): called once after
a restore, the instance's resident memory is what it actually holds. Where the C library has no
``malloc_trim`` (musl, macOS), :func:`trim_malloc` does nothing and says so. Behaviour is unchanged
either way: only pages no allocation uses are returned.

What trimming cannot return is memory still in use here and there in each arena. glibc gives every
thread that allocates an arena of its own (up to eight per core), and an instance runs several (the
FDK's, kafka-python's I/O threads, the restore and its tail reader): each keeps a few MB of scattered
live allocations after a restore. :func:`limit_malloc_arenas` (``mallopt(M_ARENA_MAX, 1)``, what
``MALLOC_ARENA_MAX=1`` does) makes threads share the main arena: 5 MB less resident at 1M keys after
a cold start (issue 24). The cost, contention on one arena's lock, is small where the GIL already
lets one thread at a time run Python.
"""

from __future__ import annotations

import ctypes
from typing import Callable


def _find_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` from the process's own symbols, or ``None`` where there is none."""
    try:
        libc = ctypes.CDLL(None)  # the C library the interpreter runs on, whichever it is
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


#: ``malloc_trim`` where the C library has it (glibc), else ``None``. A module value so that tests
#: can watch the call.
MALLOC_TRIM: Callable[[int], int] | None = _find_trim()


def trim_malloc() -> bool:
    """Return the C allocator's free pages to the system (see the module docstring). ``ctypes``
    releases the GIL during the call, so requests served meanwhile are not held up. True if the C
    library has ``malloc_trim`` (whether or not it found pages to return)."""
    trim = MALLOC_TRIM
    if trim is None:
        return False
    trim(0)
    return True


#: glibc's ``M_ARENA_MAX`` parameter of ``mallopt`` (malloc.h).
M_ARENA_MAX = -8


def _find_mallopt() -> Callable[[int, int], int] | None:
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


#: ``mallopt`` where the C library has it (glibc), else ``None``.
MALLOPT: Callable[[int, int], int] | None = _find_mallopt()


def limit_malloc_arenas(arenas: int = 1) -> bool:
    """Let at most ``arenas`` malloc arenas be created from now on (see the module docstring); call it
    before threads start. True if the C library took the setting."""
    mallopt = MALLOPT
    return mallopt is not None and mallopt(M_ARENA_MAX, arenas) == 1
