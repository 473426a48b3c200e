"""The engine's loop, unchanged, under torchrun with 2 CPU processes (gloo)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_train.py")


def _run(cmd: list[str], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "MTL_TL_QUIET": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(key, None)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_two_processes_match_one(tmp_path):
    _run([sys.executable, str(SCRIPT), str(tmp_path)], tmp_path)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
          str(SCRIPT), str(tmp_path)], tmp_path)
    single = json.loads((tmp_path / "result-1-rank0.json").read_text())
    rank0 = json.loads((tmp_path / "result-2-rank0.json").read_text())
    rank1 = json.loads((tmp_path / "result-2-rank1.json").read_text())
    # DDP keeps replicas identical, and they match one process with the same global batches.
    assert torch.allclose(torch.tensor(rank0["weights"]), torch.tensor(rank1["weights"]), atol=0)
    assert torch.allclose(torch.tensor(single["weights"]), torch.tensor(rank0["weights"]), atol=1e-4)
    for a, b in zip(single["records"], rank0["records"]):
        assert (a["epoch"], a["split"], a["task"]) == (b["epoch"], b["split"], b["task"])
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-4)
        assert a["metric"] == pytest.approx(b["metric"], abs=2e-3)
    assert single["examples"] == rank0["examples"]
    # Checkpoints are written by rank 0 only, once per run.
    assert sorted(p.name for p in tmp_path.glob("ckpt-*.pt")) == ["ckpt-1.pt", "ckpt-2.pt"]
