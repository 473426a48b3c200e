"""What every figure of :mod:`mtl_tl.plots` shares: its Axes, its labels and the reading of its input.

Internal to :mod:`mtl_tl.plots` (whose public figures are the only callers): the readers
(``as_history``, ``as_array``, ``features_domains_labels``, ``domain_names``,
``one_row_per_point``) check a figure's input once, at its door; the drawing helpers
trust what they are given. Nothing here imports pyplot at import time, nor the engine:
a figure of a training run needs only the run's ``records`` and ``logs``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

if TYPE_CHECKING:
    from .engine import History


def figure_and_axes(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.0)) -> tuple[Figure, Axes]:
    """A new figure detached from pyplot, or the figure of the caller's ``ax``."""
    if ax is None:
        # pyplot is imported here, not at import time, so that importing mtl_tl.plots
        # leaves the backend choice to the caller (tests pick Agg first).
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=figsize)
        # Detach from pyplot: the returned figure is then displayed once by a notebook,
        # not a second time by the inline backend's end-of-cell flush.
        plt.close(fig)
        return fig, ax
    if not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax.figure, ax


def epoch_axis(ax: Axes) -> None:
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "epoch 2.5" ticks


def legend_if_several(ax: Axes, series: int, **kwargs: Any) -> None:
    """A legend only when there is more than one series to tell apart."""
    if series > 1:
        ax.legend(**kwargs)


def metric_label(metric: str) -> str:
    """An axis label with units for a metric name."""
    lower = metric.lower()
    if "acc" in lower:
        return f"{metric} (fraction correct)"
    if "mse" in lower:
        return f"{metric} (squared target units)"
    if "loss" in lower:
        return f"{metric} (mean per example)"
    return f"{metric} (task metric, higher is better)"


def as_history(history: Any) -> History:
    """``history`` if it has the ``records`` and ``logs`` lists of a :class:`~mtl_tl.engine.History`.

    Duck-typed on purpose: drawing a training run needs only these two lists, not the engine.
    """
    if not all(isinstance(getattr(history, name, None), list) for name in ("records", "logs")):
        raise TypeError(
            "history must be History (what mtl_tl.engine.fit returns: an object with the lists "
            f".records and .logs), got {type(history).__name__}: {history!r:.80}"
        )
    return history


def log_series(history: History, prefix: str) -> dict[str, tuple[list[int], list[float]]]:
    """``{name: (epochs, values)}`` of the strategy logs whose key starts with ``prefix``."""
    series: dict[str, tuple[list[int], list[float]]] = {}
    for entry in history.logs:
        key = entry.get("key")
        if isinstance(key, str) and key.startswith(prefix):
            epochs, values = series.setdefault(key[len(prefix):], ([], []))
            epochs.append(entry["epoch"])
            values.append(float(entry["value"]))
    if not series:
        keys = sorted({str(e.get("key")) for e in history.logs})
        raise ValueError(
            f"history.logs has no '{prefix}...' keys; present: {keys[:12] or 'none'}. "
            "Train with a strategy that logs them (see mtl_tl.multitask)"
        )
    return series


def _plain(value: Any) -> Any:
    """A NumPy scalar as the Python value, so that messages read ``1``, not ``np.int64(1)``."""
    return value.item() if isinstance(value, np.generic) else value


def one_row_per_point(rows: pd.DataFrame, keys: list[str], name: str) -> None:
    """Raise ``ValueError`` if two rows of ``rows`` would be drawn at the same point ``keys``."""
    duplicated = rows.duplicated(subset=keys, keep=False)
    if duplicated.any():
        others = [c for c in rows.columns if c not in (*keys, "mean", "std", "n")]
        varying = [c for c in others if rows[c].nunique(dropna=False) > 1]
        first = rows[duplicated].iloc[0]
        point = ", ".join(f"{k}={_plain(first[k])!r}" for k in keys)
        raise ValueError(
            f"{name} has several rows for {point} (they differ in {varying}); "
            "filter the table to one configuration per point first"
        )


def as_array(name: str, value: Any, ndim: int) -> np.ndarray:
    """A tensor, array or sequence as a NumPy array of ``ndim`` dimensions."""
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy()
    elif isinstance(value, (np.ndarray, Sequence, pd.Series)) and not isinstance(value, (str, bytes)):
        array = np.asarray(value)
    else:
        raise TypeError(f"{name} must be a tensor, array or sequence, got {type(value).__name__}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {array.shape}")
    return array


def domain_names(domain: np.ndarray, names: Any) -> dict[Any, str]:
    """``{domain id: display name}`` in the order the domains first appear."""
    if names is not None and not isinstance(names, (Mapping, Sequence)):
        raise TypeError(f"names must be a mapping {{id: name}} or a sequence of names, got {type(names).__name__}")
    ids = list(dict.fromkeys(domain.tolist()))
    if names is None:
        return {d: str(d) for d in ids}
    shown = {}
    for d in ids:
        try:
            shown[d] = str(names[d] if isinstance(names, Mapping) else names[int(d)])
        except (KeyError, IndexError, ValueError, TypeError):
            raise ValueError(f"names has no entry for domain {d!r}") from None
    return shown


def features_domains_labels(
    features: Any, domains: Any, labels: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``feature_pca``'s data as arrays, checked: ``(N, D)`` finite features, ``(N,)`` domains and labels."""
    x = as_array("features", features, 2).astype(float)
    if len(x) < 2 or x.shape[1] < 2:
        raise ValueError(f"features must be (N, D) with N >= 2 and D >= 2 for a 2-D PCA, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    domain = as_array("domains", domains, 1)
    if len(domain) != len(x):
        raise ValueError(f"domains must have one entry per row of features ({len(x)}), got {len(domain)}")
    label = None if labels is None else as_array("labels", labels, 1)
    if label is not None and len(label) != len(x):
        raise ValueError(f"labels must have one entry per row of features ({len(x)}), got {len(label)}")
    return x, domain, label
