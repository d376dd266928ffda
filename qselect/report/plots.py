"""Report plots (PNG), drawn with matplotlib's Agg canvas and saved atomically.

Figures are built with ``matplotlib.figure.Figure`` directly (no pyplot global
state), so plotting works headless, in threads and in Dask workers.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np

from ..io import atomic_write_with


def _save(fig, path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    # format= explicit: the temp file's suffix is .tmp; no metadata so reruns give identical bytes
    return atomic_write_with(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110,
                                                           metadata={"Software": None}))


def _figure(ncols=1, width=6.0, height=4.0):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
_LINESTYLES = ("-", "--", "-.", ":")


def _legend_outside(ax) -> None:
    """Legend to the right of the axes, never over the data."""
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)


def accuracy_vs_sparsity(rows: Sequence[dict], path, metrics=(("accuracy_pruned", "one-shot (no fine-tune)"),
                                                             ("accuracy_finetuned", "fine-tuned")),
                         chance: float | None = None, dense: float | None = None) -> Path | None:
    """Accuracy vs sparsity per method: mean over seeds, shaded min–max spread.

    Parameters
    ----------
    rows : sequence of dict
        One per method × sparsity × seed.
    path : str or os.PathLike
        PNG file.
    metrics : sequence of (key, label)
    chance : float or None
        Chance accuracy, drawn as a line.
    dense : float or None
        Dense accuracy, drawn as a line.

    Returns
    -------
    pathlib.Path or None
        None when there is nothing to plot.
    """
    metrics = [(k, t) for k, t in metrics if any(r.get(k) is not None for r in rows)]
    if not metrics:
        return None
    fig, axes = _figure(len(metrics))
    for ax, (key, title) in zip(axes, metrics):
        by_method: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r.get(key) is not None:
                by_method[r["method"]][float(r["sparsity"])].append(float(r[key]))
        spacing = min(np.diff(sorted({x for pts in by_method.values() for x in pts})), default=0.1)
        step = 0.12 * spacing / max(len(by_method), 1)  # methods with identical results stay visible side by side
        for i, (method, pts) in enumerate(by_method.items()):
            xs = sorted(pts)
            vals = [np.asarray(pts[x]) for x in xs]
            mean = np.array([v.mean() for v in vals])
            lo = np.array([v.min() for v in vals])
            hi = np.array([v.max() for v in vals])
            xd = np.asarray(xs) + (i - (len(by_method) - 1) / 2) * step
            (line,) = ax.plot(xd, mean, marker=_MARKERS[i % len(_MARKERS)],
                              linestyle=_LINESTYLES[(i // len(_MARKERS)) % len(_LINESTYLES)],
                              markerfacecolor="none" if i % 2 else None, label=method)
            if any(len(v) > 1 for v in vals):
                ax.fill_between(xd, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
        if dense is not None:
            ax.axhline(dense, color="black", linestyle="--", linewidth=1, label="dense")
        if chance is not None:
            ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
        ax.set_xlabel("sparsity (fraction of weights removed)")
        ax.set_ylabel("test accuracy")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    _legend_outside(axes[-1])
    return _save(fig, path)


def accuracy_by_method(rows: Sequence[dict], path, chance: float | None = None,
                       dense: float | None = None) -> Path | None:
    """One sparsity: bars per method, pruned vs fine-tuned (mean over seeds, min–max whiskers).

    Parameters
    ----------
    rows : sequence of dict
    path : str or os.PathLike
    chance : float or None
    dense : float or None

    Returns
    -------
    pathlib.Path or None
    """
    keys = [(k, t) for k, t in (("accuracy_pruned", "pruned"), ("accuracy_finetuned", "fine-tuned"))
            if any(r.get(k) is not None for r in rows)]
    if not keys:
        return None
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, (ax,) = _figure(width=max(6.0, 0.7 * len(methods)))
    x = np.arange(len(methods))
    width = 0.8 / len(keys)
    for i, (k, title) in enumerate(keys):
        vals = [np.asarray([float(r[k]) for r in rows if r["method"] == m and r.get(k) is not None]) for m in methods]
        mean = np.array([v.mean() if v.size else np.nan for v in vals])
        lo = np.array([v.min() if v.size else np.nan for v in vals])
        hi = np.array([v.max() if v.size else np.nan for v in vals])
        bars = ax.bar(x + i * width - 0.4 + width / 2, mean, width, yerr=[mean - lo, hi - mean], label=title,
                      capsize=2)
        ax.bar_label(bars, labels=[f"{m:.3f}" if np.isfinite(m) else "" for m in mean], fontsize=6, padding=2)
    if dense is not None:
        ax.axhline(dense, color="black", linestyle="--", linewidth=1, label="dense")
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Accuracy at sparsity {rows[0]['sparsity']}")
    ax.grid(axis="y", alpha=0.3)
    _legend_outside(ax)
    return _save(fig, path)


def energy_gap(solver_rows: Sequence[dict], path, solvers: Sequence[str] | None = None,
               max_bars: int = 40) -> Path | None:
    """Energy gap to the reference (exact) optimum per local problem and solver.

    Gaps are divided by each problem's scale (max |Z coefficient|) so problems of
    different layers share an axis. Up to ``max_bars`` problems: grouped bars;
    more: one box of gaps per solver.

    Parameters
    ----------
    solver_rows : sequence of dict
        One per local problem and solver.
    path : str or os.PathLike
    solvers : sequence of str or None
    max_bars : int

    Returns
    -------
    pathlib.Path or None
    """
    rows = [r for r in solver_rows if r.get("gap") is not None]
    name = lambda r: r.get("method") or r["solver"]  # noqa: E731
    # the reference itself is left out only while it is the reference (all its gaps 0);
    # exact search on blocks can miss the optimum, and then its gap is worth seeing
    exact_gapless = {n for n in ("exact", "qselect-exact")
                     if all(float(r["gap"]) == 0 for r in rows if name(r) == n)}
    rows = [r for r in rows if name(r) not in exact_gapless]
    if solvers is not None:
        rows = [r for r in rows if name(r) in solvers]
    if not rows:
        return None

    def key(r):
        parts = [str(r["problem"])]
        if r.get("sparsity") is not None and len({x.get("sparsity") for x in rows}) > 1:
            parts.append(f"s={r['sparsity']}")
        if r.get("seed") is not None and len({x.get("seed") for x in rows}) > 1:
            parts.append(f"seed {r['seed']}")
        return " ".join(parts)

    def gap(r):
        return float(r["gap"]) / r["scale"] if r.get("scale") else float(r["gap"])

    problems = list(dict.fromkeys(key(r) for r in rows))
    names = list(dict.fromkeys(name(r) for r in rows))
    ref = "/".join(sorted({str(r.get("reference", "exact")) for r in rows}))
    if len(problems) <= max_bars:
        fig, (ax,) = _figure(width=max(6.0, 0.35 * len(problems) * len(names)))
        width = 0.8 / len(names)
        x = np.arange(len(problems))
        for i, s in enumerate(names):
            g = {key(r): gap(r) for r in rows if name(r) == s}
            xs = x + i * width - 0.4 + width / 2
            ys = np.array([g.get(p, np.nan) for p in problems])
            bars = ax.bar(xs, ys, width, label=s)
            zero = ys == 0  # a zero-height bar is invisible: mark optimal answers on the axis
            ax.plot(xs[zero], ys[zero], linestyle="none", marker="o", markersize=4, clip_on=False,
                    color=bars.patches[0].get_facecolor() if bars.patches else None)
        ax.set_xticks(x, problems, rotation=40, ha="right", fontsize=7)
        _legend_outside(ax)
    else:
        fig, (ax,) = _figure(width=max(6.0, 0.9 * len(names)))
        ax.boxplot([[gap(r) for r in rows if name(r) == s] for s in names], showfliers=True)
        ax.set_xticks(np.arange(1, len(names) + 1), names, rotation=30, ha="right", fontsize=8)
    # symlog: exact zeros stay visible next to gaps that differ by orders of magnitude
    gaps = np.array([gap(r) for r in rows])
    ax.set_yscale("symlog", linthresh=1e-3)
    top = float(gaps.max()) if gaps.size else 0.0
    bottom = float(min(gaps.min(), 0.0)) if gaps.size else 0.0
    ax.set_ylim(bottom * 1.5 if bottom < 0 else 0.0, max(top * 1.5, 1e-2))  # no negative axis without a negative gap
    if gaps.size and not np.any(gaps):
        ax.text(0.5, 0.6, f"every gap is 0:\neach solver reached the {ref} optimum on every problem",
                transform=ax.transAxes, ha="center", va="center", fontsize=9, wrap=True)
    elif bottom < 0:
        ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel(f"gap to {ref} optimum\n(÷ problem scale)", fontsize=9)
    ax.set_title(f"Energy gap to the {ref} optimum per local problem\n(0 = optimal)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def solver_time(solver_rows: Sequence[dict], path) -> Path | None:
    """Total wall time per solver over all local problems (log scale).

    Parameters
    ----------
    solver_rows : sequence of dict
    path : str or os.PathLike

    Returns
    -------
    pathlib.Path or None
    """
    tot: dict[str, float] = defaultdict(float)
    for r in solver_rows:
        if r.get("wall_time") is not None:
            tot[r.get("method") or r["solver"]] += float(r["wall_time"])
    if not tot:
        return None
    fig, (ax,) = _figure()
    names = list(tot)
    ax.bar(names, [max(tot[n], 1e-6) for n in names], color="tab:blue")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("wall time over all local problems (s)")
    ax.set_title("Time per solver")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)
