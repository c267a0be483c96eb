"""The nightly refresh is incremental: after one new trading day, the schedule's runs (and the steps the chain
sensor starts after them) label exactly one new window per ticker, reuse every trained model, re-backtest with one
more test day and append tomorrow's signal.

Why one window: the slice's last day (Monday 2013-09-30) is the live window (no target yet); appending 2013-10-01
gives 2013-09-30 its target (now a test window, `test_end: null`, its label cached) and makes 2013-10-01 the new
live window: the one prompt the model sees. Training rows do not change, so the model fingerprints do not either.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd

from llmoe_pipeline.app.runner import materializations, run_requests
from llmoe_pipeline.config.settings import load_settings
from llmoe_pipeline.definitions import build_definitions
from llmoe_pipeline_tests.e2e.support import SLICE_END, SLICE_TICKERS, fresh_home, write_config, write_slice
from llmoe_pipeline_tests.model_fixtures import ALL_MODELS

MODEL_ASSETS = (
    "llmoe_search/llm",
    "expert_models/llm[optimistic]",
    "expert_models/llm[pessimistic]",
    "baseline_models/lightgbm",
    "baseline_models/mlp",
    "baseline_models/lstm",
    "baseline_models/moe",
)
NEW_DAY = "2013-10-01"  # the first trading day after the slice


def append_next_day(reference_dir: Path, slice_dir: Path) -> None:
    """Append the real NEW_DAY price row and that day's first real headline, per ticker."""
    for name in ("prices.csv", "headlines.csv"):
        ref = pd.read_csv(reference_dir / name, dtype=str, keep_default_na=False)
        new = ref[ref["ticker"].isin(SLICE_TICKERS) & (ref["date"] == NEW_DAY)].groupby("ticker").head(1)
        assert sorted(new["ticker"]) == sorted(SLICE_TICKERS), f"{name}: no {NEW_DAY} row for every ticker"
        new.to_csv(slice_dir / name, mode="a", header=False, index=False)


def refresh(defs: dg.Definitions, instance: dg.DagsterInstance, requests: list[dg.RunRequest]) -> dict[str, dict]:
    """Execute the requests and the steps that follow each (as the chain sensor would); per ticker, asset key →
    its materialization metadata values."""
    return {r.partition_key: materializations(run_requests(defs, instance, [r])) for r in requests}


def test_weekday_schedule_tick_refreshes_incrementally(tmp_path, data_dir, converted_models, label_cache):
    slice_dir = write_slice(data_dir, tmp_path / "data")
    config = write_config(tmp_path / "config.yaml", slice_dir, test_end=None)
    home = fresh_home(tmp_path / "home", converted_models, label_cache)  # this test's assets, caches, MLflow
    defs = build_definitions(load_settings(config, home=home))
    (tmp_path / "dagster_home").mkdir()
    instance = dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home"))
    schedule = defs.get_schedule_def("nightly_refresh_schedule")

    def stored(asset: str, ticker: str) -> pd.DataFrame:
        return pd.read_parquet(home / "assets" / asset / f"{ticker}.parquet")

    def llmoe_test_days(ticker: str) -> pd.Series:
        preds = stored("predictions", ticker)
        return preds.loc[(preds["split"] == "test") & (preds["model"] == "LLMoE") & (preds["seed"] == 0), "date"]

    first = [dg.RunRequest(job_name="llmoe_job", partition_key=t) for t in SLICE_TICKERS]
    before = refresh(defs, instance, first)
    labels_before = {t: stored("router_labels", t) for t in SLICE_TICKERS}
    test_days_before = {t: llmoe_test_days(t) for t in SLICE_TICKERS}

    append_next_day(data_dir, slice_dir)
    # Wednesday 2013-10-02, 02:00 New York: the tick after the new day's close.
    tick = dt.datetime(2013, 10, 2, 2, 0, tzinfo=ZoneInfo("America/New_York"))
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    )
    requests = schedule.evaluate_tick(context).run_requests
    assert sorted(r.partition_key for r in requests) == sorted(SLICE_TICKERS)
    assert {r.tags["llmoe/trigger"] for r in requests} == {"nightly"}
    assert len({r.run_key for r in requests}) == len(requests)  # one refresh per ticker per tick
    after = refresh(defs, instance, requests)
    nightly = instance.get_runs(filters=dg.RunsFilter(tags={"llmoe/trigger": "nightly"}))
    # Each ticker's refresh: llmoe_job, the experts of both regimes, the evaluation, the explanations — all tagged
    # nightly.
    assert sorted((r.job_name, r.tags["dagster/partition"]) for r in nightly) == sorted(
        [(job, t) for t in SLICE_TICKERS for job in ("llmoe_job", "evaluation_job", "explanations_job")]
        + [("experts_job", f"{regime}|{t}") for t in SLICE_TICKERS for regime in ("optimistic", "pessimistic")]
    )
    assert {r.status for r in nightly} == {dg.DagsterRunStatus.SUCCESS}

    for t in SLICE_TICKERS:
        b, a = before[t], after[t]
        assert b["raw_prices"]["last_date"] == SLICE_END and a["raw_prices"]["last_date"] == NEW_DAY
        assert a["raw_prices"]["rows"] == b["raw_prices"]["rows"] + 1

        # The router labels every window of the splits; the refresh sends exactly the new one to the model
        # (the first run's windows may already be in the session's label cache: see support.py).
        windows = {k: v for k, v in b["feature_windows"]["rows_per_split"].items() if k != "none"}
        assert b["router_labels"]["rows"] == sum(windows.values()) > 150
        assert a["router_labels"]["labelled_now"] == 1, t
        assert a["router_labels"]["from_cache"] == b["router_labels"]["rows"]
        assert a["router_labels"]["threshold"] == b["router_labels"]["threshold"]  # fitted on training windows
        labels_after = stored("router_labels", t)
        new_rows = labels_after[~labels_after["date"].isin(labels_before[t]["date"])]
        assert new_rows["date"].dt.strftime("%Y-%m-%d").tolist() == [NEW_DAY]  # the new live window
        assert new_rows["split"].tolist() == ["live"]
        # Yesterday's live window now has its target: a test day, its label and explanation from the cache.
        was_live = labels_after[labels_after["date"] == pd.Timestamp(SLICE_END)]
        assert was_live["split"].tolist() == ["test"] and was_live["from_cache"].all()
        assert a["trading_signals"]["latest_signal"]["as_of"] == NEW_DAY
        old = labels_after[labels_after["date"].isin(labels_before[t]["date"])].reset_index(drop=True)
        pd.testing.assert_series_equal(old["p_optimistic"], labels_before[t]["p_optimistic"].reset_index(drop=True))
        pd.testing.assert_series_equal(old["label"], labels_before[t]["label"].reset_index(drop=True))

        # Models: trained once, then reused because their training rows did not change.
        for key in MODEL_ASSETS:
            assert b[key]["reused_from_cache"] is False, (t, key)
            assert a[key]["reused_from_cache"] is True, (t, key)
            assert a[key]["fingerprint"] == b[key]["fingerprint"], (t, key)

        # The evaluation reran and now covers one more test day: the slice's last day.
        assert "backtest_results" in a and "mlflow_runs" in a
        days_after = llmoe_test_days(t)
        assert len(days_after) == len(test_days_before[t]) + 1
        assert days_after.max() == pd.Timestamp(SLICE_END) > test_days_before[t].max()
        assert set(stored("backtest_results", t)["model"]) == ALL_MODELS  # every default model
