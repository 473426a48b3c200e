"""Tests of mtl_tl.plots: every figure draws, is labelled, and rejects bad input."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mtl_tl import plots  # noqa: E402
from mtl_tl.engine import History  # noqa: E402
from mtl_tl.experiments import grid, summarize  # noqa: E402


def _labelled(fig: Figure) -> plt.Axes:
    """The main Axes of ``fig``, after checking its title and axis labels."""
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title().strip()
    assert ax.get_xlabel().strip() and ax.get_ylabel().strip()
    return ax


def _legend_texts(ax: plt.Axes) -> list[str]:
    legend = ax.get_legend()
    assert legend is not None
    return [t.get_text() for t in legend.get_texts()]


@pytest.fixture
def history() -> History:
    records, logs = [], []
    for epoch in (1, 2, 3):
        for task in ("shape", "color"):
            for split, offset in (("train", 0.5), ("test", 0.4)):
                records.append({"epoch": epoch, "split": split, "task": task,
                                "loss": offset / epoch, "metric": offset + epoch / 10})
        logs += [
            {"epoch": epoch, "key": "weight/shape", "value": 1.0 + epoch / 10},
            {"epoch": epoch, "key": "weight/color", "value": 1.0 - epoch / 10},
            {"epoch": epoch, "key": "cos/shape|color", "value": 0.2 - epoch / 10},
        ]
    return History(records=records, logs=logs)


@pytest.fixture
def summary() -> pd.DataFrame:
    df = grid(
        lambda seed, method, k, task: {"accuracy": 0.5 + 0.01 * k + (0.1 if method == "mtl" else 0) + seed / 100},
        {"method": ["stl", "mtl", "tl"], "k": [1, 5, 50], "task": ["shape", "color"]},
        seeds=3,
    )
    return summarize(df)


def test_no_global_style_change_on_import():
    import importlib

    before = dict(matplotlib.rcParams)
    importlib.reload(plots)
    assert dict(matplotlib.rcParams) == before


def test_use_book_style_sets_the_palette():
    with matplotlib.rc_context():
        plots.use_book_style()
        colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
        assert colors[:2] == list(plots.PALETTE[:2])
    assert matplotlib.rcParams["axes.prop_cycle"].by_key()["color"][0] != plots.PALETTE[0]


def test_learning_curves(history):
    ax = _labelled(plots.learning_curves(history))
    assert len(ax.lines) == 4  # 2 tasks x (train, test)
    assert ax.get_xlabel() == "epoch" and "fraction correct" in ax.get_ylabel()
    assert set(_legend_texts(ax)) == {"shape (train)", "shape (test)", "color (train)", "color (test)"}
    shape_test = [line for line in ax.lines if line.get_label() == "shape (test)"][0]
    assert shape_test.get_ydata().tolist() == pytest.approx([0.5, 0.6, 0.7])
    assert shape_test.get_linestyle() == "--"
    ax = _labelled(plots.learning_curves(history, key="loss", tasks=["color"]))
    assert len(ax.lines) == 2 and "loss" in ax.get_ylabel()


def test_learning_curves_single_series_has_no_legend():
    h = History(records=[{"epoch": 1, "split": "train", "task": "a", "loss": 1.0, "metric": 0.5}])
    ax = _labelled(plots.learning_curves(h))
    assert len(ax.lines) == 1 and ax.get_legend() is None


def test_learning_curves_rejects_bad_input(history):
    with pytest.raises(TypeError, match="history must be History"):
        plots.learning_curves({"records": []})
    with pytest.raises(ValueError, match="history.records is empty"):
        plots.learning_curves(History())
    with pytest.raises(ValueError, match="key='accuracy' is not accepted"):
        plots.learning_curves(history, key="accuracy")
    with pytest.raises(ValueError, match=r"tasks=\['digit'\] names no recorded task"):
        plots.learning_curves(history, tasks=["digit"])


def test_history_figures_need_only_records_and_logs(history):
    """Duck-typed: plots does not import the engine, any object with the two lists will do."""
    from types import SimpleNamespace

    run = SimpleNamespace(records=history.records, logs=history.logs)
    assert len(_labelled(plots.learning_curves(run)).lines) == 4
    assert len(_labelled(plots.weight_trajectories(run)).lines) == 2
    with pytest.raises(TypeError, match=r"history must be History .*\.records and \.logs.*got SimpleNamespace"):
        plots.gradient_conflict(SimpleNamespace(records=[]))


def test_plots_does_not_import_the_engine():
    import subprocess
    import sys

    code = "import sys, mtl_tl.plots; print(sorted(m for m in sys.modules if m.startswith('mtl_tl.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "mtl_tl.engine" not in loaded and "mtl_tl.plots" in loaded


def test_draws_into_a_given_axes(history):
    fig, (left, right) = plt.subplots(1, 2)
    try:
        assert plots.learning_curves(history, ax=left) is fig
        assert plots.weight_trajectories(history, ax=right) is fig
        assert len(left.lines) == 4 and len(right.lines) == 2
    finally:
        plt.close(fig)
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plots.learning_curves(history, ax="left")


def test_accuracy_vs_labels(summary):
    rows = summary[summary["task"] == "shape"]
    ax = _labelled(plots.accuracy_vs_labels(rows))
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(bars) == 3
    assert ax.get_xscale() == "log" and "(log scale)" in ax.get_xlabel()
    assert "labelled examples per class" in ax.get_xlabel() and "fraction correct" in ax.get_ylabel()
    assert _legend_texts(ax) == ["stl", "mtl", "tl"]
    mtl = bars[1].lines[0]
    assert mtl.get_xdata().tolist() == [1, 5, 50]
    assert mtl.get_ydata().tolist() == pytest.approx([0.62, 0.66, 1.11])


def test_accuracy_vs_labels_linear_axis_for_a_narrow_range(summary):
    rows = summary[(summary["task"] == "shape") & (summary["k"] <= 5) & (summary["method"] == "mtl")]
    ax = _labelled(plots.accuracy_vs_labels(rows, hue=None))
    assert ax.get_xscale() == "linear" and "log" not in ax.get_xlabel()
    assert ax.get_legend() is None


def test_accuracy_vs_labels_rejects_bad_input(summary):
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['shots'\]"):
        plots.accuracy_vs_labels(summary, x="shots")
    with pytest.raises(ValueError, match="several rows for"):
        plots.accuracy_vs_labels(summary)  # two tasks per (method, k)
    with pytest.raises(ValueError, match="summary is empty"):
        plots.accuracy_vs_labels(summary.iloc[:0])
    with pytest.raises(ValueError, match="metric='f1' is not in summary"):
        plots.accuracy_vs_labels(summary[summary["task"] == "shape"], metric="f1")
    with pytest.raises(TypeError, match="must be numeric"):
        plots.accuracy_vs_labels(summary[summary["k"] == 1], x="task", hue="method")


def test_per_task_bars(summary):
    rows = summary[summary["k"] == 5]
    ax = _labelled(plots.per_task_bars(rows))
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 3 and sum(len(b.patches) for b in bars) == 6
    assert [t.get_text() for t in ax.get_xticklabels()] == ["shape", "color"]
    assert _legend_texts(ax) == ["stl", "mtl", "tl"]
    heights = [p.get_height() for p in bars[1].patches]
    assert heights == pytest.approx([0.66, 0.66])


def test_per_task_bars_rejects_bad_input(summary):
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['dataset'\]"):
        plots.per_task_bars(summary, task_col="dataset")
    with pytest.raises(ValueError, match=r"several rows for.*differ in \['k'\]"):
        plots.per_task_bars(summary)
    with pytest.raises(TypeError, match="summary must be DataFrame"):
        plots.per_task_bars(summary.to_dict())


def test_weight_trajectories(history):
    ax = _labelled(plots.weight_trajectories(history))
    assert len(ax.lines) == 2 and ax.get_xlabel() == "epoch"
    assert _legend_texts(ax) == ["shape", "color"]
    assert ax.lines[1].get_ydata().tolist() == pytest.approx([0.9, 0.8, 0.7])


def test_gradient_conflict_has_a_zero_line(history):
    ax = _labelled(plots.gradient_conflict(history))
    assert len(ax.lines) == 2  # the zero line and one pair
    assert list(ax.lines[0].get_ydata()) == [0.0, 0.0]
    assert ax.lines[1].get_ydata().tolist() == pytest.approx([0.1, 0.0, -0.1])
    assert ax.get_legend() is None  # one series


def test_log_plots_name_the_missing_keys():
    h = History(logs=[{"epoch": 1, "key": "weight/a", "value": 1.0}])
    with pytest.raises(ValueError, match=r"no 'cos/\.\.\.' keys; present: \['weight/a'\]"):
        plots.gradient_conflict(h)
    with pytest.raises(ValueError, match=r"no 'weight/\.\.\.' keys; present: none"):
        plots.weight_trajectories(History())


def test_feature_pca():
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(60, 5, generator=gen)
    features[30:, 0] += 10.0  # the second domain is shifted along one direction
    domains = torch.tensor([0] * 30 + [1] * 30)
    fig = plots.feature_pca(features, domains, names=["digits", "rotated"])
    ax = _labelled(fig)
    assert sum(len(c.get_offsets()) for c in ax.collections) == 60
    assert _legend_texts(ax) == ["digits", "rotated"]
    assert "variance" in ax.get_title()
    explained = int(ax.get_xlabel().split(", ")[1].split("%")[0])
    assert explained > 80  # the shift dominates the first component


def test_feature_pca_with_labels_and_names_by_string():
    x = np.random.default_rng(0).normal(size=(40, 3))
    ax = _labelled(plots.feature_pca(x, ["a"] * 20 + ["b"] * 20, labels=[0, 1] * 20))
    assert len(ax.collections) == 4  # 2 domains x 2 classes
    assert sum(len(c.get_offsets()) for c in ax.collections) == 40
    assert _legend_texts(ax) == ["a", "b", "class 0", "class 1"]


def test_feature_pca_rejects_bad_input():
    x = torch.randn(10, 4)
    with pytest.raises(ValueError, match=r"features must have 2 dimension\(s\), got shape \(10,\)"):
        plots.feature_pca(torch.randn(10), [0] * 10)
    with pytest.raises(ValueError, match="one entry per row of features \\(10\\), got 9"):
        plots.feature_pca(x, [0] * 9)
    with pytest.raises(ValueError, match="D >= 2"):
        plots.feature_pca(torch.randn(10, 1), [0] * 10)
    with pytest.raises(ValueError, match="NaN or infinite"):
        plots.feature_pca(torch.full((10, 4), float("nan")), [0] * 10)
    with pytest.raises(ValueError, match="names has no entry for domain 1"):
        plots.feature_pca(x, [0] * 5 + [1] * 5, names={0: "source"})
    with pytest.raises(TypeError, match="features must be a tensor"):
        plots.feature_pca("features", [0] * 10)


def test_decision_map():
    table = pd.DataFrame(
        {"relatedness": ["high", "high", "low", "low"], "k": [1, 50, 1, 50], "gain": [0.1, 0.02, -0.05, np.nan]}
    )
    fig = plots.decision_map(table, row="relatedness", col="k", value="gain", center=0.0,
                             xlabel="labelled examples per class", ylabel="task relatedness (category)")
    ax = _labelled(fig)
    assert len(ax.images) == 1 and len(fig.axes) == 2  # the map and its colour bar
    assert [t.get_text() for t in ax.texts] == ["0.10", "0.02", "-0.05"]
    assert ax.images[0].get_array().shape == (2, 2)
    assert ax.images[0].norm.vmin == pytest.approx(-0.1) and ax.images[0].norm.vmax == pytest.approx(0.1)
    plain = _labelled(plots.decision_map(table, row="relatedness", col="k", value="gain", annotate=False))
    assert len(plain.texts) == 0 and plain.get_xlabel() == "k"


def test_decision_map_rejects_bad_input():
    table = pd.DataFrame({"r": ["a", "a"], "c": [1, 1], "v": [0.1, 0.2]})
    with pytest.raises(ValueError, match="several rows for r='a', c=1"):
        plots.decision_map(table, row="r", col="c", value="v")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['value'\]"):
        plots.decision_map(table, row="r", col="c", value="value")
    with pytest.raises(TypeError, match=r"table\['r'\] must be numeric"):
        plots.decision_map(table, row="c", col="v", value="r")
    with pytest.raises(ValueError, match="holds no finite value"):
        plots.decision_map(pd.DataFrame({"r": ["a"], "c": [1], "v": [np.nan]}), row="r", col="c", value="v")
    with pytest.raises(ValueError, match="fmt='{:d}' cannot format a number"):
        plots.decision_map(table.iloc[:1], row="r", col="c", value="v", fmt="{:d}")


def test_figures_are_detached_from_pyplot(history):
    before = plt.get_fignums()
    plots.learning_curves(history)
    assert plt.get_fignums() == before
