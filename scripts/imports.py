"""The import graph of queuecast, read with `ast`: which layer imports which, and whether any arrow
points up or goes round in a circle.

    python scripts/imports.py            the layer graph, then every offending import; exit 1 if any
    python scripts/imports.py --modules  every module-to-module import, too

The layers, top to bottom (an import may point only down, or within its own layer's module tree
without a cycle):

    app         hub.app (the composition root), hub.cli, hub.demo, hub.server, hub.__main__
    web         hub.web, displays, notifier (the HTTP/WebSocket surfaces and the notification worker)
    service     hub.service, hub.feeds, hub.predictions, hub.retention (the domain meeting I/O)
    io          hub.store, hub.broker, hub.outbox (the I/O protocols and their backends)
    base        hub.settings, hub.config, hub.auth, hub.clock, hub.loops, hub.logs, hub.metrics,
                hub.ratelimit, hub.views, hub.sim
    domain      hub.domain (pure: the standard library only)

Imports under `if TYPE_CHECKING:` are counted too: a type annotation is a dependency a reader
follows. The tests and benchmarks sit above everything and are not drawn.
"""
from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hub", "displays", "notifier")

# (layer, module prefixes), top first. The longest matching prefix names a module's layer.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("app", ("hub.app", "hub.cli", "hub.demo", "hub.server", "hub.__main__")),
    ("web", ("hub.web", "displays", "notifier")),
    ("service", ("hub.service", "hub.feeds", "hub.predictions", "hub.retention", "hub.follow",
                 "hub.commands", "hub.pipeline")),
    ("io", ("hub.store", "hub.broker", "hub.outbox")),
    ("base", ("hub.settings", "hub.config", "hub.auth", "hub.clock", "hub.loops", "hub.logs",
              "hub.metrics", "hub.ratelimit", "hub.views", "hub.sim", "hub")),
    ("domain", ("hub.domain",)),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}     # 0 is the top

# What the pure domain may import besides itself: the standard library.
STDLIB = set(sys.stdlib_module_names)


def modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def layer_of(module: str) -> str:
    best, best_len = "base", -1
    for name, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = name, len(p)
    return best


def imports_of(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `module` imports (resolved to the longest known module name)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name:
            if name in known:
                return name
            name = name.rpartition(".")[0]
        return None

    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = module if is_pkg else module.rpartition(".")[0]
                for _ in range(node.level - 1):
                    pkg = pkg.rpartition(".")[0]
                base = f"{pkg}.{base}" if base else pkg
            # `from pkg import mod` names the module; `from pkg import name` the package itself.
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for n in names:
            r = resolve(n)
            if r is not None and r != module:
                found.add(r)
    return found


def foreign_imports(path: Path) -> set[str]:
    """Top-level names of non-project modules imported by `path`."""
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out - set(PACKAGES)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def package_of(module: str) -> str:
    """The unit drawn in the package graph: hub's subpackages and top-level modules, and the other
    top-level packages whole."""
    parts = module.split(".")
    if parts[0] == "hub" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def analyse(root: Path = ROOT) -> tuple[dict[str, Path], dict[str, set[str]], dict[str, set[str]], list[str]]:
    """The modules under `root`, their imports, the package graph, and every problem found."""
    known = modules(root)
    graph = {m: imports_of(m, p, known) for m, p in known.items()}
    problems: list[str] = []

    # Upward arrows between layers.
    for m, deps in sorted(graph.items()):
        for d in sorted(deps):
            lm, ld = layer_of(m), layer_of(d)
            if RANK[ld] < RANK[lm]:
                problems.append(f"up: {m} ({lm}) imports {d} ({ld})")
    # The domain imports the standard library and itself only.
    for m, p in sorted(known.items()):
        if layer_of(m) == "domain":
            bad = sorted(foreign_imports(p) - STDLIB - {"__future__"})
            if bad:
                problems.append(f"impure: {m} imports {', '.join(bad)}")
    # Cycles, between modules and between packages.
    for comp in cycles(graph):
        problems.append("module cycle: " + " <-> ".join(comp))
    pgraph: dict[str, set[str]] = defaultdict(set)
    for m, deps in graph.items():
        for d in deps:
            if package_of(m) != package_of(d):
                pgraph[package_of(m)].add(package_of(d))
    for comp in cycles(pgraph):
        problems.append("package cycle: " + " <-> ".join(comp))
    return known, graph, pgraph, problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modules", action="store_true", help="print every module-to-module import too")
    ap.add_argument("--quiet", action="store_true", help="print only the problems (make lint)")
    args = ap.parse_args(argv)
    known, graph, pgraph, problems = analyse()

    if args.quiet:
        for line in problems:
            print("imports: " + line)
        return 1 if problems else 0
    # The drawing: packages by layer, each with the packages it imports.
    print("queuecast import graph (layers top to bottom; arrows may point only down)\n")
    by_layer: dict[str, list[str]] = defaultdict(list)
    for pkg in sorted({package_of(m) for m in known}):
        by_layer[layer_of(pkg)].append(pkg)
    for name, _ in LAYERS:
        print(f"[{name}]")
        for pkg in by_layer.get(name, []):
            deps = sorted(pgraph.get(pkg, ()), key=lambda d: (RANK[layer_of(d)], d))
            print(f"  {pkg:<18} -> {', '.join(deps) if deps else '(nothing of ours)'}")
    if args.modules:
        print("\nmodules:")
        for m, deps in sorted(graph.items()):
            print(f"  {m} -> {', '.join(sorted(deps))}")
    print()
    if problems:
        print(f"{len(problems)} problem(s):")
        for line in problems:
            print("  " + line)
        return 1
    print("no cycle, no upward arrow, a pure domain")
    return 0


if __name__ == "__main__":
    sys.exit(main())
