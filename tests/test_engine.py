import pytest
import torch
from torch import nn

from mtl_tl.config import seed_everything
from mtl_tl.data import TensorData, TensorLoader, class_split, load_digits
from mtl_tl.engine import (
    FitOptions,
    History,
    LossStrategy,
    evaluate,
    extract_features,
    fit,
    load_checkpoint,
    predict,
    save_checkpoint,
    train_step,
)
from mtl_tl.models import MultiTaskNet, SmallCNN, linear_head
from mtl_tl.streams import BatchStream, group_by_data
from mtl_tl.tasks import Task


@pytest.fixture(scope="module")
def digits8():
    return load_digits(8, seed=0)


def _task(train, test, name="digit", classes=10, width=8):
    seed_everything(0)
    trunk = SmallCNN(1, width, 2)
    return trunk, Task(name, linear_head(trunk.out_features, classes), train=train, test=test)


def test_fit_learns_digits(digits8):
    trunk, task = _task(*digits8)
    history = fit(trunk, task, epochs=4, lr=3e-3, device="cpu")
    assert history.last("digit") > 0.85  # chance is 0.10
    assert history.curve("digit", "train", "loss")[0] > history.curve("digit", "train", "loss")[-1]
    frame = history.to_frame()
    assert set(frame["split"]) == {"train", "test"} and len(frame) == 8
    assert history.examples == 4 * len(digits8[0])


def test_same_seed_same_metrics_on_cpu(digits8):
    results = []
    for _ in range(2):
        trunk, task = _task(*digits8)
        results.append(fit(trunk, task, epochs=2, device="cpu", seed=1).to_frame())
    assert results[0].equals(results[1])
    trunk, task = _task(*digits8)
    other = fit(trunk, task, epochs=2, device="cpu", seed=2).to_frame()
    assert not other["loss"].equals(results[0]["loss"])


def test_two_tasks_share_one_stream(digits8):
    train, test = digits8
    multi = lambda d: TensorData(d.x, {"digit": d.y, "odd": d.y % 2})  # noqa: E731
    seed_everything(0)
    trunk = SmallCNN(1, 8, 2)
    tasks = [Task("digit", linear_head(16, 10), train=multi(train), test=multi(test)),
             Task("odd", linear_head(16, 2), train=None, test=None)]
    tasks[1].train, tasks[1].test = tasks[0].train, tasks[0].test
    history = fit(trunk, tasks, epochs=3, lr=3e-3, device="cpu")
    assert history.last("odd") > 0.8 and history.last("digit") > 0.7
    # one stream: each step sees each image once per task
    assert history.examples == 3 * 2 * len(train)
    logs = history.logs_frame()
    assert set(logs["key"]) == {"weight/digit", "weight/odd"}


def test_fixed_weight_zero_leaves_head_untouched(digits8):
    train, test = digits8
    seed_everything(0)
    trunk = SmallCNN(1, 8, 2)
    a = Task("a", linear_head(16, 10), train=train)
    b = Task("b", linear_head(16, 10), train=class_split(train, list(range(10))))
    before = b.head.weight.detach().clone()
    fit(trunk, [a, b], epochs=1, strategy=LossStrategy({"b": 0.0}), device="cpu")
    assert torch.equal(before, b.head.weight)
    with pytest.raises(ValueError, match="unknown task"):
        fit(trunk, [a, b], epochs=1, strategy=LossStrategy({"c": 1.0}), device="cpu")


def test_evaluate_and_predict_agree(digits8):
    trunk, task = _task(*digits8)
    fit(trunk, task, epochs=2, device="cpu")
    result = evaluate(trunk, task)["digit"]
    logits = predict(trunk, task.head, digits8[1].x)
    assert logits.shape == (len(digits8[1]), 10)
    assert result["metric"] == pytest.approx(float((logits.argmax(1) == digits8[1].y).float().mean()), abs=1e-6)
    assert extract_features(trunk, digits8[1].x[:7]).shape == (7, 16)


