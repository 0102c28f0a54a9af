"""A process-pool map with a progress bar, for the data steps that touch every image."""

from __future__ import annotations

import os
import signal
from concurrent.futures import ProcessPoolExecutor


def _ignore_sigint() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the pool and reports in one line;
    # workers printing a KeyboardInterrupt traceback each would bury it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def parallel_map(fn, jobs: list, workers: int = 0, desc: str = "", progress: bool = True,
                 min_pool_jobs: int = 1, unit: str = "img", chunksize: int = 16):
    """fn over jobs, results in order: in a process pool over `workers` (0: all cores; 1: in this
    process) when there are at least `min_pool_jobs` jobs, with a tqdm bar. The pool is shut down
    and the bar closed however the caller's loop ends."""
    workers = workers or os.cpu_count() or 1
    bar = None
    if progress and jobs:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=desc, unit=unit, mininterval=1.0)
    use_pool = workers > 1 and len(jobs) >= min_pool_jobs
    pool = ProcessPoolExecutor(workers, initializer=_ignore_sigint) if use_pool else None
    try:
        for result in (pool.map(fn, jobs, chunksize=chunksize) if pool else map(fn, jobs)):
            if bar is not None:
                bar.update()
            yield result
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
        if bar is not None:
            bar.close()
