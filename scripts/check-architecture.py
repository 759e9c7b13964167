#!/usr/bin/env python3
"""scripts/check-architecture.py — the dependency rule of ARCHITECTURE.md, checked.

1. No import cycle between the top-level modules of src/ (a module is a file or folder
   directly under src/; an edge A -> B is any `crate::B` path written in A's files).
2. No SQL under src/graphql/ or src/http/: no diesel query building or row types, no
   `sql_query`, no transaction, no table definitions, no SQL text. Resolvers and handlers
   call domain functions instead (passing a connection through is fine).

Prints the module graph in layers (each module above everything it uses) with -v.
Exits 1 on a finding, naming the files that make the cycle or hold the SQL.
"""

import os
import re
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
# Only the library's modules: main.rs and the CLI sit above everything by construction.
SKIP = {"lib", "main", "cli"}
THIN = ("graphql", "http")
SQL_PATTERNS = [
    (re.compile(r"\bsql_query\b"), "sql_query"),
    (re.compile(r"\bdiesel::(prelude|dsl|sql_types|insert_into|update|delete|select)\b"), "diesel query API"),
    (re.compile(r"\b(Queryable|QueryableByName|Selectable|Insertable|AsChangeset)\b"), "a row type"),
    (re.compile(r"\b(RunQueryDsl|QueryDsl|ExpressionMethods)\b"), "diesel query DSL"),
    (re.compile(r"\bdb::schema\b"), "table definitions"),
    (re.compile(r"\.transaction\s*(::<[^>]*>)?\("), "a transaction"),
    (re.compile(r'"[^"\n]*\b(SELECT\s+\S|INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET)'), "SQL text"),
]


def strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    return re.sub(r"//[^\n]*", "", src)


def rust_files(path):
    if os.path.isfile(path):
        yield path
        return
    for dirpath, _, names in os.walk(path):
        for name in sorted(names):
            if name.endswith(".rs"):
                yield os.path.join(dirpath, name)


def modules():
    found = {}
    for name in sorted(os.listdir(ROOT)):
        full = os.path.join(ROOT, name)
        mod = name[:-3] if name.endswith(".rs") else name
        if mod in SKIP or (os.path.isfile(full) and not name.endswith(".rs")):
            continue
        found[mod] = full
    return found


def edges(mods):
    graph = defaultdict(lambda: defaultdict(set))
    for mod, path in mods.items():
        for f in rust_files(path):
            src = strip_comments(open(f, encoding="utf-8").read())
            targets = set(re.findall(r"\bcrate::(\w+)", src))
            for group in re.findall(r"\buse\s+crate::\{([^;]*)\}", src, flags=re.S):
                targets.update(re.findall(r"(?:^|[,{])\s*(\w+)", group))
            for t in targets:
                if t in mods and t != mod:
                    graph[mod][t].add(os.path.relpath(f, os.path.dirname(ROOT)))
    return graph


def cycles(mods, graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in sorted(mods):
        if v not in index:
            visit(v)
    return out


def layers(mods, graph):
    """Each module's height: 0 for a module using none of the others."""
    height = {}

    def h(v, seen=()):
        if v in height:
            return height[v]
        if v in seen:
            return 0
        height[v] = 1 + max((h(w, seen + (v,)) for w in graph[v]), default=-1)
        return height[v]

    for v in mods:
        h(v)
    by = defaultdict(list)
    for v, n in height.items():
        by[n].append(v)
    return [sorted(by[n]) for n in sorted(by, reverse=True)]


def sql_findings():
    found = []
    for top in THIN:
        for f in rust_files(os.path.join(ROOT, top)):
            src = strip_comments(open(f, encoding="utf-8").read())
            for n, line in enumerate(src.splitlines(), 1):
                for pattern, what in SQL_PATTERNS:
                    if pattern.search(line):
                        found.append(f"{os.path.relpath(f, os.path.dirname(ROOT))}:{n}: {what}: {line.strip()[:100]}")
    return found


def main():
    mods = modules()
    graph = edges(mods)
    failed = False
    for comp in cycles(mods, graph):
        failed = True
        print(f"import cycle between top-level modules: {' <-> '.join(comp)}")
        for a in comp:
            for b in comp:
                if b in graph[a]:
                    print(f"  {a} -> {b}: {', '.join(sorted(graph[a][b]))}")
    for finding in sql_findings():
        failed = True
        print(f"SQL in the GraphQL/HTTP layer: {finding}")
    if "-v" in sys.argv[1:] or not failed:
        for n, layer in enumerate(layers(mods, graph)):
            print(f"layer {n}: {', '.join(layer)}")
    if failed:
        print("see ARCHITECTURE.md, 'The dependency rule'")
        return 1
    print("architecture check: no cycle between top-level modules, no SQL in graphql/ or http/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
