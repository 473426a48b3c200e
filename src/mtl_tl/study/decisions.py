"""From a study's per-seed results to a decision table and rules of thumb (chapter 4.3).

Each cell's winner is compared with its runner-up by the book's one rule for a claim
(chapter 1, :func:`mtl_tl.experiments.beats`): on the per-seed differences, which pair
the two methods on the same data, initialisation and batches. A rule is stated only
when the cells it covers support it with at least :data:`~mtl_tl.study.design.MIN_SEEDS`
seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from .._checks import check_frame, check_type
from ..experiments import beats, standard_error
from .design import (
    METHODS,
    MIN_SEEDS,
    NEGLIGIBLE,
    PRETRAINED_METHODS,
    RELATEDNESS,
    SOURCE_METHODS,
    UNRELATED_SHIFT,
    relatedness_shift,
)

_COLUMNS = ["relatedness", "k", "method", "seed", "metric", "value"]


def _check_table(table: Any) -> pd.DataFrame:
    check_frame("table", table, _COLUMNS)
    unknown = sorted(set(table["method"]) - set(METHODS))
    if unknown:
        raise ValueError(f"table names unknown method(s) {unknown}; accepted: {', '.join(METHODS)}")
    return table


def _cells(table: pd.DataFrame, metric: str) -> list[tuple[tuple[str, float, int], pd.DataFrame]]:
    """``((relatedness, shift, k), cell)`` by shift then k; a cell has one row per seed, a column per method."""
    part = table[table["metric"] == metric]
    if part.empty:
        raise ValueError(f"table has no rows for metric {metric!r}; it has {sorted(set(table['metric']))}")
    if "shift" not in part.columns:
        part = part.assign(shift=[relatedness_shift(r) if r in RELATEDNESS else float("nan")
                                  for r in part["relatedness"]])
    cells = []
    for (level, shift, k), group in part.groupby(["relatedness", "shift", "k"], sort=False, dropna=False):
        if group.duplicated(["method", "seed"]).any():
            raise ValueError(f"table has several rows per method and seed for relatedness={level!r}, k={k}")
        cell = group.pivot(index="seed", columns="method", values="value")
        cells.append(((level, float(shift), int(k)), cell[[m for m in METHODS if m in cell.columns]]))
    return sorted(cells, key=lambda c: (c[0][1], c[0][2]))


def _mean(cell: pd.DataFrame, method: str) -> float:
    return float(cell[method].mean())


def _ranked(cell: pd.DataFrame) -> list[str]:
    """The cell's methods, best mean first; a tie goes to the method listed first in METHODS."""
    return sorted(cell.columns, key=lambda m: (-_mean(cell, m), METHODS.index(m)))


def _paired(cell: pd.DataFrame, a: str, b: str) -> pd.Series:
    """Per-seed ``a - b`` over the seeds both methods ran."""
    return (cell[a] - cell[b]).dropna()


def _beats(cell: pd.DataFrame, a: str, b: str) -> bool:
    """``a`` beats ``b`` by the book's rule on paired seeds, with at least :data:`~mtl_tl.study.design.MIN_SEEDS` of them."""
    d = _paired(cell, a, b)
    return len(d) >= MIN_SEEDS and beats(d)


def _gains_little(cell: pd.DataFrame, a: str, b: str) -> bool:
    """``a`` gains less than :data:`~mtl_tl.study.design.NEGLIGIBLE` over ``b``: an upper bound on paired seeds.

    ``mean(a - b) + 2 SE < NEGLIGIBLE``, which is the rule of :func:`mtl_tl.experiments.beats`
    applied to ``b - a`` with the margin ``-NEGLIGIBLE``.
    """
    d = _paired(cell, a, b)
    return len(d) >= MIN_SEEDS and beats(-d, by=-NEGLIGIBLE)


