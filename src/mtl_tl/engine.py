"""The one training loop and the one evaluation function of the book.

Transfer learning and multi-task learning differ in *what* they optimise, not in
*how*: fine-tuning is this loop with some blocks frozen and one task; the article's
joint objective (eq. 3.1) is this loop with a source and a target task weighted
1 and λ (``lam``); multi-task learning (eq. 3.2) is this loop with several tasks.
Loss weighting and gradient surgery plug in as a :class:`LossStrategy` (chapter 3),
and everything else (freezing, discriminative learning rates) arrives through the
parameters' ``requires_grad`` flags and the optimizer's parameter groups (chapter 4.1).

One step, in plain words (:func:`train_step`): draw one batch per data stream, run the
trunk once, let each task's head and loss score its rows, turn the task losses into
gradients with the strategy, clip, step. :func:`fit` checks its arguments once, builds
the network, the optimizer and the streams, then repeats that step.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from ._checks import check_choice, check_float, check_int, check_type
from .config import get_device, quiet
from .data import TensorData, TensorLoader
from .history import History, load_checkpoint, save_checkpoint
from .models import MultiTaskNet
from .optim import SCHEDULER_STEPS, SchedulerFactory, make_optimizer, make_scheduler
from .strategy import LossStrategy
from .streams import BatchStream, group_by_data, to_device
from .tasks import Task, check_tasks

__all__ = [
    "LossStrategy", "History", "FitOptions", "fit", "train_step", "evaluate", "predict",
    "extract_features", "save_checkpoint", "load_checkpoint", "make_optimizer",
]

# The batch-norm layers (torch's _BatchNorm family): they keep running statistics,
# which "frozen" must freeze too.
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm,
                nn.LazyBatchNorm1d, nn.LazyBatchNorm2d, nn.LazyBatchNorm3d)


@dataclass(frozen=True)
class FitOptions:
    """The rarely used switches of :func:`fit`: ``fit(..., options=FitOptions(amp=True))``.

    Attributes:
        amp: bfloat16 autocast; needs a CUDA device.
        channels_last: keep images and convolution weights in NHWC memory layout,
            which tensor cores prefer (a GPU speed-up; no effect on the results' meaning).
        one_trunk_pass: run the batches of all training streams (tasks with different
            data) through the trunk as one concatenated batch, as DDP always does. Batch
            norm then normalises them together: DANN's source and target images share
            their statistics, as in the paper. The default, one pass per stream, keeps
            each data set's statistics apart. All streams' inputs need the same shape.
        checkpoint: save the trained network here at the end (rank 0 only).
    """

    amp: bool = False
    channels_last: bool = False
    one_trunk_pass: bool = False
    checkpoint: str | Path | None = None

    def __post_init__(self) -> None:
        for name in ("amp", "channels_last", "one_trunk_pass"):
            check_type(name, getattr(self, name), bool)
        check_type("checkpoint", self.checkpoint, (str, Path, type(None)))


def _freeze_frozen_norms(net: nn.Module) -> None:
    # A frozen BatchNorm must also keep its running statistics, or "frozen" features
    # would still drift with the target data.
    for module in net.modules():
        if isinstance(module, _BATCH_NORMS):
            params = list(module.parameters())
            if params and not any(p.requires_grad for p in params):
                module.eval()


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
    clip_grad_norm: float | None = None,
    seed: int = 0,
    evaluate_every: int = 1,
    progress: bool | None = None,
    on_epoch_end: Callable[[int, History], None] | None = None,
    scheduler: SchedulerFactory | None = None,
    scheduler_step: str = "step",
    options: FitOptions | None = None,
) -> History:
    """Train ``trunk`` and the tasks' heads jointly; the loop behind every chapter.

    Args:
        trunk: shared feature extractor ``(N, C, H, W) -> (N, D)``; trained in place.
        tasks: one :class:`~mtl_tl.tasks.Task` (transfer) or several (multi-task); heads train in place.
        epochs: passes over the longest training stream.
        lr, optimizer, weight_decay: the optimizer (``"adam"``, ``"adamw"``, ``"sgd"``).
        param_groups: explicit optimizer groups (e.g. a smaller rate for the trunk); frozen parameters dropped.
        strategy: how task losses become gradients; default: the plain sum (eq. 3.2).
        batch_size: examples per batch, per task stream and per process.
        steps_per_epoch: override the number of steps per epoch (equal budgets).
        device: where to train; default :func:`mtl_tl.config.get_device`.
        clip_grad_norm: clip the global gradient norm to this value.
        seed: the batch order, a shuffling DataLoader's too (:class:`~mtl_tl.streams.BatchStream`).
        evaluate_every: evaluate the test splits every this many epochs (and after the last).
        progress: show a progress bar; default: yes, except under tests and CI.
        on_epoch_end: called as ``on_epoch_end(epoch, history)`` after each epoch.
        scheduler, scheduler_step: ``optimizer -> scheduler`` (any ``torch.optim.lr_scheduler``; see
            :mod:`mtl_tl.optim`), stepped after every optimizer ``"step"`` or ``"epoch"``; logs ``lr``.
        options: AMP, channels-last, one trunk pass, checkpoint: see :class:`FitOptions`.

    Returns:
        The :class:`History` of training and test loss and metric per task and epoch.
    """
    tasks, strategy, options, device = _check_fit_arguments(tasks, epochs, batch_size, steps_per_epoch, clip_grad_norm,
                                                            evaluate_every, strategy, options, device, scheduler_step)
    net, model, ctx = _build_network(trunk, tasks, strategy, device, options)
    opt = make_optimizer(_optimizer_groups(net, param_groups, strategy), optimizer, lr, weight_decay)
    streams = _build_streams(tasks, batch_size, seed, ctx, device, options)
    loop = _Loop(net=net, model=model, optimizer=opt, strategy=strategy, streams=streams, ctx=ctx, device=device,
                 shared=[p for p in net.trunk.parameters() if p.requires_grad], clip_grad_norm=clip_grad_norm,
                 steps=steps_per_epoch or max(s.steps for s in streams), one_pass=options.one_trunk_pass or ctx.enabled,
                 amp=options.amp, per_step_schedule=scheduler_step == "step",
                 scheduler=None if scheduler is None else make_scheduler(scheduler, opt, scheduler_step))
    history = _train(loop, tasks, epochs, evaluate_every, progress, on_epoch_end)
    if options.checkpoint is not None and ctx.is_main:
        save_checkpoint(options.checkpoint, net, epochs=epochs, tasks=[t.name for t in tasks])
    return history


def _check_fit_arguments(tasks: Task | Sequence[Task], epochs: int, batch_size: int, steps_per_epoch: int | None,
                         clip_grad_norm: float | None, evaluate_every: int, strategy: LossStrategy | None,
                         options: FitOptions | None, device: str | torch.device | None,
                         scheduler_step: str) -> tuple[list[Task], LossStrategy, FitOptions, torch.device]:
    """:func:`fit`'s door: each argument checked once, so that the loop can trust them all.

    Returns the tasks as a list, and the strategy, options and device with their defaults
    filled in. (The scheduler is checked by :func:`~mtl_tl.optim.make_scheduler` once the
    optimizer it wraps exists.)
    """
    tasks = check_tasks(tasks, split="train")
    strategy = LossStrategy() if strategy is None else strategy
    options = FitOptions() if options is None else options
    device = get_device(device)
    check_int("epochs", epochs, min_value=1)
    check_int("batch_size", batch_size, min_value=1)
    check_int("evaluate_every", evaluate_every, min_value=1)
    if steps_per_epoch is not None:
        check_int("steps_per_epoch", steps_per_epoch, min_value=1)
    if clip_grad_norm is not None:
        check_float("clip_grad_norm", clip_grad_norm, min_value=0.0, strict_min=True)
    check_type("strategy", strategy, LossStrategy)
    check_type("options", options, FitOptions)
    if options.amp and device.type != "cuda":
        raise ValueError(f"FitOptions(amp=True) needs a CUDA device, but training runs on {device}; use amp=False")
    check_choice("scheduler_step", scheduler_step, SCHEDULER_STEPS)
    return tasks, strategy, options, device


def _build_network(trunk: nn.Module, tasks: list[Task], strategy: LossStrategy, device: torch.device,
                   options: FitOptions) -> tuple[MultiTaskNet, nn.Module, distributed.Context]:
    """The trunk with the tasks' heads on ``device``; wrapped in DDP under ``torchrun``."""
    net = MultiTaskNet(trunk, {t.name: t.head for t in tasks}).to(device)
    if options.channels_last:
        net = net.to(memory_format=torch.channels_last)
    strategy.to(device)
    strategy.prepare(net)
    ctx = distributed.context(device)
    if not ctx.enabled:
        return net, net, ctx
    if strategy.needs_task_gradients:
        raise ValueError(
            f"{type(strategy).__name__} needs per-task gradients and does not run under DDP; "
            "train it in a single process"
        )
    model = nn.parallel.DistributedDataParallel(net, device_ids=[ctx.local_rank] if device.type == "cuda" else None)
    return net, model, ctx


def _optimizer_groups(net: MultiTaskNet, param_groups: Sequence[dict[str, Any]] | None,
                      strategy: LossStrategy) -> list[dict[str, Any]]:
    """The trainable parameters, as one group or as the caller's groups, then the strategy's own."""
    if param_groups is None:
        groups: list[dict[str, Any]] = [{"params": [p for p in net.parameters() if p.requires_grad]}]
    else:
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]} for g in param_groups]
        groups = [g for g in groups if g["params"]]
    return groups + strategy.param_groups()


