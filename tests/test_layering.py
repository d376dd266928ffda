"""The package's imports flow one way: model → problems → solvers → masks → application → CLI.

Every ``import`` in ``qselect/`` is checked, function-level (lazy) imports
included: a module may import from its own layer or the layers below, never
above. Lazy imports exist only to defer heavy third-party packages.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "qselect"

#: bottom to top; a package (or base module) and the rank of its layer
LAYERS = {
    "errors": 0, "validation": 0, "io": 0, "executors": 0, "devices": 0,
    "problems": 1,
    "interop": 2, "ansatz": 2,
    "circuits": 3,
    "solvers": 4,
    "classical": 5, "pruners": 5,
    "formulate": 6,
    "methods": 7, "hardware": 7,
    "report": 8,
    "app": 9, "config": 9, "runs": 9,
    "cli": 10, "__main__": 10,
}


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        yield path, parts[:-1] if parts[-1] == "__init__" else parts


def _imports(path: Path, parts: tuple[str, ...]):
    package = parts if path.name == "__init__.py" else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = tuple(base + (node.module.split(".") if node.module else []))
                names = [target + (a.name,) for a in node.names] if not node.module else [target]
            else:
                names = [tuple((node.module or "").split("."))]
        elif isinstance(node, ast.Import):
            names = [tuple(a.name.split(".")) for a in node.names]
        else:
            continue
        for target in names:
            if target and target[0] == "qselect":
                yield node.lineno, target


def _layer(parts: tuple[str, ...]):
    """Layer of a qselect module path; None for the package root (its facade)."""
    if len(parts) < 2 or parts[1] == "__version__":
        return None
    name = parts[1]
    if name not in LAYERS:
        pytest.fail(f"qselect.{name} has no layer: add it to LAYERS in {Path(__file__).name} and CONTRIBUTING.md")
    return LAYERS[name]


def _edges():
    for path, parts in _modules():
        for line, target in _imports(path, parts):
            yield path, line, parts, target


def test_every_import_points_down_or_sideways():
    upward = []
    for path, line, parts, target in _edges():
        src, dst = _layer(parts), _layer(target)
        if src is None or dst is None:
            continue  # qselect/__init__.py is the facade: it may expose any layer (lazily)
        if dst > src:
            upward.append(f"{path.relative_to(ROOT.parent)}:{line} imports {'.'.join(target)} "
                          f"(layer {dst} above {src})")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_cycles_between_packages():
    graph: dict[str, set[str]] = {}
    for _, _, parts, target in _edges():
        if len(parts) > 1 and len(target) > 1 and parts[1] != target[1]:
            graph.setdefault(parts[1], set()).add(target[1])

    def reach(start):
        seen, stack = set(), [start]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return seen

    cycles = sorted(p for p in graph if p in reach(p))
    assert not cycles, f"packages on an import cycle: {cycles}"


def test_third_party_quantum_libraries_live_in_their_adapters():
    """qiskit, PennyLane and dimod are imported only by their adapter modules."""
    allowed = {"qiskit": ("interop", "circuits", "hardware", "solvers/qaoa/optimizers.py"),
               "pennylane": ("interop", "circuits"), "dimod": ("interop",), "dwave": ("interop",)}
    offenders = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            for mod in mods:
                top = mod.split(".")[0].replace("qiskit_aer", "qiskit").replace("qiskit_algorithms", "qiskit")
                top = "qiskit" if top.startswith("qiskit") else top
                if top in allowed and not rel.startswith(allowed[top]):
                    offenders.append(f"{rel}:{node.lineno} imports {mod}")
    assert not offenders, "\n".join(offenders)


def test_the_checker_sees_function_level_imports(tmp_path):
    """The walk must count lazy imports: a deliberately upward lazy import is found."""
    pkg = tmp_path / "qselect" / "problems"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("def f():\n    from ..solvers import get_solver\n")
    found = list(_imports(pkg / "x.py", ("qselect", "problems", "x")))
    assert found == [(2, ("qselect", "solvers"))]