def decision_table(table: pd.DataFrame, metric: str = "target_accuracy") -> pd.DataFrame:
    """Who wins each (relatedness, k) cell, by how much, and whether it is more than noise.

    Args:
        table: a study's tidy per-seed table (``StudyResult.table``): columns
            ``relatedness``, ``k``, ``method``, ``seed``, ``metric``, ``value`` (and
            ``shift``; derived from preset names when absent).
        metric: the metric to rank the methods by (higher is better).

    Returns:
        One row per cell, sorted by shift then k, with columns ``relatedness``, ``shift``,
        ``k``, ``winner``, ``winner_mean``, ``winner_std``, ``runner_up``,
        ``runner_up_mean``, ``runner_up_std``, ``margin`` (mean of the per-seed differences
        winner minus runner-up), ``margin_se`` (their standard error; NaN with one seed),
        ``clear`` (the winner beats the runner-up by the book's rule, ``margin - 2 margin_se
        > 0``, on at least :data:`~mtl_tl.study.design.MIN_SEEDS` paired seeds), ``n``
        (paired seeds), ``scratch_mean`` (NaN without scratch), ``best_source_method`` and
        ``source_gain`` (the best method that uses the source, minus scratch; NaN when
        either is missing).
    """
    table = _check_table(table)
    out = []
    for (level, shift, k), cell in _cells(table, metric):
        if cell.shape[1] < 2:
            raise ValueError(f"cell relatedness={level!r}, k={k} has {cell.shape[1]} method(s); "
                             "a decision table needs >= 2")
        ranked = _ranked(cell)  # scratch is listed first: the simplest method wins a tie
        w, r = ranked[0], ranked[1]
        d = _paired(cell, w, r)
        scratch = _mean(cell, "scratch") if "scratch" in cell.columns else float("nan")
        users = [m for m in ranked if m in SOURCE_METHODS]
        best_user = users[0] if users else None
        gain = _mean(cell, best_user) - scratch if best_user is not None else float("nan")
        out.append({
            "relatedness": level, "shift": shift, "k": k,
            "winner": w, "winner_mean": _mean(cell, w), "winner_std": float(cell[w].std()),
            "runner_up": r, "runner_up_mean": _mean(cell, r), "runner_up_std": float(cell[r].std()),
            "margin": float(d.mean()) if len(d) else float("nan"),
            "margin_se": standard_error(d) if len(d) >= 2 else float("nan"),
            "clear": _beats(cell, w, r), "n": len(d),
            "scratch_mean": scratch, "best_source_method": best_user, "source_gain": gain,
        })
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------ rules


def _fmt(cell: pd.DataFrame, method: str) -> str:
    return f"{method} {_mean(cell, method):.2f} ± {float(cell[method].std()):.2f}"


_RULE_COLUMNS = ["rule", "situation", "advice", "evidence", "supported"]
_Rule = dict[str, Any]


def _rule(rule: str, situation: str, advice: str, evidence: str, supported: bool) -> _Rule:
    return dict(zip(_RULE_COLUMNS, (rule, situation, advice, evidence, bool(supported))))


@dataclass(frozen=True)
class _Grid:
    """The target-accuracy cells of a study's table, and the axes of the grid they form."""

    cells: list[tuple[tuple[str, float, int], pd.DataFrame]]  # ((name, shift, k), cell), by shift then k
    by_key: dict[tuple[str, float, int], pd.DataFrame]
    methods: set[str]
    ks: list[int]  # ascending
    levels: list[tuple[float, str]]  # (shift, name), near to far

    @classmethod
    def of(cls, table: pd.DataFrame) -> _Grid:
        cells = _cells(table, "target_accuracy")
        return cls(cells=cells, by_key=dict(cells), methods=set(table["method"]),
                   ks=sorted({key[2] for key, _ in cells}), levels=sorted({(key[1], key[0]) for key, _ in cells}))

    def cell(self, shift: float, name: str, k: int) -> pd.DataFrame | None:
        return self.by_key.get((name, shift, k))


def _few_labels_related_source(grid: _Grid) -> _Rule | None:
    """Rule 1. Few labels and a related source: use the source."""
    k0 = grid.ks[0]
    related = [(s, n) for s, n in grid.levels if s < UNRELATED_SHIFT]
    if "scratch" not in grid.methods or not related:
        return None
    holds, evidence = [], []
    for shift, name in related:
        c = grid.cell(shift, name, k0)
        if c is None or "scratch" not in c.columns:
            continue
        winner = _ranked(c)[0]
        if winner in SOURCE_METHODS and _beats(c, winner, "scratch"):
            holds.append((name, winner))
            evidence.append(f"{name}: {_fmt(c, winner)} vs {_fmt(c, 'scratch')}")
    nearest_ok = bool(holds) and holds[0][0] == related[0][1]
    winners = sorted({w for _, w in holds}, key=METHODS.index)
    return _rule(
        "few labels, related source",
        f"few target labels (k = {k0} per class) and a related source "
        f"({', '.join(n for n, _ in holds) or related[0][1]})",
        f"use the source: {' or '.join(winners) if winners else 'a method that uses the source'} "
        "beats training from scratch",
        "; ".join(evidence) if nearest_ok else
        f"at k = {k0} and the nearest level {related[0][1]!r} no method that uses the source beats scratch",
        nearest_ok)


