"""`make gpu-check`: every notebook in both profiles on a CUDA GPU, the GPU benchmark, one table.

The book's claims are asserted in the notebooks, and `make test` executes them on the CPU
in the quick profile only. A reader on Colab or a lab GPU runs the same notebooks on
CUDA, often in the full profile. This script runs that configuration:

1. every notebook of `_toc.yml`, in the quick and the full profile, under nbmake, on the
   GPU (`MTL_TL_DEVICE=cuda`), each in its own pytest process on a copy under
   `_gpu_check/<profile>/`, at most `--workers` at once, their starts `--stagger` seconds
   apart (kernels started together collide on their ZMQ ports);
2. `benchmarks/run.py --gpu` (ResNet-18 images per second, fp32 / AMP / channels-last);
3. one table (notebook, profile, seconds, passed) with the date, the GPU and torch's
   version, written between two markers in `benchmarks/RESULTS.md` (replaced on each run)
   and printed.

The full profile downloads its data into `MTL_TL_DATA` (default `./data`) unless the
files are there: point `--data` at a copy to run offline. Times measured with several
notebooks on one GPU at once are upper bounds for one notebook alone; `--workers 1`
measures them alone.

    python scripts/gpu_check.py                        # both profiles, 3 at a time
    python scripts/gpu_check.py --profiles full --workers 1 --data /path/to/data
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from toc_notebooks import toc_notebooks  # noqa: E402

START = "<!-- gpu-check:start -->"
END = "<!-- gpu-check:end -->"
PROFILES = ("quick", "full")


@dataclass
class Run:
    """One notebook in one profile: how long its nbmake process took and whether it passed."""

    notebook: str
    profile: str
    seconds: float
    passed: bool
    log: Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", nargs="+", choices=PROFILES, default=list(PROFILES))
    parser.add_argument("--workers", type=int, default=3, help="notebooks at once (default 3)")
    parser.add_argument("--stagger", type=float, default=5.0, help="seconds between kernel starts")
    parser.add_argument("--timeout", type=int, default=900, help="nbmake's limit per notebook, seconds")
    parser.add_argument("--data", type=Path, help="data folder for the full profile (sets MTL_TL_DATA)")
    parser.add_argument("--only", nargs="+", help="notebooks whose path contains one of these words")
    parser.add_argument("--skip-bench", action="store_true", help="do not run benchmarks/run.py --gpu")
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu only to test this script")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--work", type=Path, default=ROOT / "_gpu_check", help="copies and logs go here")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, got {args.workers}")
    if args.stagger < 0 or args.timeout < 1:
        parser.error("--stagger must be >= 0 and --timeout >= 1")
    if args.data is not None and not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder")
    return args


def device_name(device: str) -> str:
    """The GPU's name, e.g. "NVIDIA H200"; stops with a message when CUDA is missing."""
    import torch

    if device == "cpu":
        return "CPU (a test of this script, not a GPU check)"
    if not torch.cuda.is_available():
        sys.exit("gpu-check needs a CUDA GPU, and torch.cuda.is_available() is False here. "
                 "Run it on a GPU machine (e.g. a Colab GPU runtime) or use `make test` on the CPU.")
    return torch.cuda.get_device_name(0)


