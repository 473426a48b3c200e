"""mtl_tl.multitask through the engine: forgetting vs joint training, the GradNorm toy, logs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtl_tl.config import seed_everything
from mtl_tl.data import TensorData, class_split, load_digits
from mtl_tl.models import SmallCNN, linear_head
from mtl_tl.multitask import (
    DWA,
    GradNorm,
    PCGrad,
    SequentialResult,
    Task,
    UncertaintyWeighting,
    dwa_weights,
    make_strategy,
    train_jointly,
    train_sequentially,
)


@pytest.fixture(scope="module")
def digit_tasks_data():
    """Task A: digits 0-4. Task B: digits 5-9 relabelled 0-4 with inverted intensities.

    The inversion shifts B's input distribution strongly, so a trunk trained on B
    alone drifts far from what A's head reads.
    """
    train, test = load_digits(8)
    a = class_split(train, range(5)), class_split(test, range(5))
    b = [class_split(d, range(5, 10)) for d in (train, test)]
    b = tuple(TensorData(1.0 - d.x, d.y) for d in b)
    return a, b


def _model(heads, seed: int):
    """A seeded SmallCNN trunk and one task per ``(name, classes, train, test)``."""
    seed_everything(seed)
    trunk = SmallCNN(width=8, depth=2)
    return trunk, [Task(name, linear_head(trunk.out_features, k), tr, te) for name, k, tr, te in heads]


def _digit_model(data, seed: int):
    (a_tr, a_te), (b_tr, b_te) = data
    return _model([("A", 5, a_tr, a_te), ("B", 5, b_tr, b_te)], seed)


def test_sequential_training_forgets_task_a_and_joint_training_does_not(digit_tasks_data):
    trunk, tasks = _digit_model(digit_tasks_data, seed=0)
    result = train_sequentially(trunk, tasks, epochs_per_task=8, lr=1e-2, device="cpu")
    assert isinstance(result, SequentialResult)
    table = result.table
    assert list(table.columns) == ["stage", "trained", "task", "loss", "metric"]
    assert len(table) == 4 and list(table["trained"]) == ["A", "A", "B", "B"]
    a_after_a = table[(table.stage == 1) & (table.task == "A")].metric.item()
    a_after_b = table[(table.stage == 2) & (table.task == "A")].metric.item()
    print(f"sequential: A after stage 1 {a_after_a:.3f}, after stage 2 {a_after_b:.3f}")
    assert a_after_a > 0.9
    assert a_after_a - a_after_b > 0.3
    assert result.forgetting["A"] == pytest.approx(a_after_a - a_after_b)
    assert result.forgetting["B"] == 0.0
    assert result.final()["B"] > 0.85
    assert len(result.histories) == 2

    trunk, tasks = _digit_model(digit_tasks_data, seed=0)
    history = train_jointly(trunk, tasks, epochs=8, lr=1e-2, device="cpu")
    print(f"joint: A {history.last('A'):.3f}, B {history.last('B'):.3f}")
    assert history.last("A") > 0.85 and history.last("B") > 0.85
    assert history.last("A") - a_after_b > 0.3


def _gradnorm_toy(seed: int = 0, n: int = 512, d: int = 32, k: int = 8, sigmas=(1.0, 100.0)) -> TensorData:
    """Chen et al.'s toy: targets sigma_i * tanh((B + eps_i) x), one shared B, per-task eps_i."""
    g = torch.Generator().manual_seed(seed)
    b = torch.randn(k, d, generator=g) / d**0.5
    x = torch.randn(n, d, generator=g)
    y = {f"t{i + 1}": s * torch.tanh(x @ (b + 0.35 * torch.randn(k, d, generator=g) / d**0.5).T)
         for i, s in enumerate(sigmas)}
    return TensorData(x.reshape(n, d, 1, 1), y)


