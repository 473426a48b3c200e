import socket

import numpy as np
import pytest
import torch

from mtl_tl import config


def test_profile_default_env_and_argument(monkeypatch):
    assert config.get_profile() == "quick"
    monkeypatch.setenv("MTL_TL_PROFILE", "full")
    assert config.get_profile() == "full"
    assert config.get_profile("quick") == "quick"


def test_bad_profile_lists_accepted_values(monkeypatch):
    monkeypatch.setenv("MTL_TL_PROFILE", "fast")
    with pytest.raises(ValueError, match=r"MTL_TL_PROFILE='fast'.*quick, full"):
        config.get_profile()
    with pytest.raises(ValueError, match="quick, full"):
        config.get_profile("slow")


def test_device_default_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(config, "_mps_available", lambda: False)
    assert config.get_device() == torch.device("cpu")


def test_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert config.get_device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(config, "_mps_available", lambda: True)
    assert config.get_device().type == "mps"


def test_device_env_and_argument(monkeypatch):
    monkeypatch.setenv("MTL_TL_DEVICE", "cpu")
    assert config.get_device() == torch.device("cpu")
    assert config.get_device("CPU") == torch.device("cpu")
    assert config.get_device(torch.device("cpu")) == torch.device("cpu")


def test_cuda_request_without_cuda_says_so(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA is not available"):
        config.get_device("cuda")
    monkeypatch.setenv("MTL_TL_DEVICE", "cuda")
    with pytest.raises(ValueError, match="MTL_TL_DEVICE='cuda'.*CUDA is not available"):
        config.get_device()


def test_unknown_device_lists_accepted(monkeypatch):
    with pytest.raises(ValueError, match="cpu, cuda, mps"):
        config.get_device("tpu")
    monkeypatch.setattr(config, "_mps_available", lambda: False)
    with pytest.raises(ValueError, match="MPS is not available"):
        config.get_device("mps")
    with pytest.raises(TypeError, match="device must be"):
        config.get_device(3)


def test_seed_everything_repeats_all_generators():
    config.seed_everything(7)
    a = (torch.rand(3), np.random.rand(3))
    config.seed_everything(7)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    config.seed_everything(8)
    assert not torch.equal(a[0], torch.rand(3))


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_seed_everything_rejects_bad_seeds(bad):
    with pytest.raises((TypeError, ValueError), match="seed"):
        config.seed_everything(bad)


def test_setup_returns_choices_and_pick():
    cfg = config.setup(seed=3, device="cpu")
    assert (cfg.profile, cfg.device.type, cfg.seed) == ("quick", "cpu", 3)
    assert cfg.pick(quick=1, full=2) == 1
    assert "profile=quick" in str(cfg)
    assert config.setup(profile="full", device="cpu").pick(quick=1, full=2) == 2


def test_quiet_flag(monkeypatch):
    monkeypatch.setenv("MTL_TL_QUIET", "0")
    assert config.quiet() is False
    monkeypatch.setenv("MTL_TL_QUIET", "1")
    assert config.quiet() is True


def test_tests_are_offline():
    with pytest.raises(RuntimeError, match="offline"):
        socket.create_connection(("203.0.113.1", 80), timeout=1)


def test_setup_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        config.setup(device="cpu")
        assert torch.get_num_threads() == 1  # quick profile on a CPU
        config.setup(device="cpu", threads=2)
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("MTL_TL_THREADS", "3")
        config.setup(device="cpu")
        assert torch.get_num_threads() == 3
        monkeypatch.setenv("MTL_TL_THREADS", "many")
        with pytest.raises(ValueError, match="MTL_TL_THREADS='many'"):
            config.setup(device="cpu")
        monkeypatch.delenv("MTL_TL_THREADS")
        with pytest.raises(ValueError, match="threads must be >= 1"):
            config.setup(device="cpu", threads=0)
    finally:
        torch.set_num_threads(before)


def test_seed_base_sets_the_setup_seed_and_every_seed_list(monkeypatch):
    assert config.get_seed_base() == 0
    cfg = config.setup(device="cpu")
    assert cfg.seed == 0 and cfg.seeds(3) == [0, 1, 2]
    monkeypatch.setenv("MTL_TL_SEED_BASE", "1000")
    cfg = config.setup(device="cpu")
    assert cfg.seed == 1000 and cfg.seeds(3) == [1000, 1001, 1002]
    first = torch.rand(3)
    config.seed_everything(1000)
    assert torch.equal(first, torch.rand(3)), "setup() seeded everything with the base"
    assert config.setup(seed=5, device="cpu").seeds(2) == [5, 6]  # an explicit seed wins


@pytest.mark.parametrize("bad", ["-1", "ten", "1.5", ""])
def test_seed_base_rejects_bad_values(monkeypatch, bad):
    monkeypatch.setenv("MTL_TL_SEED_BASE", bad)
    with pytest.raises(ValueError, match="MTL_TL_SEED_BASE"):
        config.setup(device="cpu")


def test_seeds_needs_a_positive_count():
    with pytest.raises(ValueError, match="n must be >= 1"):
        config.setup(device="cpu").seeds(0)