def test_checkpoint_round_trip_and_wrong_keys(tmp_path, digits8):
    trunk, task = _task(*digits8)
    fit(trunk, task, epochs=1, device="cpu", options=FitOptions(checkpoint=tmp_path / "ckpt.pt"))
    expected = predict(trunk, task.head, digits8[1].x)
    fresh_trunk, fresh_task = _task(*digits8)
    fresh_trunk.apply(lambda m: m.reset_parameters() if hasattr(m, "reset_parameters") else None)
    net = MultiTaskNet(fresh_trunk, {"digit": fresh_task.head})
    meta = load_checkpoint(tmp_path / "ckpt.pt", net)
    assert meta["tasks"] == ["digit"]
    assert torch.equal(predict(fresh_trunk, fresh_task.head, digits8[1].x), expected)
    other = MultiTaskNet(SmallCNN(1, 8, 3), {"digit": linear_head(32, 10)})
    with pytest.raises(ValueError, match="does not fit this model: missing keys"):
        load_checkpoint(tmp_path / "ckpt.pt", other)
    wider = MultiTaskNet(SmallCNN(1, 8, 2), {"digit": linear_head(16, 5)})
    with pytest.raises(ValueError, match="other shapes"):
        load_checkpoint(tmp_path / "ckpt.pt", wider)
    save_checkpoint(tmp_path / "x.pt", other)
    with pytest.raises(ValueError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt", other)


def test_frozen_batchnorm_keeps_statistics(digits8):
    trunk, task = _task(*digits8)
    for p in trunk.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in trunk.state_dict().items()}
    fit(trunk, task, epochs=1, device="cpu")
    assert all(torch.equal(before[k], v) for k, v in trunk.state_dict().items())


def test_fit_bad_input(digits8):
    train, test = digits8
    trunk, task = _task(train, test)
    with pytest.raises(ValueError, match="duplicate task names"):
        fit(trunk, [task, task], epochs=1)
    with pytest.raises(ValueError, match="tasks is empty"):
        fit(trunk, [], epochs=1)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit(trunk, task, epochs=0)
    with pytest.raises(ValueError, match="no head"):
        Task("x", None, train=train)
    with pytest.raises(ValueError, match="head has only 5 outputs"):
        Task("x", linear_head(16, 5), train=train)
    with pytest.raises(ValueError, match="head has 10 outputs but num_classes=4"):
        Task("x", linear_head(16, 10), train=train, num_classes=4)
    with pytest.raises(ValueError, match="single class"):
        Task("x", linear_head(16, 10), train=train.subset(train.y == 3))
    with pytest.raises(ValueError, match="loss='hinge'.*'cross_entropy', 'mse'"):
        Task("x", linear_head(16, 10), train=train, loss="hinge")
    with pytest.raises(TypeError, match="int64 class labels"):
        Task("x", linear_head(16, 10), train=TensorData(train.x, train.y.float()))
    with pytest.raises(ValueError, match="no train data"):
        fit(trunk, Task("x", linear_head(16, 10)), epochs=1)
    with pytest.raises(ValueError, match=r"FitOptions\(amp=True\) needs a CUDA device"):
        fit(trunk, task, epochs=1, options=FitOptions(amp=True), device="cpu")
    with pytest.raises(TypeError, match="options must be FitOptions"):
        fit(trunk, task, epochs=1, options={"amp": True})
    with pytest.raises(ValueError, match="optimizer='rmsprop'"):
        fit(trunk, task, epochs=1, optimizer="rmsprop")
    with pytest.raises(TypeError, match="strategy must be LossStrategy"):
        fit(trunk, task, epochs=1, strategy="equal")
    with pytest.raises(TypeError, match="trunk must be Module"):
        fit("a trunk", task, epochs=1, device="cpu")
    with pytest.raises(TypeError, match="checkpoint must be str or Path"):
        FitOptions(checkpoint=3)


def test_tasks_data_checked_once_at_the_door(digits8):
    train, _ = digits8
    trunk, task = _task(train, None)
    task.train = 5  # assigned after construction: fit's door still sees it
    with pytest.raises(TypeError, match="task 'digit': train data must be a TensorData or an iterable"):
        fit(trunk, task, epochs=1, device="cpu")
    task.train = []
    with pytest.raises(ValueError, match="task 'digit': the train data yields no batch"):
        fit(trunk, task, epochs=1, device="cpu")
    task.train, task.test = train, 5
    with pytest.raises(TypeError, match="task 'digit': test data must be"):
        fit(trunk, task, epochs=1, device="cpu")


def test_train_step_is_the_step_fit_takes(digits8):
    train, _ = digits8
    batch = next(iter(TensorLoader(train, 64, seed=0)))  # fit's first batch of its only stream
    trunk, task = _task(train, None)
    fit(trunk, task, epochs=1, steps_per_epoch=1, lr=0.1, optimizer="sgd", clip_grad_norm=0.5, device="cpu")
    by_hand, task_by_hand = _task(train, None)
    net = MultiTaskNet(by_hand, {"digit": task_by_hand.head})
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    losses, metrics, logs = train_step(net, [(*batch, [task_by_hand])], optimizer, LossStrategy(),
                                       list(by_hand.parameters()), clip_grad_norm=0.5)
    assert set(losses) == set(metrics) == {"digit"} and logs == {"weight/digit": 1.0}
    for mine, theirs in zip(net.parameters(), list(trunk.parameters()) + list(task.head.parameters())):
        assert torch.equal(mine, theirs)