def _build_streams(tasks: list[Task], batch_size: int, seed: int, ctx: distributed.Context,
                   device: torch.device, options: FitOptions) -> list[BatchStream]:
    """One stream per training data object; stream ``i`` shuffles with ``seed + i``."""
    groups = group_by_data(tasks, "train")
    shapes = sorted({data.shape for data, _ in groups if isinstance(data, TensorData)})
    if (options.one_trunk_pass or ctx.enabled) and len(shapes) > 1:
        raise ValueError(
            f"one trunk pass (FitOptions(one_trunk_pass=True), or DDP) needs every task's inputs in the "
            f"same shape, got {shapes}; resize them, or use one pass per stream outside DDP"
        )
    memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
    return [BatchStream(data, group, batch_size=batch_size, seed=seed + i, device=device, rank=ctx.rank,
                        world_size=ctx.world_size, memory_format=memory_format)
            for i, (data, group) in enumerate(groups)]


@dataclass
class _Loop:
    """What :func:`fit` builds once and every step uses."""

    net: MultiTaskNet
    model: nn.Module  # ``net``, or ``net`` wrapped in DDP under torchrun
    optimizer: torch.optim.Optimizer
    strategy: LossStrategy
    shared: list[nn.Parameter]  # the trainable trunk parameters
    streams: list[BatchStream]
    steps: int  # steps per epoch
    ctx: distributed.Context
    device: torch.device
    one_pass: bool
    amp: bool
    clip_grad_norm: float | None
    scheduler: Any  # a torch.optim.lr_scheduler scheduler of ``optimizer``, or None
    per_step_schedule: bool  # step it after every optimizer step, else after every epoch


