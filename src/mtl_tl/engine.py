"""The one training loop and the one evaluation function of the book.

Transfer learning and multi-task learning differ in *what* they optimise, not in
*how*: fine-tuning is this loop with some blocks frozen and one task; the article's
joint objective (eq. 3.1) is this loop with a source and a target task weighted
``1`` and ``lambda``; multi-task learning (eq. 3.2) is this loop with several tasks.
Loss weighting and gradient surgery plug in as a :class:`LossStrategy` (chapter 3),
and everything else (freezing, discriminative learning rates) arrives through the
parameters' ``requires_grad`` flags and the optimizer's parameter groups (chapter 4.1).

One step, in plain words: draw one batch per data stream, run the trunk once, let
each task's head and loss score its rows, turn the task losses into gradients with
the strategy, clip, step.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from tqdm.auto import tqdm

from . import distributed
from ._checks import check_choice, check_float, check_int, check_type
from .config import get_device, quiet
from .data import TensorData, TensorLoader
from .models import MultiTaskNet
from .tasks import Task, check_tasks

__all__ = [
    "LossStrategy",
    "History",
    "fit",
    "evaluate",
    "predict",
    "extract_features",
    "save_checkpoint",
    "load_checkpoint",
    "make_optimizer",
]

OPTIMIZERS = ("adam", "adamw", "sgd")


class LossStrategy(nn.Module):
    """Turns the per-task losses of one step into gradients (chapter 3).

    The base class is the weighted sum ``sum_i w_i L_i`` (the book's loss-scale
    convention is a *sum* over tasks, as in the article's eq. 3.2, never a mean), with
    ``w_i = 1`` unless ``weights`` says otherwise. Subclasses in
    :mod:`mtl_tl.weighting` learn the weights; those in :mod:`mtl_tl.gradient_surgery`
    edit the gradients.

    Subclasses override :meth:`backward`. A strategy that holds parameters (e.g.
    uncertainty weighting's log-variances) is an ``nn.Module``: the engine adds them
    to the optimizer through :meth:`param_groups`.
    """

    #: True when the strategy needs each task's gradient separately (PCGrad, GradNorm);
    #: such strategies call ``torch.autograd.grad`` per task and cannot run under DDP.
    needs_task_gradients = False

    def __init__(self, weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        self.fixed = {}
        for name, w in (weights or {}).items():
            self.fixed[name] = check_float(f"weights[{name!r}]", w, min_value=0.0)

    def weights(self, names: Sequence[str]) -> dict[str, float]:
        """The current weight of each task (for logging and plots)."""
        return {n: self.fixed.get(n, 1.0) for n in names}

    def backward(self, losses: Mapping[str, torch.Tensor], shared: Sequence[nn.Parameter]) -> dict[str, float]:
        """Fill ``.grad`` of every trainable parameter for this step.

        Args:
            losses: ``{task_name: scalar loss}``, each the batch mean of that task.
            shared: the trainable parameters of the trunk (shared by all tasks).

        Returns:
            Scalars to log for this step, e.g. ``{"weight/shape": 1.0}``.
        """
        unknown = sorted(set(self.fixed) - set(losses))
        if unknown:
            raise ValueError(f"weights name unknown task(s) {unknown}; tasks: {', '.join(losses)}")
        weights = self.weights(list(losses))
        total = sum(weights[name] * loss for name, loss in losses.items())
        total.backward()
        return {f"weight/{n}": w for n, w in weights.items()}

    def prepare(self, net: MultiTaskNet) -> None:
        """Called once by :func:`fit` before training, with the network being trained.

        The base strategy needs nothing from it; PCGrad keeps the heads' parameters so
        that it can back-propagate into them without a second pass through the trunk.
        """
        return None

    def on_epoch_end(self, train_losses: Mapping[str, float]) -> None:
        """Called after each epoch with the epoch-mean training loss of each task.

        The base strategy ignores it; dynamic weight averaging uses it.
        """
        return None

    def set_progress(self, progress: float) -> None:
        """Called before each step with the share of training done, in [0, 1)."""
        return None

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups of the strategy's own parameters, if it has any.

        :func:`fit` adds them to the network's optimizer. A group without ``"lr"`` uses
        ``fit``'s learning rate. Weight decay is 0: decaying, say, a log-variance toward
        0 would pull every task weight toward 1, which is not regularisation of the network.
        """
        params = [p for p in self.parameters() if p.requires_grad]
        return [{"params": params, "weight_decay": 0.0}] if params else []


@dataclass
class History:
    """What :func:`fit` measured, epoch by epoch.

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


class _Stream:
    """Endless batches from one data object, shared by the tasks that train on it."""

    def __init__(self, data: Any, tasks: list[Task], batch_size: int, seed: int, ctx, device,
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        self.tasks = tasks
        self.device = device
        self.memory_format = memory_format
        if isinstance(data, TensorData):
            self.loader: Iterable = TensorLoader(
                data.to(device), batch_size, seed=seed, rank=ctx.rank, world_size=ctx.world_size
            )
        elif isinstance(data, Iterable):
            self.loader = data
        else:
            raise TypeError(
                f"task {tasks[0].name!r}: train data must be a TensorData or an iterable of (x, y) "
                f"batches such as a DataLoader, got {type(data).__name__}"
            )
        self.steps = len(self.loader)
        if self.steps == 0:
            raise ValueError(f"task {tasks[0].name!r}: the training data yields no batch")
        self._iterator: Iterator | None = None

    def next(self) -> tuple[torch.Tensor, Any]:
        if self._iterator is None:
            self._iterator = iter(self.loader)
        try:
            x, y = next(self._iterator)
        except StopIteration:
            self._iterator = iter(self.loader)  # a shorter stream starts a new pass
            x, y = next(self._iterator)
        x = _to(x, self.device)
        if self.memory_format is not torch.contiguous_format and x.ndim == 4:
            x = x.contiguous(memory_format=self.memory_format)
        return x, _to(y, self.device)


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, Mapping):
        return {k: v.to(device, non_blocking=True) for k, v in value.items()}
    return value.to(device, non_blocking=True)


def _streams(tasks: list[Task], split: str) -> list[tuple[Any, list[Task]]]:
    """Group tasks by the identity of their data: one trunk pass serves each group."""
    groups: dict[int, tuple[Any, list[Task]]] = {}
    for task in tasks:
        data = getattr(task, split)
        groups.setdefault(id(data), (data, []))[1].append(task)
    return list(groups.values())


def _freeze_frozen_norms(net: nn.Module) -> None:
    # A frozen BatchNorm must also keep its running statistics, or "frozen" features
    # would still drift with the target data.
    for module in net.modules():
        if isinstance(module, _BatchNorm):
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()


def make_optimizer(
    params: Iterable[nn.Parameter] | Iterable[dict[str, Any]],
    name: str = "adam",
    lr: float = 1e-3,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Adam, AdamW or SGD with momentum 0.9 over ``params`` (tensors or parameter groups)."""
    check_choice("optimizer", name, OPTIMIZERS)
    lr = check_float("lr", lr, min_value=0.0, strict_min=True)
    weight_decay = check_float("weight_decay", weight_decay, min_value=0.0)
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters: every parameter is frozen")
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(params, lr=lr, weight_decay=weight_decay)


def fit(
    trunk: nn.Module,
    tasks: Task | Sequence[Task],
    *,
    epochs: int,
    lr: float = 1e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    param_groups: Sequence[dict[str, Any]] | None = None,
    strategy: LossStrategy | None = None,
    batch_size: int = 64,
    steps_per_epoch: int | None = None,
    device: str | torch.device | None = None,
    amp: bool = False,
    channels_last: bool = False,
    clip_grad_norm: float | None = None,
    seed: int = 0,
    evaluate_every: int = 1,
    checkpoint: str | Path | None = None,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, History], None] | None = None,
    one_trunk_pass: bool = False,
) -> History:
    """Train ``trunk`` and the tasks' heads jointly; the loop behind every chapter.

    Args:
        trunk: shared feature extractor ``(N, C, H, W) -> (N, D)``; trained in place.
        tasks: one :class:`~mtl_tl.tasks.Task` (transfer learning) or several
            (multi-task learning); their heads are trained in place.
        epochs: passes over the longest training stream.
        lr, optimizer, weight_decay: the optimizer (``"adam"``, ``"adamw"``, ``"sgd"``).
        param_groups: explicit optimizer groups, e.g. a smaller learning rate for the
            trunk than for the head (discriminative fine-tuning); frozen parameters
            are dropped from them.
        strategy: how task losses become gradients; default: the plain sum (eq. 3.2).
        batch_size: examples per batch, per task stream and per process.
        steps_per_epoch: override the number of steps per epoch (equal budgets).
        device: where to train; default :func:`mtl_tl.config.get_device`.
        amp: bfloat16 autocast on CUDA.
        channels_last: keep images and convolution weights in NHWC memory layout,
            which tensor cores prefer (a GPU speed-up; no effect on the results' meaning).
        clip_grad_norm: clip the global gradient norm to this value.
        seed: seed of the batch order (the caller seeds the model's initialisation).
        evaluate_every: evaluate the test splits every this many epochs (and after the last).
        checkpoint: save the trained network here at the end (rank 0 only).
        progress: show a progress bar; default: yes, except under tests and CI.
        on_epoch_end: called as ``on_epoch_end(epoch, history)`` after each epoch.
        one_trunk_pass: run the batches of all training streams (tasks with different
            data) through the trunk as one concatenated batch, as DDP always does. Batch
            norm then normalises them together: DANN's source and target images share
            their statistics, as in the paper. The default, one pass per stream, keeps
            each data set's statistics apart. All streams' inputs need the same shape.

    Returns:
        The :class:`History` of training and test loss and metric per task and epoch.
    """
    tasks = check_tasks(tasks, split="train")
    check_type("trunk", trunk, nn.Module)
    epochs = check_int("epochs", epochs, min_value=1)
    batch_size = check_int("batch_size", batch_size, min_value=1)
    evaluate_every = check_int("evaluate_every", evaluate_every, min_value=1)
    if steps_per_epoch is not None:
        check_int("steps_per_epoch", steps_per_epoch, min_value=1)
    if clip_grad_norm is not None:
        clip_grad_norm = check_float("clip_grad_norm", clip_grad_norm, min_value=0.0, strict_min=True)
    strategy = LossStrategy() if strategy is None else strategy
    check_type("strategy", strategy, LossStrategy)
    check_type("one_trunk_pass", one_trunk_pass, bool)
    device = get_device(device)
    if amp and device.type != "cuda":
        raise ValueError(f"amp=True needs a CUDA device, but training runs on {device}; use amp=False")

    net = MultiTaskNet(trunk, {t.name: t.head for t in tasks}).to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
    strategy.to(device)
    strategy.prepare(net)
    ctx = distributed.context(device)
    model: nn.Module = net
    if ctx.enabled:
        if strategy.needs_task_gradients:
            raise ValueError(
                f"{type(strategy).__name__} needs per-task gradients and does not run under DDP; "
                "train it in a single process"
            )
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.local_rank] if device.type == "cuda" else None
        )

    shared = [p for p in net.trunk.parameters() if p.requires_grad]
    if param_groups is None:
        groups: list[dict[str, Any]] = [{"params": [p for p in net.parameters() if p.requires_grad]}]
    else:
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in param_groups]
        groups = [g for g in groups if g["params"]]
    groups += strategy.param_groups()
    opt = make_optimizer(groups, optimizer, lr, weight_decay)

    streams = [
        _Stream(data, group, batch_size, seed + i, ctx, device, memory_format)
        for i, (data, group) in enumerate(_streams(tasks, "train"))
    ]
    steps = steps_per_epoch or max(s.steps for s in streams)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext()
    history = History()
    show = (not quiet()) if progress is None else progress
    bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not (show and ctx.is_main), leave=False)
    start = time.perf_counter()
    for epoch in bar:
        model.train()
        _freeze_frozen_norms(net)
        # Running sums stay tensors on the device: a float() per step would wait for the
        # GPU every step; they are read once per epoch instead.
        totals: dict[str, Any] = defaultdict(float)
        logs: dict[str, float] = defaultdict(float)
        for step in range(steps):
            strategy.set_progress(((epoch - 1) * steps + step) / (epochs * steps))
            batches = [s.next() for s in streams]
            with autocast:
                outputs = _forward(model, [b[0] for b in batches], one_pass=one_trunk_pass or ctx.enabled)
            losses: dict[str, torch.Tensor] = {}
            for stream, (x, y), out in zip(streams, batches, outputs):
                history.examples += len(x) * len(stream.tasks) * ctx.world_size
                for task in stream.tasks:
                    prediction, target = out[task.name].float(), task.target(y)
                    losses[task.name] = task.loss_fn(prediction, target)
                    totals[f"metric/{task.name}"] += task.metric_fn(prediction.detach(), target)
            opt.zero_grad(set_to_none=True)
            for key, value in strategy.backward(losses, shared).items():
                logs[key] += value
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(net.parameters(), clip_grad_norm)
            opt.step()
            for name, loss in losses.items():
                totals[f"loss/{name}"] += loss.detach()
        totals = distributed.all_reduce_mean({k: float(v) / steps for k, v in totals.items()}, ctx, device)
        train_losses = {t.name: totals[f"loss/{t.name}"] for t in tasks}
        this_epoch = len(history.records)
        for task in tasks:
            history.records.append({"epoch": epoch, "split": "train", "task": task.name,
                                    "loss": train_losses[task.name], "metric": totals[f"metric/{task.name}"]})
        history.logs.extend({"epoch": epoch, "key": k, "value": v / steps} for k, v in logs.items())
        strategy.on_epoch_end(train_losses)
        tested = [t for t in tasks if t.test is not None]
        if tested and (epoch % evaluate_every == 0 or epoch == epochs):
            for name, result in evaluate(net, tested, device=device).items():
                history.records.append({"epoch": epoch, "split": "test", "task": name, **result})
        # The latest metric of each task: test where it was just evaluated, else train.
        latest = {r["task"]: r["metric"] for r in history.records[this_epoch:]}
        bar.set_postfix({name: round(value, 3) for name, value in list(latest.items())[:3]})
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
    history.seconds = time.perf_counter() - start
    if checkpoint is not None and ctx.is_main:
        save_checkpoint(checkpoint, net, epochs=epochs, tasks=[t.name for t in tasks])
    return history


