"""Several seeds, one tidy table: how every number in the book is measured (chapter 1).

One training run is one draw from a random process (initialisation, batch order,
data subsampling all depend on the seed), so the book never quotes a single run.
Each experiment is a function ``fn(seed) -> {"metric name": value}``;
:func:`run_seeds` calls it once per seed and :func:`grid` once per seed and per
point of a parameter grid. Both return a *tidy* ``pandas.DataFrame``, one row per
(configuration, seed, metric)::

    method  k  seed  metric    value
    mtl     5     0  accuracy  0.871
    mtl     5     1  accuracy  0.859

:func:`summarize` turns it into mean, sample standard deviation and count per
configuration, and :func:`mean_std` writes one cell of prose, ``"0.873 ± 0.012 (n=3)"``.

**The book's one rule for a claim** (chapter 1). A claim compares two arms run on the
same seeds, so it is judged on the per-seed differences ``d`` (:func:`paired_difference`):
"A beats B (by more than m)" is shown when ``mean(d) - 2 SE(d) > m``, with
``SE = std(d) / sqrt(n)`` (:func:`beats`); "A and B differ by less than b" when
``|mean(d)| + 2 SE(d) < b`` (:func:`within`), an upper bound the seeds support, never a
failure to find a difference. With five seeds, two standard errors is close to a one-sided
t-test at the 5 % level; with three it is weaker (about 10 %), which is why headline
claims use more seeds.
"""

from __future__ import annotations

import itertools
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ._checks import check_float, check_frame, check_int, check_metric, check_type
from .config import quiet, seed_everything

__all__ = [
    "RESERVED", "run_seeds", "grid", "summarize", "mean_std", "paired_difference",
    "standard_error", "beats", "within",
]

RESERVED = ("seed", "metric", "value")
"""Column names of the tidy table that a configuration or parameter may not reuse."""

_SUMMARY = ("metric", "mean", "std", "n")


def _check_seeds(seeds: Sequence[int] | int) -> list[int]:
    if isinstance(seeds, (int, np.integer)) and not isinstance(seeds, bool):
        n = check_int("seeds", int(seeds), min_value=1)
        return list(range(n))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, (Sequence, np.ndarray, range)):
        raise TypeError(
            f"seeds must be an int n (seeds 0..n-1) or a sequence of ints, got {type(seeds).__name__}: {seeds!r:.80}"
        )
    values = [check_int(f"seeds[{i}]", int(s) if isinstance(s, np.integer) else s, min_value=0)
              for i, s in enumerate(seeds)]
    if not values:
        raise ValueError("seeds is empty; pass an int n >= 1 or a non-empty sequence of ints")
    duplicates = sorted({s for s in values if values.count(s) > 1})
    if duplicates:
        raise ValueError(f"seeds must be distinct, got {values} with {duplicates} repeated")
    return values


def _check_names(name: str, keys: Sequence[Any]) -> None:
    for key in keys:
        if not isinstance(key, str) or not key:
            raise TypeError(f"{name} keys must be non-empty strings, got {key!r}")
        if key in RESERVED:
            raise ValueError(f"{name} key {key!r} clashes with a column of the table; reserved: {', '.join(RESERVED)}")


