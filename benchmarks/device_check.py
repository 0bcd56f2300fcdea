"""The one prepared command for a lent GPU, within one device call: the ``voc`` path's GPU
benchmark (``benchmarks/gpu.py``) within about 3 minutes, then the proxy448 measurement
(``experiments/proxy448_gpu.py``, with bf16 runs beside fp32) with the rest of the budget.
Each part writes its results under ``--out`` as it finishes; a part that fails prints its
traceback and the next one still runs.

    PYTHONPATH=. timeout 560 python -m benchmarks.device_check --device cuda --out "$OUT"
    python -m benchmarks.device_check --tiny --device cpu --out /tmp/device_check  # the test
"""

from __future__ import annotations

import argparse
import time
import traceback
from pathlib import Path

from benchmarks import gpu
from experiments import proxy448_gpu


def main(argv: list[str] | None = None) -> dict[str, str]:
    """Run both parts in order; return each part's status."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--device", default="cuda")
    p.add_argument("--budget", type=float, default=530.0, help="wall-clock seconds in all")
    p.add_argument("--gpu-share", type=float, default=180.0,
                   help="seconds of the budget for benchmarks/gpu.py")
    p.add_argument("--tiny", action="store_true", help="toy sizes: the CPU test")
    args = p.parse_args(argv)
    out, tiny, start = args.out.resolve(), ["--tiny"] if args.tiny else [], time.time()
    parts = {
        "gpu": lambda: gpu.main([*tiny, "--device", args.device, "--out", str(out / "gpu"),
                                 "--budget-s", str(args.gpu_share)]),
        "proxy448": lambda: proxy448_gpu.main([
            *tiny, "--device", args.device, "--out", str(out / "proxy448"),
            "--budget", str(max(0.0, args.budget - (time.time() - start)))]),
    }
    status = {}
    for name, work in parts.items():
        try:
            work()
            status[name] = "done"
        except Exception:  # a lab script: the next part still gets its device time
            traceback.print_exc()
            status[name] = "failed (traceback above)"
        print(f"device check: {name} {status[name]} after {time.time() - start:.0f} s",
              flush=True)
    return status


if __name__ == "__main__":
    main()
