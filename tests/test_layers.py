"""The import direction of the layers, checked on the source (an AST walk of every import, also those
inside functions):

    core (worldgen/core)  <-  renderers, refine  <-  pipeline (worldgen/pipeline)  <-  training (refine/train)
        <-  configs  <-  commands (worldgen/commands, worldgen/cli.py)  <-  viewer

A module imports only its own layer and the layers below; renderers and refine do not import each
other; a command imports no other command (nothing outside a command imports it; the package root
`worldgen.commands`, which holds the `Command` type, is shared); no two modules import each other,
directly or round a longer cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("worldgen", "renderers", "refine", "viewer", "configs")

# (module prefix, layer rank, layer name); the longest matching prefix decides.
LAYERS = [
    ("worldgen.core", 0, "core"),
    ("renderers", 1, "renderers"),
    ("refine", 1, "refine"),
    ("worldgen.pipeline", 2, "pipeline"),
    ("refine.train", 3, "training"),
    ("configs", 4, "configs"),
    ("worldgen.commands", 5, "commands"),
    ("worldgen.cli", 5, "commands"),
    ("worldgen", 5, "commands"),  # the package root
    ("viewer", 6, "viewer"),
]


def layer(module: str) -> tuple[int, str]:
    best = max((p for p in LAYERS if module == p[0] or module.startswith(p[0] + ".")), key=lambda p: len(p[0]))
    return best[1], best[2]


def project_modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the project's packages."""
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _resolve(target: str, known: set[str]) -> str | None:
    """The project module a dotted import target names (`pkg.mod.Name` -> `pkg.mod`), or None."""
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target if target and target.split(".")[0] in PACKAGES else None


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Project modules that module `name` (file `path`) imports anywhere in its body: `import a.b` names
    a.b; `from a.b import c` names a.b.c if that is a module, else a.b."""
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found |= {_resolve(a.name, known) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                parts = name.split(".")
                anchor = parts[: len(parts) - node.level + (1 if is_pkg else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for a in node.names:
                full = f"{base}.{a.name}"
                found.add(full if full in known else _resolve(base, known))
    return {m for m in found if m is not None and m != name}


def import_graph() -> dict[str, set[str]]:
    mods = project_modules()
    return {name: imports_of(path, name, set(mods)) for name, path in mods.items()}


def _command_of(module: str) -> str | None:
    parts = module.split(".")
    return ".".join(parts[:3]) if parts[:2] == ["worldgen", "commands"] and len(parts) > 2 else None


def violations(graph: dict[str, set[str]]) -> list[str]:
    """Every import against the direction of the layers, and every cycle, in one line each."""
    out = []
    for mod, deps in sorted(graph.items()):
        (rank, lname), cmd = layer(mod), _command_of(mod)
        for dep in sorted(deps):
            (drank, dname), dcmd = layer(dep), _command_of(dep)
            if drank > rank:
                out.append(f"{mod} ({lname}) imports {dep} ({dname}), a layer above it")
            elif {lname, dname} == {"renderers", "refine"}:
                out.append(f"{mod} ({lname}) imports {dep} ({dname}): renderers and refine stand side by side")
            elif dcmd is not None and dcmd != cmd:
                out.append(f"{mod} imports {dep}: nothing imports a command")
    # cycles: strongly connected components of more than one module (Tarjan)
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

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
                sccs.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    out += [f"import cycle: {' <-> '.join(c)}" for c in sccs]
    return out


def test_imports_follow_the_layers():
    graph = import_graph()
    assert len(graph) > 40 and "worldgen.core.camera" in graph["worldgen.pipeline.lift"]  # the walk sees imports
    assert violations(graph) == []


def test_core_imports_nothing_above_it():
    graph = import_graph()
    for mod, deps in graph.items():
        if mod.startswith("worldgen.core"):
            assert all(d.startswith("worldgen.core") for d in deps), (mod, deps)


@pytest.mark.parametrize("graph, expected", [
    ({"worldgen.core.camera": {"worldgen.pipeline.lift"}, "worldgen.pipeline.lift": set()},
     "worldgen.core.camera (core) imports worldgen.pipeline.lift (pipeline), a layer above it"),
    ({"renderers.torch_backend": {"refine.classical"}, "refine.classical": set()},
     "renderers and refine stand side by side"),
    ({"worldgen.commands.bench": {"worldgen.commands.compare.command"}, "worldgen.commands.compare.command": set()},
     "worldgen.commands.bench imports worldgen.commands.compare.command: nothing imports a command"),
    ({"viewer.live": {"worldgen.commands.fly"}, "worldgen.commands.fly": set()}, "nothing imports a command"),
    ({"worldgen.pipeline.a": {"worldgen.pipeline.b"}, "worldgen.pipeline.b": {"worldgen.pipeline.a"}},
     "import cycle: worldgen.pipeline.a <-> worldgen.pipeline.b"),
])
def test_the_checker_catches_what_it_forbids(graph, expected):
    found = violations(graph)
    assert len(found) == 1 and expected in found[0], found


def test_imports_inside_functions_and_relative_imports_count(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from worldgen.pipeline.lift import lift\n\nfrom . import camera\n")
    known = {"worldgen.pipeline.lift", "worldgen.core.camera", "worldgen.core.m"}
    assert imports_of(f, "worldgen.core.m", known) == {"worldgen.pipeline.lift", "worldgen.core.camera"}
