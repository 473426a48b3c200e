"""Tests of mtl_tl.experiments: seeds, grids, summaries and prose cells."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mtl_tl.experiments import grid, mean_std, paired_difference, run_seeds, summarize


def _noisy(seed: int) -> dict[str, float]:
    # Depends on the global torch RNG only: run_seeds must seed it before each call.
    return {"accuracy": 0.5 + float(torch.rand(())), "loss": float(seed)}


def test_run_seeds_tidy_columns_and_rows():
    df = run_seeds(_noisy, 3, config={"method": "mtl", "k": 5})
    assert list(df.columns) == ["method", "k", "seed", "metric", "value"]
    assert len(df) == 6
    assert sorted(df["seed"].unique().tolist()) == [0, 1, 2]
    assert set(df["method"]) == {"mtl"} and set(df["k"]) == {5}
    assert df.loc[df["metric"] == "loss", "value"].tolist() == [0.0, 1.0, 2.0]
    assert df["value"].dtype == float


def test_run_seeds_seeds_the_model_init():
    def init(seed: int) -> dict[str, float]:
        layer = torch.nn.Linear(4, 1)  # initialised from the global RNG
        return {"w": float(layer.weight.detach().sum())}

    a = run_seeds(init, [3, 7])
    b = run_seeds(init, [7, 3])
    assert a.set_index("seed")["value"].to_dict() == b.set_index("seed")["value"].to_dict()
    assert a["value"].iloc[0] != a["value"].iloc[1]
    torch.manual_seed(3)
    assert a["value"].iloc[0] == pytest.approx(float(torch.nn.Linear(4, 1).weight.detach().sum()))


def test_run_seeds_accepts_numpy_and_tensor_scalars():
    df = run_seeds(lambda s: {"a": np.float32(0.25), "b": torch.tensor(2), "c": 3}, [5])
    assert df["value"].tolist() == [0.25, 2.0, 3.0]


@pytest.mark.parametrize(
    ("seeds", "error", "match"),
    [
        ([], ValueError, "seeds is empty"),
        (0, ValueError, "seeds must be >= 1"),
        ([1, 2, 1], ValueError, r"distinct.*\[1\] repeated"),
        ([0, -1], ValueError, r"seeds\[1\] must be >= 0"),
        ("012", TypeError, "seeds must be an int n"),
        ([0, 1.5], TypeError, r"seeds\[1\] must be an int"),
    ],
)
def test_run_seeds_rejects_bad_seeds(seeds, error, match):
    with pytest.raises(error, match=match):
        run_seeds(_noisy, seeds)


def test_run_seeds_names_seed_and_key_of_bad_results():
    with pytest.raises(ValueError, match=r"fn\(seed=2\) returned 'acc'=nan"):
        run_seeds(lambda s: {"acc": math.nan if s == 2 else 0.5}, 3)
    with pytest.raises(ValueError, match=r"fn\(seed=0\) returned 'acc'=inf"):
        run_seeds(lambda s: {"acc": math.inf}, 1)
    with pytest.raises(TypeError, match=r"fn\(seed=0\) must return a mapping.*float"):
        run_seeds(lambda s: 0.5, 1)
    with pytest.raises(TypeError, match=r"fn\(seed=1\) returned 'acc'='high'.*real numbers"):
        run_seeds(lambda s: {"acc": 0.5 if s == 0 else "high"}, 2)
    with pytest.raises(TypeError, match=r"'flag'=True"):
        run_seeds(lambda s: {"flag": True}, 1)
    with pytest.raises(ValueError, match=r"fn\(seed=1\) returned metrics \['b'\].*first seed returned \['a'\]"):
        run_seeds(lambda s: {"a": 1.0} if s == 0 else {"b": 1.0}, 2)
    with pytest.raises(ValueError, match=r"fn\(seed=0\) returned an empty mapping"):
        run_seeds(lambda s: {}, 1)


def test_run_seeds_rejects_bad_config_and_fn():
    with pytest.raises(ValueError, match="config key 'seed' clashes"):
        run_seeds(_noisy, 1, config={"seed": 1})
    with pytest.raises(TypeError, match="config must be Mapping"):
        run_seeds(_noisy, 1, config=[("k", 1)])
    with pytest.raises(TypeError, match="fn must be callable"):
        run_seeds({"acc": 1.0}, 1)


def test_grid_is_the_cartesian_product_in_order():
    calls = []

    def fn(seed: int, method: str, k: int) -> dict[str, float]:
        calls.append((method, k, seed))
        return {"accuracy": k / 10 + (0.1 if method == "mtl" else 0.0) + seed / 100}

    df = grid(fn, {"method": ["tl", "mtl"], "k": [1, 5]}, seeds=[0, 1])
    assert list(df.columns) == ["method", "k", "seed", "metric", "value"]
    assert len(df) == 8 and len(calls) == 8
    assert calls[:3] == [("tl", 1, 0), ("tl", 1, 1), ("tl", 5, 0)]
    row = df[(df["method"] == "mtl") & (df["k"] == 5) & (df["seed"] == 1)]
    assert row["value"].item() == pytest.approx(0.61)


def test_grid_names_the_point_of_a_bad_result():
    with pytest.raises(ValueError, match=r"fn\(seed=0\) with \{'k': 2\} returned 'acc'=nan"):
        grid(lambda seed, k: {"acc": math.nan if k == 2 else 1.0}, {"k": [1, 2]}, 1)


def test_grid_rejects_bad_params():
    fn = lambda seed, k: {"a": 1.0}  # noqa: E731
    with pytest.raises(ValueError, match="params is empty"):
        grid(fn, {}, 1)
    with pytest.raises(ValueError, match=r"params\['k'\] is empty"):
        grid(fn, {"k": []}, 1)
    with pytest.raises(TypeError, match=r"params\['k'\] must be a sequence"):
        grid(fn, {"k": 3}, 1)
    with pytest.raises(ValueError, match="params key 'metric' clashes"):
        grid(fn, {"metric": [1]}, 1)


def test_summarize_mean_sample_std_and_n():
    df = pd.DataFrame(
        {
            "method": ["a"] * 3 + ["b"] * 3,
            "seed": [0, 1, 2] * 2,
            "metric": ["acc"] * 6,
            "value": [0.1, 0.2, 0.3, 0.5, 0.5, 0.8],
        }
    )
    s = summarize(df)
    assert list(s.columns) == ["method", "metric", "mean", "std", "n"]
    a = s[s["method"] == "a"].iloc[0]
    assert a["mean"] == pytest.approx(0.2) and a["std"] == pytest.approx(0.1) and a["n"] == 3
    b = s[s["method"] == "b"].iloc[0]
    assert b["std"] == pytest.approx(np.std([0.5, 0.5, 0.8], ddof=1))
    pooled = summarize(df, by=[])
    assert len(pooled) == 1 and pooled["n"].item() == 6


def test_summarize_single_seed_has_zero_std_not_nan():
    s = summarize(run_seeds(lambda seed: {"acc": 0.9}, 1, config={"k": 1}))
    assert s["std"].item() == 0.0 and s["n"].item() == 1 and not s.isna().any().any()


def test_summarize_keeps_none_configurations():
    df = grid(lambda seed, pretrained: {"acc": 0.5 if pretrained is None else 0.9}, {"pretrained": [None, "src"]}, 2)
    s = summarize(df)
    assert len(s) == 2
    assert s["mean"].tolist() == [0.5, 0.9]


def test_summarize_rejects_bad_input():
    with pytest.raises(TypeError, match="df must be DataFrame"):
        summarize([1, 2])
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['metric'\]"):
        summarize(pd.DataFrame({"seed": [0], "value": [1.0]}))
    with pytest.raises(ValueError, match="df is empty"):
        summarize(pd.DataFrame(columns=["seed", "metric", "value"]))
    df = run_seeds(_noisy, 2, config={"k": 1})
    with pytest.raises(ValueError, match=r"by names column\(s\) \['method'\]"):
        summarize(df, by=["method"])
    with pytest.raises(ValueError, match="by may not contain"):
        summarize(df, by=["seed"])
    with pytest.raises(TypeError, match="by must be a sequence"):
        summarize(df, by="k")


def test_mean_std_formats_values_tables_and_summaries():
    assert mean_std([0.1, 0.2, 0.3]) == "0.200 ± 0.100 (n=3)"
    assert mean_std(np.array([0.5]), digits=1) == "0.5 ± 0.0 (n=1)"
    assert mean_std(torch.tensor([1.0, 3.0]), digits=2) == "2.00 ± 1.41 (n=2)"
    df = grid(lambda seed, k: {"acc": k + seed, "loss": 1.0}, {"k": [10, 20]}, [0, 2])
    assert mean_std(df, "acc", k=20, digits=1) == "21.0 ± 1.4 (n=2)"
    assert mean_std(summarize(df), "acc", k=20, digits=1) == "21.0 ± 1.4 (n=2)"


def test_mean_std_rejects_ambiguous_or_bad_input():
    df = grid(lambda seed, k: {"acc": 1.0, "loss": 1.0}, {"k": [10, 20]}, 2)
    with pytest.raises(ValueError, match=r"several metrics \['acc', 'loss'\]"):
        mean_std(df)
    with pytest.raises(ValueError, match=r"vary in \['k'\]"):
        mean_std(df, "acc")
    with pytest.raises(ValueError, match="metric='f1' is not in the table"):
        mean_std(df, "f1", k=10)
    with pytest.raises(ValueError, match=r"filter\(s\) \['method'\] name no column"):
        mean_std(df, "acc", method="mtl")
    with pytest.raises(ValueError, match="no row has"):
        mean_std(df, "acc", k=30)
    with pytest.raises(ValueError, match="select 2 rows of the summary"):
        mean_std(summarize(df), "acc")
    with pytest.raises(ValueError, match="data is empty"):
        mean_std([])
    with pytest.raises(ValueError, match="data must be finite"):
        mean_std([1.0, float("nan")])
    with pytest.raises(TypeError, match="apply to a DataFrame only"):
        mean_std([1.0], "acc")
    with pytest.raises(TypeError, match="digits must be an int"):
        mean_std([1.0], digits=1.5)


def test_paired_difference_pairs_by_seed():
    df = grid(lambda seed, method: {"acc": seed * 0.1 + (0.05 if method == "mtl" else 0.0)},
              {"method": ["stl", "mtl"]}, [2, 0, 1])
    d = paired_difference(df, "acc", column="method", a="mtl", b="stl")
    assert d.index.tolist() == [0, 1, 2]
    assert d.tolist() == pytest.approx([0.05, 0.05, 0.05])
    assert mean_std(d) == "0.050 ± 0.000 (n=3)"


def test_paired_difference_rejects_unpaired_or_ambiguous_arms():
    a = run_seeds(lambda s: {"acc": 1.0}, [0, 1], config={"method": "a", "k": 1})
    b = run_seeds(lambda s: {"acc": 1.0}, [0, 2], config={"method": "b", "k": 1})
    with pytest.raises(ValueError, match=r"different seeds \(\[0, 1\] vs \[0, 2\]\)"):
        paired_difference(pd.concat([a, b]), column="method", a="a", b="b")
    df = grid(lambda seed, method, k: {"acc": 1.0}, {"method": ["a", "b"], "k": [1, 2]}, 2)
    with pytest.raises(ValueError, match=r"several runs per seed \(they vary in \['k'\]\)"):
        paired_difference(df, column="method", a="a", b="b")
    with pytest.raises(ValueError, match="column='task' is not a configuration column"):
        paired_difference(df, column="task", a="a", b="b")


def test_the_claim_rule_is_two_standard_errors_of_the_paired_differences():
    from mtl_tl.experiments import beats, standard_error, within

    d = [0.10, 0.12, 0.08]  # mean 0.10, std 0.02, SE 0.02 / sqrt(3)
    assert standard_error(d) == pytest.approx(0.02 / 3**0.5)
    assert beats(d) and beats(d, by=0.07) and not beats(d, by=0.08)
    assert not beats([0.3, -0.1, 0.1])  # a positive mean with a wide spread is not shown
    assert within([0.01, -0.01, 0.0], bound=0.05) and not within([0.01, -0.01, 0.0], bound=0.01)
    assert not within([0.2, -0.2, 0.0], bound=0.2), "a wide spread cannot support a small bound"
    with pytest.raises(ValueError, match="at least 2 seeds"):
        beats([0.1])
    with pytest.raises(TypeError, match="diff must be a sequence"):
        beats("0.1")
    with pytest.raises(ValueError, match="bound must be > 0"):
        within(d, bound=0)
