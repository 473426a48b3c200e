import pytest
import torch

from mtl_tl.data import TensorData, TensorLoader, class_split, k_per_class, load_digits, train_test_split


@pytest.fixture(scope="module")
def digits():
    return load_digits(16, seed=0)


def test_digits_shapes_and_ranges(digits):
    train, test = digits
    assert train.x.shape[1:] == (1, 16, 16) and train.x.dtype == torch.float32
    assert len(train) + len(test) == 1797
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) <= 1.0
    assert train.y.dtype == torch.long and set(train.y.unique().tolist()) == set(range(10))
    assert load_digits(8)[0].x.shape[-1] == 8 and load_digits(28)[0].x.shape[-1] == 28


def test_digits_split_is_seeded_and_stratified(digits):
    again = load_digits(16, seed=0)[0]
    other = load_digits(16, seed=1)[0]
    assert torch.equal(digits[0].x, again.x)
    assert not torch.equal(digits[0].y, other.y)
    counts = torch.bincount(digits[1].y)
    assert counts.min() >= 40 and counts.max() <= 50  # about a quarter of ~180 per class


def test_digits_bad_size():
    with pytest.raises(ValueError, match="size=12.*8, 16, 28"):
        load_digits(12)


def test_class_split_relabels(digits):
    target = class_split(digits[0], [5, 6, 7, 8, 9])
    assert set(target.y.tolist()) == {0, 1, 2, 3, 4}
    raw = class_split(digits[0], [5, 6], relabel=False)
    assert set(raw.y.tolist()) == {5, 6}
    with pytest.raises(ValueError, match="do not occur"):
        class_split(digits[0], [11])
    with pytest.raises(ValueError, match="duplicates"):
        class_split(digits[0], [1, 1])


def test_k_per_class_is_stratified_and_seeded(digits):
    sub = k_per_class(digits[0], 5, seed=3)
    assert torch.bincount(sub.y).tolist() == [5] * 10
    assert torch.equal(sub.x, k_per_class(digits[0], 5, seed=3).x)
    assert not torch.equal(sub.x, k_per_class(digits[0], 5, seed=4).x)


def test_k_per_class_too_large(digits):
    with pytest.raises(ValueError, match="k=500 is larger than the examples available"):
        k_per_class(digits[0], 500)


def test_single_class_data_rejected(digits):
    only_zeros = class_split(digits[0], [0, 1], relabel=False)
    only_zeros = only_zeros.subset(only_zeros.y == 0)
    with pytest.raises(ValueError, match="at least 2 classes"):
        k_per_class(only_zeros, 1)


def test_tensor_data_validation():
    assert TensorData(torch.zeros(3, 5), torch.zeros(3, dtype=torch.long)).shape == (5,)  # cached features
    with pytest.raises(ValueError, match="2 or 4 dimensions"):
        TensorData(torch.zeros(3, 8, 8), torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="floating-point"):
        TensorData(torch.zeros(3, 1, 8, 8, dtype=torch.long), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="at least 1"):
        TensorData(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match="must match"):
        TensorData(torch.zeros(3, 1, 8, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(KeyError, match="holds: a"):
        TensorData(torch.zeros(3, 1, 8, 8), {"a": torch.zeros(3)}).label("b")


def test_loader_covers_each_example_once_per_epoch():
    data = TensorData(torch.arange(10.0).view(10, 1, 1, 1), torch.arange(10))
    loader = TensorLoader(data, batch_size=4, seed=0)
    assert len(loader) == 3
    first = torch.cat([y for _, y in loader])
    second = torch.cat([y for _, y in loader])
    assert sorted(first.tolist()) == list(range(10)) == sorted(second.tolist())
    assert not torch.equal(first, second)  # a fresh permutation each epoch
    again = torch.cat([y for _, y in TensorLoader(data, batch_size=4, seed=0)])
    assert torch.equal(first, again)


def test_loader_dict_labels_and_drop_last():
    data = TensorData(torch.rand(10, 1, 2, 2), {"a": torch.arange(10), "b": torch.rand(10)})
    batches = list(TensorLoader(data, batch_size=4, drop_last=True, shuffle=False))
    assert len(batches) == 2 and set(batches[0][1]) == {"a", "b"}
    assert batches[0][1]["a"].tolist() == [0, 1, 2, 3]


def test_loader_shards_like_distributed_sampler():
    data = TensorData(torch.arange(8.0).view(8, 1, 1, 1), torch.arange(8))
    whole = torch.cat([y for _, y in TensorLoader(data, batch_size=4, seed=5)])
    ranks = [torch.cat([y for _, y in TensorLoader(data, batch_size=2, seed=5, rank=r, world_size=2)])
             for r in range(2)]
    assert sorted(torch.cat(ranks).tolist()) == list(range(8))
    # Global batch b of one process = the union of batch b of every rank.
    assert set(whole[:4].tolist()) == set(ranks[0][:2].tolist()) | set(ranks[1][:2].tolist())


def test_loader_bad_arguments():
    data = TensorData(torch.rand(4, 1, 2, 2), torch.arange(4))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        TensorLoader(data, batch_size=0)
    with pytest.raises(TypeError, match="data must be TensorData"):
        TensorLoader((data.x, data.y))
    with pytest.raises(ValueError, match="rank must be <= 1"):
        TensorLoader(data, rank=2, world_size=2)


def test_train_test_split_fraction():
    data = TensorData(torch.rand(40, 1, 2, 2), torch.arange(40) % 2)
    train, test = train_test_split(data, 0.25)
    assert (len(train), len(test)) == (30, 10)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        train_test_split(data, 1.0)
