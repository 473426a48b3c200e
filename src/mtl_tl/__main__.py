"""The command line: ``python -m mtl_tl COMMAND ...`` (also installed as ``mtl-tl``).

Commands:

``study``
    Run chapter 4.3's head-to-head study of scratch training, transfer learning,
    feature extraction, sequential training and joint (multi-task) training, and write
    its tables to a folder. ``python -m mtl_tl study --help`` lists every option.

Example:
    python -m mtl_tl study --profile full --out results/
    python -m mtl_tl study --methods scratch,transfer,joint --ks 1,5 --seeds 0-4 --out runs/a1
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .study import StudyConfig

__all__ = ["build_parser", "main"]

_SEPARATOR = ","


def _items(text: str, option: str) -> list[str]:
    items = [t.strip() for t in text.split(_SEPARATOR)]
    if not text.strip() or any(not t for t in items):
        raise argparse.ArgumentTypeError(f"{option}: give a comma-separated list without empty items, got {text!r}")
    return items


def _methods(text: str) -> tuple[str, ...]:
    from .study import METHODS

    items = _items(text, "--methods")
    unknown = [m for m in items if m not in METHODS]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown method(s) {', '.join(unknown)}; accepted: {', '.join(METHODS)}"
        )
    if len(set(items)) != len(items):
        raise argparse.ArgumentTypeError(f"a method is repeated in {text!r}; give each once")
    return tuple(items)


def _int(text: str, option: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{option}: {text!r} is not an integer") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{option}: {value} is below the smallest accepted value, {minimum}")
    return value


def _ks(text: str) -> tuple[int, ...]:
    values = tuple(_int(t, "labels per class", 1) for t in _items(text, "--ks"))
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"a k is repeated in {text!r}; give each once")
    return values


def _relatedness(text: str) -> tuple[str | float, ...]:
    from .study import RELATEDNESS

    accepted = f"accepted: {', '.join(RELATEDNESS)} or a number in [0, 1]"
    values: list[str | float] = []
    for item in _items(text, "--relatedness"):
        if item in RELATEDNESS:
            values.append(item)
            continue
        try:
            number = float(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"unknown relatedness {item!r}; {accepted}") from None
        if not 0.0 <= number <= 1.0:
            raise argparse.ArgumentTypeError(f"relatedness {item} is outside [0, 1]; {accepted}")
        values.append(number)
    return tuple(values)


def _seeds(text: str) -> tuple[int, ...]:
    seeds: list[int] = []
    for item in _items(text, "--seeds"):
        if "-" in item.strip("-"):
            low, high = item.split("-", 1)
            a, b = _int(low, "--seeds", 0), _int(high, "--seeds", 0)
            if b < a:
                raise argparse.ArgumentTypeError(f"--seeds: the range {item!r} is empty; write low-high, e.g. 0-4")
            seeds.extend(range(a, b + 1))
        else:
            seeds.append(_int(item, "--seeds", 0))
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds: a seed is repeated in {text!r}; give each once")
    return tuple(seeds)


def _positive_int(option: str, minimum: int = 1):
    def parse(text: str) -> int:
        return _int(text, option, minimum)

    parse.__name__ = option.lstrip("-").replace("-", "_")
    return parse


def _device(text: str) -> str:
    import torch

    from .config import DEVICES

    try:
        kind = torch.device(text.strip().lower()).type
    except RuntimeError:
        kind = None
    if kind not in DEVICES:
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; accepted: {', '.join(DEVICES)} (e.g. cuda:1)")
    return text.strip().lower()


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--lr: {text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"--lr: {text} must be a finite number > 0")
    return value


def _study_parser(commands: argparse._SubParsersAction, quick: StudyConfig) -> argparse.ArgumentParser:
    """The ``study`` subcommand with its description and examples, before its options."""
    return commands.add_parser(
        "study",
        help="run the head-to-head study of chapter 4.3 and write its tables",
        description=(
            "Compare scratch training, transfer learning (pretrain + fine-tune), feature "
            "extraction, sequential training (the article's schedule) and joint multi-task "
            "training on one target task, across target labels per class (--ks) and "
            "source-target relatedness (--relatedness), over several seeds (chapter 4.3). "
            "Writes results.csv (tidy, one row per run and metric), results.json (the same "
            "with the configuration), summary.csv (mean, std, n over seeds), "
            "decision_table.csv (the winner of each cell) and rules.md (the rules of thumb "
            "the numbers support) to --out. Options not given take the --profile's values."
        ),
        epilog=(
            "examples:\n"
            "  python -m mtl_tl study --profile full --out results/\n"
            "  python -m mtl_tl study --methods scratch,transfer,joint --ks 1,5 --seeds 0-4 --out runs/a1\n"
            f"quick profile: methods {','.join(quick.methods)}; ks {','.join(map(str, quick.ks))}; "
            f"relatedness {','.join(map(str, quick.relatedness))}; seeds {','.join(map(str, quick.seeds))}; "
            f"epochs {quick.epochs}; image size {quick.image_size}; n-source {quick.n_source}; "
            f"width {quick.width}; batch size {quick.batch_size}; lr {quick.lr:g}; label {quick.label}."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _add_grid_options(p: argparse.ArgumentParser, quick: StudyConfig, full: StudyConfig) -> None:
    """The profile, and what the study compares: methods, ks, relatedness, seeds, budget."""
    from .study import BUDGETS, METHODS, RELATEDNESS

    profile_default = os.environ.get("MTL_TL_PROFILE", "quick").strip().lower() or "quick"
    p.add_argument("--profile", choices=("quick", "full"), default=profile_default,
                   help="preset sizes: quick (a CPU, about a minute) or full (a GPU); "
                        f"default: $MTL_TL_PROFILE or quick (now: {profile_default})")
    p.add_argument("--methods", type=_methods, metavar="LIST",
                   help=f"comma-separated methods, from: {', '.join(METHODS)}; default: all five")
    p.add_argument("--ks", type=_ks, metavar="LIST",
                   help="comma-separated target labels per class, each >= 1, e.g. 1,5,20; "
                        f"default: the profile's (quick: {','.join(map(str, quick.ks))}; "
                        f"full: {','.join(map(str, full.ks))})")
    p.add_argument("--relatedness", type=_relatedness, metavar="LIST",
                   help=f"comma-separated target domains: presets {', '.join(RELATEDNESS)} or shift "
                        "strengths in [0, 1] (0: the source's domain, 1: unrelated); "
                        "default: near,far,unrelated")
    p.add_argument("--seeds", type=_seeds, metavar="LIST",
                   help="comma-separated seeds >= 0 or ranges, e.g. 0,1,2 or 0-4; "
                        "default: the profile's (quick: 0-2; full: 0-4)")
    p.add_argument("--epochs", type=_positive_int("--epochs"), metavar="N",
                   help="passes over the source training set per phase; sets the step budget "
                        "S = epochs * ceil(n_source / batch_size); default: the profile's "
                        f"(quick: {quick.epochs}; full: {full.epochs})")
    p.add_argument("--budget", choices=BUDGETS, default=None,
                   help="equal optimiser steps for every method (steps) or equal batches drawn "
                        "(batches); default: steps")


def _add_size_options(p: argparse.ArgumentParser, quick: StudyConfig, full: StudyConfig) -> None:
    """The task, the data and the network: label, image size, set sizes, width, norm, batch, lr."""
    from .study import LABELS, NORMS

    p.add_argument("--label", choices=tuple(LABELS), default=None,
                   help=f"the task: classify the shape or the colour; default: the profile's ({quick.label})")
    p.add_argument("--image-size", type=_positive_int("--image-size", 16), metavar="PX",
                   help="image side in pixels, >= 16; default: the profile's "
                        f"(quick: {quick.image_size}; full: {full.image_size})")
    p.add_argument("--n-source", type=_positive_int("--n-source"), metavar="N",
                   help="labelled source training images; default: the profile's "
                        f"(quick: {quick.n_source}; full: {full.n_source})")
    p.add_argument("--n-target-test", type=_positive_int("--n-target-test"), metavar="N",
                   help="images in each test set (target and source); default: the profile's "
                        f"(quick: {quick.n_target_test}; full: {full.n_target_test})")
    p.add_argument("--width", type=_positive_int("--width"), metavar="C",
                   help="channels of the backbone's first block; default: the profile's "
                        f"(quick: {quick.width}; full: {full.width})")
    p.add_argument("--norm", choices=NORMS, default=None,
                   help="normalisation layers of the backbone; default: none")
    p.add_argument("--batch-size", type=_positive_int("--batch-size"), metavar="B",
                   help="examples per batch and task; default: the profile's (quick: "
                        f"{quick.batch_size}; full: {full.batch_size})")
    p.add_argument("--lr", type=_positive_float, metavar="LR",
                   help="Adam learning rate of every method; default: the profile's "
                        f"(quick: {quick.lr:g}; full: {full.lr:g})")


def _add_output_options(p: argparse.ArgumentParser) -> None:
    """Where it runs and what it shows and writes: device, output folder, progress."""
    p.add_argument("--device", type=_device, default=None, metavar="DEVICE",
                   help="cpu, cuda, cuda:N or mps; default: $MTL_TL_DEVICE, else the first of "
                        "cuda, mps, cpu available")
    p.add_argument("--out", type=Path, default=Path("results"), metavar="DIR",
                   help="folder for results.csv, results.json, summary.csv, decision_table.csv "
                        "and rules.md (created if missing); default: results")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--quiet", action="store_true",
                       help="print only the paths written: no progress bar, no tables")
    shown.add_argument("--progress", action="store_true",
                       help="show a progress bar over runs even under CI or MTL_TL_QUIET "
                            "(default: shown unless MTL_TL_QUIET=1 or CI is set)")


def _add_study(commands: argparse._SubParsersAction) -> None:
    from .study import StudyConfig

    quick, full = StudyConfig.quick(), StudyConfig.full()
    p = _study_parser(commands, quick)
    _add_grid_options(p, quick, full)
    _add_size_options(p, quick, full)
    _add_output_options(p)
    p.set_defaults(run=_run_study, parser=p)


def build_parser() -> argparse.ArgumentParser:
    """The ``mtl_tl`` argument parser, one subcommand per task (``study`` for now)."""
    parser = argparse.ArgumentParser(
        prog="python -m mtl_tl",
        description="Command line of the book Transfer Learning vs Multi-Task Learning.",
    )
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)
    _add_study(commands)
    return parser


_OPTION_FIELDS = {
    "methods": "methods", "ks": "ks", "relatedness": "relatedness", "seeds": "seeds",
    "epochs": "epochs", "budget": "budget", "label": "label", "image_size": "image_size",
    "n_source": "n_source", "n_target_test": "n_target_test", "width": "width", "norm": "norm",
    "batch_size": "batch_size", "lr": "lr", "device": "device",
}


def _run_study(args: argparse.Namespace) -> int:
    import dataclasses

    import pandas as pd

    from .config import get_device
    from .study import StudyConfig, rules_markdown, run_study

    if args.profile not in ("quick", "full"):  # a bad $MTL_TL_PROFILE default escapes argparse's choices
        args.parser.error(f"--profile (from $MTL_TL_PROFILE) {args.profile!r} is not accepted; choose quick or full")
    base = StudyConfig.quick() if args.profile == "quick" else StudyConfig.full()
    changes = {field: getattr(args, option) for option, field in _OPTION_FIELDS.items()
               if getattr(args, option) is not None}
    try:
        config = dataclasses.replace(base, **changes)
        get_device(config.device)
    except (ValueError, TypeError) as error:
        args.parser.error(str(error))  # exits with status 2, like any bad option

    progress = True if args.progress else (False if args.quiet else None)
    say = (lambda *a: None) if args.quiet else print
    say(f"study: {config.runs} runs ({len(config.relatedness)} relatedness x {len(config.ks)} k x "
        f"{len(config.methods)} methods x {len(config.seeds)} seeds), "
        f"{config.steps_per_phase} steps per phase, budget={config.budget}")
    result = run_study(config, progress=progress)

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    rules = result.rules()
    written = [
        result.to_csv(out / "results.csv"),
        result.to_json(out / "results.json"),
    ]
    result.summary.to_csv(out / "summary.csv", index=False)
    result.decision_table().to_csv(out / "decision_table.csv", index=False)
    header = (f"# Rules of thumb from the study\n\n{config.runs} runs; label {config.label}; "
              f"ks {list(config.ks)}; relatedness {list(config.relatedness)}; seeds {list(config.seeds)}; "
              f"budget {config.budget}, {config.steps_per_phase} steps per phase.\n\n")
    (out / "rules.md").write_text(header + rules_markdown(rules), encoding="utf-8")
    written += [out / "summary.csv", out / "decision_table.csv", out / "rules.md"]

    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.max_colwidth", 60):
        say("\ntarget accuracy, mean ± std over seeds:")
        say(result.pivot("target_accuracy").to_string())
        say("\ndecision table:")
        say(result.decision_table()[["relatedness", "k", "winner", "margin", "margin_se", "clear"]]
            .to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        say("\nrules of thumb:")
        say(rules_markdown(rules))
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); returns the exit status.

    Bad options exit with status 2 and a message that names the option and the
    accepted values (argparse's convention).
    """
    parser = build_parser()
    args = parser.parse_args(None if argv is None else list(argv))
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