def train_step(
    model: nn.Module, batches: Sequence[tuple[torch.Tensor, Any, Sequence[Task]]],
    optimizer: torch.optim.Optimizer, strategy: LossStrategy, shared: Sequence[nn.Parameter], *,
    one_pass: bool = False, amp: bool = False, clip_grad_norm: float | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, float]]:
    """One step of :func:`fit` (chapter 4.2): forward, task losses, backward, update.

    ``batches`` holds one ``(x, y, tasks)`` per data stream: images ``(B, C, H, W)`` and
    labels on the device, and the tasks that read them. ``shared`` are the trainable trunk
    parameters, the ones the tasks compete for. Returns each task's loss and metric
    (0-dim tensors) and the strategy's logs. Nothing is checked here: :func:`fit` did it once.
    """
    with torch.autocast("cuda", dtype=torch.bfloat16) if amp else nullcontext():
        outputs = _forward(model, [x for x, _, _ in batches], one_pass=one_pass)
    losses, metrics = {}, {}
    for (_, y, tasks), out in zip(batches, outputs):
        for task in tasks:
            prediction, target = out[task.name].float(), task.target(y)  # losses in float32, even under AMP
            losses[task.name] = task.loss_fn(prediction, target)
            metrics[task.name] = task.metric_fn(prediction.detach(), target)  # a metric needs no gradient
    optimizer.zero_grad(set_to_none=True)
    # The one place where the methods differ: the plain sum, learned weights, or gradient surgery.
    logs = strategy.backward(losses, shared)
    if clip_grad_norm is not None:  # after the strategy, which may have rescaled the gradients
        nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
    optimizer.step()
    return losses, metrics, logs


def _forward(model: nn.Module, xs: list[torch.Tensor], *, one_pass: bool) -> list[dict[str, torch.Tensor]]:
    """Head outputs for each stream's batch: one trunk pass per stream, or one for all."""
    if len(xs) == 1 or not one_pass:
        # One pass per stream: each batch-norm layer sees one data set's statistics, so
        # a task weighted 0 leaves the others' updates exactly as if it were absent.
        return [model(x) for x in xs]
    # DDP expects one forward per backward, and batch norm then sees all streams together.
    out = model(torch.cat(xs))
    sizes = [len(x) for x in xs]
    parts = {name: value.split(sizes) for name, value in out.items()}
    return [{name: parts[name][i] for name in parts} for i in range(len(xs))]


