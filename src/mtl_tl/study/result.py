"""What a study measured, and the views of it: summary, pivot, decision table, rules (chapter 4.3)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .._checks import check_choice, check_int
from ..experiments import summarize
from .decisions import decision_table, derive_rules
from .design import CONFIG_COLUMNS, METRICS, RELATEDNESS, StudyConfig, relatedness_shift


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` measured (chapter 4.3).

    Attributes:
        config: the :class:`StudyConfig` that was run.
        table: tidy ``pandas.DataFrame``, one row per (relatedness, k, method, seed,
            metric), columns ``relatedness``, ``shift``, ``k``, ``method``, ``seed``,
            ``metric``, ``value``; metrics are :data:`~mtl_tl.study.design.METRICS` (no ``source_accuracy`` for
            ``scratch``).
    """

    config: StudyConfig
    table: pd.DataFrame

    @property
    def summary(self) -> pd.DataFrame:
        """Mean, sample std and n over seeds per (relatedness, shift, k, method, metric)."""
        return summarize(self.table, by=CONFIG_COLUMNS)

    def pivot(self, metric: str = "target_accuracy", digits: int = 2) -> pd.DataFrame:
        """A readable wide table: rows (relatedness, k), one column per method, ``"mean ± std"``."""
        check_choice("metric", metric, METRICS)
        check_int("digits", digits, min_value=0, max_value=6)
        s = self.summary
        s = s[s["metric"] == metric]
        text = s.assign(cell=[f"{m:.{digits}f} ± {d:.{digits}f}" for m, d in zip(s["mean"], s["std"])])
        wide = text.pivot(index=["relatedness", "k"], columns="method", values="cell")
        order = sorted(wide.index, key=lambda i: (relatedness_shift(i[0]) if i[0] in RELATEDNESS
                                                   else float(i[0].split("=")[1]), i[1]))
        return wide.loc[order, [m for m in self.config.methods if m in wide.columns]]

    def decision_table(self, metric: str = "target_accuracy") -> pd.DataFrame:
        """:func:`decision_table` of this study's per-seed table."""
        return decision_table(self.table, metric)

    def rules(self, *, include_unsupported: bool = False) -> pd.DataFrame:
        """:func:`derive_rules` of this study's per-seed table."""
        return derive_rules(self.table, include_unsupported=include_unsupported)

    def compute(self) -> pd.DataFrame:
        """Compute per method, averaged over all runs: ``steps``, ``examples``, ``seconds``.

        ``examples`` and ``seconds`` include the pretraining of the methods that use it.
        """
        t = self.table[self.table["metric"].isin(["steps", "examples", "seconds"])]
        wide = t.pivot_table(index="method", columns="metric", values="value", aggfunc="mean")
        return wide.loc[[m for m in self.config.methods if m in wide.index], ["steps", "examples", "seconds"]]

    def to_csv(self, path: str | Path) -> Path:
        """Write the tidy table to ``path`` (CSV); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.table.to_csv(path, index=False)
        return path

    def to_json(self, path: str | Path) -> Path:
        """Write the configuration and the tidy table to ``path`` (JSON); returns the path.

        :meth:`from_json` reads it back, e.g. to study a GPU run's results on a laptop.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        blob = {"config": self.config.to_dict(), "table": self.table.to_dict(orient="records")}
        path.write_text(json.dumps(blob, indent=1), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> StudyResult:
        """Read a result written by :meth:`to_json`."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{str(path)!r} does not exist; write it with StudyResult.to_json or the command line")
        blob = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(blob, dict) or set(blob) != {"config", "table"}:
            raise ValueError(f"{path} is not a study result written by StudyResult.to_json")
        table = pd.DataFrame(blob["table"], columns=[*CONFIG_COLUMNS, "seed", "metric", "value"])
        return cls(config=StudyConfig.from_dict(blob["config"]), table=table)