def _as_float(value: Any) -> float | None:
    """``value`` as a float if it is a real number (or a one-element tensor), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, torch.Tensor):
        return float(value.detach().cpu().item()) if value.numel() == 1 else None
    if isinstance(value, (numbers.Real, np.number)) and not isinstance(value, np.bool_):
        return float(value)
    return None


def _metrics(result: Any, seed: int, where: str, expected: list[str] | None) -> dict[str, float]:
    """Check one result of ``fn`` and return it as ``{metric: float}``."""
    if not isinstance(result, Mapping):
        raise TypeError(
            f"fn(seed={seed}){where} must return a mapping {{metric name: number}}, "
            f"got {type(result).__name__}: {result!r:.80}"
        )
    if not result:
        raise ValueError(f"fn(seed={seed}){where} returned an empty mapping; return at least one metric")
    metrics: dict[str, float] = {}
    for key, value in result.items():
        if not isinstance(key, str) or not key:
            raise TypeError(f"fn(seed={seed}){where} returned the metric name {key!r}; names must be non-empty strings")
        number = _as_float(value)
        if number is None:
            raise TypeError(
                f"fn(seed={seed}){where} returned {key!r}={value!r:.80} ({type(value).__name__}); "
                "metrics must be real numbers"
            )
        if not math.isfinite(number):
            raise ValueError(f"fn(seed={seed}){where} returned {key!r}={number}; metrics must be finite")
        metrics[key] = number
    # Every seed must report the same metrics, or their means would average different runs.
    if expected is not None and set(metrics) != set(expected):
        raise ValueError(
            f"fn(seed={seed}){where} returned metrics {sorted(metrics)}, but the first seed returned "
            f"{sorted(expected)}; every seed must return the same metrics"
        )
    return metrics


def _run(fn: Callable[[int], Mapping[str, float]], seeds: list[int], config: dict[str, Any], bar) -> list[dict]:
    where = f" with {config}" if config else ""
    rows: list[dict[str, Any]] = []
    expected: list[str] | None = None
    for seed in seeds:
        seed_everything(seed)  # so that fn's model initialisation repeats for this seed
        metrics = _metrics(fn(seed), seed, where, expected)
        expected = list(metrics) if expected is None else expected
        rows.extend({**config, "seed": seed, "metric": k, "value": v} for k, v in metrics.items())
        bar.update(1)
    return rows


def run_seeds(
    fn: Callable[[int], Mapping[str, float]],
    seeds: Sequence[int] | int,
    *,
    config: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Run one configuration once per seed and collect a tidy table (chapter 1).

    Before each call the function seeds Python, NumPy and PyTorch with
    :func:`mtl_tl.config.seed_everything`, so that a model built inside ``fn`` starts
    from the same weights for the same seed; ``fn`` should also pass the seed on to
    :func:`mtl_tl.engine.fit` (batch order) and to any data subsampling.

    Args:
        fn: ``fn(seed) -> {metric name: real number}``; every seed must return the same
            metric names. Numbers may be Python or NumPy scalars or one-element tensors.
        seeds: the seeds, or an int ``n`` for seeds ``0 .. n-1``; distinct ints >= 0.
        config: the configuration's description, e.g. ``{"method": "mtl", "k": 5}``;
            each key becomes a constant column. Keys may not be ``seed``, ``metric``, ``value``.
        progress: show a progress bar over seeds; default: yes, except under tests and CI.

    Returns:
        A ``DataFrame`` with one row per (seed, metric) and columns: the config keys,
        ``seed``, ``metric``, ``value`` (float).

    Raises:
        ValueError: for empty or repeated seeds, a reserved config key, a non-finite
            metric or metric names that change between seeds (the seed is named).
        TypeError: when ``fn`` returns something other than a mapping of numbers.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable as fn(seed), got {type(fn).__name__}: {fn!r:.80}")
    seeds = _check_seeds(seeds)
    config = {} if config is None else config
    check_type("config", config, Mapping)
    _check_names("config", list(config))
    show = (not quiet()) if progress is None else bool(progress)
    with tqdm(total=len(seeds), desc="seeds", disable=not show, leave=False) as bar:
        rows = _run(fn, seeds, dict(config), bar)
    return pd.DataFrame(rows, columns=[*config, *RESERVED])


def grid(
    fn: Callable[..., Mapping[str, float]],
    params: Mapping[str, Sequence[Any]],
    seeds: Sequence[int] | int,
    *,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Run ``fn(seed=..., **point)`` for every point of a parameter grid and every seed (chapter 1).

    Example:
        >>> grid(lambda seed, k, method: {"accuracy": run(method, k, seed)},  # doctest: +SKIP
        ...      {"method": ["tl", "mtl"], "k": [1, 5, 20]}, seeds=3)

    Args:
        fn: called with keyword arguments ``seed`` and one per parameter; returns
            ``{metric name: real number}`` as for :func:`run_seeds`.
        params: ``{parameter name: values}``; the grid is their cartesian product, in
            the order given (the first parameter varies slowest).
        seeds: the seeds, or an int ``n`` for seeds ``0 .. n-1``.
        progress: show a progress bar over all runs; default: yes, except under tests and CI.

    Returns:
        The tidy table of :func:`run_seeds` with one column per parameter.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable as fn(seed=..., **params), got {type(fn).__name__}")
    check_type("params", params, Mapping)
    if not params:
        raise ValueError("params is empty; pass {name: [values, ...]} or use run_seeds for one configuration")
    _check_names("params", list(params))
    for name, values in params.items():
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray, range)):
            raise TypeError(
                f"params[{name!r}] must be a sequence of values, got {type(values).__name__}: {values!r:.80}"
            )
        if len(values) == 0:
            raise ValueError(f"params[{name!r}] is empty; give at least one value")
    seeds = _check_seeds(seeds)
    points = [dict(zip(params, combo)) for combo in itertools.product(*params.values())]
    show = (not quiet()) if progress is None else bool(progress)
    rows: list[dict[str, Any]] = []
    with tqdm(total=len(points) * len(seeds), desc="runs", disable=not show, leave=False) as bar:
        for point in points:
            rows.extend(_run(lambda seed, point=point: fn(seed=seed, **point), seeds, point, bar))
    return pd.DataFrame(rows, columns=[*params, *RESERVED])


def summarize(df: pd.DataFrame, by: Sequence[str] | None = None) -> pd.DataFrame:
    """Mean, sample standard deviation and count of each metric per configuration (chapter 1).

    Args:
        df: a tidy table from :func:`run_seeds` or :func:`grid` (columns ``seed``,
            ``metric``, ``value`` and configuration columns).
        by: the columns that name a configuration; default: every column other than
            ``seed``, ``metric`` and ``value``.

    Returns:
        One row per configuration and metric, in the order they first appear, with
        columns ``by``, ``metric``, ``mean``, ``std`` and ``n``. ``std`` is the sample
        standard deviation (``ddof=1``) over seeds; with a single seed (``n=1``) it is
        ``0.0`` rather than NaN, so that tables and error bars stay NaN-free: read
        ``n`` before trusting a zero.
    """
    check_frame("df", df, RESERVED)
    if by is None:
        by = [c for c in df.columns if c not in RESERVED]
    else:
        if isinstance(by, str) or not isinstance(by, Sequence):
            raise TypeError(f"by must be a sequence of column names, got {type(by).__name__}: {by!r:.80}")
        by = list(by)
        missing = [c for c in by if c not in df.columns]
        if missing:
            raise ValueError(f"by names column(s) {missing} that df lacks; it has {list(df.columns)}")
        clash = [c for c in by if c in RESERVED]
        if clash:
            raise ValueError(f"by may not contain {clash}; group by configuration columns, not {', '.join(RESERVED)}")
    if not pd.api.types.is_numeric_dtype(df["value"]):
        raise TypeError(f"df['value'] must be numeric, got dtype {df['value'].dtype}")
    # dropna=False: a parameter value of None (e.g. "no pretraining") is a configuration too.
    grouped = df.groupby([*by, "metric"], sort=False, dropna=False)["value"]
    out = grouped.agg(mean="mean", std=lambda v: float(v.std(ddof=1)) if len(v) > 1 else 0.0, n="count")
    out = out.reset_index()
    out["n"] = out["n"].astype(int)
    return out[[*by, *_SUMMARY]]


def _select(df: pd.DataFrame, metric: str | None, where: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of ``df`` for ``metric`` (needed when several) and the ``where`` filters."""
    missing = [c for c in where if c not in df.columns]
    if missing:
        raise ValueError(f"filter(s) {missing} name no column of the table; it has {list(df.columns)}")
    metric = check_metric("the table", df, metric)
    mask = df["metric"] == metric
    for column, value in where.items():
        mask &= df[column].isna() if value is None else df[column] == value
    if not mask.any():
        raise ValueError(f"no row has metric={metric!r} and {dict(where)}")
    return df[mask]


