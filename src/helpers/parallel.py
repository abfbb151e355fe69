"""Independent training runs side by side on a CPU, one thread each.

Why: a run's numbers then do not depend on the machine's core count. On a
CPU every run of notebook 03's and 04's grids trains with exactly one thread,
in `workers()` processes, so the number of workers changes how long a grid
takes, never what it computes (a test trains a grid with one worker and with
two and compares the weights bit for bit). What it costs or gains in time is
measured by `benchmarks/parallel_runs.py`: on this project's 2-core machine
about nothing (4 runs: 0.86x for classifiers, 1.02x for U-Nets, pool start
included); on a machine with more cores, `--numerics native` runs one worker
per core. On a GPU the runs go one after another in this process.

A job is a module-level function (so a spawned process can import it) called
as ``fn(**shared, **job)``; `shared` (the data, the teachers) is sent to each
worker once, and each job's result comes back pickled.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

import torch

from . import progress as progress_module
from .numerics import THREAD_VARIABLES, threads
from .progress import progress
from .training import device

_SHARED: dict[str, Any] = {}


def _exit_with(parent: int) -> None:
    """Stop this worker once its parent is gone (a run interrupted, a kernel killed): never train on, unseen."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _start_worker(shared: dict[str, Any], parent: int) -> None:
    threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()
    torch.set_num_threads(1)
    progress_module.QUIET = True  # bars of two workers would interleave in the log; the parent shows one
    _SHARED.update(shared)


def _call(fn: Callable, job: dict[str, Any]) -> Any:
    return fn(**_SHARED, **job)


@contextmanager
def _one_thread_environment() -> Iterator[None]:
    """Spawned workers inherit os.environ: pin them to one thread while the pool starts and runs."""
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: "1" for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def workers() -> int:
    """How many runs go side by side: one per thread of the course run (helpers.numerics), 1 on a GPU."""
    return 1 if device().type != "cpu" else max(1, threads())


def run_all(
    fn: Callable[..., Any], jobs: list[dict[str, Any]], shared: dict[str, Any], desc: str, n_workers: int | None = None
) -> list[Any]:
    """`fn(**shared, **job)` for every job; results in the order of `jobs`.

    On a CPU each call runs with one thread, in `n_workers` spawned
    processes (default `workers()`); on a GPU here, one after another.
    """
    n_workers = workers() if n_workers is None else n_workers
    if device().type != "cpu":
        return [fn(**shared, **job) for job in progress(jobs, desc=desc)]
    # Even one worker is a spawned process: it starts with this environment's numeric pins (helpers.numerics),
    # which a process that loaded torch before they were set would not follow.
    results: list[Any] = [None] * len(jobs)
    context = multiprocessing.get_context("spawn")  # fork would copy a kernel's threads and locks
    n_workers = max(1, min(n_workers, len(jobs)))
    with (
        _one_thread_environment(),
        ProcessPoolExecutor(
            max_workers=n_workers, mp_context=context, initializer=_start_worker, initargs=(shared, os.getpid())
        ) as pool,
    ):
        futures = {pool.submit(_call, fn, job): i for i, job in enumerate(jobs)}
        for future in progress(as_completed(futures), desc=f"{desc} ({n_workers} side by side)", total=len(jobs)):
            results[futures[future]] = future.result()
    return results
