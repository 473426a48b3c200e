"""pytest plugin for `make notebooks`: parallel nbmake workers start their first kernels apart.

Each notebook's kernel gets free TCP ports for its ZMQ sockets just before it starts:
jupyter-client asks the system for a free port, closes it and hands the number to the
kernel. Two kernels started at the same instant by two pytest-xdist workers can be handed
the same port, and one of them dies with "Address already in use". The workers' first
notebooks are the ones that start at the same instant (a later notebook starts when the
worker's previous one ends), so worker N waits N * STAGGER_S seconds before its first.

    python -m pytest -p scripts.kernel_stagger -n 2 --nbmake ...
"""

from __future__ import annotations

import os
import time

import pytest

STAGGER_S = 3.0
"""Seconds between the workers' first kernel starts; a kernel takes about one to start."""

_started = False


def worker_index() -> int:
    """This pytest-xdist worker's number (gw0 -> 0), or 0 outside xdist."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    global _started
    if not _started:
        _started = True
        time.sleep(STAGGER_S * worker_index())
