#!/usr/bin/env python3
"""The crate's import graph, measured from the code: cycles and imports that point up a layer.

Usage: python3 scripts/layers.py [--verbose] [--max-up N]

What it reads: every `src/**/*.rs` of the library (not `main.rs`, not the `src/bin/` fixtures),
comments and string literals removed. An edge A -> B is any `crate::`, `super::` or `self::` path
in A (in a `use` tree, `use crate::{a, b::{c, d}}` expanded, or inline in code) that names B's
module or an item in it (also `child::x` for a file's own `mod child;`); the path is resolved to
the deepest module that has a file. `mod x;` alone is not an edge: declaring is not importing.
A submodule naming one of its ancestors (`super::Error` in `policy/jwt/keys.rs`) is not an edge
either: a submodule is part of its parent, and the parent is the scope it lives in. A parent
using its child, siblings using each other and everything across folders are edges.

Cycles are the strongly connected components of that file graph with more than one file.

Layers: every file belongs to the first entry of LAYERS (bottom first) whose prefix matches its
module path. Test files (`tests.rs`, `tests/`, `#[cfg(test)] mod tests`) are left out. An edge pointing up is one from a file to a file of a higher layer. Files of one
layer may import each other (the cycle check still applies).

Exit status: 1 when there is a cycle or more up-pointing imports than --max-up (default 4).
"""

import os
import re
import sys
from collections import defaultdict

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")

# Bottom first. A module path matches an entry when it equals it or starts with it plus "::".
LAYERS = [
    # 0: leaves that know nothing of MCP sessions or policy.
    ["os", "jsonrpc", "caller", "secret", "cluster::id"],
    # 1: errors, protocol eras, TLS, logs/metrics/spans, the session table and its streams.
    ["error", "era", "tls", "telemetry", "session"],
    # 2: the checks (authentication, roles, limits), what one admitted request is owed (its
    # ticket: audit record, list filter, span, limiter slot) and the upstream mux and children.
    ["policy", "ticket", "upstream", "cluster"],
    # 3: validated configuration, built from the checks and upstream specs; the legacy face
    # of modern-only children (an in-process server over the upstream mux).
    ["config", "face"],
    # 4: the core.
    ["relay"],
    # 5: the admin listener and the fronts.
    ["admin", "listener"],
    # 6: the servers behind one relay: the hub of named servers, their aggregate.
    ["aggregate", "hub"],
    # 7: the program and its commands: the command line, serve, connect, token, cert, demo.
    ["cli", "command", "app", "authz", "bridge", "token", "cert", "demo", "oauth_cli"],
]


def module_of(path):
    rel = os.path.relpath(path, ROOT)[:-3].split(os.sep)
    if rel[-1] in ("lib", "mod"):
        rel = rel[:-1]
    return "::".join(rel)