def _forward(model: nn.Module, xs: list[torch.Tensor], *, one_pass: bool) -> list[dict[str, torch.Tensor]]:
    """Head outputs for each stream's batch: one trunk pass per stream, or one for all."""
    if len(xs) == 1 or not one_pass:
        # One pass per stream: each batch-norm layer sees one data set's statistics, so
        # a task weighted 0 leaves the others' updates exactly as if it were absent.
        return [model(x) for x in xs]
    if len({tuple(x.shape[1:]) for x in xs}) != 1:
        shapes = sorted({tuple(x.shape[1:]) for x in xs})
        raise ValueError(
            f"one trunk pass (one_trunk_pass=True, or DDP) needs every task's inputs in the same "
            f"shape, got {shapes}; resize them, or use one pass per stream outside DDP"
        )
    # DDP expects one forward per backward, and batch norm then sees all streams together.
    out = model(torch.cat(xs))
    sizes = [len(x) for x in xs]
    parts = {name: value.split(sizes) for name, value in out.items()}
    return [{name: parts[name][i] for name in parts} for i in range(len(xs))]


def _as_net(model: nn.Module, tasks: list[Task]) -> nn.Module:
    if isinstance(model, MultiTaskNet):
        missing = [t.name for t in tasks if t.name not in model.heads]
        if missing:
            raise ValueError(f"the network has no head for task(s) {missing}; heads: {', '.join(model.heads)}")
        return model
    return MultiTaskNet(model, {t.name: t.head for t in tasks})


