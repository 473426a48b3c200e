"""Unit tests of mtl_tl.multitask: each strategy against its formula, on hand-made gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mtl_tl.data import TensorData
from mtl_tl.engine import LossStrategy
from mtl_tl.models import MultiTaskNet
from mtl_tl.multitask import (
    DWA,
    ConflictMonitor,
    EqualWeighting,
    FixedWeights,
    GradNorm,
    PCGrad,
    Task,
    UncertaintyWeighting,
    dwa_weights,
    gradient_cosine,
    make_strategy,
    pcgrad_combine,
    train_jointly,
    train_sequentially,
)
from mtl_tl.tasks import Task as TasksTask


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _data(n: int = 8) -> TensorData:
    return TensorData(torch.rand(n, 1, 4, 4), torch.arange(n) % 2)


def _tasks(*names: str) -> list[Task]:
    data = _data()
    return [Task(n, nn.Linear(4, 2), data, data) for n in names]


class TinyNet(nn.Module):
    """A linear trunk and two linear heads whose trunk gradients conflict (cos < 0)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Linear(3, 4)
        self.head_a = nn.Linear(4, 1)
        self.head_b = nn.Linear(4, 1)
        with torch.no_grad():
            # Task b reads the features almost with the opposite sign of task a.
            self.head_b.weight.copy_(-self.head_a.weight + 0.3 * torch.randn(1, 4))
        self.x = torch.randn(16, 3)

    def losses(self) -> dict[str, torch.Tensor]:
        h = self.trunk(self.x)
        return {"a": self.head_a(h).mean(), "b": self.head_b(h).mean()}

    @property
    def shared(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())


def _flat(grads) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


