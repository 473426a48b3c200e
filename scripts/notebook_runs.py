"""pytest plugin for the Makefile's nbmake runs: staggered kernel starts, and a seed base per folder.

**Staggered starts.** Each notebook's kernel gets free TCP ports for its ZMQ sockets just
before it starts: jupyter-client asks the system for a free port, closes it and hands the
number to the kernel. Two kernels started at the same instant by two pytest-xdist workers
can be handed the same port, and one of them dies with "Address already in use". The
workers' first notebooks are the ones that start at the same instant (a later notebook
starts when the worker's previous one ends), so worker N waits N * STAGGER_S seconds
before its first.

**A seed base per folder.** `make test` executes every notebook twice, once as the site
shows it (seed base 0, copies under _nbmake) and once with another seed base (copies
under _nbmake_robust), in one pytest session, so that neither worker waits for the other
between the two runs. With ``MTL_TL_ROBUST_DIR`` and ``MTL_TL_ROBUST_SEED_BASE`` set, a
notebook under that folder gets ``MTL_TL_SEED_BASE`` set to that base before its kernel
starts (the kernel inherits the worker's environment); every other notebook gets the
environment's own value back.

    python -m pytest -p scripts.notebook_runs -n 2 --nbmake ...
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

STAGGER_S = 3.0
"""Seconds between the workers' first kernel starts; a kernel takes about one to start."""

_started = False
_OWN_SEED_BASE = os.environ.get("MTL_TL_SEED_BASE")


def worker_index() -> int:
    """This pytest-xdist worker's number (gw0 -> 0), or 0 outside xdist."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def seed_base_for(path: Path) -> str | None:
    """The ``MTL_TL_SEED_BASE`` a notebook at ``path`` runs with (None: leave it unset)."""
    robust, base = os.environ.get("MTL_TL_ROBUST_DIR"), os.environ.get("MTL_TL_ROBUST_SEED_BASE")
    if robust and base is not None and Path(path).resolve().is_relative_to(Path(robust).resolve()):
        return base
    return _OWN_SEED_BASE


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _started
    if not _started:
        _started = True
        time.sleep(STAGGER_S * worker_index())
    base = seed_base_for(item.path)
    if base is None:
        os.environ.pop("MTL_TL_SEED_BASE", None)
    else:
        os.environ["MTL_TL_SEED_BASE"] = base
