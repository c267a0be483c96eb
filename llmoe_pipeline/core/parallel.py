"""Independent fits (search candidates, seeds) on every core this process may use.

Each fit runs on one thread and is seeded, so where it runs does not change its result: a fit in a worker
process is bitwise the fit in this one (tested). Workers are joblib's reusable loky processes (started once,
kept while in use). LLMOE_FIT_WORKERS sets their number (1: fit in this process, as before)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
WORKERS_ENV = "LLMOE_FIT_WORKERS"


def cores() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def fit_workers() -> int:
    """LLMOE_FIT_WORKERS, else the CPUs this process may run on."""
    value = os.environ.get(WORKERS_ENV, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{WORKERS_ENV}={value!r}: expected a whole number >= 1 (1 fits in this process)")
        return int(value)
    return cores()


def map_fits(fit: Callable[[Item], Result], items: Iterable[Item]) -> list[Result]:
    """[fit(item) for item in items], in that order, spread over `fit_workers()` processes."""
    items = list(items)
    workers = min(fit_workers(), len(items))
    if workers <= 1:
        return [fit(item) for item in items]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=workers, backend="loky")(delayed(fit)(item) for item in items)


def one_fit_at_a_time() -> None:
    """For a process that already has a core of its own (a walk-forward fold, a Celery worker): no fit workers."""
    os.environ[WORKERS_ENV] = "1"