def _many_labels(grid: _Grid) -> _Rule | None:
    """Rule 2. Many labels: scratch is enough."""
    k0, k1 = grid.ks[0], grid.ks[-1]
    if "scratch" not in grid.methods or k1 <= k0:
        return None
    ok, evidence = True, []
    for shift, name in grid.levels:
        c = grid.cell(shift, name, k1)
        if c is None or "scratch" not in c.columns:
            ok = False
            continue
        others = [m for m in _ranked(c) if m != "scratch"]
        ok &= bool(others) and _gains_little(c, others[0], "scratch")
        evidence.append(f"{name}: {_fmt(c, 'scratch')}, best other {_fmt(c, others[0])}" if others else name)
    return _rule("many labels", f"many target labels (k = {k1} per class)",
                 f"scratch is enough: no method gains {NEGLIGIBLE:g} or more over training from scratch",
                 "; ".join(evidence), ok)


def _unrelated_source(grid: _Grid) -> _Rule | None:
    """Rule 3. Unrelated source: don't transfer (and say where fine-tuning even hurts)."""
    far_shift, far_name = grid.levels[-1]
    pre = [m for m in PRETRAINED_METHODS if m in grid.methods]
    if "scratch" not in grid.methods or not pre or far_shift < UNRELATED_SHIFT:
        return None
    ok, evidence, negative = True, [], []
    for k in grid.ks:
        c = grid.cell(far_shift, far_name, k)
        if c is None or "scratch" not in c.columns:
            ok = False
            continue
        present = [m for m in pre if m in c.columns]
        ok &= all(_gains_little(c, m, "scratch") for m in present)
        if "transfer" in c.columns and _beats(c, "scratch", "transfer"):
            negative.append(k)
        evidence.append(f"k = {k}: {_fmt(c, 'scratch')}; " + ", ".join(_fmt(c, m) for m in present))
    advice = f"don't transfer: pretraining on this source and adapting gains less than {NEGLIGIBLE:g} over scratch"
    if negative:
        advice += f"; fine-tuning from it even hurts (negative transfer) at k = {', '.join(map(str, negative))}"
    return _rule("unrelated source", f"an unrelated source ({far_name}, shift {far_shift:g})", advice,
                 "; ".join(evidence), ok)


def _need_both_tasks(grid: _Grid, table: pd.DataFrame) -> _Rule | None:
    """Rule 4. The source task must still work afterwards: joint training keeps it."""
    forgetful = [m for m in ("transfer", "sequential") if m in grid.methods]
    if "joint" not in grid.methods or not forgetful or "source_accuracy" not in set(table["metric"]):
        return None
    source_cells = dict(_cells(table, "source_accuracy"))
    ok = bool(source_cells)
    for c in source_cells.values():
        present = [m for m in forgetful if m in c.columns]
        if "joint" not in c.columns or not present:
            ok = False
            continue
        # Joint must keep the source about as well as any forgetful method, and better than one.
        ok &= all(_gains_little(c, m, "joint") for m in present) and any(_beats(c, "joint", m) for m in present)
    ranges = []
    for m in ["joint", *forgetful]:
        means = [_mean(c, m) for c in source_cells.values() if m in c.columns]
        if means:
            ranges.append(f"{m} {min(means):.2f} to {max(means):.2f}")
    keeper = " (feature extraction also keeps it, with its trunk frozen)" if "feature_extraction" in grid.methods else ""
    return _rule("need both tasks", "the source task must still work after training",
                 f"train jointly (multi-task, eq. 3.2): it keeps the source task, while {' and '.join(forgetful)} "
                 f"forget it{keeper}",
                 "source accuracy after training, lowest to highest cell mean: " + "; ".join(ranges), ok)