def _trunk() -> nn.Module:
    """A trunk for _tasks' 4x4 images: (N, 1, 4, 4) -> (N, 4)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 4))


def _net(trunk: nn.Module, *names: str) -> MultiTaskNet:
    return MultiTaskNet(trunk, {n: nn.Linear(4, 1) for n in names})


# ----------------------------------------------------------------------------- re-export


def test_task_is_the_tasks_module_class():
    assert Task is TasksTask


# --------------------------------------------------------------------------------- PCGrad


def test_pcgrad_combine_projects_conflicting_pair_by_hand():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    combined = pcgrad_combine([g1, g2], _gen())
    # g1' = g1 - (g1.g2/|g2|^2) g2 = (0.5, 0.5); g2' = g2 - (g2.g1/|g1|^2) g1 = (0, 1).
    torch.testing.assert_close(combined, torch.tensor([0.5, 1.5]))
    assert torch.dot(combined, g1) >= 0 and torch.dot(combined, g2) >= 0
    torch.testing.assert_close(pcgrad_combine([g1, g2], _gen(), reduction="mean"), torch.tensor([0.25, 0.75]))


def test_pcgrad_combine_never_opposes_either_of_two_tasks():
    g = torch.Generator().manual_seed(1)
    conflicts = 0
    for _ in range(200):
        g1, g2 = torch.randn(10, generator=g), torch.randn(10, generator=g)
        conflicts += int(torch.dot(g1, g2) < 0)
        combined = pcgrad_combine([g1, g2], _gen())
        assert torch.dot(combined, g1) >= -1e-5
        assert torch.dot(combined, g2) >= -1e-5
    assert conflicts > 50  # the draw really exercised the projection


def test_pcgrad_combine_leaves_agreeing_gradients_unchanged():
    grads = [torch.tensor([1.0, 0.0, 2.0]), torch.tensor([1.0, 1.0, 0.0]), torch.tensor([0.0, 3.0, 1.0])]
    torch.testing.assert_close(pcgrad_combine(grads, _gen()), sum(grads))


def test_pcgrad_combine_is_deterministic_for_a_seed_and_order_matters():
    g = torch.Generator().manual_seed(2)
    differs = 0
    for k in range(20):
        grads = [torch.randn(5, generator=g) for _ in range(3)]
        a = pcgrad_combine(grads, _gen(2 * k))
        b = pcgrad_combine(grads, _gen(2 * k))
        assert torch.equal(a, b)
        differs += int(not torch.allclose(a, pcgrad_combine(grads, _gen(2 * k + 1))))
    assert differs > 0  # the random order is actually used with three tasks


def test_pcgrad_projects_against_the_original_gradients():
    # With 3 tasks, projecting g1 on the already-projected g2 would give another result.
    g1, g2, g3 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0]), torch.tensor([0.0, -1.0])
    grads = [g1, g2, g3]
    combined = pcgrad_combine(grads, _gen(3))
    expected = torch.zeros(2)
    order_gen = _gen(3)
    for i, gi in enumerate(grads):
        p = gi.clone()
        for j in torch.randperm(3, generator=order_gen).tolist():
            if j != i and torch.dot(p, grads[j]) < 0:
                p = p - torch.dot(p, grads[j]) / grads[j].pow(2).sum() * grads[j]
        expected += p
    torch.testing.assert_close(combined, expected)


def test_pcgrad_heads_get_plain_gradients_and_trunk_gets_projection():
    net = TinyNet()
    losses = net.losses()
    cos = gradient_cosine(losses, net.shared)[("a", "b")]
    assert cos < -0.2  # the test is only meaningful for conflicting tasks
    plain_head_a = torch.autograd.grad(losses["a"], list(net.head_a.parameters()), retain_graph=True)
    plain_head_b = torch.autograd.grad(losses["b"], list(net.head_b.parameters()), retain_graph=True)
    per_task = [_flat(torch.autograd.grad(losses[n], net.shared, retain_graph=True)) for n in ("a", "b")]
    expected_trunk = pcgrad_combine(per_task, _gen(0))

    logs = PCGrad(seed=0).backward(losses, net.shared)

    for p, g in zip(net.head_a.parameters(), plain_head_a):
        torch.testing.assert_close(p.grad, g)
    for p, g in zip(net.head_b.parameters(), plain_head_b):
        torch.testing.assert_close(p.grad, g)
    trunk_grad = _flat(p.grad for p in net.shared)
    torch.testing.assert_close(trunk_grad, expected_trunk)
    assert not torch.allclose(trunk_grad, per_task[0] + per_task[1])
    assert logs["pcgrad/conflicts"] == 1.0 and logs["pcgrad/conflict_fraction"] == 1.0
    assert logs["cos/a|b"] == pytest.approx(cos, abs=1e-6)


def test_pcgrad_same_seed_same_gradients():
    grads = []
    for _ in range(2):
        net = TinyNet()
        PCGrad(seed=5).backward(net.losses(), net.shared)
        grads.append(_flat(p.grad for p in net.parameters()))
    assert torch.equal(grads[0], grads[1])


def test_pcgrad_input_errors():
    with pytest.raises(ValueError, match="reduction='max'.*'sum', 'mean'"):
        PCGrad(reduction="max")
    with pytest.raises(ValueError, match="seed must be >= 0"):
        PCGrad(seed=-1)
    with pytest.raises(ValueError, match=r"grads\[1\] has shape \(3,\) but grads\[0\] has \(2,\)"):
        pcgrad_combine([torch.zeros(2), torch.zeros(3)], _gen())
    with pytest.raises(ValueError, match="non-empty list"):
        pcgrad_combine([], _gen())
    with pytest.raises(TypeError, match="generator must be Generator"):
        pcgrad_combine([torch.zeros(2)], 0)


# -------------------------------------------------------------------- gradient conflicts


def test_gradient_cosine_matches_hand_computed_value():
    p = nn.Parameter(torch.tensor([1.0, 2.0, 3.0]))
    a, b = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([-2.0, 1.0, 0.5])
    cos = gradient_cosine({"a": (p * a).sum(), "b": (p * b).sum()}, [p])
    expected = float(torch.dot(a, b) / (a.norm() * b.norm()))
    assert list(cos) == [("a", "b")]
    assert cos[("a", "b")] == pytest.approx(expected)


def test_gradient_cosine_input_errors():
    p = nn.Parameter(torch.ones(2))
    with pytest.raises(ValueError, match="losses must be a non-empty mapping"):
        gradient_cosine({}, [p])
    with pytest.raises(ValueError, match="shared is empty"):
        gradient_cosine({"a": p.sum()}, [])
    with pytest.raises(ValueError, match=r"shared\[0\] must be a tensor with requires_grad=True"):
        gradient_cosine({"a": p.sum()}, [torch.ones(2)])


def test_conflict_monitor_logs_cosines_without_changing_gradients():
    net = TinyNet()
    losses = net.losses()
    expected = torch.autograd.grad(losses["a"] + losses["b"], list(net.parameters()), retain_graph=True)
    cos = gradient_cosine(losses, net.shared)[("a", "b")]
    monitor = ConflictMonitor(EqualWeighting())
    logs = monitor.backward(losses, net.shared)
    assert monitor.needs_task_gradients
    assert logs["cos/a|b"] == pytest.approx(cos, abs=1e-6)
    assert logs["weight/a"] == 1.0
    for p, g in zip(net.parameters(), expected):
        torch.testing.assert_close(p.grad, g)
    with pytest.raises(TypeError, match="base must be LossStrategy"):
        ConflictMonitor("equal")


def test_conflict_monitor_passes_prepare_on_to_the_wrapped_strategy():
    monitor = ConflictMonitor(UncertaintyWeighting({"a": "classification", "b": "classification"}))
    with pytest.raises(ValueError, match=r"set up for tasks \['a', 'b'\] but was given tasks \['a', 'c'\]"):
        train_jointly(_trunk(), _tasks("a", "c"), strategy=monitor, epochs=1, device="cpu", progress=False)
    with pytest.raises(ValueError, match="not a trainable shared parameter"):
        ConflictMonitor(GradNorm(layer=nn.Linear(2, 2))).prepare(_net(_trunk(), "a", "b"))


def test_conflict_monitor_exposes_wrapped_parameters():
    base = UncertaintyWeighting({"a": "classification", "b": "regression"})
    monitor = ConflictMonitor(base)
    assert [p is base.log_vars for p in monitor.parameters()] == [True]


# --------------------------------------------------------------- uncertainty weighting


def test_uncertainty_weighting_matches_kendall_formula():
    strategy = UncertaintyWeighting({"cls": "classification", "reg": "regression"})
    with torch.no_grad():
        strategy.log_vars.copy_(torch.tensor([0.3, -0.5]))
    xa, xb = torch.tensor(2.0, requires_grad=True), torch.tensor(3.0, requires_grad=True)
    losses = {"cls": xa * 1.0, "reg": xb * 1.0}
    total = strategy.total_loss(losses)
    expected = math.exp(-0.3) * 2.0 + 0.3 / 2 + 0.5 * math.exp(0.5) * 3.0 - 0.5 / 2
    assert float(total.detach()) == pytest.approx(expected)

    logs = strategy.backward(losses, [])
    assert float(xa.grad) == pytest.approx(math.exp(-0.3))
    assert float(xb.grad) == pytest.approx(0.5 * math.exp(0.5))
    ds = strategy.log_vars.grad.tolist()
    assert ds[0] == pytest.approx(-math.exp(-0.3) * 2.0 + 0.5)
    assert ds[1] == pytest.approx(-0.5 * math.exp(0.5) * 3.0 + 0.5)
    assert logs["weight/cls"] == pytest.approx(math.exp(-0.3))
    assert logs["weight/reg"] == pytest.approx(0.5 * math.exp(0.5))
    assert logs["log_var/reg"] == pytest.approx(-0.5)


def test_uncertainty_weighting_registers_log_vars_as_parameters():
    strategy = UncertaintyWeighting({"a": "classification", "b": "regression"})
    params = list(strategy.parameters())
    assert len(params) == 1 and params[0].shape == (2,) and torch.all(params[0] == 0)


def test_uncertainty_weighting_param_group_has_its_lr_and_no_weight_decay():
    strategy = UncertaintyWeighting({"a": "classification"}, lr=0.05)
    (group,) = strategy.param_groups()
    assert group["params"] == [strategy.log_vars] and group["lr"] == 0.05 and group["weight_decay"] == 0.0
    (group,) = UncertaintyWeighting({"a": "classification"}).param_groups()
    assert "lr" not in group and group["weight_decay"] == 0.0
    assert make_strategy("uncertainty", _tasks("a", "b"), lr=0.2).lr == 0.2
    assert LossStrategy().param_groups() == []


def test_uncertainty_weighting_input_errors():
    with pytest.raises(ValueError, match=r"lr must be > 0"):
        UncertaintyWeighting({"a": "classification"}, lr=0.0)
    with pytest.raises(ValueError, match=r"task_kinds\['a'\]='ordinal'.*'classification', 'regression'"):
        UncertaintyWeighting({"a": "ordinal"})
    with pytest.raises(ValueError, match="task_kinds must be a non-empty mapping"):
        UncertaintyWeighting({})
    strategy = UncertaintyWeighting({"a": "classification"})
    with pytest.raises(ValueError, match=r"set up for tasks \['a'\] but was given tasks \['b'\]"):
        strategy.total_loss({"b": torch.tensor(1.0)})
    with pytest.raises(ValueError, match=r"set up for tasks \['a'\] but was given tasks \['a', 'b'\]"):
        strategy.weights(["a", "b"])
    # fit checks the tasks once, before the first step, through prepare.
    with pytest.raises(ValueError, match=r"set up for tasks \['a'\] but was given tasks \['a', 'b'\]"):
        train_jointly(_trunk(), _tasks("a", "b"), strategy=strategy, epochs=1, device="cpu", progress=False)


# ------------------------------------------------------------------------- fixed, equal


def test_fixed_weights_scale_each_task_gradient():
    x = torch.tensor([1.0, 1.0], requires_grad=True)
    FixedWeights({"a": 0.5, "b": 3.0}).backward({"a": x[0] * 2, "b": x[1] * 2}, [])
    assert x.grad.tolist() == [1.0, 6.0]


def test_equal_weighting_is_the_plain_sum():
    x = torch.tensor([1.0, 1.0], requires_grad=True)
    logs = EqualWeighting().backward({"a": x[0] * 2, "b": x[1] * 5}, [])
    assert x.grad.tolist() == [2.0, 5.0] and logs == {"weight/a": 1.0, "weight/b": 1.0}


def test_fixed_weights_input_errors():
    with pytest.raises(ValueError, match=r"weights\['a'\] must be >= 0.0, got -1.0"):
        FixedWeights({"a": -1.0})
    with pytest.raises(ValueError, match="weights are all 0"):
        FixedWeights({"a": 0.0, "b": 0})
    with pytest.raises(ValueError, match="weights must be a non-empty mapping"):
        FixedWeights({})
    with pytest.raises(ValueError, match=r"no entry for task\(s\) \['b'\]; weights given: \['a'\]"):
        train_jointly(_trunk(), _tasks("a", "b"), strategy=FixedWeights({"a": 1.0}), epochs=1, device="cpu",
                      progress=False)


# --------------------------------------------------------------------------------- DWA


def test_dwa_weights_match_formula():
    history = [{"a": 9.0, "b": 9.0}, {"a": 1.0, "b": 2.0}, {"a": 0.5, "b": 1.8}]
    weights = dwa_weights(history, temperature=2.0)
    ea, eb = math.exp(0.5 / 1.0 / 2.0), math.exp(1.8 / 2.0 / 2.0)
    assert weights["a"] == pytest.approx(2 * ea / (ea + eb))
    assert weights["b"] == pytest.approx(2 * eb / (ea + eb))
    assert sum(weights.values()) == pytest.approx(2.0)
    assert weights["b"] > weights["a"]  # the slower task gets more weight


def test_dwa_weights_are_one_for_the_first_two_epochs():
    assert dwa_weights([], 2.0) == {}
    assert dwa_weights([{"a": 3.0, "b": 0.1}], 2.0) == {"a": 1.0, "b": 1.0}
    strategy = DWA(temperature=2.0)
    x = torch.tensor([1.0, 1.0], requires_grad=True)
    assert strategy.weights(["a", "b"]) == {"a": 1.0, "b": 1.0}
    strategy.on_epoch_end({"a": 1.0, "b": 2.0})
    assert strategy.weights(["a", "b"]) == {"a": 1.0, "b": 1.0}
    strategy.on_epoch_end({"a": 0.5, "b": 1.8})
    logs = strategy.backward({"a": x[0] * 1.0, "b": x[1] * 1.0}, [])
    expected = dwa_weights([{"a": 1.0, "b": 2.0}, {"a": 0.5, "b": 1.8}], 2.0)
    assert x.grad.tolist() == pytest.approx([expected["a"], expected["b"]])
    assert logs["weight/a"] == pytest.approx(expected["a"]) and expected["a"] != pytest.approx(1.0)


def test_dwa_large_temperature_gives_equal_weights():
    weights = dwa_weights([{"a": 1.0, "b": 1.0}, {"a": 0.1, "b": 3.0}], temperature=1e6)
    assert weights["a"] == pytest.approx(1.0, abs=1e-4) and weights["b"] == pytest.approx(1.0, abs=1e-4)


def test_dwa_input_errors():
    with pytest.raises(ValueError, match="temperature must be > 0.0, got 0.0"):
        DWA(temperature=0)
    strategy = DWA()
    strategy.on_epoch_end({"a": 1.0, "b": 2.0})
    strategy.on_epoch_end({"a": 0.5, "b": 1.8})
    with pytest.raises(ValueError, match=r"DWA was set up for tasks \['a', 'b'\] but was given tasks \['a'\]"):
        strategy.weights(["a"])
    with pytest.raises(ValueError, match=r"DWA was set up for tasks \['a', 'b'\] but was given tasks \['a', 'c'\]"):
        strategy.prepare(_net(_trunk(), "a", "c"))
    with pytest.raises(TypeError, match="loss_history must be a list"):
        dwa_weights({"a": 1.0}, 2.0)
    with pytest.raises(ValueError, match=r"loss_history\[-1\]\['a'\] must be >= 0"):
        dwa_weights([{"a": 1.0}, {"a": -1.0}], 2.0)
    with pytest.raises(ValueError, match="name different tasks"):
        dwa_weights([{"a": 1.0}, {"b": 1.0}], 2.0)
    with pytest.raises(ValueError, match=r"loss_history\[0\] must be a non-empty"):
        dwa_weights([{}], 2.0)


# ---------------------------------------------------------------------------- GradNorm


def test_gradnorm_first_step_by_hand():
    # The tasks' gradients at the shared layer are in the ratio 1 : 2 : 10.
    torch.manual_seed(0)
    trunk = nn.Linear(3, 4)
    x = torch.randn(8, 3)
    h = trunk(x)
    base = h.pow(2).mean()
    losses = {"a": base * 1.0, "b": base * 2.0, "c": base * 10.0}
    shared = list(trunk.parameters())
    expected = torch.autograd.grad(sum(losses.values()), shared, retain_graph=True)
    strategy = GradNorm(alpha=1.5, lr=0.025)
    logs = strategy.backward(losses, shared)
    # At the first step w = 1, so the network gradient is the plain sum.
    for p, g in zip(shared, expected):
        torch.testing.assert_close(p.grad, g)
    norms = [logs[f"gradnorm/{n}"] for n in "abc"]
    assert norms[1] == pytest.approx(2 * norms[0], rel=1e-5) and norms[2] == pytest.approx(10 * norms[0], rel=1e-5)
    assert [logs[f"weight/{n}"] for n in "abc"] == [1.0, 1.0, 1.0]
    # r_i = 1 at the first step, so every target is G_bar = 13/3 G_a, held constant:
    # d L_grad / d w_i = sign(G_i - G_bar) ||grad_W L_i||.
    grad = strategy.task_weights.grad.tolist()
    assert grad == pytest.approx([-norms[0], -norms[1], norms[2]], rel=1e-5)
    # Adam's first step moves each weight by lr against its gradient's sign; then sum = T.
    stepped = torch.tensor([1.025, 1.025, 0.975])
    assert strategy.task_weights.tolist() == pytest.approx((stepped * 3 / stepped.sum()).tolist())
    assert float(strategy.task_weights.detach().sum()) == pytest.approx(3.0)
    assert strategy.initial_losses.tolist() == pytest.approx([float(v.detach()) for v in losses.values()])


def test_gradnorm_weights_are_not_parameters():
    strategy = GradNorm()
    trunk = nn.Linear(3, 4)
    h = trunk(torch.randn(4, 3))
    strategy.backward({"a": h.mean(), "b": h.pow(2).mean()}, list(trunk.parameters()))
    assert list(strategy.parameters()) == []
    assert "task_weights" in dict(strategy.named_buffers())


def test_gradnorm_layer_stays_the_trunks():
    # The chosen layer is the trunk's: the engine's optimizer must see it once, not twice.
    trunk = _trunk()
    for layer in (trunk[1], trunk[1].weight):
        strategy = GradNorm(layer=layer)
        assert list(strategy.parameters()) == [] and strategy.layer is layer
        history = train_jointly(trunk, _tasks("a", "b"), strategy=strategy, epochs=1, device="cpu", progress=False)
        assert {"gradnorm/a", "gradnorm/b"} <= set(history.logs_frame().key)


def test_gradnorm_default_layer_is_last_shared_matrix():
    trunk = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 5))
    shared = list(trunk.parameters())
    assert GradNorm().shared_layer(shared) is trunk[2].weight
    assert GradNorm(layer=trunk[0]).shared_layer(shared) is trunk[0].weight
    with pytest.raises(ValueError, match="not a trainable shared parameter"):
        GradNorm(layer=nn.Linear(2, 2)).shared_layer(shared)
    with pytest.raises(ValueError, match="no shared parameter with ndim > 1"):
        GradNorm().shared_layer([trunk[0].bias])
    # fit checks the layer once, before the first step, through prepare.
    with pytest.raises(ValueError, match="not a trainable shared parameter"):
        GradNorm(layer=nn.Linear(2, 2)).prepare(MultiTaskNet(trunk, {"a": nn.Linear(5, 1)}))


def test_gradnorm_input_errors():
    with pytest.raises(ValueError, match="alpha must be >= 0.0, got -1.0"):
        GradNorm(alpha=-1)
    with pytest.raises(ValueError, match="lr must be > 0.0, got 0.0"):
        GradNorm(lr=0)
    with pytest.raises(TypeError, match="layer must be Parameter or Module"):
        GradNorm(layer="fc")
    with pytest.raises(ValueError, match="has no parameter with ndim > 1"):
        GradNorm(layer=nn.ReLU())


def test_gradnorm_refuses_other_tasks_later():
    trunk = nn.Linear(3, 4)
    strategy = GradNorm()
    h = trunk(torch.randn(4, 3))
    strategy.backward({"a": h.mean(), "b": h.pow(2).mean()}, list(trunk.parameters()))
    with pytest.raises(ValueError, match=r"set up for tasks \['a', 'b'\] but was given tasks \['a', 'c'\]"):
        strategy.prepare(MultiTaskNet(trunk, {"a": nn.Linear(4, 1), "c": nn.Linear(4, 1)}))


# ----------------------------------------------------------------------------- factory


@pytest.mark.parametrize(
    ("name", "kwargs", "cls"),
    [
        ("equal", {}, EqualWeighting),
        ("fixed", {"weights": {"a": 1.0, "b": 0.5}}, FixedWeights),
        ("uncertainty", {}, UncertaintyWeighting),
        ("gradnorm", {"alpha": 0.5}, GradNorm),
        ("dwa", {"temperature": 1.0}, DWA),
        ("pcgrad", {"seed": 3}, PCGrad),
    ],
)
def test_make_strategy_builds_each(name, kwargs, cls):
    strategy = make_strategy(name, _tasks("a", "b"), **kwargs)
    assert type(strategy) is cls and isinstance(strategy, LossStrategy)


def test_make_strategy_uncertainty_kinds_follow_the_losses():
    data = TensorData(torch.rand(8, 1, 4, 4), {"c": torch.arange(8) % 2, "r": torch.rand(8)})
    tasks = [Task("c", nn.Linear(4, 2), data), Task("r", nn.Linear(4, 1), data, loss="mse", metric="neg_mse")]
    strategy = make_strategy("uncertainty", tasks)
    assert strategy.kinds == {"c": "classification", "r": "regression"}
    custom = Task("k", nn.Linear(4, 2), data, loss=lambda out, y: out.mean(), label="c")
    with pytest.raises(ValueError, match="task 'k' has a custom loss.*task_kinds="):
        make_strategy("uncertainty", [custom])
    assert make_strategy("uncertainty", [custom], task_kinds={"k": "regression"}).kinds == {"k": "regression"}


def test_make_strategy_errors():
    tasks = _tasks("a", "b")
    with pytest.raises(ValueError, match="name='mgda' is not accepted.*'equal', 'fixed', 'uncertainty', "
                                         "'gradnorm', 'dwa', 'pcgrad'"):
        make_strategy("mgda", tasks)
    with pytest.raises(ValueError, match=r"duplicate task names \['a'\]"):
        make_strategy("equal", _tasks("a", "a"))
    headless = _tasks("a", "b")
    headless[1].head = None
    with pytest.raises(ValueError, match="task 'b' has no head"):
        make_strategy("equal", headless)
    with pytest.raises(ValueError, match="has no head"):
        Task("c", None, _data())
    with pytest.raises(TypeError, match=r"strategy 'dwa' got unknown option\(s\) \['alpha'\]; it accepts: temperature"):
        make_strategy("dwa", tasks, alpha=1.0)
    with pytest.raises(ValueError, match="strategy 'fixed' needs weights="):
        make_strategy("fixed", tasks)
    with pytest.raises(ValueError, match=r"weights names tasks \['a'\] but the tasks are \['a', 'b'\]"):
        make_strategy("fixed", tasks, weights={"a": 1.0})
    with pytest.raises(ValueError, match="tasks must be a non-empty list"):
        make_strategy("equal", [])
    with pytest.raises(TypeError, match="each task must be Task"):
        make_strategy("equal", ["a"])


def test_train_functions_reject_bad_arguments():
    tasks = _tasks("a", "b")
    trunk = _trunk()
    with pytest.raises(ValueError, match="strategy='sum' is not accepted"):
        train_jointly(trunk, tasks, strategy="sum", epochs=1)
    with pytest.raises(TypeError, match="strategy must be LossStrategy"):
        train_jointly(trunk, tasks, strategy=3, epochs=1)
    with pytest.raises(TypeError, match="strategy must be LossStrategy"):
        train_jointly(trunk, tasks, strategy=3, epochs=1, monitor_conflicts=True)
    with pytest.raises(ValueError, match=r"duplicate task names \['a'\]"):
        train_jointly(trunk, _tasks("a", "a"), strategy="uncertainty", epochs=1)
    with pytest.raises(TypeError, match=r"train_sequentially got \['epochs'\]; use epochs_per_task"):
        train_sequentially(trunk, tasks, epochs_per_task=1, epochs=2)
    with pytest.raises(ValueError, match="epochs_per_task must be >= 1, got 0"):
        train_sequentially(trunk, tasks, epochs_per_task=0)
    no_test = [Task("a", nn.Linear(4, 2), _data())]
    with pytest.raises(ValueError, match=r"task\(s\) \['a'\] have no test data"):
        train_sequentially(trunk, no_test, epochs_per_task=1)


def test_pcgrad_projects_on_a_gradient_whose_squared_norm_underflows():
    # ||g_2||^2 = 4e-48 is 0 in float32 while g_1 . g_2 < 0: the projection must stay
    # finite and equal the exact one (g_1 and g_2 point in opposite directions: both vanish).
    from mtl_tl.gradient_surgery import pcgrad_combine

    g1, g2 = torch.ones(4), -1e-24 * torch.ones(4)
    assert g2.pow(2).sum() == 0
    combined = pcgrad_combine([g1, g2], torch.Generator().manual_seed(0))
    assert torch.isfinite(combined).all()
    assert torch.allclose(combined, torch.zeros(4), atol=1e-6)
    # A task direction at an angle: the exact projection removes g_1's component along g_2.
    g1, g2 = torch.tensor([1.0, 1.0]), torch.tensor([-1e-24, 0.0])
    combined = pcgrad_combine([g1, g2], torch.Generator().manual_seed(0))
    assert torch.allclose(combined, torch.tensor([0.0, 1.0]), atol=1e-6)


def test_dwa_stops_on_a_diverged_loss():
    from mtl_tl.weighting import DWA

    dwa = DWA()
    dwa.on_epoch_end({"a": 1.0, "b": 2.0})
    with pytest.raises(ValueError, match=r"DWA: the training loss of \['b'\] is not finite"):
        dwa.on_epoch_end({"a": 0.9, "b": float("nan")})
