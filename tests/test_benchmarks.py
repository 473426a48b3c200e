"""Smoke test: every benchmark runs at a tiny size and writes its JSON (no timing asserts)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmarks_run_at_tiny_size(tmp_path):
    out = tmp_path / "results.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--tiny", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert set(result["machine"]) >= {"cores", "torch", "device"}
    names = {f["name"] for f in result["figures"]}
    for expected in ("engine_throughput_ratio", "data_speedup_digits16", "mtl_time_ratio_shared_vs_separate",
                     "mtl_overhead_pcgrad_vs_equal", "book_notebooks_total_s",
                     "scaling_data_time_per_example_ratio"):
        assert expected in names
    for figure in result["figures"]:
        assert figure["value"] > 0 and isinstance(figure["met"], bool) and figure["target"]
    book = next(f for f in result["figures"] if f["name"] == "book_notebooks_total_s")
    assert all(v["passed"] for v in book["per_notebook"].values())


def test_benchmark_rejects_bad_options(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--only", "warp"],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 2 and "invalid choice: 'warp'" in done.stderr


def test_gpu_benchmark_path_runs_on_the_cpu(tmp_path):
    # The GPU benchmark only runs where a device is lent; this keeps its code path working.
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--gpu", "--tiny", "--device", "cpu",
                           "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = {f["name"]: f for f in json.loads(out.read_text())["figures"]}
    assert set(figures) == {"gpu_resnet18_images_per_s_amp0_cl0", "gpu_resnet18_images_per_s_amp0_cl1"}
    assert all(f["images"] == 256 and f["value"] > 0 and f["device"] == "cpu" for f in figures.values())