def _joint_wins_the_target(grid: _Grid) -> _Rule | None:
    """Rule 5. The cells where multi-task learning wins the target outright."""
    if "joint" not in grid.methods:
        return None
    wins = []
    for (name, shift, k), c in grid.cells:
        if "joint" not in c.columns or c.shape[1] < 2:
            continue
        ranked = _ranked(c)
        if ranked[0] == "joint" and _beats(c, "joint", ranked[1]):
            wins.append(f"{name}, k = {k} ({_fmt(c, 'joint')} vs {_fmt(c, ranked[1])})")
    return _rule("multi-task wins the target", "cells where joint training is best on the target: "
                 + ("; ".join(w.split(" (")[0] for w in wins) if wins else "none"),
                 "train jointly there, even if only the target matters",
                 "; ".join(wins) if wins else "joint is never the clear winner on the target", bool(wins))


def derive_rules(table: pd.DataFrame, *, include_unsupported: bool = False) -> pd.DataFrame:
    """Rules of thumb read off a study's results; each stated only if the numbers support it.

    "Beats" below is the book's rule for a claim (chapter 1, :func:`mtl_tl.experiments.beats`)
    on the per-seed differences of the two methods: their mean minus two standard errors
    is above zero, on at least :data:`~mtl_tl.study.design.MIN_SEEDS` paired seeds; with
    fewer seeds no rule is stated. The candidate rules:

    * **few labels, related source**: at the smallest k, at the nearest relatedness level
      (shift < :data:`~mtl_tl.study.design.UNRELATED_SHIFT`), the winner uses the source and beats scratch.
      The rule lists every related level where this holds.
    * **many labels**: at the largest k (larger than the smallest), at every relatedness
      level, the best other method gains less than :data:`~mtl_tl.study.design.NEGLIGIBLE`
      over scratch (an upper bound).
    * **unrelated source**: at the farthest level (shift >= :data:`~mtl_tl.study.design.UNRELATED_SHIFT`), no
      pretrain-then-adapt method (:data:`~mtl_tl.study.design.PRETRAINED_METHODS`) gains
      :data:`~mtl_tl.study.design.NEGLIGIBLE` or more over scratch at any k (an upper bound);
      where scratch beats fine-tuning (``transfer``), the rule names it negative transfer.
    * **need both tasks**: in every cell, neither ``transfer`` nor ``sequential`` (the
      ones present) keeps the source better than joint training by
      :data:`~mtl_tl.study.design.NEGLIGIBLE` or more (an upper bound), and joint beats at
      least one of them (a near target domain may leave one of them little to forget).
    * **multi-task wins the target**: the cells where ``joint`` is the winner and beats
      the runner-up.

    Args:
        table: a study's tidy per-seed table (see :func:`decision_table`), with the metric
            ``target_accuracy`` and, for the "need both tasks" rule, ``source_accuracy``.
        include_unsupported: also return the candidates the numbers do not support
            (``supported`` False), with the reason in ``evidence``.

    Returns:
        A table with columns ``rule``, ``situation``, ``advice``, ``evidence``,
        ``supported``; by default only the supported rules.
    """
    table = _check_table(table)
    grid = _Grid.of(table)
    candidates = [_few_labels_related_source(grid), _many_labels(grid), _unrelated_source(grid),
                  _need_both_tasks(grid, table), _joint_wins_the_target(grid)]
    rules = pd.DataFrame([r for r in candidates if r is not None], columns=_RULE_COLUMNS)
    if not include_unsupported:
        # astype: with no candidate at all the column is empty and of dtype object, which
        # pandas would read as a list of column names rather than as a mask.
        rules = rules[rules["supported"].astype(bool)].reset_index(drop=True)
    return rules


def rules_markdown(rules: pd.DataFrame) -> str:
    """The rules as a Markdown table (what the command line writes to ``rules.md``)."""
    check_type("rules", rules, pd.DataFrame)
    if rules.empty:
        return ("No rule of thumb is supported by these results: no paired difference passes the book's "
                f"rule (mean minus two standard errors above zero), or fewer than {MIN_SEEDS} seeds were run.\n")
    lines = ["| situation | advice | evidence (mean ± std over seeds) |", "|---|---|---|"]
    for _, r in rules.iterrows():
        lines.append(f"| {r['situation']} | {r['advice']} | {r['evidence']} |")
    return "\n".join(lines) + "\n"
