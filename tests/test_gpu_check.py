"""scripts/gpu_check.py (`make gpu-check`): its arguments, its table and how it writes RESULTS.md.

The GPU run itself needs CUDA; these tests cover what can go wrong without one.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import gpu_check  # noqa: E402


def _runs(tmp_path: Path) -> list[gpu_check.Run]:
    return [
        gpu_check.Run("book/06_faq/faq.ipynb", "full", 61.4, True, tmp_path / "a.log"),
        gpu_check.Run("book/01_background/background.ipynb", "quick", 12.2, False, tmp_path / "b.log"),
    ]


def test_table_lists_every_run_sorted_with_failures_marked(tmp_path: Path) -> None:
    section = gpu_check.table(_runs(tmp_path), "HEADER", "BENCH")
    lines = section.splitlines()
    assert lines[0] == gpu_check.START and lines[-1] == gpu_check.END
    rows = [line for line in lines if line.startswith("| book/")]
    assert rows == ["| book/01_background/background.ipynb | quick | 12 | **no** |",
                    "| book/06_faq/faq.ipynb | full | 61 | yes |"]
    assert "HEADER" in section and "BENCH" in section


def test_write_results_appends_once_then_replaces(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\nearlier text\n", encoding="utf-8")
    gpu_check.write_results(results, gpu_check.table(_runs(tmp_path), "first run", ""))
    gpu_check.write_results(results, gpu_check.table(_runs(tmp_path)[:1], "second run", ""))
    text = results.read_text(encoding="utf-8")
    assert text.count(gpu_check.START) == 1 and text.count("## GPU check") == 1
    assert "second run" in text and "first run" not in text and "earlier text" in text
    assert "background.ipynb" not in text


def test_benchmark_lines_read_the_figures(tmp_path: Path) -> None:
    out = tmp_path / "results_gpu.json"
    out.write_text('{"figures": [{"name": "gpu_resnet18_images_per_s_amp1_cl1", "value": 33304.2, '
                   '"batch_size": 256}]}', encoding="utf-8")
    lines = gpu_check.benchmark_lines(True, out)
    assert lines[1] == "- gpu_resnet18_images_per_s_amp1_cl1: 33,304 (batch 256)"
    assert "**failed**" in gpu_check.benchmark_lines(False, tmp_path / "missing.json")[0]


@pytest.mark.parametrize("argv", [["--workers", "0"], ["--timeout", "0"], ["--profiles", "fast"],
                                  ["--data", "/no/such/folder"]])
def test_bad_arguments_stop_with_a_message(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as err:
        gpu_check.parse_args(argv)
    assert err.value.code == 2 and "error" in capsys.readouterr().err


def test_without_cuda_it_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="needs a CUDA GPU"):
        gpu_check.device_name("cuda")


def test_jobs_cover_every_notebook_in_each_profile(tmp_path: Path) -> None:
    args = gpu_check.parse_args(["--work", str(tmp_path), "--profiles", "quick", "full", "--only", "faq", "concepts"])
    jobs = gpu_check.notebook_jobs(args)
    assert sorted((copy.name, profile) for copy, profile in jobs) == [
        ("concepts.ipynb", "full"), ("concepts.ipynb", "quick"), ("faq.ipynb", "full"), ("faq.ipynb", "quick")]
    assert all(copy.is_file() and copy.is_relative_to(tmp_path) for copy, _ in jobs)
    with pytest.raises(SystemExit, match="no notebook"):
        gpu_check.notebook_jobs(gpu_check.parse_args(["--work", str(tmp_path), "--only", "no-such-chapter"]))
