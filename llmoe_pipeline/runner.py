"""`llmoe run` / `llmoe report`: run each ticker's refresh in-process against the same Dagster instance as the
UI (so the UI shows the CLI's runs), and read results back through Dagster's IO manager."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import dagster as dg
import pandas as pd

from llmoe_pipeline.defs.schedules import next_step_requests
from llmoe_pipeline.settings import Settings

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
    """One ticker's refresh in-process: `llmoe_job`, then the experts of each regime, then the evaluation."""
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


def run_pipeline(settings: Settings, instance: dg.DagsterInstance, log: Callable[[str], None] = print) -> str:
    """Refresh every configured ticker; return the printed results table."""
    from llmoe_pipeline.definitions import build_definitions
    from llmoe_pipeline.report import format_table, summarize
    from llmoe_pipeline.signals import format_signals, read_history
    from llmoe_pipeline.verdict import verdict_text

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress = logging.getLogger("llmoe.progress")
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    defs = build_definitions(settings)
    tickers = list(settings.tickers)
    started = time.time()
    try:
        for i, ticker in enumerate(tickers, 1):
            t0 = time.time()
            log(f"[{i}/{len(tickers)}] {ticker}: refreshing ...")
            results = refresh_ticker(defs, ticker, instance)
            log(
                f"[{i}/{len(tickers)}] {ticker}: done in {time.time() - t0:.0f} s "
                f"(Dagster runs {', '.join(r.run_id[:8] for r in results)})"
            )
    finally:
        progress.removeHandler(handler)
    log(f"all {len(tickers)} tickers done in {time.time() - started:.0f} s")
    table = format_table(summarize(load_results(defs, tickers, instance)), split="test")
    verdicts = [verdict_text(load_evidence(defs, settings, t, instance)) for t in tickers]
    signals = format_signals(read_history(settings.home / "signals", tickers, last=1))
    return "\n".join([table, *verdicts, "", "Latest signals (the position for the next session):", signals])


def load_results(defs: dg.Definitions, tickers: list[str], instance: dg.DagsterInstance) -> pd.DataFrame:
    """The per-seed metrics of each ticker's latest backtest_results, read through the IO manager.

    A ticker without results is skipped; none at all is an error that says what to run.
    """
    frames = []
    for ticker in tickers:
        if not instance.get_latest_materialization_event(
            dg.AssetKey("backtest_results")
        ) or ticker not in instance.get_materialized_partitions(dg.AssetKey("backtest_results")):
            continue
        frames.append(defs.load_asset_value("backtest_results", partition_key=ticker, instance=instance))
    if not frames:
        raise FileNotFoundError(
            f"no backtest results for {', '.join(tickers)} yet: run `llmoe run` (or materialize "
            "the tickers in the UI) first"
        )
    return pd.concat(frames, ignore_index=True)


def _latest(defs: dg.Definitions, instance: dg.DagsterInstance, key: str, ticker: str):
    """An asset's stored value for `ticker`, or None when that partition was never materialized."""
    asset_key = dg.AssetKey(key)
    if not defs.resolve_asset_graph().has(asset_key) or ticker not in instance.get_materialized_partitions(asset_key):
        return None
    return defs.load_asset_value(asset_key, partition_key=ticker, instance=instance)


def load_evidence(defs: dg.Definitions, settings: Settings, ticker: str, instance: dg.DagsterInstance):
    """What the verdict and the research report read for one ticker, through the IO manager."""
    from llmoe_pipeline.report import summarize
    from llmoe_pipeline.verdict import TickerEvidence
    from llmoe_pipeline.walkforward import concatenated_metrics, yearly_sharpe

    cfg = settings.protocol
    results = load_results(defs, [ticker], instance)
    summary = summarize(results).query("split == 'test' and cost_bps == @cfg.backtest.cost_bps")
    walk, wf_summary, yearly = _latest(defs, instance, "walk_forward_returns", ticker), None, None
    if walk is not None:
        wf_summary = summarize(concatenated_metrics(walk, cfg.backtest.periods_per_year, cfg.backtest.risk_free))
        wf_summary = wf_summary[wf_summary["cost_bps"] == cfg.backtest.cost_bps]
        yearly = yearly_sharpe(walk, cfg.backtest.cost_bps, cfg.backtest.periods_per_year)
    return TickerEvidence(
        ticker,
        summary.reset_index(drop=True),
        _latest(defs, instance, "significance", ticker) or {},
        _latest(defs, instance, "router_diagnostics", ticker),
        wf_summary,
        yearly,
    )


def across_tables(defs: dg.Definitions, instance: dg.DagsterInstance, tickers: list[str], summary: pd.DataFrame):
    """The cross-ticker verdict's tables from every ticker's stored daily returns."""
    from llmoe_pipeline.across import across_tickers

    frames = [d for t in tickers if (d := _latest(defs, instance, "daily_returns", t)) is not None]
    if not frames:
        raise FileNotFoundError("no daily returns yet: run `llmoe run` for these tickers first")
    return across_tickers(summary, pd.concat(frames, ignore_index=True))
