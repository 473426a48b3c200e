"""The MNIST <-> USPS protocol on the CPU, printed beside the published numbers (chapters 4.1 and 5).

Usage::

    python benchmarks/digits_protocol.py --root ../shared/data-copy --pair "mnist->usps" --mnist-pool test

``--root`` is a data folder laid out as torchvision reads it (MNIST's files extracted
under ``MNIST/raw``). Where only MNIST's test files are at hand, ``--mnist-pool test``
draws the MNIST images from one fixed half of the test split and evaluates on the other
(:func:`mtl_tl.digits.protocol_data`); the printed header says which split was used.
Every seed's numbers go to a CSV in ``--out``. One PyTorch thread, CPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from mtl_tl.config import setup
from mtl_tl.digits import MNIST_POOLS, PAIRS, PROTOCOL_METHODS, beside_published, protocol_data, run_protocol
from mtl_tl.experiments import run_seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="data folder (torchvision's layout)")
    parser.add_argument("--pair", choices=PAIRS, required=True)
    parser.add_argument("--mnist-pool", choices=MNIST_POOLS, default="train")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--methods", nargs="+", choices=PROTOCOL_METHODS, default=list(PROTOCOL_METHODS))
    parser.add_argument("--out", default=".", help="folder for the per-seed CSV")
    args = parser.parse_args()
    cfg = setup(profile="quick", threads=1)
    print(f"{args.pair}: MNIST drawn from its {args.mnist_pool} split; {args.seeds} seeds from {cfg.seed}; "
          f"{args.epochs} epochs; methods {args.methods}")
    start = time.perf_counter()

    def one_seed(seed: int) -> dict[str, float]:
        data = protocol_data(args.pair, seed, root=args.root, mnist_pool=args.mnist_pool, download=False)
        return run_protocol(seed, data, methods=tuple(args.methods), epochs=args.epochs, batch_size=64, device="cpu")

    results = run_seeds(one_seed, cfg.seeds(args.seeds), progress=False)
    name = f"digits_protocol_{args.pair.replace('->', '_to_')}_seed{cfg.seed}.csv"
    results.to_csv(Path(args.out) / name, index=False)
    print(beside_published(results, args.pair).to_markdown(disable_numparse=True))
    print(f"time: {time.perf_counter() - start:.0f} s, torch {torch.__version__}, 1 thread")


if __name__ == "__main__":
    main()
