"""The book's figures, drawn with matplotlib only.

Convention: every function returns the ``matplotlib.figure.Figure`` it drew on and
accepts an optional ``ax`` to draw into an existing Axes (then it returns
``ax.figure``). Every figure has a title, both axes labelled with their units and a
legend whenever it shows more than one series.

A figure made here (no ``ax``) is detached from pyplot: a notebook cell that ends
with the call shows it exactly once, ``fig.savefig(path)`` writes it, and scripts
that draw hundreds of figures do not pile up open windows. Colours come from
:data:`PALETTE` (Okabe and Ito's colour-blind-safe set) whatever the global style;
:func:`use_book_style` makes it, and the book's other defaults, global on request.
Importing this module changes no global setting.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ._checks import check_choice, check_frame, check_metric
from .history import History  # what training leaves behind; the figures need no engine
from ._plotting import (
    as_history,
    domain_names,
    epoch_axis,
    features_domains_labels,
    figure_and_axes,
    legend_if_several,
    log_series,
    metric_label,
    one_row_per_point,
)


__all__ = [
    "PALETTE",
    "BOOK_STYLE",
    "use_book_style",
    "learning_curves",
    "accuracy_vs_labels",
    "per_task_bars",
    "weight_trajectories",
    "gradient_conflict",
    "feature_pca",
    "decision_map",
]

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
"""Okabe-Ito colours, distinguishable under the common colour-vision deficiencies."""

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")

BOOK_STYLE: dict[str, Any] = {
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "legend.frameon": False,
    "image.cmap": "viridis",
}
"""The rcParams of :func:`use_book_style`; also usable as ``matplotlib.rc_context(BOOK_STYLE)``."""


def use_book_style() -> None:
    """Make the book's style (colour-blind palette, light grid, no top/right spines) global (chapter 1).

    Call it once in a notebook's first cell; it changes ``matplotlib.rcParams``.
    """
    matplotlib.rcParams.update(BOOK_STYLE)


def learning_curves(
    history: History,
    *,
    key: str = "metric",
    tasks: Sequence[str] | None = None,
    ylabel: str | None = None,
    title: str | None = None, ax: Axes | None = None,
) -> Figure:
    """Training (solid) and test (dashed) ``key`` of each task per epoch (chapter 4.1).

    Args:
        history: what :func:`mtl_tl.engine.fit` returned.
        key: ``"metric"`` (default: accuracy as a fraction correct) or ``"loss"``.
        tasks: which tasks to draw; default: all, in the order recorded.
        ylabel, title: override the defaults.
        ax: draw into this Axes instead of a new figure.

    Returns:
        The figure, with one line per (task, split) recorded.
    """
    history = as_history(history)
    check_choice("key", key, ("metric", "loss"))
    if not history.records:
        raise ValueError("history.records is empty; train with mtl_tl.engine.fit first")
    recorded = list(dict.fromkeys(r["task"] for r in history.records))
    if tasks is None:
        tasks = recorded
    else:
        if isinstance(tasks, str) or not isinstance(tasks, Sequence):
            raise TypeError(f"tasks must be a sequence of task names, got {type(tasks).__name__}")
        unknown = [t for t in tasks if t not in recorded]
        if unknown or not tasks:
            raise ValueError(f"tasks={list(tasks)} names no recorded task; recorded: {recorded}")
    fig, ax = figure_and_axes(ax)
    series = 0
    for i, task in enumerate(tasks):
        for split, style in (("train", "-"), ("test", "--")):
            points = [(r["epoch"], r[key]) for r in history.records if r["task"] == task and r["split"] == split]
            if points:
                x, y = zip(*points)
                ax.plot(x, y, style, marker="o", markersize=3, color=PALETTE[i % len(PALETTE)],
                        label=f"{task} ({split})")
                series += 1
    epoch_axis(ax)
    ax.set_ylabel(ylabel or ("metric (accuracy: fraction correct)" if key == "metric" else "loss (mean per example)"))
    ax.set_title(title or f"Learning curves: {key} per epoch, train solid, test dashed")
    legend_if_several(ax, series)
    return fig


def _summary_rows(summary: Any, metric: str | None, keys: list[str]) -> tuple[pd.DataFrame, str]:
    """The rows of one metric of a :func:`mtl_tl.experiments.summarize` table, one per point ``keys``."""
    summary = check_frame("summary", summary, [*keys, "metric", "mean", "std"])
    metric = check_metric("summary", summary, metric)
    rows = summary[summary["metric"] == metric]
    one_row_per_point(rows, keys, "summary")
    return rows, metric


def accuracy_vs_labels(
    summary: pd.DataFrame,
    *,
    x: str = "k",
    hue: str | None = "method",
    metric: str | None = None,
    xlabel: str | None = None, ylabel: str | None = None,
    title: str | None = None, ax: Axes | None = None,
) -> Figure:
    """Mean metric against the number of labelled examples, with std error bars over seeds (chapter 4.1).

    Args:
        summary: a table from :func:`mtl_tl.experiments.summarize` with columns ``x``,
            ``hue`` (if given), ``metric``, ``mean``, ``std``.
        x: the numeric column on the horizontal axis; drawn on a log scale when its
            positive values span more than a factor of 10.
        hue: the column that tells the series apart (one line each), or ``None``.
        metric: which metric; needed only when the summary holds several.
        xlabel, ylabel, title: override the defaults.
        ax: draw into this Axes instead of a new figure.

    Returns:
        The figure, with one error-bar line per value of ``hue``.
    """
    rows, metric = _summary_rows(summary, metric, [x] + ([hue] if hue is not None else []))
    if not pd.api.types.is_numeric_dtype(rows[x]):
        raise TypeError(f"summary[{x!r}] must be numeric to be an axis, got dtype {rows[x].dtype}")
    fig, ax = figure_and_axes(ax)
    groups = [(None, rows)] if hue is None else list(rows.groupby(hue, sort=False, dropna=False))
    for i, (name, group) in enumerate(groups):
        group = group.sort_values(x)
        ax.errorbar(group[x], group["mean"], yerr=group["std"], marker="o", capsize=3,
                    color=PALETTE[i % len(PALETTE)], label=None if name is None else str(name))
    values = rows[x].to_numpy(dtype=float)
    log = bool(values.min() > 0 and values.max() / values.min() > 10)
    if log:
        ax.set_xscale("log")
    base = xlabel or ("labelled examples per class" if x == "k" else x)
    ax.set_xlabel(f"{base} (log scale)" if log else base)
    ax.set_ylabel(ylabel or f"{metric_label(metric)}, mean ± std")
    ax.set_title(title or f"{metric} against {base}")
    legend_if_several(ax, len(groups), title=hue)
    return fig


def per_task_bars(
    summary: pd.DataFrame,
    *,
    task_col: str = "task",
    hue: str = "method",
    metric: str | None = None,
    ylabel: str | None = None,
    title: str | None = None, ax: Axes | None = None,
) -> Figure:
    """Grouped bars: the mean metric of each task per method, with std error bars (chapter 4.2).

    Args:
        summary: a table from :func:`mtl_tl.experiments.summarize` with columns
            ``task_col``, ``hue``, ``metric``, ``mean``, ``std``.
        task_col: the column naming the task (one group of bars each).
        hue: the column naming the method (one bar per group each).
        metric: which metric; needed only when the summary holds several.
        ylabel, title: override the defaults.
        ax: draw into this Axes instead of a new figure.

    Returns:
        The figure, with one bar per (task, method) row of the summary.
    """
    rows, metric = _summary_rows(summary, metric, [task_col, hue])
    task_names = list(dict.fromkeys(rows[task_col]))
    methods = list(dict.fromkeys(rows[hue]))
    fig, ax = figure_and_axes(ax, figsize=(max(6.0, 1.5 * len(task_names)), 4.0))
    width = 0.8 / len(methods)
    positions = np.arange(len(task_names))
    for i, method in enumerate(methods):
        part = rows[rows[hue] == method].set_index(task_col)
        present = [t for t in task_names if t in part.index]
        offsets = positions[[task_names.index(t) for t in present]] + (i - (len(methods) - 1) / 2) * width
        ax.bar(offsets, part.loc[present, "mean"], width, yerr=part.loc[present, "std"], capsize=3,
               color=PALETTE[i % len(PALETTE)], label=str(method))
    ax.set_xticks(positions, [str(t) for t in task_names])
    ax.set_xlabel(f"{task_col} (one group of bars each)")
    ax.set_ylabel(ylabel or f"{metric_label(metric)}, mean ± std")
    ax.set_title(title or f"{metric} per {task_col} and {hue}")
    legend_if_several(ax, len(methods), title=hue)
    return fig


def _log_figure(history: History, prefix: str, ax: Axes | None, *, ylabel: str, title: str, legend_title: str,
                label: Callable[[str], str] = str, zero_line: bool = False) -> Figure:
    """One line per series of the strategy logs ``prefix<name>`` against the epoch, labelled ``label(name)``."""
    series = log_series(as_history(history), prefix)
    fig, ax = figure_and_axes(ax)
    if zero_line:
        ax.axhline(0.0, color="grey", linewidth=1, linestyle=":")
    for i, (name, (epochs, values)) in enumerate(series.items()):
        ax.plot(epochs, values, marker="o", markersize=3, color=PALETTE[i % len(PALETTE)], label=label(name))
    epoch_axis(ax)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    legend_if_several(ax, len(series), title=legend_title)
    return fig


def weight_trajectories(history: History, *, title: str | None = None, ax: Axes | None = None) -> Figure:
    """The weight of each task's loss per epoch, from the logs ``"weight/<task>"`` (chapter 3).

    Args:
        history: what :func:`mtl_tl.engine.fit` returned with a loss-weighting strategy.
        title: override the default.
        ax: draw into this Axes instead of a new figure.

    Returns:
        The figure, with one line per task.
    """
    return _log_figure(history, "weight/", ax, ylabel="task weight (multiplier of the task's loss, unitless)",
                       title=title or "Task weights per epoch (epoch mean)", legend_title="task")


def gradient_conflict(history: History, *, title: str | None = None, ax: Axes | None = None) -> Figure:
    """Cosine between two tasks' gradients on the shared trunk per epoch, logs ``"cos/<a>|<b>"`` (chapter 3).

    Below the zero line the tasks pull the shared weights in opposing directions:
    the conflict that gradient surgery (PCGrad) removes.

    Args:
        history: what :func:`mtl_tl.engine.fit` returned with a strategy that logs cosines.
        title: override the default.
        ax: draw into this Axes instead of a new figure.

    Returns:
        The figure, with one line per task pair, and a grey zero line.
    """
    return _log_figure(history, "cos/", ax, ylabel="cosine of task gradients (-1 opposed to 1 aligned)",
                       title=title or "Gradient conflict: cosine between task gradients per epoch",
                       legend_title="task pair", label=lambda pair: pair.replace("|", " vs "), zero_line=True)


def _scatter_by_domain(ax: Axes, xy: np.ndarray, domain: np.ndarray, label: np.ndarray | None,
                       shown: dict[Any, str]) -> None:
    """One colour per domain; with labels, one marker shape per class and a legend of both."""
    classes = [] if label is None else list(dict.fromkeys(label.tolist()))
    for i, d in enumerate(shown):
        color = PALETTE[i % len(PALETTE)]
        rows = domain == d
        if label is None:
            ax.scatter(xy[rows, 0], xy[rows, 1], s=12, alpha=0.7, color=color, label=shown[d])
            continue
        for j, c in enumerate(classes):
            part = rows & (label == c)
            if part.any():
                ax.scatter(xy[part, 0], xy[part, 1], s=14, alpha=0.7, color=color, marker=_MARKERS[j % len(_MARKERS)])
    if label is None:
        legend_if_several(ax, len(shown), title="domain")
        return
    # Two keys in one legend: colour says the domain, marker shape the class.
    handles = [Line2D([], [], linestyle="", marker="o", color=PALETTE[i % len(PALETTE)], label=name)
               for i, name in enumerate(shown.values())]
    handles += [Line2D([], [], linestyle="", marker=_MARKERS[j % len(_MARKERS)], color="grey",
                       label=f"class {c}") for j, c in enumerate(classes)]
    ax.legend(handles=handles, fontsize="small")


def feature_pca(
    features: torch.Tensor | np.ndarray,
    domains: torch.Tensor | np.ndarray | Sequence[Any],
    *,
    labels: torch.Tensor | np.ndarray | Sequence[Any] | None = None,
    names: Mapping[Any, str] | Sequence[str] | None = None,
    title: str | None = None, ax: Axes | None = None,
) -> Figure:
    """Features projected on their first two principal components, coloured by domain (chapter 4.1).

    If the domains form separate clouds, a classifier trained on one sees the other
    as out of distribution: the picture behind domain adaptation.

    Args:
        features: ``(N, D)`` features, e.g. from :func:`mtl_tl.engine.extract_features`; ``D >= 2``.
        domains: ``(N,)`` domain of each row, as ids or names.
        labels: optional ``(N,)`` class of each row, drawn as marker shapes.
        names: display names of the domain ids, as ``{id: name}`` or a sequence indexed by id.
        title: override the default (which states the variance explained).
        ax: draw into this Axes instead of a new figure.

    Returns:
        The figure, with one scatter point per row, one colour per domain.
    """
    from sklearn.decomposition import PCA

    x, domain, label = features_domains_labels(features, domains, labels)
    shown = domain_names(domain, names)
    pca = PCA(n_components=2, random_state=0)
    xy = pca.fit_transform(x)
    v1, v2 = pca.explained_variance_ratio_
    fig, ax = figure_and_axes(ax, figsize=(6.0, 5.0))
    _scatter_by_domain(ax, xy, domain, label, shown)
    ax.set_xlabel(f"principal component 1 (feature units, {v1:.0%} of variance)")
    ax.set_ylabel(f"principal component 2 (feature units, {v2:.0%} of variance)")
    ax.set_title(title or f"PCA of features by domain: {v1 + v2:.0%} of variance explained")
    return fig


def _grid(table: pd.DataFrame, row: str, col: str, value: str) -> tuple[list, list, np.ndarray]:
    """The values of ``row`` and ``col`` in order of appearance, and ``value`` on that grid (NaN: no row)."""
    rows = list(dict.fromkeys(table[row]))
    cols = list(dict.fromkeys(table[col]))
    grid = np.full((len(rows), len(cols)), np.nan)
    for r, c, v in zip(table[row], table[col], table[value]):
        grid[rows.index(r), cols.index(c)] = v
    if not np.isfinite(grid).any():
        raise ValueError(f"table[{value!r}] holds no finite value")
    return rows, cols, grid


def _colour_scale(grid: np.ndarray, center: float | None) -> tuple[str, float, float]:
    """A sequential map over the values, or a diverging one symmetric about ``center``."""
    finite = grid[np.isfinite(grid)]
    if center is None:
        return "viridis", float(finite.min()), float(finite.max())
    reach = float(np.abs(finite - center).max()) or 1.0
    return "PuOr", center - reach, center + reach


def _annotate(ax: Axes, image: Any, grid: np.ndarray, fmt: str) -> None:
    """Each finite cell's value, in white on dark colours and black on light ones."""
    colormap = image.get_cmap()
    for (i, j), v in np.ndenumerate(grid):
        if np.isfinite(v):
            red, green, blue, _ = colormap(image.norm(v))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
            ax.text(j, i, fmt.format(v), ha="center", va="center", color="white" if dark else "black")


