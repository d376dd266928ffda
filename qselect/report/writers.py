"""Report files: report.json, CSV tables, summary.md — each written atomically.

``write_report`` writes the plots and tables first and ``report.json`` last,
each through ``qselect.io`` (temp file + fsync + rename): an interrupted run
leaves either no report or a complete one, never half a file, and the presence
of report.json says every other report file is complete.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Callable, Mapping, Sequence

from ..io import atomic_write_json, atomic_write_text


def csv_text(rows: Sequence[dict], columns: Sequence[str] | None = None) -> str:
    """CSV with a stable column order (given, else first-seen order over all rows).

    Parameters
    ----------
    rows : sequence of dict
    columns : sequence of str or None

    Returns
    -------
    str
    """
    if columns is None:
        columns = []
        for r in rows:
            columns += [k for k in r if k not in columns]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: _csv_value(r.get(k)) for k in columns})
    return buf.getvalue()


def _csv_value(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)  # full precision, so reruns can be compared exactly
    return v


def write_csv(path, rows: Sequence[dict], columns: Sequence[str] | None = None) -> Path:
    """Write rows as CSV atomically.

    Parameters
    ----------
    path : str or os.PathLike
    rows : sequence of dict
    columns : sequence of str or None
        Column order; default the union of the rows' keys in first-seen order.

    Returns
    -------
    pathlib.Path
    """
    return atomic_write_text(path, csv_text(rows, columns))


def write_report(run_dir, report: dict, *, tables: Mapping[str, Sequence[dict]] | None = None,
                 plots: Mapping[str, Callable[[Path], object]] | None = None,
                 summary: str | None = None, files: Sequence[str] = ()) -> dict[str, Path]:
    """Write every report file of a run; returns {name: path}.

    ``tables`` maps CSV file names to rows; ``plots`` maps PNG file names to
    functions that draw into a given path (see ``qselect.report.plots``);
    ``files`` names other files of the run (already written) that the report lists.

    Parameters
    ----------
    run_dir : str or os.PathLike
    report : dict
        Written last, as ``report.json``.
    tables : mapping or None
    plots : mapping or None
    summary : str or None
        ``summary.md`` text.
    files : sequence of str

    Returns
    -------
    dict of str -> pathlib.Path
    """
    run_dir = Path(run_dir)
    written: dict[str, Path] = {}
    for name, draw in (plots or {}).items():
        path = draw(run_dir / name)
        if path is not None:
            written[name] = Path(path)
    for name, rows in (tables or {}).items():
        written[name] = write_csv(run_dir / name, rows)
    if summary is not None:
        written["summary.md"] = atomic_write_text(run_dir / "summary.md", summary)
    report = dict(report)
    report["files"] = sorted(set(written) | set(files) | {"report.json"})
    written["report.json"] = atomic_write_json(run_dir / "report.json", report)
    return written
