"""Device resolution: auto picks CUDA only when present; bad names are errors. Keeping freed
memory is a no-op without glibc (its effect on page faults is measured in benchmarks/; that
it changes no number, in test_voc_pin.py)."""


import pytest
import torch

from seamlib import device
from seamlib.device import keep_freed_memory, resolve_device


def test_auto_is_cpu_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")


def test_auto_is_cuda_when_available(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)


def test_named_devices_are_checked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'cuda'.*no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="cannot parse 'gpu'"):
        resolve_device("gpu")


def test_keep_freed_memory_is_a_no_op_without_mallopt(monkeypatch):
    monkeypatch.setattr(device.ctypes, "CDLL", lambda name: object())  # e.g. macOS, musl
    assert keep_freed_memory() is False