def test_fit_accepts_a_dataloader(digits8):
    from torch.utils.data import DataLoader, TensorDataset

    train, test = digits8
    seed_everything(0)
    trunk = SmallCNN(1, 8, 2)
    loader = DataLoader(TensorDataset(train.x, train.y), batch_size=64, shuffle=True)
    task = Task("digit", linear_head(16, 10), train=loader, test=test)
    history = fit(trunk, task, epochs=2, lr=3e-3, device="cpu")
    assert history.last("digit") > 0.6


def test_history_last_unknown_task():
    with pytest.raises(KeyError, match="no test record"):
        History().last("x")


def test_evaluate_every_and_cached_features(digits8):
    trunk, task = _task(*digits8)
    history = fit(trunk, task, epochs=3, evaluate_every=3, device="cpu")
    assert [r["epoch"] for r in history.records if r["split"] == "test"] == [3]
    # A head trained on cached trunk features: the trunk is the identity, data are (N, D).
    train = TensorData(extract_features(trunk, digits8[0].x), digits8[0].y)
    test = TensorData(extract_features(trunk, digits8[1].x), digits8[1].y)
    head_task = Task("cached", linear_head(16, 10), train=train, test=test)
    fit(nn.Identity(), head_task, epochs=10, lr=1e-2, device="cpu")
    assert evaluate(nn.Identity(), head_task)["cached"]["metric"] > 0.5


def _two_streams(digits8, norm: str):
    """Two tasks with different data objects (two streams): digits, and the same digits inverted."""
    train, test = digits8
    inverted = TensorData(1.0 - train.x, train.y % 2)
    seed_everything(0)
    trunk = SmallCNN(1, 8, 2, norm=norm)
    return trunk, [Task("digit", linear_head(16, 10), train=train, test=test),
                   Task("odd_inverted", linear_head(16, 2), train=inverted)]


def test_one_trunk_pass_is_the_same_training_without_batch_norm(digits8):
    frames = []
    for one_pass in (False, True):
        trunk, tasks = _two_streams(digits8, norm="none")
        frames.append(fit(trunk, tasks, epochs=2, device="cpu", options=FitOptions(one_trunk_pass=one_pass)).to_frame())
    # The concatenated pass computes the same functions, so only float rounding may differ.
    assert frames[0][["epoch", "split", "task"]].equals(frames[1][["epoch", "split", "task"]])
    assert torch.allclose(torch.tensor(frames[0]["loss"].values), torch.tensor(frames[1]["loss"].values), atol=1e-4)


def test_one_trunk_pass_normalises_the_streams_together(digits8):
    running = {}
    for one_pass in (False, True):
        trunk, tasks = _two_streams(digits8, norm="batch")
        conv = trunk.features.block1[0]
        with torch.no_grad():  # the first batch of each stream, as fit draws them (seed + stream)
            a, b = (conv(next(iter(TensorLoader(t.train, 64, seed=i)))[0]) for i, t in enumerate(tasks))
        fit(trunk, tasks, epochs=1, steps_per_epoch=1, device="cpu", options=FitOptions(one_trunk_pass=one_pass))
        running[one_pass] = trunk.features.block1[1].running_mean
    mean = lambda h: h.mean(dim=(0, 2, 3))  # noqa: E731
    # BatchNorm's running mean starts at 0 and moves by momentum 0.1 per forward pass.
    assert torch.allclose(running[False], 0.9 * 0.1 * mean(a) + 0.1 * mean(b), atol=1e-5)
    assert torch.allclose(running[True], 0.1 * mean(torch.cat([a, b])), atol=1e-5)


def test_one_trunk_pass_needs_one_input_shape(digits8):
    train, _ = digits8
    seed_everything(0)
    trunk = SmallCNN(1, 8, 2)
    small = load_digits(16, seed=0)[0]
    tasks = [Task("a", linear_head(16, 10), train=train), Task("b", linear_head(16, 10), train=small)]
    with pytest.raises(ValueError, match=r"needs every task's inputs in the same shape"):
        fit(trunk, tasks, epochs=1, device="cpu", options=FitOptions(one_trunk_pass=True))
    with pytest.raises(TypeError, match="one_trunk_pass must be bool"):
        FitOptions(one_trunk_pass="yes")


