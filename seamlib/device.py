"""Where tensors live: one setting (``Config.device``) for every stage, how the CPU allocator
keeps the memory they leave, and the one-line description of the machine that runs records."""

from __future__ import annotations

import ctypes
import os
import platform
from pathlib import Path

import torch

from seamlib.errors import InputError

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def resolve_device(spec: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise the named device, checked."""
    kind = device_kind(spec)  # parses it: an unknown name is one line naming the setting
    device = torch.device(kind if spec == "auto" else spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device: {spec!r} asked for, but torch sees no CUDA device")
    return device


def device_kind(spec: str = "auto") -> str:
    """The kind of device ``spec`` names ("cpu", "cuda"), "auto" resolved on this machine;
    outputs depend on it, so stage keys record it."""
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return torch.device(spec).type
    except RuntimeError as err:
        raise InputError(f"device: cannot parse {spec!r}; expected auto, cpu, cuda or "
                         f"cuda:N") from err


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


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (Linux /proc/cpuinfo; else the platform's), with AVX-512 named:
    float kernels, hence trained weights, differ between CPU models."""
    try:
        info = cpuinfo.read_text()
    except OSError:
        return platform.processor() or platform.machine()
    names = [line.split(":", 1)[1].strip() for line in info.splitlines()
             if line.startswith("model name")]
    name = names[0] if names else platform.machine()
    return f"{name}, AVX-512" if " avx512f" in info else name


def hardware() -> str:
    """A one-line description of the machine a measurement ran on."""
    return (f"{platform.machine()} CPU ({cpu_model()}; {os.cpu_count()} cores), "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}, "
            f"{platform.platform(terse=True)}")


def cpu_ticks(stat: Path = Path("/proc/stat")) -> tuple[int, int] | None:
    """(stolen, all) CPU ticks of the machine since boot (Linux /proc/stat; None elsewhere).
    Steal is time the hypervisor gave our cores to other guests: it stretches wall times."""
    try:
        fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (fields[7], sum(fields)) if len(fields) == 8 else None


def steal_percent(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the machine's CPU time stolen between two ``cpu_ticks`` readings, in %."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(100 * (after[0] - before[0]) / (after[1] - before[1]), 1)
