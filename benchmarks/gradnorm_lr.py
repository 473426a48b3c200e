"""How GradNorm's own learning rate behaves: the measurement behind its default (issue 13).

A three-task problem on one shared MLP trunk: two regressions of the same inputs, one of
them in units 10 times larger, and a 4-class classification. Every run trains the same
initial network for the same 240 Adam steps; only the loss strategy and GradNorm's
weight learning rate change. It prints, per setting and over seeds, each task's final
weight and its test loss relative to equal weighting.

    python benchmarks/gradnorm_lr.py            # about a minute on a 2-core CPU
"""

from __future__ import annotations

import statistics

import torch
from torch import nn

from mtl_tl.config import seed_everything
from mtl_tl.data import TensorData
from mtl_tl.engine import evaluate
from mtl_tl.multitask import make_strategy, train_jointly
from mtl_tl.tasks import Task

SEEDS = range(5)
STEPS = 240
SETTINGS = [("equal", None), ("gradnorm", 0.025), ("gradnorm", 0.01), ("gradnorm", 3e-3), ("gradnorm", 1e-3)]


def problem(seed: int) -> tuple[TensorData, TensorData]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(1200, 1, 4, 4, generator=g)
    w1, w2 = torch.randn(16, generator=g), torch.randn(16, generator=g)
    flat = x.flatten(1)
    y = {"small": (flat @ w1) / 4, "large": 10 * torch.tanh(flat @ w2 / 4),
         "class": (flat[:, :4].argmax(dim=1))}
    data = TensorData(x, y)
    return data.subset(range(1000)), data.subset(range(1000, 1200))


class MLP(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(nn.Flatten(), nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU())
        self.out_features = 32


def run(seed: int, name: str, lr: float | None) -> dict[str, float]:
    train, test = problem(seed)
    seed_everything(seed)
    trunk = MLP()
    tasks = [Task("small", nn.Linear(32, 1), train=train, test=test, loss="mse", metric="neg_mse"),
             Task("large", nn.Linear(32, 1), train=train, test=test, loss="mse", metric="neg_mse"),
             Task("class", nn.Linear(32, 4), train=train, test=test)]
    strategy = make_strategy(name, tasks) if lr is None else make_strategy(name, tasks, lr=lr)
    history = train_jointly(trunk, tasks, strategy=strategy, epochs=STEPS // 16, batch_size=64,
                            lr=1e-3, seed=seed, device="cpu", progress=False)
    scores = evaluate(trunk, tasks)
    logs = history.logs_frame()
    last = logs[logs["epoch"] == logs["epoch"].max()].set_index("key")["value"]
    return {**{f"loss/{t}": scores[t]["loss"] for t in scores},
            **{f"weight/{t}": float(last.get(f"weight/{t}", 1.0)) for t in scores}}


def main() -> None:
    torch.set_num_threads(1)
    results = {(name, lr): [run(seed, name, lr) for seed in SEEDS] for name, lr in SETTINGS}
    equal = results[("equal", None)]
    print(f"{len(SEEDS)} seeds, {STEPS} steps; test loss relative to equal weighting (mean over seeds), final weights")
    for (name, lr), runs in results.items():
        parts = []
        for t in ("small", "large", "class"):
            ratio = statistics.mean(r[f"loss/{t}"] / e[f"loss/{t}"] for r, e in zip(runs, equal))
            weight = statistics.mean(r[f"weight/{t}"] for r in runs)
            parts.append(f"{t}: loss x{ratio:.2f}, w {weight:.2f}")
        print(f"{name:8s} lr={lr!s:6s} " + "; ".join(parts))


if __name__ == "__main__":
    main()
