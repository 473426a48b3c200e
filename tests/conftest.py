"""Test-session settings: offline, quiet, deterministic."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

os.environ.setdefault("MTL_TL_QUIET", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

_real_connect = socket.socket.connect


def _is_local(address: object) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX path
        return True
    host = address[0] if isinstance(address, tuple) and address else ""
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _guarded_connect(self: socket.socket, address: object) -> None:
    # The quick profile must never download: any connection off this machine fails
    # the test that made it, loudly, instead of hanging on a missing network.
    if not _is_local(address):
        raise RuntimeError(f"tests run offline, but something tried to connect to {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MTL_TL_PROFILE", "MTL_TL_DEVICE", "MTL_TL_SEED_BASE", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # The tests' models are tiny: one thread avoids oversubscribing a 2-core machine.
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
