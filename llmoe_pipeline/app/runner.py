"""`llmoe run` / `llmoe report`: run each ticker's refresh in-process against the same Dagster instance as the
UI (so the UI shows the CLI's runs), and print what they stored (`defs.results`)."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed

import dagster as dg

from llmoe_pipeline.app.console import RefreshError, quiet_libraries, root_cause
from llmoe_pipeline.config.settings import Settings
from llmoe_pipeline.core.parallel import WORKERS_ENV, cores
from llmoe_pipeline.definitions import build_definitions
from llmoe_pipeline.defs.results import StoredResults
from llmoe_pipeline.defs.schedules import next_step_requests
from llmoe_pipeline.reporting.tables import format_table, summarize
from llmoe_pipeline.research.verdict import verdict_text
from llmoe_pipeline.trading.signals import format_signals, read_history

# The CLI prints its own progress (assets echo key lines to the `llmoe.progress` logger) and turns failures into
# one line, so Dagster's console logger (framework events and tracebacks) is silenced. Everything is still in the
# Dagster event log, visible in the UI.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
CLI_TAGS = {"llmoe/launched_by": "cli"}


def run_requests(
    defs: dg.Definitions, instance: dg.DagsterInstance, requests: list[dg.RunRequest], tags: dict | None = None
) -> list[dg.ExecuteInProcessResult]:
    """Execute run requests in-process and every step that follows from them, exactly as `refresh_chain_sensor`
    would launch them (`next_step_requests`); raises at the first failed step (its error names the cause)."""
    queue, results = list(requests), []
    while queue:
        request = queue.pop(0)
        result = defs.resolve_job_def(str(request.job_name)).execute_in_process(
            partition_key=request.partition_key,
            instance=instance,
            run_config=QUIET_LOGS,
            tags={**CLI_TAGS, **(tags or {}), **request.tags},
        )
        results.append(result)
        queue += next_step_requests(result.dagster_run, instance)
    return results


def refresh_ticker(
    defs: dg.Definitions, ticker: str, instance: dg.DagsterInstance, tags: dict | None = None
) -> list[dg.ExecuteInProcessResult]:
    """One ticker's refresh in-process: `llmoe_job`, then the experts of each regime, then the evaluation, then the
    router's explanations (last: the results never wait for them)."""
    return run_requests(defs, instance, [dg.RunRequest(job_name="llmoe_job", partition_key=ticker)], tags)


def materializations(results: list[dg.ExecuteInProcessResult]) -> dict[str, dict]:
    """Asset key (with the regime for experts) → the metadata values of its materialization."""
    out = {}
    for result in results:
        for ev in result.get_asset_materialization_events():
            key = ev.asset_key.to_user_string() if ev.asset_key else "?"
            if ev.partition and "|" in ev.partition:
                key = f"{key}[{ev.partition.split('|')[0]}]"
            out[key] = {k: v.value for k, v in ev.materialization.metadata.items()}
    return out


@contextlib.contextmanager
def progress_to_stdout() -> Iterator[None]:
    """The assets' progress lines (the `llmoe.progress` logger) on stdout for the block."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress = logging.getLogger("llmoe.progress")
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    try:
        yield
    finally:
        progress.removeHandler(handler)


def refresh_jobs(tickers: int, jobs: int | None = None) -> int:
    """Tickers refreshed at once: `jobs`, else one per core, at most one per ticker."""
    if jobs is not None and jobs < 1:
        raise ValueError(f"--jobs {jobs}: expected a whole number >= 1")
    return max(1, min(tickers, jobs or cores()))


def _stop_with(parent: int) -> None:
    """Linux: SIGTERM this process when `parent` dies (a killed `llmoe run` leaves no refresh running on alone);
    Dagster then stops it at the end of the step in progress, as it does for `llmoe run` itself."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before that
        os.kill(os.getpid(), signal.SIGTERM)


def _refresh_in_own_process(settings: Settings, ticker: str, instance_ref, threads: int, parent: int) -> list[str]:
    """One ticker's refresh in a worker process that has `threads` cores to itself; returns its Dagster run ids.
    Labels and fits are the same whatever the thread count (tested), so parallel refreshes change no number."""
    import torch  # in the worker only: the parent of a one-ticker run needs no torch before Dagster does

    _stop_with(parent)
    quiet_libraries()
    torch.set_num_threads(threads)
    os.environ[WORKERS_ENV] = str(threads)  # the fits of this ticker: on its own cores, not every core
    try:
        with progress_to_stdout():
            instance = dg.DagsterInstance.from_ref(instance_ref)
            return [r.run_id for r in refresh_ticker(build_definitions(settings), ticker, instance)]
    except Exception as exc:
        raise RefreshError(f"{ticker}: {root_cause(exc)}") from None


def refresh_all(
    settings: Settings, instance: dg.DagsterInstance, log: Callable[[str], None] = print, jobs: int | None = None
) -> None:
    """Refresh every configured ticker, `refresh_jobs` of them at once (each in a process of its own when more
    than one: a refresh is mostly one core's work between its parallel parts). Raises the first failure after
    the other tickers have finished."""
    tickers = list(settings.tickers)
    jobs = refresh_jobs(len(tickers), jobs)
    started = time.time()
    tag = {t: f"[{i}/{len(tickers)}] {t}" for i, t in enumerate(tickers, 1)}
    if jobs == 1:
        defs = build_definitions(settings)
        with progress_to_stdout():
            for ticker in tickers:
                t0 = time.time()
                log(f"{tag[ticker]}: refreshing ...")
                ids = [r.run_id for r in refresh_ticker(defs, ticker, instance)]
                log(f"{tag[ticker]}: done in {time.time() - t0:.0f} s (Dagster runs {', '.join(i[:8] for i in ids)})")
    else:
        failures: dict[str, RefreshError] = {}
        # No `llm` pool: these processes are sized here (a share of the cores each), and a waiting step spins a core.
        unpooled = settings.model_copy(update={"executor": settings.executor.model_copy(update={"llm_pool": None})})
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            threads = max(1, cores() // jobs)
            futures = {
                pool.submit(_refresh_in_own_process, unpooled, t, instance.get_ref(), threads, os.getpid()): t
                for t in tickers
            }
            log(f"refreshing {len(tickers)} tickers, {jobs} at a time ({threads} core(s) each) ...")
            for future in as_completed(futures):
                ticker = futures[future]
                try:
                    ids = future.result()
                except RefreshError as exc:
                    failures[ticker] = exc
                    log(f"{tag[ticker]}: FAILED after {time.time() - started:.0f} s: {exc}")
                    continue
                runs = ", ".join(i[:8] for i in ids)
                log(f"{tag[ticker]}: done at {time.time() - started:.0f} s (Dagster runs {runs})")
        if failures:
            raise next(failures[t] for t in tickers if t in failures)  # the first ticker's, whichever failed first
    log(f"all {len(tickers)} tickers done in {time.time() - started:.0f} s")


def run_pipeline(
    settings: Settings, instance: dg.DagsterInstance, log: Callable[[str], None] = print, jobs: int | None = None
) -> str:
    """Refresh every configured ticker (`refresh_all`); return the printed results table."""
    refresh_all(settings, instance, log, jobs)
    stored, tickers = StoredResults.of(settings, instance), list(settings.tickers)
    table = format_table(summarize(stored.backtest_results(tickers)), split="test")
    verdicts = [verdict_text(stored.evidence(t)) for t in tickers]
    signals = format_signals(read_history(settings.home / "signals", tickers, last=1))
    return "\n".join([table, *verdicts, "", "Latest signals (the position for the next session):", signals])
