"""Count public definitions in ``qselect/`` that carry a docstring.

A definition is public when its own name and the names of every class that
encloses it do not start with ``_``, and its module is public: no part of the
module path starts with ``_`` (package ``__init__.py`` files count as their
package, so they are public). Functions nested inside functions are not
counted. Property setters/deleters count once, with their getter.

Usage::

    python tools/docstring_coverage.py [--min 90] [--list] [--parameters] [--root qselect]

Prints per-module and total coverage; ``--list`` names every public
definition without a docstring. ``--parameters`` measures the numpydoc
convention instead: the share of public functions and methods that take
arguments whose docstring has a ``Parameters`` section. Exits 1 when total coverage (percent) is
below ``--min``.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def _is_public_module(path: Path, root: Path) -> bool:
    parts = path.relative_to(root.parent).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return not any(p.startswith("_") for p in parts)


def _is_accessor(node: ast.AST) -> bool:
    """True for ``@x.setter`` / ``@x.deleter`` (documented by the getter)."""
    for d in getattr(node, "decorator_list", []):
        if isinstance(d, ast.Attribute) and d.attr in ("setter", "deleter"):
            return True
    return False


def _takes_parameters(node) -> bool:
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    a = node.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
    return bool(names or a.vararg or a.kwarg)


def has_parameters_section(doc: str | None) -> bool:
    """True when a numpydoc docstring has a ``Parameters`` section (or only documents ``**kwargs``-style passes)."""
    if not doc:
        return False
    lines = [ln.strip() for ln in doc.splitlines()]
    return any(a == "Parameters" and b.startswith("---") for a, b in zip(lines, lines[1:]))


def numpydoc_parameters(source: str):
    """Yield ``(qualified name, line, has Parameters section)`` for public functions taking arguments.

    Parameters
    ----------
    source : str
        Python source of one module.

    Yields
    ------
    tuple of (str, int, bool)
    """
    tree = ast.parse(source)

    def visit(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name.startswith("_") or _is_accessor(node):
                    continue
                if _takes_parameters(node):
                    yield (f"{prefix}{node.name}", node.lineno,
                           has_parameters_section(ast.get_docstring(node)))
                if isinstance(node, ast.ClassDef):
                    yield from visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.If, ast.Try)):
                yield from visit(node.body, prefix)
                yield from visit(getattr(node, "orelse", []), prefix)

    yield from visit(tree.body, "")


def public_definitions(source: str):
    """Yield ``(qualified name, line, has docstring)`` for each public definition.

    Parameters
    ----------
    source : str
        Python source of one module.

    Yields
    ------
    tuple of (str, int, bool)
        Qualified name (``Class.method``), line number, and whether the
        definition has a non-empty docstring.
    """
    tree = ast.parse(source)

    def visit(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name.startswith("_") or _is_accessor(node):
                    continue
                doc = ast.get_docstring(node)
                yield f"{prefix}{node.name}", node.lineno, bool(doc and doc.strip())
                if isinstance(node, ast.ClassDef):
                    yield from visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, (ast.If, ast.Try)):
                # definitions under `if TYPE_CHECKING:` / try-import fallbacks
                yield from visit(node.body, prefix)
                yield from visit(getattr(node, "orelse", []), prefix)

    yield from visit(tree.body, "")


def coverage(root: Path, collect=None):
    """Collect docstring coverage for every public module under ``root``.

    Parameters
    ----------
    root : pathlib.Path
        Package directory to walk (``qselect/``).
    collect : callable or None
        Per-module collector (default :func:`public_definitions`;
        :func:`numpydoc_parameters` counts ``Parameters`` sections instead).

    Returns
    -------
    dict
        ``{module path: [(name, line, has_doc), ...]}`` for public modules.
    """
    out = {}
    for path in sorted(root.rglob("*.py")):
        if not _is_public_module(path, root):
            continue
        defs = list((collect or public_definitions)(path.read_text(encoding="utf-8")))
        if defs:
            out[str(path.relative_to(root.parent))] = defs
    return out


def main(argv=None) -> int:
    """Command-line entry point; returns the process exit code."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=str(Path(__file__).resolve().parent.parent / "qselect"))
    ap.add_argument("--min", type=float, default=0.0, help="fail (exit 1) below this percent")
    ap.add_argument("--list", action="store_true", help="name every undocumented definition")
    ap.add_argument("--quiet", action="store_true", help="print only the total")
    ap.add_argument("--parameters", action="store_true",
                    help="count public functions taking arguments that have a numpydoc Parameters section")
    args = ap.parse_args(argv)
    cov = coverage(Path(args.root), numpydoc_parameters if args.parameters else None)
    total = documented = 0
    for mod, defs in cov.items():
        n, d = len(defs), sum(h for _, _, h in defs)
        total, documented = total + n, documented + d
        if not args.quiet:
            print(f"{100.0 * d / n:6.1f}%  {d:4d}/{n:<4d} {mod}")
        if args.list:
            for name, line, has in defs:
                if not has:
                    print(f"          missing: {mod}:{line} {name}")
    pct = 100.0 * documented / total if total else 100.0
    what = "functions with arguments have a Parameters section" if args.parameters else \
        "public definitions documented"
    print(f"total: {documented}/{total} {what} ({pct:.1f}%)")
    if pct < args.min:
        print(f"docstring coverage {pct:.1f}% is below --min {args.min:g}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