def mean_std(
    data: pd.DataFrame | Sequence[float] | np.ndarray | pd.Series,
    metric: str | None = None,
    *,
    digits: int = 3,
    **where: Any,
) -> str:
    """``"0.873 ± 0.012 (n=3)"``: one result as prose writes it (chapter 1).

    Args:
        data: the values themselves (a sequence, array or ``Series`` of numbers), a
            tidy table from :func:`run_seeds`/:func:`grid`, or a summary from
            :func:`summarize`.
        metric: which metric of a table; needed only when the table holds several.
        digits: decimals of mean and standard deviation.
        **where: column filters for a table, e.g. ``method="mtl", k=5``; together
            they must select exactly one configuration.

    Returns:
        Mean ± sample standard deviation (``ddof=1``; 0 for one value) and the count.
    """
    digits = check_int("digits", digits, min_value=0, max_value=10)
    if isinstance(data, pd.DataFrame):
        is_summary = {"mean", "std", "n"} <= set(data.columns)
        rows = _select(check_frame("data", data, ["metric"] if is_summary else RESERVED), metric, where)
        if is_summary:
            if len(rows) != 1:
                raise ValueError(
                    f"the filters {where} select {len(rows)} rows of the summary; add filters so that one remains"
                )
            row = rows.iloc[0]
            mean, std, n = float(row["mean"]), float(row["std"]), int(row["n"])
            return f"{mean:.{digits}f} ± {std:.{digits}f} (n={n})"
        config = [c for c in rows.columns if c not in RESERVED and rows[c].nunique(dropna=False) > 1]
        if config:
            raise ValueError(
                f"the rows selected vary in {config}, so they are several configurations; "
                f"filter them, e.g. {config[0]}={rows[config[0]].tolist()[0]!r}"
            )
        data = rows["value"]
    elif where or metric is not None:
        raise TypeError("metric= and filters apply to a DataFrame only; data is a sequence of values")
    values = _finite_values(data, "data", "a DataFrame or a sequence of numbers", 1,
                            "data is empty; it needs at least one value")
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {std:.{digits}f} (n={values.size})"


