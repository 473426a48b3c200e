"""The head-to-head study of chapter 4.3 (mtl_tl.study) and its command line (python -m mtl_tl)."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math

import pandas as pd
import pytest

from mtl_tl.__main__ import build_parser, main
from mtl_tl.config import seed_everything
from mtl_tl.data import k_per_class
from mtl_tl.experiments import summarize
from mtl_tl.models import SmallCNN, linear_head
from mtl_tl.multitask import train_sequentially
from mtl_tl.study import (
    METHODS,
    RELATEDNESS,
    StudyConfig,
    StudyResult,
    decision_table,
    derive_rules,
    relatedness_domain,
    rules_markdown,
    run_study,
)
from mtl_tl.study.runner import data_seed
from mtl_tl.synthetic import DOMAINS, Domain, make_shapes
from mtl_tl.tasks import Task

# A study small enough for a unit test: 16-px images, a width-4 network, 2 steps per phase.
TINY = dict(ks=(1,), relatedness=("near",), seeds=(0,), epochs=1, image_size=16, n_source=64,
            n_target_test=32, width=4, batch_size=32, device="cpu")

TINY_ARGS = ["study", "--methods", "scratch,transfer", "--ks", "1", "--relatedness", "near", "--seeds", "0",
             "--epochs", "1", "--image-size", "16", "--n-source", "64", "--n-target-test", "32",
             "--width", "4", "--batch-size", "32", "--device", "cpu", "--quiet"]


# ------------------------------------------------------------------------ configuration


def test_presets_are_valid_and_differ():
    quick, full = StudyConfig.quick(), StudyConfig.full()
    assert quick.methods == METHODS == full.methods
    assert len(quick.seeds) >= 3 and len(full.seeds) >= 3
    assert len(quick.relatedness) >= 3 and len(full.relatedness) >= 3
    assert max(full.ks) >= 100 and full.runs > quick.runs
    assert quick.steps_per_phase == quick.epochs * math.ceil(quick.n_source / quick.batch_size)


def test_relatedness_presets_are_the_synthetic_domains():
    for name, shift in RELATEDNESS.items():
        assert Domain.interpolate(shift) == DOMAINS[name], name
        assert relatedness_domain(name) == DOMAINS[name] == relatedness_domain(shift), name
    assert relatedness_domain(0.3) == Domain.interpolate(0.3)
    with pytest.raises(ValueError, match="'medium' is not accepted"):
        relatedness_domain("medium")


def test_config_normalises_order():
    c = StudyConfig(methods=["joint", "scratch"], ks=[20, 1], relatedness=["unrelated", 0.3, "near"], seeds=[2, 0])
    assert c.methods == ("scratch", "joint")  # METHODS order
    assert c.ks == (1, 20)
    assert c.relatedness == ("near", 0.3, "unrelated")  # near to far
    assert c.seeds == (2, 0)
    assert c.runs == 2 * 2 * 3 * 2


@pytest.mark.parametrize(
    "change, error, words",
    [
        ({"methods": ("scratch", "magic")}, ValueError, ["'magic'", "scratch", "joint", "feature_extraction"]),
        ({"methods": ()}, ValueError, ["methods is empty"]),
        ({"methods": ("joint", "joint")}, ValueError, ["repeated"]),
        ({"methods": "joint"}, TypeError, ["methods must be a sequence"]),
        ({"ks": (0, 5)}, ValueError, ["ks[0]", ">= 1"]),
        ({"ks": (5, 5)}, ValueError, ["repeated"]),
        ({"seeds": ()}, ValueError, ["seeds is empty"]),
        ({"seeds": (0, 0)}, ValueError, ["repeated"]),
        ({"seeds": (-1,)}, ValueError, ["seeds[0]", ">= 0"]),
        ({"relatedness": (7,)}, ValueError, ["outside [0, 1]", "'near'"]),
        ({"relatedness": ("medium",)}, ValueError, ["'medium'", "'near'", "'far'", "'unrelated'"]),
        ({"relatedness": (True,)}, TypeError, ["relatedness"]),
        ({"relatedness": ("near", 0.2)}, ValueError, ["same shift twice"]),
        ({"epochs": 0}, ValueError, ["epochs", ">= 1"]),
        ({"budget": "time"}, ValueError, ["'steps'", "'batches'"]),
        ({"label": "size"}, ValueError, ["'shape'", "'colour'"]),
        ({"image_size": 8}, ValueError, ["image_size", ">= 16"]),
        ({"n_source": 4}, ValueError, ["n_source"]),
        ({"lr": 0.0}, ValueError, ["lr", "> 0"]),
        ({"norm": "layer"}, ValueError, ["'none'", "'batch'"]),
        ({"device": "tpu"}, ValueError, ["'tpu'", "cpu"]),
    ],
)
def test_config_rejects_bad_values(change, error, words):
    with pytest.raises(error) as info:
        dataclasses.replace(StudyConfig.quick(), **change)
    for word in words:
        assert word in str(info.value), (word, str(info.value))


def test_config_round_trips_through_a_dict():
    c = StudyConfig(relatedness=("near", 0.4), seeds=(3, 4), device="cpu")
    again = StudyConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    with pytest.raises(ValueError, match="unknown StudyConfig field"):
        StudyConfig.from_dict({"epochz": 3})


# ------------------------------------------------------------------------------ running


@pytest.fixture(scope="module")
def tiny_result() -> StudyResult:
    return run_study(StudyConfig(**{**TINY, "seeds": (0, 1)}), progress=False)


def test_run_study_table_is_tidy_and_complete(tiny_result):
    table = tiny_result.table
    assert list(table.columns) == ["relatedness", "shift", "k", "method", "seed", "metric", "value"]
    runs = table.groupby(["relatedness", "k", "method", "seed"]).size()
    assert len(runs) == tiny_result.config.runs
    metrics = table.groupby("method")["metric"].unique().map(set)
    assert metrics["scratch"] == {"target_accuracy", "examples", "seconds", "steps"}  # no source head
    for method in METHODS[1:]:
        assert metrics[method] == {"target_accuracy", "source_accuracy", "examples", "seconds", "steps"}
    accuracy = table[table["metric"].str.endswith("accuracy")]["value"]
    assert accuracy.between(0, 1).all()


def test_steps_budget_gives_every_method_the_same_updates(tiny_result):
    assert tiny_result.config.budget == "steps"  # the default
    t = tiny_result.table.groupby(["method", "metric"])["value"].mean()
    S = tiny_result.config.steps_per_phase
    assert all(t[(m, "steps")] == 2 * S for m in METHODS)
    assert t[("joint", "examples")] == 2 * t[("transfer", "examples")]  # two batches per joint step


def test_batches_budget_gives_joint_the_batches_of_transfer():
    result = run_study(StudyConfig(**{**TINY, "methods": ("transfer", "joint"), "budget": "batches"}), progress=False)
    t = result.table.set_index(["method", "metric"])["value"]
    assert t[("joint", "examples")] == t[("transfer", "examples")]
    assert t[("joint", "steps")] == result.config.steps_per_phase
    assert t[("transfer", "steps")] == 2 * result.config.steps_per_phase


def test_feature_extraction_keeps_the_pretrained_source_exactly():
    config = StudyConfig(**{**TINY, "methods": ("feature_extraction",), "ks": (1, 2), "relatedness": ("near", "far")})
    source = run_study(config, progress=False).table.query("metric == 'source_accuracy'")["value"]
    assert len(source) == 4 and source.nunique() == 1  # the frozen trunk and source head never change


def test_sequential_is_train_sequentially_with_one_shared_head():
    """The study's 'sequential' reuses the pretraining; it must equal the package's baseline."""
    config = StudyConfig(**{**TINY, "methods": ("sequential",), "label": "colour"})
    got = run_study(config, progress=False).table.set_index("metric")["value"]

    S, label = config.steps_per_phase, config.label
    source = make_shapes(config.n_source, size=16, seed=data_seed(0, 1))
    source_test = make_shapes(config.n_target_test, size=16, seed=data_seed(0, 2))
    pool = make_shapes(2 * 5 * 1 + 64, size=16, seed=data_seed(0, 3), domain="near")
    target = k_per_class(pool, 1, seed=0, label=label)
    target_test = make_shapes(config.n_target_test, size=16, seed=data_seed(0, 4), domain="near")
    seed_everything(0)
    trunk = SmallCNN(3, width=4, depth=3, norm="none")
    head = linear_head(trunk.out_features, 5)  # one output layer for both tasks, as in the article
    tasks = [Task("source", head, source, source_test, label=label), Task("target", head, target, target_test, label=label)]
    seq = train_sequentially(trunk, tasks, epochs_per_task=1, steps_per_epoch=S, seed=0, batch_size=32,
                             lr=config.lr, device="cpu", progress=False)
    final = seq.final()
    assert got["target_accuracy"] == pytest.approx(final["target"], abs=1e-9)
    assert got["source_accuracy"] == pytest.approx(final["source"], abs=1e-9)


def test_result_round_trips_through_json_and_csv(tiny_result, tmp_path):
    again = StudyResult.from_json(tiny_result.to_json(tmp_path / "r.json"))
    assert again.config == tiny_result.config
    pd.testing.assert_frame_equal(again.table, tiny_result.table, check_dtype=False)
    csv = pd.read_csv(tiny_result.to_csv(tmp_path / "r.csv"))
    assert len(csv) == len(tiny_result.table)
    with pytest.raises(ValueError, match="does not exist"):
        StudyResult.from_json(tmp_path / "missing.json")


def test_summary_pivot_and_compute(tiny_result):
    summary = tiny_result.summary
    assert list(summary.columns) == ["relatedness", "shift", "k", "method", "metric", "mean", "std", "n"]
    assert set(summary["n"]) == {2}
    wide = tiny_result.pivot("target_accuracy")
    assert list(wide.columns) == list(METHODS) and " ± " in wide.iloc[0, 0]
    compute = tiny_result.compute()
    assert list(compute.columns) == ["steps", "examples", "seconds"]
    # joint draws a source and a target batch per step; scratch only (small) target batches
    assert compute.loc["joint", "examples"] > compute.loc["scratch", "examples"]
    assert compute.loc["joint", "steps"] == compute.loc["scratch", "steps"]
    with pytest.raises(ValueError, match="'target_accuracy'"):
        tiny_result.pivot("loss")


def test_run_study_rejects_a_non_config():
    with pytest.raises(TypeError, match="config must be StudyConfig"):
        run_study({"ks": (1,)})


# ---------------------------------------------------------- decision table and rules, exactly


def _summary(cells: dict[tuple[str, int], dict[str, tuple[float, float]]], n: int = 3,
             source: dict[tuple[str, int], dict[str, tuple[float, float]]] | None = None) -> pd.DataFrame:
    """A hand-built study table, per seed: {(relatedness, k): {method: (mean, std over seeds)}}.

    Each method's n values have exactly that mean and sample std; each method orders one
    standard pattern in its own way over the seeds, so that paired differences vary by seed.
    """
    base = [0.0] if n == 1 else [(2 * i / (n - 1) - 1) for i in range(n)]
    if n > 1:
        spread = pd.Series(base).std()
        base = [b / spread for b in base]
    rows = []
    for metric, table in (("target_accuracy", cells), ("source_accuracy", source or {})):
        for (level, k), methods in table.items():
            for method, (mean, std) in methods.items():
                orders = list(itertools.permutations(base))
                pattern = orders[(METHODS.index(method) if method in METHODS else 0) % len(orders)]
                rows += [{"relatedness": level, "shift": RELATEDNESS[level], "k": k, "method": method,
                          "seed": seed, "metric": metric, "value": mean + std * z} for seed, z in enumerate(pattern)]
    return pd.DataFrame(rows)


# Few labels: the source helps when related and not when unrelated; many labels: scratch is enough.
TEXTBOOK = {
    ("near", 1): {"scratch": (0.40, 0.05), "transfer": (0.85, 0.03), "joint": (0.70, 0.04), "sequential": (0.80, 0.02)},
    ("near", 50): {"scratch": (0.95, 0.02), "transfer": (0.96, 0.01), "joint": (0.95, 0.02), "sequential": (0.96, 0.01)},
    ("unrelated", 1): {"scratch": (0.40, 0.01), "transfer": (0.30, 0.02), "joint": (0.38, 0.04), "sequential": (0.41, 0.01)},
    ("unrelated", 50): {"scratch": (0.94, 0.01), "transfer": (0.90, 0.01), "joint": (0.93, 0.01), "sequential": (0.93, 0.02)},
}
KEEPS = {key: {"transfer": (0.50, 0.05), "sequential": (0.40, 0.05), "joint": (0.97, 0.01)} for key in TEXTBOOK}


def test_decision_table_exactly():
    m = decision_table(_summary(TEXTBOOK))
    assert list(zip(m["relatedness"], m["k"])) == [("near", 1), ("near", 50), ("unrelated", 1), ("unrelated", 50)]
    first = m.iloc[0]
    assert (first["winner"], first["runner_up"]) == ("transfer", "sequential")
    assert first["margin"] == pytest.approx(0.05)
    # Per seed, transfer - sequential = 0.82-0.80, 0.88-0.82, 0.85-0.78: the paired standard error.
    assert first["margin_se"] == pytest.approx(pd.Series([0.02, 0.06, 0.07]).std() / math.sqrt(3))
    assert bool(first["clear"]) is True and first["n"] == 3
    assert first["scratch_mean"] == pytest.approx(0.40)
    assert (first["best_source_method"], first["source_gain"]) == ("transfer", pytest.approx(0.45))
    # A tie goes to the method listed first in METHODS (transfer before sequential).
    near50 = m.iloc[1]
    assert (near50["winner"], near50["runner_up"], bool(near50["clear"])) == ("transfer", "sequential", False)
    unrel1 = m.iloc[2]
    assert (unrel1["winner"], unrel1["runner_up"]) == ("sequential", "scratch")
    assert bool(unrel1["clear"]) is False
    assert unrel1["source_gain"] == pytest.approx(0.01)


def test_decision_table_pairs_the_seeds():
    """Seeds that move both methods together: a margin far below their spread is still clear."""
    values = {"scratch": [0.30, 0.50, 0.70], "transfer": [0.35, 0.56, 0.74]}
    table = pd.DataFrame([{"relatedness": "near", "k": 1, "method": m, "seed": seed, "metric": "target_accuracy",
                           "value": v} for m, vs in values.items() for seed, v in enumerate(vs)])
    row = decision_table(table).iloc[0]
    assert (row["winner"], row["runner_up"], bool(row["clear"])) == ("transfer", "scratch", True)
    assert row["margin"] == pytest.approx(0.05) and row["winner_std"] > 0.15
    table.loc[table["method"] == "transfer", "value"] = [0.74, 0.56, 0.35]  # same numbers, other seeds
    assert not bool(decision_table(table).iloc[0]["clear"])


def test_decision_table_with_one_seed_is_never_clear():
    m = decision_table(_summary(TEXTBOOK, n=1))
    assert not m["clear"].any()


def test_decision_table_tie_goes_to_scratch():
    s = _summary({("far", 5): {"transfer": (0.5, 0.1), "scratch": (0.5, 0.1)}})
    row = decision_table(s).iloc[0]
    assert (row["winner"], row["runner_up"], row["margin"]) == ("scratch", "transfer", 0.0)


def test_decision_table_rejects_bad_tables():
    with pytest.raises(ValueError, match="lacks column"):
        decision_table(pd.DataFrame({"k": [1]}))
    with pytest.raises(ValueError, match="unknown method"):
        decision_table(_summary({("near", 1): {"magic": (0.5, 0.1), "scratch": (0.4, 0.1)}}))
    with pytest.raises(ValueError, match=">= 2"):
        decision_table(_summary({("near", 1): {"scratch": (0.4, 0.1)}}))
    with pytest.raises(ValueError, match="no rows for metric"):
        decision_table(_summary({("near", 1): {"scratch": (0.4, 0.1), "joint": (0.5, 0.1)}}), metric="loss")


def test_rules_from_the_textbook_map():
    rules = derive_rules(_summary(TEXTBOOK, source=KEEPS)).set_index("rule")
    assert list(rules.index) == ["few labels, related source", "many labels", "unrelated source", "need both tasks"]
    assert "k = 1 per class" in rules.loc["few labels, related source", "situation"]
    assert "transfer" in rules.loc["few labels, related source", "advice"]
    assert "near: transfer 0.85 ± 0.03 vs scratch 0.40 ± 0.05" in rules.loc["few labels, related source", "evidence"]
    assert "k = 50" in rules.loc["many labels", "situation"]
    advice = rules.loc["unrelated source", "advice"]
    # scratch beats transfer at k=1 (0.40 vs 0.30) and k=50 (0.94 vs 0.90): negative transfer at both
    assert "don't transfer" in advice and "negative transfer" in advice and "k = 1, 50" in advice
    assert "joint" in rules.loc["need both tasks", "advice"] and "transfer and sequential" in rules.loc["need both tasks", "advice"]
    assert "joint 0.97 to 0.97; transfer 0.50 to 0.50; sequential 0.40 to 0.40" in rules.loc["need both tasks", "evidence"]


def test_need_both_tasks_allows_a_near_domain_with_little_to_forget():
    keeps = {key: dict(v) for key, v in KEEPS.items()}
    keeps[("near", 50)]["sequential"] = (0.97, 0.01)  # sequential forgot nothing here, transfer did
    rules = derive_rules(_summary(TEXTBOOK, source=keeps), include_unsupported=True).set_index("rule")
    assert bool(rules.loc["need both tasks", "supported"]) is True
    keeps[("near", 50)]["sequential"] = (0.99, 0.001)  # 0.02 better than joint: below NEGLIGIBLE, still fine
    rules = derive_rules(_summary(TEXTBOOK, source=keeps), include_unsupported=True).set_index("rule")
    assert bool(rules.loc["need both tasks", "supported"]) is True
    keeps[("near", 50)]["joint"] = (0.90, 0.01)  # now sequential keeps it better than joint, by 0.09
    rules = derive_rules(_summary(TEXTBOOK, source=keeps), include_unsupported=True).set_index("rule")
    assert bool(rules.loc["need both tasks", "supported"]) is False


def test_rules_are_stated_only_when_supported():
    cells = {key: dict(v) for key, v in TEXTBOOK.items()}
    cells[("near", 50)]["transfer"] = (0.99, 0.005)          # transfer still beats scratch with many labels
    cells[("unrelated", 1)]["sequential"] = (0.60, 0.02)     # a pretrained method helps on the unrelated source
    leaky = {key: dict(v) for key, v in KEEPS.items()}
    leaky[("near", 1)]["joint"] = (0.45, 0.05)               # joint keeps the source no better here
    table = derive_rules(_summary(cells, source=leaky), include_unsupported=True).set_index("rule")
    assert table["supported"].to_dict() == {
        "few labels, related source": True, "many labels": False, "unrelated source": False,
        "need both tasks": False, "multi-task wins the target": False,
    }
    assert list(derive_rules(_summary(cells, source=leaky))["rule"]) == ["few labels, related source"]


def test_rules_name_joint_where_it_wins_the_target():
    cells = {key: dict(v) for key, v in TEXTBOOK.items()}
    cells[("unrelated", 50)]["joint"] = (0.99, 0.005)
    rules = derive_rules(_summary(cells)).set_index("rule")
    assert "unrelated, k = 50" in rules.loc["multi-task wins the target", "situation"]


def test_rules_without_any_candidate_keep_their_columns():
    # One level, one k, no scratch and no joint: no rule applies, yet the table keeps its shape.
    s = _summary({("near", 1): {"transfer": (0.5, 0.1), "sequential": (0.4, 0.1)}})
    for include in (False, True):
        table = derive_rules(s, include_unsupported=include)
        assert table.empty and list(table.columns) == ["rule", "situation", "advice", "evidence", "supported"]


def test_rules_need_three_seeds():
    assert derive_rules(_summary(TEXTBOOK, n=2, source=KEEPS)).empty
    assert not decision_table(_summary(TEXTBOOK, n=2))["clear"].any()
    assert derive_rules(_summary(TEXTBOOK, n=1, source=KEEPS)).empty
    assert "No rule of thumb" in rules_markdown(derive_rules(_summary(TEXTBOOK, n=1)))
    assert rules_markdown(derive_rules(_summary(TEXTBOOK))).startswith("| situation |")


def test_rules_of_a_real_table_only_use_its_own_columns(tiny_result):
    table = derive_rules(tiny_result.table, include_unsupported=True)
    assert list(table.columns) == ["rule", "situation", "advice", "evidence", "supported"]
    assert set(summarize(tiny_result.table)["metric"]) >= {"target_accuracy", "source_accuracy"}


# -------------------------------------------------------------------------- command line


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as info:
        main(["study", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--profile", "--methods", "--ks", "--relatedness", "--seeds", "--epochs", "--budget",
                   "--label", "--image-size", "--n-source", "--n-target-test", "--width", "--norm",
                   "--batch-size", "--lr", "--device", "--out", "--quiet", "--progress"):
        assert option in text, option
    for default in ("default: results", "default: steps", "quick profile:"):
        assert default in text, default
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "study" in capsys.readouterr().out


def test_every_study_option_has_help():
    parser = build_parser()
    study = parser._subparsers._group_actions[0].choices["study"]
    for action in study._actions:
        assert action.help, action.dest


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--methods", "magic"], ["--methods", "magic", "scratch, transfer, feature_extraction, sequential, joint"]),
        (["--methods", "scratch,,joint"], ["--methods", "empty"]),
        (["--ks", "0"], ["--ks", "labels per class", "smallest accepted value, 1"]),
        (["--ks", "one"], ["--ks", "not an integer"]),
        (["--relatedness", "7"], ["--relatedness", "outside [0, 1]", "near, far, unrelated"]),
        (["--relatedness", "close"], ["--relatedness", "'close'", "near"]),
        (["--seeds", "3-1"], ["--seeds", "empty"]),
        (["--seeds", "-1"], ["--seeds"]),
        (["--profile", "huge"], ["--profile", "quick", "full"]),
        (["--budget", "time"], ["--budget", "steps", "batches"]),
        (["--epochs", "0"], ["--epochs"]),
        (["--lr", "-1"], ["--lr", "> 0"]),
        (["--image-size", "8"], ["--image-size", "16"]),
        (["--device", "tpu"], ["--device", "'tpu'", "cpu, cuda, mps"]),
        (["--quiet", "--progress"], ["not allowed with"]),
    ],
)
def test_bad_option_values_fail_clearly(argv, words, capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["study", *argv, "--out", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "results.csv").exists()


def test_no_command_is_an_error(capsys):
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_tiny_run_writes_every_file(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY_ARGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    names = ["results.csv", "results.json", "summary.csv", "decision_table.csv", "rules.md"]
    for name in names:
        assert (out / name).is_file(), name
        assert f"wrote {out / name}" in printed
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == ["relatedness", "shift", "k", "method", "seed", "metric", "value"]
    assert set(results["method"]) == {"scratch", "transfer"}
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == ["relatedness", "shift", "k", "method", "metric", "mean", "std", "n"]
    table = pd.read_csv(out / "decision_table.csv")
    assert {"relatedness", "k", "winner", "runner_up", "margin", "margin_se", "clear"} <= set(table.columns)
    assert len(table) == 1
    again = StudyResult.from_json(out / "results.json")
    assert again.config.methods == ("scratch", "transfer") and again.config.epochs == 1
    rules = (out / "rules.md").read_text()
    assert rules.startswith("# Rules of thumb") and "No rule of thumb" in rules  # one seed: nothing is clear
    assert "fewer than 3 seeds" in rules
    assert "target accuracy" not in printed  # --quiet prints only the paths


def test_profile_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("MTL_TL_PROFILE", "full")
    args = build_parser().parse_args(["study"])
    assert args.profile == "full"
    args = build_parser().parse_args(["study", "--profile", "quick"])
    assert args.profile == "quick"


def test_a_bad_profile_in_the_environment_fails_clearly(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MTL_TL_PROFILE", "huge")
    with pytest.raises(SystemExit) as info:
        main(["study", "--out", str(tmp_path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "'huge'" in err and "quick or full" in err


def test_module_entry_point_matches_pyproject():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["mtl-tl"] == "mtl_tl.__main__:main"