def test_a_shorter_stream_starts_a_new_pass():
    data = TensorData(torch.arange(6.0).view(6, 1, 1, 1), torch.arange(6))
    a, b = Task("a", linear_head(1, 6), train=data), Task("b", linear_head(1, 6), train=data)
    (shared_data, tasks), = group_by_data([a, b], "train")
    assert shared_data is data and tasks == [a, b]
    stream = BatchStream(data, tasks, batch_size=4, seed=0, device=torch.device("cpu"))
    assert stream.steps == 2
    labels = [stream.next()[1] for _ in range(3)]
    assert sorted(torch.cat(labels[:2]).tolist()) == list(range(6)) and len(labels[2]) == 4


def _lr_log(history):
    return history.logs_frame().query("key == 'lr'")["value"].tolist()


def test_scheduler_stepped_per_step(digits8):
    # 2 epochs of 5 steps; the rate halves every step, so step k uses 0.01 * 0.5**k.
    trunk, task = _task(*digits8)
    seen = []
    factory = lambda opt: seen.append(opt) or torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 0.5**k)  # noqa: E731
    history = fit(trunk, task, epochs=2, steps_per_epoch=5, lr=0.01, device="cpu", scheduler=factory)
    optimizer = seen[0]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5**10)  # 10 steps taken
    per_epoch = [sum(0.01 * 0.5**k for k in range(e * 5, e * 5 + 5)) / 5 for e in (0, 1)]
    assert _lr_log(history) == pytest.approx(per_epoch)  # the mean rate each epoch's steps used


def test_scheduler_stepped_per_epoch(digits8):
    trunk, task = _task(*digits8)
    step_lr = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)  # noqa: E731
    history = fit(trunk, task, epochs=3, steps_per_epoch=4, lr=0.01, device="cpu",
                  scheduler=step_lr, scheduler_step="epoch")
    assert _lr_log(history) == pytest.approx([0.01, 0.001, 0.0001])
    plateau = lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)  # noqa: E731
    trunk, task = _task(*digits8)
    history = fit(trunk, task, epochs=2, steps_per_epoch=2, lr=0.01, device="cpu",
                  scheduler=plateau, scheduler_step="epoch")
    assert len(_lr_log(history)) == 2 and _lr_log(history)[0] == pytest.approx(0.01)


def test_no_scheduler_logs_no_rate(digits8):
    trunk, task = _task(*digits8)
    assert _lr_log(fit(trunk, task, epochs=1, steps_per_epoch=2, device="cpu")) == []


def test_scheduler_bad_input(digits8):
    trunk, task = _task(*digits8)
    with pytest.raises(TypeError, match="scheduler must be a callable"):
        fit(trunk, task, epochs=1, device="cpu", scheduler="cosine")
    with pytest.raises(TypeError, match="must return a learning-rate scheduler with a step"):
        fit(trunk, task, epochs=1, device="cpu", scheduler=lambda opt: 0.5)
    with pytest.raises(ValueError, match="scheduler_step='batch' is not accepted; choose one of: 'step', 'epoch'"):
        fit(trunk, task, epochs=1, device="cpu", scheduler_step="batch")
    other = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="scheduler of another optimizer"):
        fit(trunk, task, epochs=1, device="cpu", scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(other, 1))
    with pytest.raises(ValueError, match="ReduceLROnPlateau watches an epoch's loss"):
        fit(trunk, task, epochs=1, device="cpu", scheduler=torch.optim.lr_scheduler.ReduceLROnPlateau)


def test_a_scheduler_reaches_pretrain_and_fine_tune_through_fit_kwargs(digits8):
    from mtl_tl.transfer import fine_tune, pretrain

    halve = lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # noqa: E731
    trunk, task = _task(*digits8)
    history = pretrain(trunk, task, epochs=2, steps_per_epoch=2, lr=0.01, device="cpu",
                       scheduler=halve, scheduler_step="epoch")
    assert _lr_log(history) == pytest.approx([0.01, 0.005])
    history = fine_tune(trunk, task, recipe="discriminative", lr_factor=0.1, epochs=1, steps_per_epoch=3,
                        lr=0.01, device="cpu", scheduler=halve)
    assert _lr_log(history) == pytest.approx([(0.01 + 0.005 + 0.0025) / 3])  # the head's group, per step
