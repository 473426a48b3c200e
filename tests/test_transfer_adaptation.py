"""Domain adaptation with unlabelled target images: GRL/DANN, CORAL and MMD (mtl_tl.adaptation)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mtl_tl.data import TensorData, load_digits
import mtl_tl.adaptation as adaptation
import mtl_tl.transfer as transfer
from mtl_tl.adaptation import _coral_by_domain
from mtl_tl.engine import FitOptions, fit
from mtl_tl.models import SmallCNN, linear_head
from mtl_tl.tasks import Task
from mtl_tl.transfer import (
    CORAL_TASK,
    DOMAIN_TASK,
    DomainAdversarial,
    GradientReversal,
    coral_loss,
    dann_lam,
    dann_lr_schedule,
    domain_classifier,
    mmd_loss,
    train_coral,
    train_dann,
)

FIT = {"batch_size": 32, "device": "cpu", "progress": False}


@pytest.fixture(scope="module")
def shifted_digits():
    """Source digits and the *inverted* (1 - x) images of other digits as an unlabelled target."""
    train, _ = load_digits(8, seed=0)
    source = train.subset(range(128))
    target_x = 1.0 - train.x[128:224]
    return source, target_x


def make_trunk() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(1, width=8, depth=2)


# --- gradient reversal -------------------------------------------------------------------


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0, 2.5])
def test_gradient_reversal_is_identity_forward_and_minus_lam_backward(lam):
    torch.manual_seed(0)
    x = torch.randn(4, 3, requires_grad=True)
    upstream = torch.randn(4, 3)
    y = GradientReversal(lam)(x)
    assert torch.equal(y, x)
    y.backward(upstream)
    assert torch.equal(x.grad, -lam * upstream)
    if lam == 0.0:
        assert not x.grad.any()


def test_lam_scales_only_the_backward_pass():
    x = torch.randn(5, 2)
    assert torch.equal(GradientReversal(0.0)(x), GradientReversal(7.0)(x))


def test_dann_schedule():
    assert dann_lam(0.0) == 0.0
    assert dann_lam(1.0) == pytest.approx(0.9999092, abs=1e-7)
    assert dann_lam(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    values = [dann_lam(i / 100) for i in range(101)]
    assert all(a < b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("p", [-0.1, 1.01, float("nan")])
def test_dann_schedule_rejects_p_outside_the_unit_interval(p):
    with pytest.raises(ValueError, match="p must be"):
        dann_lam(p)


def test_gradient_reversal_rejects_bad_lam():
    with pytest.raises(ValueError, match="lam must be >= 0.0, got -1.0"):
        GradientReversal(-1.0)
    with pytest.raises(TypeError, match="lam must be a number"):
        GradientReversal(lam="big")
    assert repr(GradientReversal(lam=0.5)) == "GradientReversal(lam=0.5)"


def test_domain_adversarial_reverses_the_trunk_gradient_through_the_strategy():
    torch.manual_seed(0)
    trunk, x, y = nn.Linear(3, 4), torch.randn(8, 3), torch.randint(0, 2, (8,))
    head = domain_classifier(4, hidden=5)
    strategy = DomainAdversarial(head[0])
    strategy.set_progress(0.2)
    assert head[0].lam == dann_lam(0.2)

    logs = strategy.backward({"domain": nn.functional.cross_entropy(head(trunk(x)), y)}, list(trunk.parameters()))
    reversed_grad = trunk.weight.grad.clone()
    head_grad = head[1].weight.grad.clone()
    trunk.zero_grad()
    head.zero_grad()
    nn.functional.cross_entropy(head[1:](trunk(x)), y).backward()
    assert torch.allclose(reversed_grad, -dann_lam(0.2) * trunk.weight.grad, atol=1e-7)
    assert torch.equal(head_grad, head[1].weight.grad)  # the classifier itself is not reversed
    assert logs["grl_lam"] == dann_lam(0.2)


def test_engine_drives_the_schedule(shifted_digits):
    source, _ = shifted_digits
    trunk = make_trunk()
    head = domain_classifier(16, hidden=8)
    domain = TensorData(source.x, (source.y >= 5).long())
    fit(trunk, Task(DOMAIN_TASK, head, train=domain), strategy=DomainAdversarial(head[0]),
        epochs=2, steps_per_epoch=2, **FIT)
    # the last of 4 steps ran at progress 3/4
    assert head[0].lam == dann_lam(3 / 4)


def test_train_dann_runs_on_shifted_digits(shifted_digits):
    source, target_x = shifted_digits
    trunk = make_trunk()
    task = Task("digit", linear_head(16, 10), train=source)
    history = train_dann(trunk, task, target_x, epochs=2, steps_per_epoch=3, hidden=8, **FIT)
    frame = history.to_frame()
    assert set(frame["task"]) == {"digit", DOMAIN_TASK}
    assert len(frame.query("task == @DOMAIN_TASK and split == 'train'")) == 2
    assert frame["loss"].notna().all()
    grl = history.logs_frame().query("key == 'grl_lam'")["value"].tolist()
    assert len(grl) == 2 and 0.0 < grl[0] < grl[1] < 1.0


def test_dann_lr_schedule_is_the_papers_annealing():
    param = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.01)
    scheduler = dann_lr_schedule(100)(optimizer)
    rates = []
    for _ in range(101):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates[0] == pytest.approx(0.01)
    assert rates[50] == pytest.approx(0.01 / 6**0.75)  # p = 0.5
    assert rates[100] == pytest.approx(0.01 / 11**0.75)  # p = 1: about lr / 6
    assert all(a > b for a, b in zip(rates, rates[1:]))
    with pytest.raises(ValueError, match="total_steps must be >= 1, got 0"):
        dann_lr_schedule(0)
    with pytest.raises(TypeError, match="total_steps must be an int"):
        dann_lr_schedule(10.0)


def test_train_dann_budget_is_pretrains_and_its_rate_anneals(shifted_digits):
    source, target_x = shifted_digits  # 128 source images: 4 batches of 32
    task = Task("digit", linear_head(16, 10), train=source)
    history = train_dann(make_trunk(), task, target_x, epochs=2, hidden=8, **FIT)
    assert history.examples == 2 * 4 * (32 + 32)  # 4 steps an epoch, each a source and a mixed batch
    rates = [0.01 * (1 + 10 * k / 8) ** -0.75 for k in range(8)]
    lr = history.logs_frame().query("key == 'lr'")["value"].tolist()
    assert lr == pytest.approx([sum(rates[:4]) / 4, sum(rates[4:]) / 4])
    assert len(history.curve(DOMAIN_TASK, "train")) == 2  # the domain accuracy, per epoch
    assert history.logs_frame().query("key == 'weight/domain'")["value"].eq(1.0).all()
    history = train_dann(make_trunk(), task, target_x, epochs=1, steps_per_epoch=1, hidden=8, domain_weight=2.0, **FIT)
    assert history.logs_frame().query("key == 'weight/domain'")["value"].tolist() == [2.0]
    history = train_dann(make_trunk(), task, target_x, epochs=1, hidden=8, anneal=False, lr=0.05,
                         steps_per_epoch=3, scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, 100), **FIT)
    assert history.examples == 3 * 64 and history.logs_frame().query("key == 'lr'")["value"].tolist() == pytest.approx([0.05])


def test_train_dann_bad_input(shifted_digits):
    source, target_x = shifted_digits
    trunk = make_trunk()
    task = Task("digit", linear_head(16, 10), train=source)
    with pytest.raises(ValueError, match=r"target_x must have 4 dimensions, got shape \(96, 8, 8\)"):
        train_dann(trunk, task, target_x[:, 0], epochs=1)
    with pytest.raises(TypeError, match="target_x must be a floating-point tensor"):
        train_dann(trunk, task, target_x.long(), epochs=1)
    with pytest.raises(TypeError, match="target_x must have the source images' dtype torch.float32"):
        train_dann(trunk, task, target_x.double(), epochs=1)
    with pytest.raises(ValueError, match=r"shaped like the source's \(1, 8, 8\).*got \(1, 16, 16\)"):
        train_dann(trunk, task, torch.rand(4, 1, 16, 16), epochs=1)
    with pytest.raises(ValueError, match="target_x must hold at least 2"):
        train_dann(trunk, task, target_x[:1], epochs=1)
    with pytest.raises(TypeError, match="target_x must be a torch.Tensor"):
        train_dann(trunk, task, target_x.numpy(), epochs=1)
    with pytest.raises(ValueError, match="train_dann sets strategy itself"):
        train_dann(trunk, task, target_x, epochs=1, strategy=None)
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        train_dann(trunk, task, target_x, epochs=1, hidden=0)
    with pytest.raises(TypeError, match="trunk must be Module"):
        train_dann("cnn", task, target_x, epochs=1)
    with pytest.raises(ValueError, match="source_task is named 'domain'"):
        train_dann(trunk, Task(DOMAIN_TASK, linear_head(16, 10), train=source), target_x, epochs=1)
    with pytest.raises(ValueError, match="domain_weight must be >= 0.0, got -1.0"):
        train_dann(trunk, task, target_x, epochs=1, domain_weight=-1.0)
    with pytest.raises(TypeError, match="anneal must be bool"):
        train_dann(trunk, task, target_x, epochs=1, anneal=1)
    with pytest.raises(ValueError, match="sets the scheduler itself; pass anneal=False"):
        train_dann(trunk, task, target_x, epochs=1, scheduler=lambda opt: None)
    with pytest.raises(ValueError, match="steps_per_epoch must be >= 1, got 0"):
        train_dann(trunk, task, target_x, epochs=1, steps_per_epoch=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        train_dann(trunk, task, target_x, epochs=1, batch_size=3.5)
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        train_dann(trunk, task, target_x, epochs=0)


# --- CORAL and MMD -------------------------------------------------------------------------


def test_coral_is_zero_for_identical_features():
    f = torch.randn(20, 6)
    assert float(coral_loss(f, f.clone())) == 0.0


def test_coral_matches_a_hand_computed_value():
    # unbiased covariances: C_s = [[2, 0], [0, 0]], C_t = [[0, 0], [0, 2]];
    # ||C_s - C_t||_F^2 = 8 and 4 d^2 = 16
    source = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert float(coral_loss(source, target)) == pytest.approx(0.5, abs=1e-7)
    torch.manual_seed(0)
    a, b = torch.randn(7, 3), torch.randn(5, 3)
    expected = ((torch.cov(a.T) - torch.cov(b.T)) ** 2).sum() / (4 * 9)
    assert torch.allclose(coral_loss(a, b), expected, atol=1e-7)


def test_coral_is_positive_for_different_covariances_and_ignores_mean_shifts():
    torch.manual_seed(0)
    a, b = torch.randn(50, 4), 3.0 * torch.randn(50, 4)
    assert float(coral_loss(a, b)) > 0.1
    assert torch.allclose(coral_loss(a + 5.0, b - 2.0), coral_loss(a, b), rtol=1e-4)


def test_coral_bad_input():
    with pytest.raises(ValueError, match="target_features must have the source's width D=3"):
        coral_loss(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="source_features must hold at least 2"):
        coral_loss(torch.randn(1, 3), torch.randn(4, 3))
    with pytest.raises(ValueError, match="source_features must have 2 dimensions"):
        coral_loss(torch.randn(4, 3, 1), torch.randn(4, 3))


def test_coral_by_domain_guards_batches_with_one_domain():
    features = torch.randn(6, 3, requires_grad=True)
    zero = _coral_by_domain(features, torch.zeros(6, dtype=torch.long))
    assert zero.item() == 0.0 and zero.grad_fn is not None
    zero.backward()
    assert torch.equal(features.grad, torch.zeros(6, 3))
    domain = torch.tensor([0, 0, 0, 1, 1, 1])
    assert torch.equal(_coral_by_domain(features, domain), coral_loss(features[:3], features[3:]))


def test_mmd():
    torch.manual_seed(0)
    a = torch.randn(30, 2)
    assert float(mmd_loss(a, a.clone())) == pytest.approx(0.0, abs=1e-7)
    assert float(mmd_loss(a, a + 3.0)) > 0.5
    # one point each, sigma = 1: K = 1 on the diagonal, exp(-1/2) between them
    value = mmd_loss(torch.tensor([[0.0]]), torch.tensor([[1.0]]), bandwidth=1.0)
    assert float(value) == pytest.approx(2 - 2 * math.exp(-0.5), abs=1e-6)
    # the median heuristic: for these two points sigma^2 = 1 as well
    assert float(mmd_loss(torch.tensor([[0.0]]), torch.tensor([[1.0]]))) == pytest.approx(float(value))
    with pytest.raises(ValueError, match="bandwidth must be > 0.0, got 0.0"):
        mmd_loss(a, a, bandwidth=0.0)


def test_train_coral_runs_and_records_the_coral_task(shifted_digits):
    source, target_x = shifted_digits
    trunk = make_trunk()
    task = Task("digit", linear_head(16, 10), train=source)
    history = train_coral(trunk, task, target_x, lam=10.0, epochs=2, steps_per_epoch=3, **FIT)
    frame = history.to_frame()
    assert set(frame["task"]) == {"digit", CORAL_TASK}
    coral = history.curve(CORAL_TASK, split="train", key="loss")
    assert len(coral) == 2 and all(v >= 0.0 for v in coral)
    assert history.curve(CORAL_TASK, split="train") == pytest.approx([-v for v in coral], abs=1e-6)
    assert history.logs_frame().query("key == 'weight/coral'")["value"].eq(10.0).all()
    # by default an epoch is one pass over the 128 source images: 4 steps of a source and a mixed batch
    assert train_coral(make_trunk(), task, target_x, lam=1.0, epochs=1, **FIT).examples == 4 * 64


def test_train_coral_bad_input(shifted_digits):
    source, target_x = shifted_digits
    trunk = make_trunk()
    task = Task("digit", linear_head(16, 10), train=source)
    with pytest.raises(ValueError, match="lam must be >= 0.0, got -1.0"):
        train_coral(trunk, task, target_x, lam=-1.0, epochs=1)
    with pytest.raises(ValueError, match=r"target_x must have 4 dimensions"):
        train_coral(trunk, task, target_x.flatten(1), lam=1.0, epochs=1)
    loader_task = Task("digit", linear_head(16, 10), train=[(source.x, source.y)])
    with pytest.raises(TypeError, match="train_coral needs the source task's train data as a TensorData"):
        train_coral(trunk, loader_task, target_x, lam=1.0, epochs=1)
    with pytest.raises(ValueError, match="source_task is named 'coral'"):
        train_coral(trunk, Task(CORAL_TASK, linear_head(16, 10), train=source), target_x, lam=1.0, epochs=1)
    with pytest.raises(ValueError, match="train_coral sets strategy itself"):
        train_coral(trunk, task, target_x, lam=1.0, epochs=1, strategy=None)
    with pytest.raises(TypeError, match="source_task must be Task"):
        train_coral(trunk, "digit", target_x, lam=1.0, epochs=1)
    with pytest.raises(TypeError, match="trunk must be Module, got str"):  # from fit
        train_coral("cnn", task, target_x, lam=1.0, epochs=1, **FIT)


def test_transfer_re_exports_the_adaptation_names():
    for name in adaptation.__all__:
        assert name in transfer.__all__ and getattr(transfer, name) is getattr(adaptation, name)


def test_train_dann_passes_fit_options_to_the_engine(monkeypatch):
    seen = {}
    real_fit = adaptation.fit

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(adaptation, "fit", spy)
    torch.manual_seed(0)
    x = torch.rand(32, 1, 8, 8)
    trunk = SmallCNN(1, 4, 2)
    task = Task("digit", linear_head(trunk.out_features, 2), train=TensorData(x, torch.arange(32) % 2))
    history = transfer.train_dann(trunk, task, torch.rand(16, 1, 8, 8), epochs=1, batch_size=16,
                                  device="cpu", options=FitOptions(one_trunk_pass=True))
    assert seen["options"].one_trunk_pass is True and "domain" in {r["task"] for r in history.records}
