"""The package's shape: stage packages import downwards only and no module imports itself back
through others (every import counts, also those inside functions)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "lib" / "maskcycle"
# survey -> evaluation -> training -> models / data -> results -> config -> params / devices -> settings
# -> io / paths
LAYER = {"io": 0, "paths": 0, "settings": 1, "params": 2, "devices": 2, "config": 3, "results": 4, "data": 5,
         "models": 5, "training": 6, "evaluation": 7, "survey": 8, "cli": 9, "__main__": 10, "__init__": 0}


def module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_no_import_cycles():
    graph, state, cycles = import_graph(), {}, []

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(" -> ".join(path[path.index(n):] + [n]) if n in path else f"{m} -> {n}")
            elif n not in state:
                visit(n, path + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_stages_import_downwards_only():
    bad = []
    for m, targets in import_graph().items():
        for t in targets:
            a, b = stage(m), stage(t)
            if b == "__init__" or a == b:
                continue
            if LAYER[b] >= LAYER[a]:
                bad.append(f"{m} imports {t}")
    assert not bad, "imports that go up or sideways between stages:\n" + "\n".join(sorted(bad))


def test_every_module_sits_in_a_known_stage():
    assert {stage(m) for m in import_graph()} <= set(LAYER)
