"""`llmoe run` / `llmoe report`: materialize every ticker partition in-process, against the same Dagster
instance (DAGSTER_HOME under the LLMOE home) as the UI, so the UI shows the CLI's runs."""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

import dagster as dg
import pandas as pd

from llmoe_pipeline.defs.io_manager import load_asset_value
from llmoe_pipeline.defs.progress import PROGRESS_ENV
from llmoe_pipeline.paths import llmoe_home

# The CLI prints its own progress (assets echo key lines via `progress_log`) and turns failures into one
# line, so Dagster's console logger (which prints framework events and tracebacks) is silenced here.
# Everything is still in the Dagster event log, visible in the UI.
QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def run_pipeline(router_backend: Optional[str] = None, n_seeds: Optional[int] = None,
                 log: Callable[[str], None] = print) -> str:
    """Materialize all assets for every configured ticker; return the printed results table."""
    from llmoe_pipeline.definitions import ALL_ASSETS, build_resources
    from llmoe_pipeline.defs.partitions import TICKERS
    from llmoe_pipeline.defs.settings import config_file_from_env
    from llmoe_pipeline.report import format_table, summarize

    os.environ[PROGRESS_ENV] = "1"
    resources = build_resources(config_file_from_env(), n_seeds=n_seeds, router_backend=router_backend)
    instance = dg.DagsterInstance.get()
    started = time.time()
    for i, ticker in enumerate(TICKERS, 1):
        t0 = time.time()
        log(f"[{i}/{len(TICKERS)}] {ticker}: materializing {len(ALL_ASSETS)} assets ...")
        result = dg.materialize(ALL_ASSETS, partition_key=ticker, instance=instance, resources=resources,
                                run_config=QUIET_LOGS, tags={"llmoe/launched_by": "cli"})
        # (Every asset check is blocking and fails its step before the value is stored, so a failed check
        # has already raised out of `materialize`.)
        log(f"[{i}/{len(TICKERS)}] {ticker}: done in {time.time() - t0:.0f} s (Dagster run {result.run_id})")
    log(f"all {len(TICKERS)} tickers done in {time.time() - started:.0f} s")
    results = load_results(TICKERS)
    return format_table(summarize(results), split="test")


def load_results(tickers: Optional[list[str]] = None) -> Optional[pd.DataFrame]:
    """The per-seed metrics of every materialized backtest_results partition (None when there are none)."""
    base = llmoe_home() / "assets"
    if tickers is None:
        folder = base / "backtest_results"
        tickers = sorted(p.stem for p in folder.glob("*.parquet")) if folder.exists() else []
    frames = []
    for t in tickers:
        try:
            frames.append(load_asset_value(base, ["backtest_results"], t))
        except FileNotFoundError:
            continue
    return pd.concat(frames, ignore_index=True) if frames else None
