"""Pretraining, the four fine-tuning recipes and the article's eq. 3.1 (mtl_tl.transfer)."""

from __future__ import annotations

import copy

import pytest
import torch

import mtl_tl.engine as engine
from mtl_tl.data import class_split, load_digits
from mtl_tl.models import SmallCNN, blocks, count_parameters, linear_head
from mtl_tl.tasks import Task
from mtl_tl.transfer import RECIPES, fine_tune, pretrain, train_joint_objective

FIT = {"batch_size": 32, "device": "cpu", "progress": False}


@pytest.fixture(scope="module")
def digits():
    train, test = load_digits(8, seed=0)
    source = class_split(train, [0, 1, 2, 3, 4]).subset(range(96))
    target = class_split(train, [5, 6, 7, 8, 9]).subset(range(64))
    target_test = class_split(test, [5, 6, 7, 8, 9]).subset(range(64))
    return source, target, target_test


def make_trunk(seed: int = 0, norm: str = "batch") -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(1, width=8, depth=3, norm=norm)


def state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer, copied."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict[str, torch.Tensor], module: torch.nn.Module, prefix: str = "") -> set[str]:
    after = module.state_dict()
    return {k for k in before if k.startswith(prefix) and not torch.equal(before[k], after[k])}


def target_task(digits, seed: int = 1) -> Task:
    _, target, target_test = digits
    torch.manual_seed(seed)
    return Task("target", linear_head(32, 5), train=target, test=target_test)


def test_recipes_are_the_four():
    assert RECIPES == ["feature_extraction", "full", "partial", "discriminative"]


def test_pretrain_trains_the_source_task(digits):
    source, _, _ = digits
    trunk = make_trunk()
    task = Task("source", linear_head(32, 5), train=source)
    before = state(trunk)
    history = pretrain(trunk, task, epochs=1, steps_per_epoch=3, **FIT)
    assert [r["task"] for r in history.records] == ["source"]
    assert changed(before, trunk)
    with pytest.raises(TypeError, match="source_task must be Task"):
        pretrain(trunk, [task], epochs=1)
    with pytest.raises(TypeError, match="trunk must be Module, got str"):  # from fit
        pretrain("cnn", task, epochs=1)


def test_feature_extraction_leaves_trunk_and_batchnorm_bit_identical(digits):
    trunk = make_trunk()
    task = target_task(digits)
    trunk_before, head_before = state(trunk), state(task.head)
    fine_tune(trunk, task, recipe="feature_extraction", epochs=2, **FIT)
    assert changed(trunk_before, trunk) == set()  # parameters AND running statistics
    assert any("running_mean" in k for k in trunk_before)  # the check above covered buffers
    assert changed(head_before, task.head) == {"weight", "bias"}
    # Flags are left as the recipe set them (documented), so the call is inspectable.
    assert count_parameters(trunk, trainable_only=True) == 0
    assert all(p.requires_grad for p in task.head.parameters())


def test_partial_changes_only_the_last_blocks_and_head(digits):
    trunk = make_trunk()
    task = target_task(digits)
    before, head_before = state(trunk), state(task.head)
    fine_tune(trunk, task, recipe="partial", n_blocks=1, epochs=1, **FIT)
    moved = changed(before, trunk)
    assert {k.split(".")[1] for k in moved} == {"block3"}
    # every parameter and buffer of block3 moved (running stats and the BN counter included)
    assert moved == {k for k in before if k.startswith("features.block3.")}
    assert changed(head_before, task.head) == {"weight", "bias"}
    assert [n for n, b in blocks(trunk).items() if all(p.requires_grad for p in b.parameters())] == ["block3"]


def test_partial_with_two_blocks(digits):
    trunk = make_trunk()
    before = state(trunk)
    fine_tune(trunk, target_task(digits), recipe="partial", n_blocks=2, epochs=1, steps_per_epoch=1, **FIT)
    assert {k.split(".")[1] for k in changed(before, trunk)} == {"block2", "block3"}


def test_full_changes_every_block_and_resets_earlier_freezing(digits):
    trunk = make_trunk()
    task = target_task(digits)
    fine_tune(trunk, task, recipe="feature_extraction", epochs=1, steps_per_epoch=1, **FIT)
    before = state(trunk)
    fine_tune(trunk, task, recipe="full", epochs=1, **FIT)
    params = {k for k, _ in trunk.named_parameters()}
    assert params <= changed(before, trunk)
    assert count_parameters(trunk, trainable_only=True) == count_parameters(trunk)