@torch.no_grad()
def evaluate(
    model: nn.Module,
    tasks: Task | Sequence[Task],
    *,
    split: str = "test",
    batch_size: int = 1024,
    device: str | torch.device | None = None,
) -> dict[str, dict[str, float]]:
    """Loss and metric of each task on its ``split`` data, in eval mode.

    This is what the article's empty ``evaluate`` should have done.

    Args:
        model: a trunk (the tasks' heads are attached) or a :class:`~mtl_tl.models.MultiTaskNet`.
        tasks: the tasks to measure.
        split: ``"test"`` or ``"train"``.

    Returns:
        ``{task_name: {"loss": float, "metric": float}}``, averaged over examples.
    """
    check_choice("split", split, ("test", "train"))
    tasks = check_tasks(tasks, split=split)
    check_int("batch_size", batch_size, min_value=1)
    net = _as_net(model, tasks)
    device = get_device(device) if device is not None else next(net.parameters()).device
    net = net.to(device)
    was_training = net.training
    net.eval()
    results: dict[str, dict[str, float]] = {}
    for data, group in _streams(tasks, split):
        loader = TensorLoader(data, batch_size, shuffle=False) if isinstance(data, TensorData) else data
        sums: dict[str, float] = defaultdict(float)
        count = 0
        for x, y in loader:
            x, y = _to(x, device), _to(y, device)
            features = net.trunk(x)
            for task in group:
                out, target = net.heads[task.name](features).float(), task.target(y)
                sums[f"loss/{task.name}"] += float(task.loss_fn(out, target)) * len(x)
                sums[f"metric/{task.name}"] += float(task.metric_fn(out, target)) * len(x)
            count += len(x)
        for task in group:
            results[task.name] = {"loss": sums[f"loss/{task.name}"] / count,
                                  "metric": sums[f"metric/{task.name}"] / count}
    net.train(was_training)
    return results


@torch.no_grad()
def predict(trunk: nn.Module, head: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Head outputs ``(N, K)`` for images ``x (N, C, H, W)``, in eval mode, on the trunk's device."""
    outputs = [o for o in _batched(nn.Sequential(trunk, head), x, batch_size)]
    return torch.cat(outputs)


@torch.no_grad()
def extract_features(trunk: nn.Module, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
    """Trunk features ``(N, D)`` of images ``x (N, C, H, W)``, in eval mode (for PCA plots)."""
    return torch.cat(list(_batched(trunk, x, batch_size)))


def _batched(module: nn.Module, x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    check_type("x", x, torch.Tensor)
    if x.ndim != 4:
        raise ValueError(f"x must be images (N, C, H, W), got shape {tuple(x.shape)}")
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    try:
        for i in range(0, len(x), batch_size):
            yield module(x[i : i + batch_size].to(device)).float().cpu()
    finally:
        module.train(was_training)


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