class RecordingGradNorm(GradNorm):
    """GradNorm that keeps its weights after every step."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.trace: list[torch.Tensor] = []

    def backward(self, losses, shared):
        logs = super().backward(losses, shared)
        self.trace.append(self.task_weights.detach().clone())
        return logs


def test_gradnorm_toy_lowers_the_weight_of_the_large_scale_task():
    data = _gradnorm_toy()
    seed_everything(0)
    trunk = nn.Sequential(nn.Flatten(), nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
    tasks = [Task(f"t{i}", nn.Linear(64, 8), data, loss="mse", metric="neg_mse") for i in (1, 2)]
    # A fast weight learning rate (25x the default), so that 160 steps reach the balance.
    strategy = RecordingGradNorm(alpha=0.12, lr=0.025)
    history = train_jointly(trunk, tasks, strategy=strategy, epochs=20, lr=1e-3, device="cpu")
    trace = torch.stack(strategy.trace)  # (steps, 2)
    assert strategy.shared_layer(list(trunk.parameters())) is trunk[3].weight
    assert trace.shape == (160, 2)
    torch.testing.assert_close(trace.sum(dim=1), torch.full((160,), 2.0))
    assert bool((trace > 0).all())
    ratio = trace[:, 1] / trace[:, 0]  # w_large / w_small
    print(f"GradNorm toy: w_large/w_small after step 1 {ratio[0]:.3f}, 10 {ratio[9]:.3f}, "
          f"{len(ratio)} {ratio[-1]:.4f}")
    assert ratio[0] < 1.0
    assert ratio[-1] < ratio[9] < ratio[0]
    assert ratio[-1] < 0.1
    logs = history.logs_frame().pivot(index="epoch", columns="key", values="value")
    # The balancing worked: the gradient-norm gap at the shared layer shrank by far.
    first, last = logs.iloc[0], logs.iloc[-1]
    assert first["gradnorm/t2"] / first["gradnorm/t1"] > 20
    assert last["gradnorm/t2"] / last["gradnorm/t1"] < 3


@pytest.fixture(scope="module")
def small_digit_tasks():
    train, test = load_digits(8)
    train, test = train.subset(torch.arange(320)), test.subset(torch.arange(200))
    parity = lambda d: TensorData(d.x, {"digit": d.y, "odd": d.y % 2})  # noqa: E731
    return parity(train), parity(test)


def _two_label_model(data, seed: int = 0):
    train, test = data
    return _model([("digit", 10, train, test), ("odd", 2, train, test)], seed)


def test_uncertainty_log_vars_are_trained_by_the_engine(small_digit_tasks):
    trunk, tasks = _two_label_model(small_digit_tasks)
    strategy = UncertaintyWeighting({"digit": "classification", "odd": "classification"})
    history = train_jointly(trunk, tasks, strategy=strategy, epochs=3, lr=1e-2, device="cpu")
    s = strategy.log_vars.detach()
    assert bool((s != 0).all())
    logs = history.logs_frame()
    last = logs[logs.epoch == 3].set_index("key")["value"]
    assert {"weight/digit", "weight/odd", "log_var/digit", "log_var/odd"} <= set(last.index)


def test_dwa_logs_follow_the_training_losses(small_digit_tasks):
    trunk, tasks = _two_label_model(small_digit_tasks)
    history = train_jointly(trunk, tasks, strategy=DWA(temperature=2.0), epochs=3, lr=1e-2, device="cpu")
    logs = history.logs_frame().pivot(index="epoch", columns="key", values="value")
    assert logs.loc[1, "weight/digit"] == 1.0 and logs.loc[2, "weight/odd"] == 1.0
    frame = history.to_frame()
    train = frame[frame.split == "train"]
    epoch_losses = [dict(zip(train[train.epoch == e].task, train[train.epoch == e].loss)) for e in (1, 2)]
    expected = dwa_weights(epoch_losses, 2.0)
    assert logs.loc[3, "weight/digit"] == pytest.approx(expected["digit"])
    assert logs.loc[3, "weight/odd"] == pytest.approx(expected["odd"])


def test_pcgrad_and_conflict_monitor_log_cosines(small_digit_tasks):
    trunk, tasks = _two_label_model(small_digit_tasks)
    history = train_jointly(trunk, tasks, strategy=PCGrad(seed=0), epochs=2, lr=1e-2, device="cpu")
    keys = set(history.logs_frame().key)
    assert {"cos/digit|odd", "pcgrad/conflicts", "pcgrad/conflict_fraction"} <= keys
    losses = history.curve("digit", "train", "loss")
    assert losses[-1] < losses[0]  # it learns

    trunk, tasks = _two_label_model(small_digit_tasks)
    history = train_jointly(trunk, tasks, strategy="gradnorm", epochs=2, lr=1e-2, device="cpu",
                            monitor_conflicts=True)
    logs = history.logs_frame()
    cos = logs[logs.key == "cos/digit|odd"]["value"]
    assert len(cos) == 2 and bool(cos.between(-1, 1).all())
    assert {"weight/digit", "gradnorm/odd"} <= set(logs.key)


def test_uncertainty_lr_is_the_log_variances_own_step(small_digit_tasks):
    # Adam's first step moves every parameter by about its learning rate, whatever the gradient.
    for lr, expected in ((None, 1e-3), (0.05, 0.05)):
        trunk, tasks = _two_label_model(small_digit_tasks)
        strategy = UncertaintyWeighting({"digit": "classification", "odd": "classification"}, lr=lr)
        train_jointly(trunk, tasks, strategy=strategy, epochs=1, steps_per_epoch=1, lr=1e-3, device="cpu")
        step = strategy.log_vars.detach().abs()
        assert torch.allclose(step, torch.full_like(step, expected), rtol=0.05), (lr, step)


def _ten_times_problem(seed: int):
    """Two regressions of the same inputs, one in units 10 times larger, and a 4-class task."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 1, 4, 4, generator=g)
    flat = x.flatten(1)
    w1, w2 = torch.randn(16, generator=g), torch.randn(16, generator=g)
    data = TensorData(x, {"small": (flat @ w1) / 4, "large": 10 * torch.tanh(flat @ w2 / 4),
                          "class": flat[:, :4].argmax(dim=1)})
    trunk = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU())
    trunk.out_features = 32
    tasks = [Task("small", nn.Linear(32, 1), train=data, loss="mse", metric="neg_mse"),
             Task("large", nn.Linear(32, 1), train=data, loss="mse", metric="neg_mse"),
             Task("class", nn.Linear(32, 4), train=data)]
    return trunk, tasks


@pytest.mark.parametrize("lr, collapses", [(None, False), (0.025, True)])
def test_gradnorm_default_does_not_collapse_the_large_loss_task(lr, collapses):
    # One loss 10x (in units) the other's: the default weight learning rate keeps every
    # weight near 1; a fast one (0.025, the old default) drives the large task's toward 0.
    torch.manual_seed(0)
    trunk, tasks = _ten_times_problem(0)
    strategy = make_strategy("gradnorm", tasks) if lr is None else make_strategy("gradnorm", tasks, lr=lr)
    history = train_jointly(trunk, tasks, strategy=strategy, epochs=30, batch_size=64, lr=1e-3,
                            device="cpu", progress=False)
    logs = history.logs_frame()
    last = logs[logs["epoch"] == logs["epoch"].max()].set_index("key")["value"]
    assert bool(last["weight/large"] < 0.2) is collapses, last.to_dict()