@pytest.mark.parametrize("block_decay", [1.0, 0.5])
def test_discriminative_passes_exact_learning_rates(digits, monkeypatch, block_decay):
    made = []
    real = engine.make_optimizer

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(engine, "make_optimizer", spy)
    trunk = make_trunk()
    task = target_task(digits)
    before = state(trunk)
    fine_tune(trunk, task, recipe="discriminative", lr=1e-2, lr_factor=0.1, block_decay=block_decay,
              epochs=1, steps_per_epoch=2, **FIT)
    (opt,) = made
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"head": 1e-2, "trunk.block3": 1e-3, "trunk.block2": 1e-3 * block_decay,
                   "trunk.block1": 1e-3 * block_decay**2}
    ids = {g["name"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert ids["head"] == {id(p) for p in task.head.parameters()}
    for name, block in blocks(trunk).items():
        assert ids[f"trunk.{name}"] == {id(p) for p in block.parameters()}
    assert {k for k, _ in trunk.named_parameters()} <= changed(before, trunk)


def test_discriminative_moves_the_trunk_less_than_full(digits):
    def trunk_shift(recipe):
        trunk = make_trunk()
        before = state(trunk)
        fine_tune(trunk, target_task(digits), recipe=recipe, optimizer="sgd", lr=0.05,
                  lr_factor=0.01, epochs=1, steps_per_epoch=1, **FIT)
        return sum(float((trunk.state_dict()[k] - before[k]).abs().sum())
                   for k, _ in trunk.named_parameters())

    # One SGD step from the same start and batch: the trunk's update is exactly 100x smaller.
    assert trunk_shift("discriminative") == pytest.approx(trunk_shift("full") * 0.01, rel=1e-4)


def test_fine_tune_bad_input(digits):
    trunk = make_trunk()
    task = target_task(digits)
    with pytest.raises(ValueError, match="recipe='freeze'.*'feature_extraction', 'full', 'partial', 'discriminative'"):
        fine_tune(trunk, task, recipe="freeze", epochs=1)
    with pytest.raises(ValueError, match=r"n_blocks=4 is larger than the trunk's 3 blocks \(block1, block2, block3\)"):
        fine_tune(trunk, task, recipe="partial", n_blocks=4, epochs=1)
    with pytest.raises(ValueError, match="n_blocks must be >= 1, got 0"):
        fine_tune(trunk, task, recipe="partial", n_blocks=0, epochs=1)
    with pytest.raises(ValueError, match="lr_factor must be <= 1.0, got 2.0"):
        fine_tune(trunk, task, recipe="discriminative", lr_factor=2.0, epochs=1)
    with pytest.raises(ValueError, match="fine_tune sets param_groups itself"):
        fine_tune(trunk, task, recipe="full", epochs=1, param_groups=[])
    with pytest.raises(TypeError, match="task must be Task"):
        fine_tune(trunk, "target", recipe="full", epochs=1)
    with pytest.raises(TypeError, match="trunk must be Module"):
        fine_tune("cnn", task, recipe="full", epochs=1)
    with pytest.raises(TypeError, match="lr must be a number"):
        fine_tune(trunk, task, recipe="discriminative", lr="0.1", epochs=1)
    # a rejected call changed no flag
    assert count_parameters(trunk, trainable_only=True) == count_parameters(trunk)


def test_joint_objective_with_lam_zero_equals_source_only_training(digits):
    source, target, _ = digits

    def heads():
        torch.manual_seed(5)
        return linear_head(32, 5), linear_head(32, 5)

    trunk_a = make_trunk(norm="batch")
    trunk_b = copy.deepcopy(trunk_a)
    head_a, _ = heads()
    head_b, head_t = heads()
    fit_args = {"epochs": 2, "seed": 3, **FIT}
    engine.fit(trunk_a, Task("source", head_a, train=source), **fit_args)
    history = train_joint_objective(trunk_b, Task("source", head_b, train=source),
                                    Task("target", head_t, train=target), lam=0.0, **fit_args)
    for (name, a), b in zip(trunk_a.named_parameters(), trunk_b.parameters()):
        assert torch.equal(a, b), name
    for a, b in zip(head_a.parameters(), head_b.parameters()):
        assert torch.equal(a, b)
    # Buffers differ, as documented: target batches also pass through the trunk in train
    # mode, so batch-norm running statistics (not the parameters) see the target data.
    buffers_a, buffers_b = dict(trunk_a.named_buffers()), dict(trunk_b.named_buffers())
    assert not torch.equal(buffers_a["features.block1.1.running_mean"], buffers_b["features.block1.1.running_mean"])
    assert {r["task"] for r in history.records} == {"source", "target"}
    assert history.logs_frame().query("key == 'weight/target'")["value"].eq(0.0).all()


def test_joint_objective_with_positive_lam_differs_from_source_only(digits):
    source, target, _ = digits
    trunk_a = make_trunk()
    trunk_b = copy.deepcopy(trunk_a)
    torch.manual_seed(5)
    head = linear_head(32, 5)
    head_b, head_t = copy.deepcopy(head), linear_head(32, 5)
    engine.fit(trunk_a, Task("source", head, train=source), epochs=1, **FIT)
    train_joint_objective(trunk_b, Task("source", head_b, train=source), Task("target", head_t, train=target),
                          lam=0.5, epochs=1, **FIT)
    assert not all(torch.equal(a, b) for a, b in zip(trunk_a.parameters(), trunk_b.parameters()))


def test_joint_objective_bad_input(digits):
    source, target, _ = digits
    trunk = make_trunk()
    s, t = Task("source", linear_head(32, 5), train=source), Task("target", linear_head(32, 5), train=target)
    with pytest.raises(ValueError, match="lam must be >= 0.0, got -0.5"):
        train_joint_objective(trunk, s, t, lam=-0.5, epochs=1)
    with pytest.raises(TypeError, match="lam must be a number"):
        train_joint_objective(trunk, s, t, lam="1", epochs=1)
    with pytest.raises(ValueError, match="train_joint_objective sets strategy itself"):
        train_joint_objective(trunk, s, t, lam=1.0, epochs=1, strategy=engine.LossStrategy())
