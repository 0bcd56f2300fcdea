"""The one process pool: every parallel loop of the library, the study and the lab tools runs
its jobs through :func:`run_parallel`, in worker processes or, with one worker, in this one."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from itertools import islice
from typing import Any, TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def set_threads(threads: int) -> None:
    """This process's share of the CPU: ``threads`` OpenMP and torch threads (a worker's
    start; the environment variable reaches the processes it starts, e.g. data loaders)."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """``set_threads(threads)`` in this process for the block, then the settings before it."""
    if threads is None:
        yield
        return
    import torch

    env, before = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads()
    set_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if env is None:
            del os.environ["OMP_NUM_THREADS"]
        else:
            os.environ["OMP_NUM_THREADS"] = env


def _call(fn: Callable[..., Result], chunk: list, star: bool) -> list[Result]:
    """``fn`` of each job of a chunk (what one worker process is sent at once)."""
    return [fn(*job) if star else fn(job) for job in chunk]


def run_parallel(fn: Callable[..., Result], jobs: Iterable[Job], workers: int, *,
                 threads: int | None = None, context: str = "spawn", ordered: bool = False,
                 star: bool = False, chunksize: int = 1, timeout: float | None = None
                 ) -> Iterator[tuple[Job, Result]]:
    """Yield ``(job, fn(job))`` (``fn(*job)`` with ``star``) for every job, as each finishes or,
    with ``ordered``, in the jobs' order.

    ``workers`` > 1: in that many worker processes started by ``context`` ("spawn" or "fork";
    not daemonic, so a job can start DataLoader workers), sent ``chunksize`` jobs at a time, at
    most 2 x workers chunks ahead of the results (``jobs`` may be a generator); otherwise in
    this process, one by one. ``threads``: the torch/OpenMP threads each job runs with (None:
    as they are). A job's exception is raised here, once the chunks already running have
    ended (the others are cancelled). ``timeout``: seconds after which the workers are ended
    and nothing more is yielded, so the unfinished jobs are those not yielded (a timeout
    always uses worker processes, as only a process can be stopped).
    """
    if workers <= 1 and timeout is None:
        for job in jobs:
            with _threads(threads):
                result = fn(*job) if star else fn(job)
            yield job, result
        return
    workers = max(1, workers)
    end = None if timeout is None else time.monotonic() + timeout
    start: dict[str, Any] = {} if threads is None else {"initializer": set_threads,
                                                         "initargs": (threads,)}
    pool = ProcessPoolExecutor(workers, multiprocessing.get_context(context), **start)
    todo = iter(jobs)
    pending: dict[Future, list[Job]] = {}  # each chunk's future, in the order submitted
    try:
        while end is None or time.monotonic() < end:
            while len(pending) < 2 * workers and (chunk := list(islice(todo, chunksize))):
                pending[pool.submit(_call, fn, chunk, star)] = chunk
            if not pending:
                return
            first: list[Future] = [next(iter(pending))] if ordered else list(pending)
            left = None if end is None else max(0.0, end - time.monotonic())
            done, _ = wait(first, timeout=left, return_when=FIRST_COMPLETED)
            for future in [f for f in pending if f in done]:
                yield from zip(pending.pop(future), future.result(), strict=True)
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()  # out of time: end the jobs still running
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
