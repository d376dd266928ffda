"""Plain-text tables for the terminal and for summary.md (GitHub-flavoured markdown)."""
from __future__ import annotations

import math
from typing import Any, Sequence


def fmt(value: Any, digits: int = 4) -> str:
    """Compact, stable formatting: floats to ``digits`` significant places, None as '-'.

    Parameters
    ----------
    value : object
    digits : int

    Returns
    -------
    str
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if value == 0:
            return "0"
        if abs(value) >= 1e5 or abs(value) < 1e-3:
            return f"{value:.{digits - 1}e}"
        return f"{value:.{digits}g}" if abs(value) >= 1 else f"{value:.{digits}f}".rstrip("0").rstrip(".")
    return str(value)


def _cells(rows: Sequence[dict], columns: Sequence, digits: int):
    keys = [c[0] if isinstance(c, tuple) else c for c in columns]
    heads = [c[1] if isinstance(c, tuple) else c for c in columns]
    body = [[fmt(r.get(k), digits) for k in keys] for r in rows]
    return heads, body


def format_table(rows: Sequence[dict], columns: Sequence, digits: int = 4) -> str:
    """Aligned text table; ``columns`` are keys or (key, heading) pairs.

    Parameters
    ----------
    rows : sequence of dict
    columns : sequence of str or (key, heading)
    digits : int

    Returns
    -------
    str
    """
    heads, body = _cells(rows, columns, digits)
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(heads)]

    def line(cells):
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(heads), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in body]
    return "\n".join(out)


def markdown_table(rows: Sequence[dict], columns: Sequence, digits: int = 4) -> str:
    """Format rows as a Markdown table.

    Parameters
    ----------
    rows : sequence of dict
    columns : sequence of str or (key, heading)
        Which keys to show, in order, optionally with a heading.
    digits : int
        Significant digits for floats.

    Returns
    -------
    str
    """
    heads, body = _cells(rows, columns, digits)
    out = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(out)