def decision_map(
    table: pd.DataFrame,
    *,
    row: str,
    col: str,
    value: str,
    annotate: bool = True,
    fmt: str = "{:.2f}",
    center: float | None = None,
    xlabel: str | None = None, ylabel: str | None = None,
    title: str | None = None, ax: Axes | None = None,
) -> Figure:
    """Heatmap of ``value`` over two conditions, e.g. where MTL beats TL (chapter 5).

    Args:
        table: a tidy table with columns ``row``, ``col`` and ``value`` and one row
            per (row, col) pair; missing pairs are left blank.
        row, col: the columns on the vertical and horizontal axes, in the order their
            values first appear.
        value: the numeric column to colour.
        annotate: write each cell's value with ``fmt``.
        center: for a signed value such as a difference, the value at the middle of a
            diverging colour map (symmetric limits); default: a sequential map.
        xlabel, ylabel, title: override the defaults (the column names); give units here.
        ax: draw into this Axes instead of a new figure.

    Returns:
        The figure (its Axes holds the image, a second Axes the colour bar).
    """
    table = check_frame("table", table, [row, col, value])
    if not pd.api.types.is_numeric_dtype(table[value]):
        raise TypeError(f"table[{value!r}] must be numeric, got dtype {table[value].dtype}")
    one_row_per_point(table, [row, col], "table")
    try:
        fmt.format(1.0)
    except (ValueError, IndexError, KeyError) as error:
        raise ValueError(f"fmt={fmt!r} cannot format a number ({error}); use e.g. '{{:.2f}}'") from None
    rows, cols, grid = _grid(table, row, col, value)
    cmap, vmin, vmax = _colour_scale(grid, center)
    fig, ax = figure_and_axes(ax, figsize=(1.0 + 1.1 * len(cols), 1.0 + 0.8 * len(rows)))
    image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    fig.colorbar(image, ax=ax, label=value)
    if annotate:
        _annotate(ax, image, grid, fmt)
    ax.set_xticks(range(len(cols)), [str(c) for c in cols])
    ax.set_yticks(range(len(rows)), [str(r) for r in rows])
    ax.grid(False)
    ax.set_xlabel(xlabel or col)
    ax.set_ylabel(ylabel or row)
    ax.set_title(title or f"{value} by {row} and {col}")
    return fig
