#!/usr/bin/env python3
"""Fails when modules of the crate import each other in a cycle.

A module is a file under src/ (`src/limits/redis.rs` is `limits::redis`, a `mod.rs` is its
folder's module). An edge A -> B is any path in A's code (outside `#[cfg(test)]` modules) that
names B: `use crate::b::…`, `use super::…`, `crate::b::f(…)` (comments are not read: a doc link
is not an import). A path is resolved to the deepest
module it names. Every strongly connected component of more than one module is printed with one
cycle through it, and the exit status is 1.

Usage: scripts/cycles.py [SRC_DIR]
"""

import re
import sys
from pathlib import Path


def module_of(path, src):
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts.pop()
    return tuple(parts)


def code(text):
    """The text without comments (a doc link is not an import) and without `#[cfg(test)]`
    modules (they come last in this crate's files)."""
    at = text.find("#[cfg(test)]\nmod ")
    text = text if at < 0 else text[:at]
    return re.sub(r"//[^\n]*", "", text)


def expand(decl):
    """`a::{b, c::{d, e}}` as `a::b`, `a::c::d`, `a::c::e`."""
    def group(i, prefix):
        out, token = [], ""
        while i < len(decl):
            ch = decl[i]
            if ch == "{":
                inner, i = group(i + 1, prefix + token)
                out += inner
                token = ""
            elif ch == ",":
                if token:
                    out.append(prefix + token)
                token = ""
            elif ch == "}":
                if token:
                    out.append(prefix + token)
                return out, i
            else:
                token += ch
            i += 1
        if token:
            out.append(prefix + token)
        return out, i

    return group(0, "")[0]


def use_paths(text):
    """Every path a `use` declaration brings in."""
    paths = []
    for decl in re.findall(r"\buse\s+([^;]+);", text, re.S):
        paths += expand(re.sub(r"\s+", "", decl))
    return paths


def resolve(path, here, modules):
    """The deepest module a path names, seen from module `here`."""
    parts = [p for p in re.split(r"::", path) if p]
    if not parts:
        return None
    if parts[0] == "crate":
        base, rest = (), parts[1:]
    elif parts[0] in ("super", "self"):
        base = here
        while parts and parts[0] in ("super", "self"):
            if parts[0] == "super":
                base = base[:-1]
            parts = parts[1:]
        rest = parts
    elif here + (parts[0],) in modules:
        base, rest = here, parts
    else:
        return None
    found = None
    for i in range(len(rest) + 1):
        candidate = base + tuple(rest[:i])
        if candidate in modules:
            found = candidate
    return found


def graph(src):
    modules = {module_of(p, src): p for p in src.rglob("*.rs")}
    edges = {m: set() for m in modules}
    for module, path in modules.items():
        text = code(path.read_text())
        inline = re.findall(r"\b((?:crate|super)(?:::\w+)+)", text)
        # `child::item(…)` inside a module names its child module.
        inline += [m for m in re.findall(r"(?<!::)\b(\w+(?:::\w+)+)", text)
                   if module + (m.split("::")[0],) in modules]
        for target_path in use_paths(text) + inline:
            target = resolve(target_path, module, modules)
            if target is not None and target != module and target != ():
                edges[module].add(target)
    return edges


def components(edges):
    """Tarjan's strongly connected components."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(component)

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    return [c for c in out if len(c) > 1]


def a_cycle(component, edges):
    """One cycle through the component, as module names."""
    members = set(component)
    start = min(component)
    path, seen = [start], {start}
    while True:
        nexts = sorted(w for w in edges[path[-1]] if w in members)
        back = [w for w in nexts if w in seen]
        if back:
            return path[path.index(back[0]):] + [back[0]]
        step = next(w for w in nexts if w not in seen)
        path.append(step)
        seen.add(step)


def name(module):
    return "::".join(module) or "crate"


def main():
    src = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "src")
    edges = graph(src)
    cycles = components(edges)
    for component in cycles:
        print(f"import cycle among {len(component)} modules: "
              + ", ".join(sorted(name(m) for m in component)))
        print("  for example: " + " -> ".join(name(m) for m in a_cycle(component, edges)))
    if cycles:
        sys.exit(1)
    print(f"no import cycles among {len(edges)} modules")


if __name__ == "__main__":
    main()
