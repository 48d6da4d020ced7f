#!/usr/bin/env python3
"""Stage the shared library into a function's build context, so ``fn build`` packages it.

``fn build`` builds the image from the function's own directory (the Docker build context) and runs
the ``build:`` commands of ``func.yaml`` there first. The stock Python image copies that directory to
``/function`` and sets ``PYTHONPATH=/function:/python``, so a copy of ``functions/streamcache`` at
``functions/<fn>/streamcache/`` is importable with no Dockerfile and no install step. The copy is
git-ignored and rebuilt on every build: ``functions/streamcache`` stays the only source.

A function gets only the rooms it runs: never the client or the command line, and not the other
function's room (:data:`LEFT_OUT`); the boundaries ``make check`` enforces make that safe.

    python3 infra/stage_function.py functions/cache functions/compactor
    python3 ../../infra/stage_function.py .          # what func.yaml's build: step runs

Standard library only: it runs on the developer's machine before the image exists.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "functions" / "streamcache"
PACKAGE = LIBRARY.name
#: Written into every staged copy: only a directory carrying it is ever deleted by a later staging.
MARKER = ".staged-copy"
MARKER_TEXT = "A build-time copy of functions/streamcache made by infra/stage_function.py. Edit the original.\n"
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", ".pytest_cache", ".mypy_cache")
#: Sub-packages of the library a function's image does not carry, by function directory name.
LEFT_OUT = {"cache": {"client", "cli", "compactor"}, "compactor": {"client", "cli", "cache"}}
DEFAULT_LEFT_OUT = {"client", "cli"}


class StagingError(Exception):
    """The target is not a function directory, or the copy there is not ours to replace."""


def stage(function_dir: Path, library: Path = LIBRARY) -> Path:
    """Copy ``library`` to ``function_dir/<package>/``, replacing an earlier staged copy. Returns the
    staged package directory. The new copy is complete before it takes the old one's place."""
    function_dir = function_dir.resolve()
    library = library.resolve()
    if not (function_dir / "func.py").is_file():
        raise StagingError(f"{function_dir} has no func.py: not a function directory")
    if not (library / "__init__.py").is_file():
        raise StagingError(f"{library} is not a Python package")
    target = function_dir / library.name
    if target == library or library in target.parents or target in library.parents:
        raise StagingError(f"refusing to stage {library} onto itself ({target})")
    if target.exists() and not (target / MARKER).is_file():
        raise StagingError(f"{target} exists and is not a staged copy (no {MARKER}); move it away first")
    scratch = Path(tempfile.mkdtemp(prefix=f".{library.name}-", dir=function_dir))
    try:
        fresh = scratch / library.name
        left_out = LEFT_OUT.get(function_dir.name, DEFAULT_LEFT_OUT)

        def skip(folder: str, names: list[str]) -> set[str]:
            ignored = set(_SKIP(folder, names))
            return ignored | (left_out & set(names)) if Path(folder) == library else ignored

        shutil.copytree(library, fresh, ignore=skip)
        (fresh / MARKER).write_text(MARKER_TEXT)
        if target.exists():
            shutil.rmtree(target)
        fresh.rename(target)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("function_dirs", nargs="+", type=Path, help="function directories (holding func.py)")
    args = parser.parse_args(argv)
    for function_dir in args.function_dirs:
        try:
            staged = stage(function_dir)
        except StagingError as exc:
            print(f"stage_function: {exc}", file=sys.stderr)
            return 1
        print(f"staged {LIBRARY} -> {staged}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