def _train(loop: _Loop, tasks: list[Task], epochs: int, evaluate_every: int, progress: bool | None,
           on_epoch_end: Callable[[int, History], None] | None) -> History:
    """The epochs: train, record, evaluate when due, report."""
    history = History()
    show = (not quiet()) if progress is None else progress
    bar = tqdm(range(1, epochs + 1), desc="epochs", disable=not (show and loop.ctx.is_main), leave=False)
    start = time.perf_counter()
    for epoch in bar:
        this_epoch = len(history.records)
        train_losses = _train_epoch(loop, tasks, epoch, epochs, history)
        loop.strategy.on_epoch_end(train_losses)
        if loop.scheduler is not None and not loop.per_step_schedule:
            _step_per_epoch(loop.scheduler, train_losses)
        tested = [t for t in tasks if t.test is not None]
        if tested and (epoch % evaluate_every == 0 or epoch == epochs):
            for name, result in _evaluate(loop.net, tested, "test", 1024, loop.device).items():
                history.records.append({"epoch": epoch, "split": "test", "task": name, **result})
        # The latest metric of each task: test where it was just evaluated, else train.
        latest = {r["task"]: r["metric"] for r in history.records[this_epoch:]}
        bar.set_postfix({name: round(value, 3) for name, value in list(latest.items())[:3]})
        if on_epoch_end is not None:
            on_epoch_end(epoch, history)
    history.seconds = time.perf_counter() - start
    return history


def _step_per_epoch(scheduler: Any, train_losses: dict[str, float]) -> None:
    """Step an epoch schedule; ReduceLROnPlateau watches the sum of the epoch's training losses."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(sum(train_losses.values()))
    else:
        scheduler.step()


def _train_epoch(loop: _Loop, tasks: list[Task], epoch: int, epochs: int, history: History) -> dict[str, float]:
    """``loop.steps`` steps, then one training record per task; returns each task's mean loss."""
    loop.model.train()
    _freeze_frozen_norms(loop.net)
    # Running sums stay tensors on the device: a float() per step would wait for the
    # GPU every step; they are read once per epoch instead.
    totals: dict[str, Any] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    logs: dict[str, float] = defaultdict(float)
    for step in range(loop.steps):
        loop.strategy.set_progress(((epoch - 1) * loop.steps + step) / (epochs * loop.steps))
        batches = [(*stream.next(), stream.tasks) for stream in loop.streams]
        losses, metrics, step_logs = train_step(
            loop.model, batches, loop.optimizer, loop.strategy, loop.shared,
            one_pass=loop.one_pass, amp=loop.amp, clip_grad_norm=loop.clip_grad_norm,
        )
        history.examples += sum(len(x) * len(group) for x, _, group in batches) * loop.ctx.world_size
        for x, _, group in batches:  # weighted by batch size: a short last batch counts for what it holds
            for task in group:
                totals[f"metric/{task.name}"] += metrics[task.name] * len(x)
                totals[f"loss/{task.name}"] += losses[task.name].detach() * len(x)
                counts[task.name] += len(x)
        for key, value in step_logs.items():
            logs[key] += value
        if loop.scheduler is not None:
            logs["lr"] += loop.optimizer.param_groups[0]["lr"]  # the rate this step used
            if loop.per_step_schedule:
                loop.scheduler.step()
    # The epoch means over examples, averaged over processes, become the epoch's training records.
    means = {k: float(v) / counts[k.split("/", 1)[1]] for k, v in totals.items()}
    means = distributed.all_reduce_mean(means, loop.ctx, loop.device)
    train_losses = {t.name: means[f"loss/{t.name}"] for t in tasks}
    for task in tasks:
        history.records.append({"epoch": epoch, "split": "train", "task": task.name,
                                "loss": train_losses[task.name], "metric": means[f"metric/{task.name}"]})
    history.logs.extend({"epoch": epoch, "key": k, "value": v / loop.steps} for k, v in logs.items())
    return train_losses


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
    net = model if isinstance(model, MultiTaskNet) else MultiTaskNet(model, {t.name: t.head for t in tasks})
    missing = [t.name for t in tasks if t.name not in net.heads]
    if missing:
        raise ValueError(f"the network has no head for task(s) {missing}; heads: {', '.join(net.heads)}")
    device = get_device(device) if device is not None else next(net.parameters()).device
    return _evaluate(net, tasks, split, batch_size, device)


@torch.no_grad()
def _evaluate(net: MultiTaskNet, tasks: list[Task], split: str, batch_size: int,
              device: torch.device) -> dict[str, dict[str, float]]:
    """:func:`evaluate` without its checks: :func:`fit` calls it with the tasks it checked."""
    net = net.to(device)
    was_training = net.training
    net.eval()
    results: dict[str, dict[str, float]] = {}
    for data, group in group_by_data(tasks, split):
        loader = TensorLoader(data, batch_size, shuffle=False) if isinstance(data, TensorData) else data
        sums: dict[str, float] = defaultdict(float)
        count = 0
        for x, y in loader:
            x, y = to_device(x, device), to_device(y, device)
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
