"""The MNIST <-> USPS protocol on the CPU, printed beside the published numbers (chapters 4.1 and 5).

Usage: ``python benchmarks/digits_protocol.py ROOT PAIR [SEEDS] [EPOCHS]`` with ROOT a data
folder laid out as torchvision reads it. Where ROOT holds only MNIST's test files (as
``../shared/data`` does), the script draws MNIST from the test split (``mnist_pool="test"``)
and says so. Writes a CSV of every seed's numbers next to the printed table.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from mtl_tl.config import setup
from mtl_tl.digits import beside_published, protocol_data, run_protocol
from mtl_tl.experiments import run_seeds


def main(root: str, pair: str, n_seeds: int = 5, epochs: int = 20) -> None:
    cfg = setup(profile="quick", threads=1)
    mnist_pool = "train" if (Path(root) / "MNIST/raw/train-images-idx3-ubyte").stat().st_size > 10**6 else "test"
    print(f"{pair}: MNIST drawn from its {mnist_pool} split; {n_seeds} seeds from {cfg.seed}; {epochs} epochs")
    start = time.perf_counter()

    def one_seed(seed: int) -> dict[str, float]:
        data = protocol_data(pair, seed, root=root, mnist_pool=mnist_pool, download=False)
        return run_protocol(seed, data, epochs=epochs, batch_size=64, device="cpu")

    results = run_seeds(one_seed, cfg.seeds(n_seeds), progress=False)
    results.to_csv(f"digits_protocol_{pair.replace('->', '_to_')}.csv", index=False)
    print(beside_published(results, pair).to_markdown(disable_numparse=True))
    print(f"time: {time.perf_counter() - start:.0f} s, torch {torch.__version__}, 1 thread")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))