def strip(src):
    """Removes comments, string and char literals (keeps line structure irrelevant)."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if src.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif src.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', src[i:i + 10]) and not (i and (src[i - 1].isalnum() or src[i - 1] == "_")):
            m = re.match(r'r(#*)"', src[i:])
            end = src.find('"' + m.group(1), i + len(m.group(0)))
            i = n if end < 0 else end + 1 + len(m.group(1))
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", src[i:i + 4]) or (c == "'" and src.startswith("'\\u{", i)):
            j = src.find("'", i + 1)
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expand(tree):
    """`a::{b, c::{d, e}}` -> ["a::b", "a::c::d", "a::c::e"]."""
    tree = re.sub(r"\s+", "", tree)
    if "{" not in tree:
        return [tree]
    k = tree.index("{")
    head, body = tree[:k], tree[k + 1:tree.rindex("}")]
    parts, depth, cur = [], 0, ""
    for ch in body:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    parts.append(cur)
    return [p for part in parts if part for p in expand(head + part)]


def main():
    verbose = "--verbose" in sys.argv
    max_up = 4
    if "--max-up" in sys.argv:
        max_up = int(sys.argv[sys.argv.index("--max-up") + 1])

    files = {}
    for dirpath, dirs, names in os.walk(ROOT):
        rel = os.path.relpath(dirpath, ROOT).split(os.sep)
        if rel[0] == "bin" or "tests" in rel:
            continue
        for name in names:
            if name == "tests.rs":
                continue
            if name.endswith(".rs") and not (dirpath == ROOT and name == "main.rs"):
                path = os.path.join(dirpath, name)
                files[module_of(path)] = path
    files[""] = os.path.join(ROOT, "lib.rs")

    def resolve(mod, path):
        segs = path.split("::")
        if segs[0] == "crate":
            base = []
        elif segs[0] in ("super", "self"):
            base = mod.split("::") if mod else []
            while segs and segs[0] in ("super", "self"):
                if segs[0] == "super":
                    base = base[:-1]
                segs = segs[1:]
            return best(base, segs)
        else:
            return None
        return best(base, segs[1:])

    def best(base, segs):
        found = None
        for k in range(len(segs) + 1):
            cand = "::".join(base + segs[:k])
            if cand in files:
                found = cand
        return found

    edges = defaultdict(set)
    for mod, path in files.items():
        src = strip(open(path, encoding="utf-8").read())
        # Tests live with the code but are not part of its structure.
        src = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests\s*\{", src)[0]
        # A file's own submodules, named without `self::` (`use link::Link;`, `link::deliver()`).
        children = set(re.findall(r"^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", src, re.M))
        start = "|".join(["crate", "super", "self"] + sorted(children))
        paths = []
        for m in re.finditer(r"\buse\s+((?:%s)\b[^;]*);" % start, src):
            paths += expand(m.group(1))
        code = re.sub(r"\buse\s+[^;]*;", "", src)
        paths += re.findall(r"(?<![\w:])((?:%s)(?:::\w+)+)" % start, code)
        paths = ["self::" + p if p.split("::")[0] in children else p for p in paths]
        for p in paths:
            target = resolve(mod, p.split(" as ")[0])
            if target is None or target == mod:
                continue
            # A submodule is part of its parent: `super::` names the scope it lives in.
            if target == "" or mod.startswith(target + "::"):
                continue
            edges[mod].add(target)

    def layer_of(mod):
        for i, prefixes in enumerate(LAYERS):
            for p in prefixes:
                if mod == p or mod.startswith(p + "::"):
                    return i
        return None

    # Strongly connected components (Tarjan, iterative).
    index, low, on, stack, sccs, counter = {}, {}, set(), [], [], [0]
    for root in sorted(files):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges[w]))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    sccs.append(sorted(comp))

    def name(mod):
        return os.path.relpath(files[mod], os.path.join(ROOT, ".."))

    unlayered = sorted(m for m in files if m and layer_of(m) is None)
    ups = []
    for a in sorted(edges):
        for b in sorted(edges[a]):
            la, lb = layer_of(a), layer_of(b)
            if a and b and la is not None and lb is not None and lb > la:
                ups.append((a, b))

    print(f"layers: {len(files)} files, {sum(len(v) for v in edges.values())} imports between files")
    print(f"cycles: {len(sccs)}")
    for comp in sccs:
        print("  cycle: " + ", ".join(name(m) for m in comp))
        if verbose:
            for a in comp:
                for b in sorted(edges[a]):
                    if b in comp:
                        print(f"    {name(a)} -> {name(b)}")
    print(f"imports pointing up a layer: {len(ups)} (at most {max_up})")
    for a, b in ups:
        print(f"  {name(a)} (layer {layer_of(a)}) -> {name(b)} (layer {layer_of(b)})")
    for m in unlayered:
        print(f"  file in no layer: {name(m)}")
    if sccs or len(ups) > max_up or unlayered:
        sys.exit(1)


if __name__ == "__main__":
    main()
