"""Benchmarks of mtl_tl: engine overhead, data path, MTL cost, the book, scaling, GPU.

    python benchmarks/run.py                 # everything on this machine (make bench)
    python benchmarks/run.py --tiny          # every benchmark at a tiny size (smoke test)
    python benchmarks/run.py --only engine data
    python benchmarks/run.py --gpu           # the full profile's key steps on CUDA
    python benchmarks/run.py --gpu --tiny --device cpu   # the same code path, tiny, on the CPU

Absolute times are noisy on a shared 2-core machine; each figure is therefore a
*ratio* of two things measured side by side in the same run, interleaved and
repeated, taking the median. Results go to benchmarks/results.json (or --out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "scripts"))  # toc_notebooks, execution_cache
os.environ.setdefault("MTL_TL_QUIET", "1")

from mtl_tl.config import seed_everything  # noqa: E402
from mtl_tl.data import TensorData, TensorLoader, load_digits  # noqa: E402
from mtl_tl.engine import FitOptions, fit  # noqa: E402
from mtl_tl.models import SmallCNN, count_parameters, linear_head  # noqa: E402
from mtl_tl.multitask import make_strategy  # noqa: E402
from mtl_tl.synthetic import make_shapes  # noqa: E402
from mtl_tl.tasks import Task  # noqa: E402


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def side_by_side(a: Callable[[], object], b: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median times of ``a`` and ``b``, measured interleaved so that load hits both alike."""
    a(), b()
    ta, tb = [], []
    for _ in range(repeats):
        for fn, out in ((a, ta), (b, tb)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return statistics.median(ta), statistics.median(tb)


def figure(name: str, value: float, target: str, passed: bool, **details: object) -> dict:
    record = {"name": name, "value": round(value, 4), "target": target, "met": bool(passed), **details}
    flag = "ok  " if passed else "MISS"
    extra = ", ".join(f"{k}={v}" for k, v in details.items())
    print(f"[{flag}] {name}: {value:.3f} (target {target}){'  ' + extra if extra else ''}", flush=True)
    return record


# 1. Engine overhead -------------------------------------------------------------------

def bench_engine(tiny: bool) -> list[dict]:
    """mtl_tl.engine.fit against the shortest correct hand-written loop, same everything."""
    train, _ = load_digits(16)
    data = TensorData(train.x, train.y)
    steps = 10 if tiny else 80
    batch = 64

    def model() -> tuple[nn.Module, nn.Module]:
        seed_everything(0)
        trunk = SmallCNN(1, 16, 3)
        return trunk, linear_head(trunk.out_features, 10)

    def with_engine() -> None:
        trunk, head = model()
        task = Task("digit", head, train=data)
        fit(trunk, task, epochs=1, steps_per_epoch=steps, batch_size=batch, device="cpu", progress=False)

    def by_hand() -> None:
        trunk, head = model()
        net = nn.Sequential(trunk, head)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        loader = TensorLoader(data, batch, seed=0)
        it = iter(loader)
        net.train()
        for _ in range(steps):
            try:
                x, y = next(it)
            except StopIteration:
                it = iter(loader)
                x, y = next(it)
            loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    t_engine, t_hand = side_by_side(with_engine, by_hand, 2 if tiny else 7)
    ratio = t_hand / t_engine  # throughput of the engine relative to the hand loop
    return [figure("engine_throughput_ratio", ratio, ">= 0.95", ratio >= 0.95,
                   engine_s=round(t_engine, 4), hand_s=round(t_hand, 4), steps=steps)]


# 2. Data path -------------------------------------------------------------------------

def bench_data(tiny: bool) -> list[dict]:
    """One epoch of batches: TensorLoader against DataLoader(TensorDataset) defaults."""
    train, _ = load_digits(16)
    shapes = make_shapes(300 if tiny else 4000, size=32, seed=0)
    out = []
    for name, data in (("digits16", TensorData(train.x, train.y)), ("shapes32", TensorData(shapes.x, shapes.y["shape"]))):
        fast = TensorLoader(data, 64, seed=0)
        slow = DataLoader(TensorDataset(data.x, data.y), batch_size=64, shuffle=True)

        def epoch(loader: object) -> Callable[[], None]:
            def run() -> None:
                for x, y in loader:
                    x.sum()
            return run

        t_fast, t_slow = side_by_side(epoch(fast), epoch(slow), 2 if tiny else 7)
        speedup = t_slow / t_fast
        out.append(figure(f"data_speedup_{name}", speedup, ">= 3", speedup >= 3,
                          tensorloader_s=round(t_fast, 5), dataloader_s=round(t_slow, 5), n=len(data)))
    return out


# 3. MTL cost --------------------------------------------------------------------------

def _shapes_tasks(n: int, k: int) -> tuple[TensorData, list[str]]:
    data = make_shapes(n, size=32, seed=0)
    names = ["shape", "colour", "size"][:k]
    return data, names


def _task(name: str, trunk: nn.Module, data: TensorData) -> Task:
    if name == "size":
        return Task(name, linear_head(trunk.out_features, 1), train=data, loss="mse", metric="neg_mse")
    classes = int(data.y[name].max()) + 1
    return Task(name, linear_head(trunk.out_features, classes), train=data)


def bench_mtl(tiny: bool) -> list[dict]:
    """One shared model on K tasks vs K single-task models; strategy overheads."""
    out = []
    k = 3
    steps = 5 if tiny else 40
    data, names = _shapes_tasks(400 if tiny else 2000, k)

    def joint(strategy: str = "equal") -> Callable[[], None]:
        def run() -> None:
            seed_everything(0)
            trunk = SmallCNN(3, 16, 3)
            tasks = [_task(n, trunk, data) for n in names]
            fit(trunk, tasks, epochs=1, steps_per_epoch=steps, batch_size=64, device="cpu",
                strategy=make_strategy(strategy, tasks), progress=False)
        return run

    def separate() -> None:
        for n in names:
            seed_everything(0)
            trunk = SmallCNN(3, 16, 3)
            fit(trunk, _task(n, trunk, data), epochs=1, steps_per_epoch=steps, batch_size=64,
                device="cpu", progress=False)

    repeats = 2 if tiny else 5
    t_joint, t_sep = side_by_side(joint(), separate, repeats)
    seed_everything(0)
    trunk = SmallCNN(3, 16, 3)
    shared_params = count_parameters(trunk) + sum(count_parameters(_task(n, trunk, data).head) for n in names)
    separate_params = sum(count_parameters(SmallCNN(3, 16, 3)) + count_parameters(_task(n, trunk, data).head)
                          for n in names)
    ratio = t_joint / t_sep
    out.append(figure("mtl_time_ratio_shared_vs_separate", ratio, f"<= {1.25 / k:.3f} (1.25/K, K={k})",
                      ratio <= 1.25 / k, joint_s=round(t_joint, 4), separate_s=round(t_sep, 4)))
    out.append(figure("mtl_param_ratio_shared_vs_separate", shared_params / separate_params, "reported",
                      True, shared=shared_params, separate=separate_params))
    for strategy, target in (("uncertainty", None), ("gradnorm", None), ("pcgrad", k + 0.5)):
        t_strategy, t_equal = side_by_side(joint(strategy), joint("equal"), repeats)
        overhead = t_strategy / t_equal
        out.append(figure(f"mtl_overhead_{strategy}_vs_equal", overhead,
                          f"<= {target} (K + 0.5)" if target else "reported",
                          overhead <= target if target else True,
                          strategy_s=round(t_strategy, 4), equal_s=round(t_equal, 4)))
    return out


# 4. The book --------------------------------------------------------------------------

def bench_book(tiny: bool) -> list[dict]:
    """Wall time of every notebook (nbmake, one at a time, quick profile) and of a first site build."""
    from toc_notebooks import toc_notebooks

    if tiny:
        # The machinery on a one-cell notebook; the real book takes minutes.
        import nbformat

        probe = Path(os.environ.get("TMPDIR", "/tmp")) / "mtl_tl_bench_probe.ipynb"
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import mtl_tl\nprint(mtl_tl.__version__)")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, probe)
        notebooks = [probe]
    else:
        notebooks = toc_notebooks()
    python = sys.executable
    env = {**os.environ, "MTL_TL_PROFILE": "quick", "MPLBACKEND": "Agg"}
    per_notebook = {}
    for nb in notebooks:
        start = time.perf_counter()
        done = subprocess.run([python, "-m", "pytest", "--nbmake", "-q", "-p", "no:cacheprovider", str(nb)],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        per_notebook[str(nb.relative_to(ROOT)) if nb.is_relative_to(ROOT) else nb.name] = {"seconds": round(time.perf_counter() - start, 1),
                                                   "passed": done.returncode == 0}
    total = sum(v["seconds"] for v in per_notebook.values())
    out = [figure("book_notebooks_total_s", total, "<= 480 (8 min)", total <= 480 and all(
        v["passed"] for v in per_notebook.values()), per_notebook=per_notebook)]
    for path, v in per_notebook.items():
        print(f"    {v['seconds']:6.1f} s  {'ok' if v['passed'] else 'FAILED'}  {path}")
    if not tiny:
        out.append(bench_first_book(env))
    return out


def bench_first_book(env: dict) -> dict:
    """A first `make book` into an empty folder: nbmake executes copies of the notebooks
    two at a time (the Makefile's NB_WORKERS), their outputs go into that folder's
    execution cache, and the site build takes every output from there."""
    import tempfile

    import execution_cache
    from toc_notebooks import toc_notebooks

    name, target = "book_first_build_s", "<= 240 (a first make book after set-up, 4 min)"
    jb = Path(sys.executable).with_name("jupyter-book")
    with tempfile.TemporaryDirectory(prefix="mtl_tl_bench_site_") as build_dir:
        build = Path(build_dir)
        copies = execution_cache.write_copies(build / "_nbmake", toc_notebooks())
        start = time.perf_counter()
        ran = subprocess.run([sys.executable, "-m", "pytest", "--nbmake", "--overwrite", "-n", "2", "-q",
                              "-p", "scripts.notebook_runs", "-p", "no:cacheprovider", *map(str, copies)],
                             cwd=ROOT, env=env, capture_output=True, text=True)
        if ran.returncode != 0:
            print(ran.stdout[-3000:] + ran.stderr[-3000:])
            return figure(name, time.perf_counter() - start, target, False, failed="nbmake")
        execution_cache.store_all(build / "_nbmake", ROOT, build / "_build" / ".jupyter_cache")
        execute_s = time.perf_counter() - start
        start = time.perf_counter()
        done = subprocess.run([str(jb), "build", ".", "-n", "-W", "--keep-going", "--path-output", build_dir],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        site_s = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout[-3000:] + done.stderr[-3000:])
        return figure(name, execute_s + site_s, target, False, failed="site build")
    executed = execution_cache.executions_in(done.stdout + done.stderr)
    seconds = execute_s + site_s
    return figure(name, seconds, target, not executed and seconds <= 240,
                  nbmake_two_at_a_time_s=round(execute_s, 1), site_build_from_cache_s=round(site_s, 1),
                  executed_by_the_site_build=executed)


# 5. Scaling ---------------------------------------------------------------------------

def bench_scaling(tiny: bool) -> list[dict]:
    """Seconds per epoch as the data grows 1x/4x/16x and as the model widens."""
    base = 128 if tiny else 512
    sizes = [1, 4] if tiny else [1, 4, 16]
    out = []
    times = {}
    for factor in sizes:
        data = make_shapes(base * factor, size=32, seed=0)

        def epoch(d: TensorData = data) -> None:
            seed_everything(0)
            trunk = SmallCNN(3, 16, 3)
            fit(trunk, _task("shape", trunk, d), epochs=1, batch_size=64, device="cpu", progress=False)

        times[factor] = median_time(epoch, 1 if tiny else 3)
    per_example = {f: t / (base * f) for f, t in times.items()}
    linearity = per_example[sizes[-1]] / per_example[1]
    out.append(figure("scaling_data_time_per_example_ratio", linearity,
                      f"0.5..1.5 ({sizes[-1]}x data vs 1x: linear growth)", 0.5 <= linearity <= 1.5,
                      seconds_per_epoch={f"{f}x": round(t, 3) for f, t in times.items()}))
    widths = [8, 16] if tiny else [8, 16, 32, 64]
    data = make_shapes(base, size=32, seed=0)
    model_times = {}
    for width in widths:
        def epoch(w: int = width) -> None:
            seed_everything(0)
            trunk = SmallCNN(3, w, 3)
            fit(trunk, _task("shape", trunk, data), epochs=1, batch_size=64, device="cpu", progress=False)
        seed_everything(0)
        model_times[width] = (median_time(epoch, 1 if tiny else 3), count_parameters(SmallCNN(3, width, 3)))
    out.append(figure("scaling_model_time_ratio_widest_vs_narrowest",
                      model_times[widths[-1]][0] / model_times[widths[0]][0], "reported", True,
                      seconds_per_epoch={f"width{w}({p} params)": round(t, 3) for w, (t, p) in model_times.items()}))
    return out


# GPU ----------------------------------------------------------------------------------

def bench_gpu(tiny: bool, device: str = "cuda") -> list[dict]:
    """The full profile's key steps on CUDA: ResNet-18 fine-tuning, AMP and channels_last.

    ``device="cpu"`` runs the same steps without AMP (mtl_tl's AMP is CUDA-only), so
    that the smoke test keeps this path working on machines without a GPU.
    """
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA device; none is available here (use --device cpu to try the "
                         "same steps on the CPU)")
    from mtl_tl.models import resnet18_trunk

    out = []
    if tiny:
        n, batch, warmup = 256, 64, 1
    else:
        n, batch, warmup = 16384, 256, 5
    data = make_shapes(n, size=64, seed=0, device=device)
    data = TensorData(data.x, data.y["shape"])
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    configs = ((False, False), (True, False), (True, True)) if device == "cuda" else ((False, False), (False, True))
    # CUDA runs asynchronously: wait for the device before reading the clock.
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for amp, channels_last in configs:
        seed_everything(0)
        trunk = resnet18_trunk(weights=None)
        task = Task("shape", linear_head(512, int(data.y.max()) + 1), train=data)
        options = FitOptions(amp=amp, channels_last=channels_last)
        fit(trunk, task, epochs=1, steps_per_epoch=warmup, batch_size=batch, device=device, options=options,
            progress=False)
        sync()
        start = time.perf_counter()
        history = fit(trunk, task, epochs=1, batch_size=batch, device=device, options=options, progress=False)
        sync()
        seconds = time.perf_counter() - start
        out.append(figure(f"gpu_resnet18_images_per_s_amp{int(amp)}_cl{int(channels_last)}",
                          history.examples / seconds, "reported", True, images=history.examples,
                          seconds=round(seconds, 3), batch_size=batch, device=name))
    return out


BENCHMARKS = {"engine": bench_engine, "data": bench_data, "mtl": bench_mtl, "book": bench_book,
              "scaling": bench_scaling}


def machine() -> dict:
    return {
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "processor": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="run every benchmark at a tiny size (smoke test)")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), help="run only these benchmarks")
    parser.add_argument("--gpu", action="store_true", help="run the GPU benchmark (needs CUDA) instead")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                        help="device of --gpu (default cuda; cpu runs the same steps without AMP, for testing)")
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch CPU threads (default 1, as the book's quick profile uses)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.json",
                        help="where to write the JSON results (default: benchmarks/results.json)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    names = ["gpu"] if args.gpu else (args.only or list(BENCHMARKS))
    figures = []
    for name in names:
        print(f"== {name}", flush=True)
        figures += bench_gpu(args.tiny, args.device) if name == "gpu" else BENCHMARKS[name](args.tiny)
    result = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "tiny": args.tiny,
              "machine": machine(), "figures": figures}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    missed = [f["name"] for f in figures if not f["met"]]
    print(f"wrote {args.out}; {len(figures) - len(missed)} of {len(figures)} figures met their target"
          + (f"; missed: {', '.join(missed)}" if missed else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
