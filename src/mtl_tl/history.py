"""What training leaves behind: the history of measurements, and checkpoint files.

:func:`mtl_tl.engine.fit` returns a :class:`~mtl_tl.engine.History` and, when asked,
saves the trained network with :func:`~mtl_tl.engine.save_checkpoint`. The three names
of this module are documented, and best imported, under :mod:`mtl_tl.engine`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._checks import check_choice, check_type

__all__ = ["History", "save_checkpoint", "load_checkpoint"]


@dataclass
class History:
    """What :func:`mtl_tl.engine.fit` measured, epoch by epoch.

    Attributes:
        records: one dict per (epoch, split, task): ``epoch`` (1-based), ``split``
            (``"train"`` or ``"test"``), ``task``, ``loss``, ``metric``.
        logs: one dict per (epoch, key): the epoch mean of each scalar the strategy
            logged (task weights, gradient cosines, ...).
        examples: training examples processed (summed over tasks and processes).
        seconds: wall time of training, evaluation included.
    """

    records: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    examples: int = 0
    seconds: float = 0.0

    def to_frame(self):  # noqa: ANN201 - pandas is imported lazily
        """The records as a tidy ``pandas.DataFrame``."""
        import pandas as pd

        return pd.DataFrame.from_records(self.records, columns=["epoch", "split", "task", "loss", "metric"])

    def logs_frame(self):  # noqa: ANN201
        """The strategy logs as a tidy ``pandas.DataFrame`` (epoch, key, value)."""
        import pandas as pd

        return pd.DataFrame.from_records(self.logs, columns=["epoch", "key", "value"])

    def last(self, task: str, split: str = "test", key: str = "metric") -> float:
        """The last recorded ``key`` (``"metric"`` or ``"loss"``) of ``task`` on ``split``."""
        check_choice("key", key, ("metric", "loss"))
        for record in reversed(self.records):
            if record["task"] == task and record["split"] == split:
                return record[key]
        tasks = sorted({r["task"] for r in self.records})
        raise KeyError(f"no {split} record for task {task!r}; recorded tasks: {tasks}")

    def curve(self, task: str, split: str = "test", key: str = "metric") -> list[float]:
        """``key`` of ``task`` on ``split``, one value per recorded epoch."""
        return [r[key] for r in self.records if r["task"] == task and r["split"] == split]


def save_checkpoint(path: str | Path, model: nn.Module, **meta: Any) -> Path:
    """Save ``model``'s state dict and JSON-like ``meta`` to ``path``; returns the path."""
    check_type("model", model, nn.Module)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    torch.save({"state_dict": module.state_dict(), "meta": meta}, path)
    return path


def load_checkpoint(path: str | Path, model: nn.Module) -> dict[str, Any]:
    """Load a checkpoint saved by :func:`save_checkpoint` into ``model``; returns its meta.

    Loads with ``weights_only=True`` (no arbitrary code from the file) and checks the
    keys strictly: a checkpoint of another architecture fails with the keys that differ.
    """
    check_type("model", model, nn.Module)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {str(path)!r} does not exist")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or "state_dict" not in blob:
        raise ValueError(f"{path} is not a checkpoint written by mtl_tl.engine.save_checkpoint")
    state = blob["state_dict"]
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not fit this model: missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''}, unexpected keys {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''}"
        )
    wrong = [k for k in own if own[k].shape != state[k].shape]
    if wrong:
        raise ValueError(
            f"checkpoint {path} has other shapes for {wrong[:8]}: e.g. {wrong[0]} is "
            f"{tuple(state[wrong[0]].shape)} in the file but {tuple(own[wrong[0]].shape)} in the model"
        )
    model.load_state_dict(state, strict=True)
    return dict(blob.get("meta", {}))
