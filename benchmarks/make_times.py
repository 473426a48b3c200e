"""Time `make test` and `make book` step by step from a fresh clone, as the README states them.

    python benchmarks/make_times.py                               # this repository's HEAD
    python benchmarks/make_times.py --rev caffea6 --out before.json   # another commit
    python benchmarks/make_times.py --venv .venv                  # without the set-up

Clones the repository into a temporary folder and times, in order: ``make setup``; the
steps of ``make test`` one by one (unit, check-notebooks, sites, browser: what ``make test``
runs; for an older commit, notebooks, robust, site and student, as far as its Makefile
has them); ``make book`` right after them, which reuses their execution; then, with
the built site and the executed notebooks removed, ``make book`` again: a first ``make
book`` after set-up. Absolute times follow the machine's load: for a before/after, run
this for both commits one after the other and compare. Prints a table and writes JSON.

``--venv`` skips the set-up (the slow part of which is pip): the clone uses that
environment, with its own ``src`` first on PYTHONPATH so that it imports its own package.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_STEPS = ("unit", "check-notebooks", "sites", "browser")
# What an older commit's make test ran instead (robust only once it existed).
OLD_STEPS = {"check-notebooks": ("notebooks", "robust"), "sites": ("site", "student")}


def make(clone: Path, target: str, env: dict, logs: Path, options: tuple[str, ...] = ()) -> dict:
    """Run ``make target`` in ``clone``; its wall time, exit status and log file."""
    log = logs / f"{len(list(logs.iterdir())):02d}_{target}.log"
    start = time.perf_counter()
    with log.open("w") as out:
        rc = subprocess.run(["make", *options, target], cwd=clone, env=env, stdout=out,
                            stderr=subprocess.STDOUT).returncode
    seconds = time.perf_counter() - start
    print(f"  {seconds:7.1f} s  rc={rc}  make {target}", flush=True)
    return {"step": f"make {target}", "seconds": round(seconds, 1), "rc": rc, "log": str(log)}


def has_target(clone: Path, target: str) -> bool:
    """Whether the clone's Makefile defines ``target`` (``make -n`` exits with 2 when it does not)."""
    return subprocess.run(["make", "-n", target], cwd=clone, capture_output=True).returncode != 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rev", default="HEAD", help="the commit to clone and time (default HEAD)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "make_times.json",
                        help="where to write the JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the clone (with its .venv) afterwards")
    parser.add_argument("--venv", type=Path, help="use this virtual environment instead of timing make setup")
    args = parser.parse_args(argv)

    commit = subprocess.run(["git", "rev-parse", "--short", args.rev], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()
    work = Path(tempfile.mkdtemp(prefix="mtl_tl_make_times_"))
    clone, logs = work / "clone", work / "logs"
    logs.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    subprocess.run(["git", "checkout", "--quiet", "--detach", commit], cwd=clone, check=True)
    # The clone's own .venv and package only: nothing from the caller's environment.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MTL_TL_PROFILE")}
    options: tuple[str, ...] = ()
    steps = []
    print(f"timing {commit} in {clone} (load average {os.getloadavg()[0]:.1f})", flush=True)
    if args.venv:
        (clone / ".venv").symlink_to(args.venv.resolve())
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(clone / "src"), os.environ.get("PYTHONPATH")]))
        options = ("-o", ".venv/.installed")  # never re-run the set-up into the borrowed environment
    else:
        steps.append(make(clone, "setup", env, logs))
    targets = []
    for step in TEST_STEPS:
        older = [t for t in OLD_STEPS.get(step, ()) if has_target(clone, t)]
        targets += [step] if has_target(clone, step) else older
    steps += [make(clone, target, env, logs, options) for target in targets]
    test_s = sum(s["seconds"] for s in steps)
    steps.append(make(clone, "book", env, logs, options) | {"step": "make book (after make test)"})
    for built in ("_build", "_nbmake", ".jupyter_cache"):
        shutil.rmtree(clone / built, ignore_errors=True)
    steps.append(make(clone, "book", env, logs, options) | {"step": "make book (first, after set-up)"})

    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
              "cores": os.cpu_count(), "load_average_after": round(os.getloadavg()[0], 2),
              "setup_timed": not args.venv, "make_test_s": round(test_s, 1), "steps": steps}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n| step | seconds |\n|---|---|")
    for step in steps:
        print(f"| {step['step']} | {step['seconds']}{'' if step['rc'] == 0 else ' (FAILED)'} |")
    what = f"its {len(targets)} steps" if args.venv else f"set-up and its {len(targets)} steps"
    print(f"| make test ({what}) | {test_s:.1f} |")
    print(f"wrote {args.out}; logs in {logs}")
    if not args.keep:
        shutil.rmtree(clone, ignore_errors=True)
    return 0 if all(s["rc"] == 0 for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
