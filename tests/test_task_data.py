"""A task's data, checked before training (issue 17): classes, test data, batch order, means."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from mtl_tl.engine import evaluate, fit
from mtl_tl.models import linear_head
from mtl_tl.tasks import Task


class Folder(Dataset):
    """A stand-in for an ImageFolder: images, integer labels, class names; records reads."""

    def __init__(self, classes: list[str], n: int = 12, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.classes = classes
        self.x = torch.randn(n, 1, 4, 4, generator=g)
        self.y = torch.arange(n) % len(classes)
        self.read: list[int] = []

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        self.read.append(i)
        return self.x[i], int(self.y[i])


def trunk() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 8))
    net.out_features = 8
    return net


def test_head_width_is_checked_against_the_folder_classes():
    loader = DataLoader(Folder(["ants", "bees"]), batch_size=4)
    with pytest.raises(ValueError, match=r"2 classes \['ants', 'bees'\] but the head has 3 outputs"):
        Task("t", linear_head(8, 3), train=loader)
    Task("t", linear_head(8, 2), train=loader)  # the right width is accepted


def test_num_classes_is_checked_with_a_data_loader():
    loader = DataLoader(TensorDataset(torch.randn(8, 1, 4, 4), torch.arange(8) % 2), batch_size=4)
    with pytest.raises(ValueError, match="the head has 2 outputs but num_classes=3"):
        Task("t", linear_head(8, 2), train=loader, num_classes=3)


def test_train_and_test_classes_must_match_case_included():
    train = DataLoader(Folder(["ants", "bees"]), batch_size=4)
    val = DataLoader(Folder(["Bees", "ants"]), batch_size=4)
    with pytest.raises(ValueError, match=r"\['ants', 'bees'\] differ from the test data's \['Bees', 'ants'\]"):
        Task("t", linear_head(8, 2), train=train, test=val)


def test_a_dataset_as_test_data_fails_before_training():
    model = trunk()
    before = [p.detach().clone() for p in model.parameters()]
    task = Task("t", linear_head(8, 2), train=DataLoader(Folder(["a", "b"]), batch_size=4), test=Folder(["a", "b"]))
    with pytest.raises(TypeError, match=r"test data must be .*got Folder; wrap the dataset in one: DataLoader"):
        fit(model, task, epochs=1, device="cpu", progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters())), "nothing trained"


def batch_order(seed: int, loader: DataLoader) -> list[int]:
    loader.dataset.read.clear()
    fit(trunk(), Task("t", linear_head(8, 2), train=loader), epochs=2, lr=1e-3, seed=seed,
        device="cpu", progress=False)
    return list(loader.dataset.read)


def test_fit_seed_decides_a_shuffling_data_loaders_order():
    loader = DataLoader(Folder(["a", "b"], n=16), batch_size=4, shuffle=True)
    torch.manual_seed(123)
    first = batch_order(0, loader)
    torch.manual_seed(456)  # the global seed no longer decides the order
    assert batch_order(0, loader) == first
    assert batch_order(1, loader) != first
    assert sorted(first) == sorted(list(range(16)) * 2)  # two epochs, every item once each


def test_a_generator_of_your_own_is_kept():
    dataset = Folder(["a", "b"], n=16)
    orders = []
    for seed in (0, 1):
        loader = DataLoader(dataset, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(7))
        orders.append(batch_order(seed, loader))
    assert orders[0] == orders[1], "fit(seed=) must not replace a generator the user chose"


def test_training_means_weight_each_batch_by_its_size():
    # 5 examples in batches of 4 and 1: an unweighted mean of the two batches' accuracies
    # would count the single example as much as the other four.
    x = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 0, 1, 1])
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    model, head = trunk(), linear_head(8, 2)
    task = Task("t", head, train=loader)
    history = fit(model, task, epochs=1, lr=1e-12, optimizer="sgd", device="cpu", progress=False)
    # With a learning rate of 1e-12 the weights do not move: the epoch's mean over
    # examples equals the accuracy and loss of the whole set at those weights.
    whole = evaluate(model, task, split="train")["t"]
    record = history.to_frame().iloc[0]
    assert record["metric"] == pytest.approx(whole["metric"], abs=1e-6)
    assert record["loss"] == pytest.approx(whole["loss"], rel=1e-5)
