"""The import contract: each layer of the package imports only the layers below it, and no module
imports itself back through others (no cycle).

Checked over the real import graph: every `import`/`from ... import` in every module of the package,
at module level, inside functions and under `if TYPE_CHECKING:` alike (a type-only upward import is
still a dependency on the layer above). A new upward import fails this test; there is no list of
exceptions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "warehouse"

#: Lowest first. A module belongs to the first layer whose prefix it has.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("core", ("warehouse.core",)),
    ("manifest", ("warehouse.manifest",)),
    ("engine", ("warehouse.engine",)),
    ("write", ("warehouse.write",)),
    ("read", ("warehouse.read",)),
    ("agent", ("warehouse.agent",)),
    ("ops", ("warehouse.ops",)),
    ("interop", ("warehouse.interop",)),
    ("facade", ("warehouse.warehouse", "warehouse.namespaces")),
    ("package", ("warehouse",)),  # warehouse/__init__.py: the public names
    ("compat", ("warehouse.compat",)),  # drop-in adapters of other systems' APIs, over the facade
    ("cli", ("warehouse.cli", "warehouse.__main__")),
]


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = modules()


def layer_of(module: str) -> int:
    best = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and (best is None or len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[0]


def imports(module: str) -> set[str]:
    """The package's modules that `module` imports (a `from pkg import name` of a submodule counts
    as importing the submodule, and every import of a submodule imports its packages too)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            subs = [f"{base}.{a.name}" for a in node.names]
            # `from pkg import submodule` depends on the submodule; the package counts only when
            # a name is one of its own attributes
            targets = subs + ([base] if any(s not in MODULES for s in subs) else [])
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for t in targets:
            if t in MODULES:
                found.add(t)
    # importing a.b.c runs a/__init__ and a/b/__init__ first, but that is the package importing
    # itself downward; only the named module is the dependency
    found.discard(module)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_is_in_a_layer() -> None:
    for m in MODULES:
        layer_of(m)


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = sorted(
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
        for m, targets in GRAPH.items()
        for t in targets
        if layer_of(t) > layer_of(m)
    )
    assert upward == [], "upward imports:\n" + "\n".join(upward)


def test_the_import_graph_has_no_cycle() -> None:
    # Tarjan's strongly connected components: any component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for m in sorted(GRAPH):
        if m not in index:
            visit(m)
    assert cycles == [], "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_imports_inside_functions_and_type_checking_blocks(tmp_path: Path) -> None:
    # The contract would pass vacuously if the parser missed deferred imports: check it finds them.
    assert "warehouse.engine.engine" in GRAPH["warehouse.warehouse"]
    src = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from warehouse.warehouse import Warehouse\n"
        "def f():\n    from warehouse.cli import main\n"
    )
    found = {
        t
        for node in ast.walk(ast.parse(src))
        if isinstance(node, ast.ImportFrom)
        for t in [node.module]
        if t in MODULES
    }
    assert found == {"warehouse.warehouse", "warehouse.cli"}


def test_the_wheel_lists_every_package() -> None:
    # pyproject.toml names the packages one by one (the schemas are mapped in from schemas/): a new
    # subpackage left out would work in the editable install the tests use and be missing from the wheel.
    import tomllib

    listed = set(tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    assert packages - listed == set()