def notebook_jobs(args: argparse.Namespace) -> list[tuple[Path, str]]:
    """(copy of the notebook to run, profile) for every notebook and profile asked for."""
    notebooks = [nb for nb in toc_notebooks()
                 if not args.only or any(word in str(nb.relative_to(ROOT)) for word in args.only)]
    if not notebooks:
        sys.exit(f"no notebook of _toc.yml matches --only {args.only}")
    jobs = []
    for profile in args.profiles:
        for nb in notebooks:
            copy = args.work / profile / nb.relative_to(ROOT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(nb, copy)
            jobs.append((copy, profile))
    return jobs


def start(copy: Path, profile: str, args: argparse.Namespace) -> tuple[subprocess.Popen, float, Path]:
    env = {**os.environ, "MTL_TL_PROFILE": profile, "MTL_TL_DEVICE": args.device,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    if args.data is not None:
        env["MTL_TL_DATA"] = str(args.data.resolve())
    log = copy.with_suffix(".log")
    # The notebook runs in its own folder, so relative paths (./data) mean the same as for a reader.
    cmd = [sys.executable, "-m", "pytest", "--nbmake", f"--nbmake-timeout={args.timeout}", "-q", copy.name]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=copy.parent, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, time.perf_counter(), log


def run_notebooks(jobs: list[tuple[Path, str]], args: argparse.Namespace) -> list[Run]:
    """Run the jobs, at most ``args.workers`` at once, starts ``args.stagger`` seconds apart."""
    pending, running, done = list(jobs), [], []
    last_start = -float("inf")
    while pending or running:
        for item in list(running):
            (copy, profile), (proc, began, log) = item
            if proc.poll() is not None:
                running.remove(item)
                name = str(copy.relative_to(args.work / profile))
                done.append(Run(name, profile, time.perf_counter() - began, proc.returncode == 0, log))
                print(f"{'passed' if proc.returncode == 0 else 'FAILED'}  {profile:5s}  "
                      f"{done[-1].seconds:7.1f} s  {name}", flush=True)
        if pending and len(running) < args.workers and time.perf_counter() - last_start >= args.stagger:
            job = pending.pop(0)
            running.append((job, start(*job, args)))
            last_start = time.perf_counter()
        time.sleep(0.2)
    return done


def run_benchmark(args: argparse.Namespace) -> tuple[bool, Path]:
    # A real GPU run is kept (benchmarks/results_gpu.json); a CPU test of the script is not.
    out = args.work / "results_gpu.json" if args.device == "cpu" else ROOT / "benchmarks" / "results_gpu.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--gpu", "--device", args.device, "--out", str(out)]
    if args.device == "cpu":
        cmd.append("--tiny")
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode == 0, out


def benchmark_lines(ok: bool, out: Path) -> list[str]:
    """The GPU benchmark's figures (images per second) as Markdown list items."""
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    lines = [f"`benchmarks/run.py --gpu`: {'passed' if ok else '**failed**'}; figures in `{shown}`:"]
    if out.exists():
        for fig in json.loads(out.read_text(encoding="utf-8"))["figures"]:
            lines.append(f"- {fig['name']}: {fig['value']:,.0f} (batch {fig.get('batch_size', '?')})")
    return lines


def table(runs: list[Run], header: str, bench: str) -> str:
    """The Markdown section that goes between the markers of RESULTS.md."""
    rows = ["| notebook | profile | seconds | passed |", "|---|---|---|---|"]
    rows += [f"| {r.notebook} | {r.profile} | {r.seconds:.0f} | {'yes' if r.passed else '**no**'} |"
             for r in sorted(runs, key=lambda r: (r.notebook, PROFILES.index(r.profile)))]
    return "\n".join([START, header, "", *rows, "", bench, END])


def write_results(path: Path, section: str) -> None:
    """Put ``section`` between the markers in ``path``, or append it with a heading."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    if START in text and END in text:
        before, rest = text.split(START, 1)
        text = before + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## GPU check (`make gpu-check`)\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    gpu = device_name(args.device)
    import torch

    shutil.rmtree(args.work, ignore_errors=True)
    runs = run_notebooks(notebook_jobs(args), args)
    bench_ok, bench_out = (True, None) if args.skip_bench else run_benchmark(args)
    bench = ("GPU benchmark not run (--skip-bench)." if bench_out is None
             else "\n".join(benchmark_lines(bench_ok, bench_out)))
    header = (f"{dt.date.today().isoformat()}, {gpu}, torch {torch.__version__}, "
              f"{args.workers} notebook(s) at once (times with more than one at once are upper bounds).")
    section = table(runs, header, bench)
    write_results(args.results, section)
    print(section)
    failed = [r for r in runs if not r.passed]
    for r in failed:
        print(f"FAILED {r.profile} {r.notebook}: see {r.log}", file=sys.stderr)
    return 1 if failed or not bench_ok else 0


if __name__ == "__main__":
    sys.exit(main())