def paired_difference(
    df: pd.DataFrame,
    metric: str | None = None,
    *,
    column: str,
    a: Any,
    b: Any,
    **where: Any,
) -> pd.Series:
    """Per-seed difference ``a - b`` of one metric between two values of ``column`` (chapter 1).

    Seeds pair the runs (same data subsample, same batch order), so the spread of the
    *difference* is usually much smaller than the spread of either method: this is
    what to assert on when prose says "A beats B".

    Example:
        >>> d = paired_difference(df, "accuracy", column="method", a="mtl", b="stl", k=5)  # doctest: +SKIP
        >>> mean_std(d)  # doctest: +SKIP

    Args:
        df: a tidy table from :func:`run_seeds`/:func:`grid`.
        metric: which metric; needed only when the table holds several.
        column: the column that tells the two arms apart, e.g. ``"method"``.
        a, b: its two values.
        **where: filters for the other columns, so that one configuration per arm remains.

    Returns:
        A ``Series`` indexed by seed (ascending) of ``value(a) - value(b)``.
    """
    check_frame("df", df, RESERVED)
    if not isinstance(column, str) or column not in df.columns or column in RESERVED:
        options = [c for c in df.columns if c not in RESERVED]
        raise ValueError(f"column={column!r} is not a configuration column of df; choose one of: {options}")
    if column in where:
        raise ValueError(f"column={column!r} is also a filter; the arms are chosen by a= and b=")
    arms = []
    for arm, value in (("a", a), ("b", b)):
        rows = _select(df, metric, {**where, column: value})
        if rows["seed"].duplicated().any():
            varying = [c for c in rows.columns if c not in RESERVED and rows[c].nunique(dropna=False) > 1]
            raise ValueError(f"{arm}={value!r} selects several runs per seed (they vary in {varying}); add filters")
        arms.append(rows.set_index("seed")["value"])
    if set(arms[0].index) != set(arms[1].index):
        raise ValueError(
            f"a={a!r} and b={b!r} were run with different seeds ({sorted(arms[0].index.tolist())} vs "
            f"{sorted(arms[1].index.tolist())}); a paired difference needs the same seeds"
        )
    difference = (arms[0] - arms[1]).sort_index()
    difference.name = f"{a} - {b}"
    return difference


def _finite_values(data: Any, name: str, kind: str, min_size: int, too_few: str) -> np.ndarray:
    """``data`` (a sequence, array, ``Series`` or tensor of numbers) as a flat float array, checked."""
    if isinstance(data, (str, bytes)) or not isinstance(data, (Sequence, np.ndarray, pd.Series, torch.Tensor)):
        raise TypeError(f"{name} must be {kind}, got {type(data).__name__}")
    values = np.asarray(data.detach().cpu() if isinstance(data, torch.Tensor) else data, dtype=float).ravel()
    if values.size < min_size:
        raise ValueError(too_few.format(n=values.size))
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite, got {values.tolist()[:8]}")
    return values


def _differences(diff: Any) -> np.ndarray:
    return _finite_values(diff, "diff", "a sequence of per-seed differences", 2,
                          "a claim needs the differences of at least 2 seeds, got {n}")


def standard_error(diff: Sequence[float] | np.ndarray | pd.Series) -> float:
    """``std(d, ddof=1) / sqrt(n)``: the standard error of the mean of per-seed differences."""
    values = _differences(diff)
    return float(values.std(ddof=1) / math.sqrt(values.size))


def beats(diff: Sequence[float] | np.ndarray | pd.Series, by: float = 0.0) -> bool:
    """The book's rule for "A beats B by more than ``by``": ``mean(d) - 2 SE(d) > by`` (chapter 1).

    Args:
        diff: per-seed differences ``A - B`` (e.g. from :func:`paired_difference`).
        by: the margin the claim states; 0 for "A beats B".
    """
    by = check_float("by", by)
    values = _differences(diff)
    return bool(values.mean() - 2 * standard_error(values) > by)


def within(diff: Sequence[float] | np.ndarray | pd.Series, bound: float) -> bool:
    """The book's rule for "A and B differ by less than ``bound``": ``|mean(d)| + 2 SE(d) < bound``.

    This is an upper bound the seeds support; a wide spread makes it fail, as it should.
    """
    bound = check_float("bound", bound, min_value=0.0, strict_min=True)
    values = _differences(diff)
    return bool(abs(values.mean()) + 2 * standard_error(values) < bound)

