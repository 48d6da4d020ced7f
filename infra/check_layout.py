#!/usr/bin/env python3
"""The layout rules import-linter cannot state, checked by ``make check``.

- no import cycle between any two modules of ``streamcache`` or ``streamcache_local`` (lazy imports
  inside functions count: a cycle that only works because of import order is still a cycle);
- no module over :data:`MAX_LINES` lines under ``functions/`` and ``infra/local/``;
- at most :data:`MAX_TOP_MODULES` modules directly in ``functions/streamcache/`` (the rest live in
  the rooms: core, adapters, replay, cache, compactor, client, cli).

Prints every problem and exits 1 if there is any.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400
MAX_TOP_MODULES = 8
#: The one allowed circle: the package's top re-exports the client lazily (PEP 562) and the client
#: reads the package's version. Neither runs at import time; the functions never touch it.
ALLOWED_EDGES = {("streamcache", "streamcache.client")}


def cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    edges = {m: sorted(i for i in graph.find_modules_directly_imported_by(m) if (m, i) not in ALLOWED_EDGES)
             for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = edges.get(node, [])
            if i < len(children):
                work.append((node, i + 1))
                child = children[i]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            for child in children:
                if child in on_stack:
                    low[node] = min(low[node], low[child])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def main() -> int:
    problems = []
    graph = grimp.build_graph("streamcache", "streamcache_local")
    for component in cycles(graph):
        problems.append("import cycle: " + " <-> ".join(component))
    for folder in (REPO / "functions", REPO / "infra" / "local"):
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(REPO).parts
            if parts[0] == "functions" and parts[1] in ("cache", "compactor") and parts[2:3] == ("streamcache",):
                continue  # a staged copy inside a function folder (git-ignored)
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                problems.append(f"{path.relative_to(REPO)}: {lines} lines (at most {MAX_LINES}; split it by role)")
    top = sorted(p.name for p in (REPO / "functions" / "streamcache").glob("*.py"))
    if len(top) > MAX_TOP_MODULES:
        problems.append(f"functions/streamcache/ holds {len(top)} modules ({', '.join(top)}); at most {MAX_TOP_MODULES}")
    for problem in problems:
        print(problem)
    print(f"layout: {len(graph.modules)} modules, {'no problems' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
