"""The one process pool (seamlib.parallel): the same results in worker processes as in this one,
the worker's threads, errors, order, lazily taken jobs and the timeout."""

import os
import time

import pytest
import torch

from seamlib.parallel import run_parallel


def square(x: int) -> int:
    return x * x


def add(a: int, b: int) -> int:
    return a + b


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad job {x}")
    return x


def threads_and_pid(_: int) -> tuple[int, str, int]:
    return torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"), os.getpid()


def test_a_pool_gives_the_results_of_this_process():
    jobs = list(range(10))
    here = list(run_parallel(square, jobs, 1))
    assert here == [(x, x * x) for x in jobs]
    assert sorted(run_parallel(square, jobs, 2, context="fork")) == here
    pairs = [(1, 2), (3, 4)]
    assert sorted(run_parallel(add, pairs, 2, context="fork", star=True)) == [((1, 2), 3),
                                                                            ((3, 4), 7)]
    assert list(run_parallel(add, pairs, 0, star=True)) == [((1, 2), 3), ((3, 4), 7)]


def test_chunks_of_jobs_give_the_same_results_in_order():
    jobs = list(range(11))
    chunked = run_parallel(square, jobs, 2, context="fork", ordered=True, chunksize=3)
    assert list(chunked) == [(x, x * x) for x in jobs]


def test_one_worker_runs_in_this_process_and_two_in_others():
    assert {pid for _, (_, _, pid) in run_parallel(threads_and_pid, [0, 1], 1)} == {os.getpid()}
    assert os.getpid() not in {pid for _, (_, _, pid) in
                               run_parallel(threads_and_pid, [0, 1], 2, context="fork")}


def test_the_threads_reach_each_spawned_worker():
    results = [r for _, r in run_parallel(threads_and_pid, range(4), 2, threads=3)]
    assert {(t, omp) for t, omp, _ in results} == {(3, "3")}


def test_in_this_process_the_threads_hold_for_the_job_only(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "9")
    before = torch.get_num_threads()
    [(_, (threads, omp, _))] = run_parallel(threads_and_pid, [0], 1, threads=1)
    assert (threads, omp) == (1, "1")
    assert torch.get_num_threads() == before and os.environ["OMP_NUM_THREADS"] == "9"


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failing_job_raises_its_error_here(workers):
    with pytest.raises(ValueError, match="bad job 3"):
        list(run_parallel(fail_on_three, range(8), workers, context="fork"))


def test_ordered_results_come_in_the_jobs_order():
    jobs = [0.3, 0.2, 0.1, 0.0, 0.0]
    assert [j for j, _ in run_parallel(nap, jobs, 2, context="fork", ordered=True)] == jobs
    assert sorted(r for _, r in run_parallel(nap, jobs, 2, context="fork")) == sorted(jobs)


def test_jobs_are_taken_lazily_two_per_worker_ahead():
    drawn = []

    def jobs():
        for i in range(20):
            drawn.append(i)
            yield i

    results = run_parallel(square, jobs(), 2, context="fork")
    next(results)
    assert len(drawn) == 4
    assert len(list(results)) == 19 and len(drawn) == 20


def test_at_the_timeout_running_jobs_are_stopped_and_not_yielded():
    start = time.monotonic()
    done = dict(run_parallel(nap, [0.0, 60.0, 0.01, 60.0], 2, context="fork", timeout=3.0))
    assert set(done) == {0.0, 0.01} and time.monotonic() - start < 30
    # A timeout always uses a worker process, so that one worker's job can be stopped too.
    assert dict(run_parallel(nap, [60.0], 1, context="fork", timeout=0.5)) == {}
    assert time.monotonic() - start < 40
