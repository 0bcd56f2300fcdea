"""Where tensors live: one setting (``Config.device``) for every stage, and how the CPU
allocator keeps the memory they leave."""

from __future__ import annotations

import ctypes

import torch

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def resolve_device(spec: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise the named device, checked."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as err:
        raise ValueError(f"device: cannot parse {spec!r}; expected auto, cpu, cuda or "
                         f"cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {spec!r} asked for, but torch sees no CUDA device")
    return device


def keep_freed_memory(mmap_below: int = 32 << 20, trim_above: int = 1 << 30) -> bool:
    """Make glibc keep freed CPU memory for the next training step instead of returning it.

    By default glibc serves multi-MiB blocks (a step's activations) with fresh mmaps and trims
    the freed heap top, so every step page-faults its activations in again (a median of 86k
    minor faults per proxy SEAM step, 16k kept: results/benchmarks/xeon_one_thread). Blocks
    below ``mmap_below`` bytes (32 MiB is glibc's maximum) now come from the heap, which is
    trimmed only above ``trim_above`` bytes. The allocator does no arithmetic: every number
    is unchanged. Process-wide; returns False (and changes nothing) where the C library has
    no ``mallopt``, as outside glibc."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_below)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                        trim_above))
