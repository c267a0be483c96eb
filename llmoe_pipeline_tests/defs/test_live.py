"""The nightly refresh produces tomorrow's decision, replayed on the real reference data one day at a time through
Dagster (the schedule's runs and the chain sensor's steps): one new window labelled per ticker and night, models
retrained exactly when the policy says (a new month), one signal appended per ticker and night; the signals equal
what the batch (backtest) path computes for the same days with the same models; a night killed mid-way is completed
by the next one. The router is the deterministic fake (the real one is tested in router/ and e2e/)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest

from llmoe_pipeline.app.runner import materializations, run_requests
from llmoe_pipeline.config.settings import load_settings
from llmoe_pipeline.trading.signals import read_history, recorded_days
from llmoe_pipeline_tests import fakes
from llmoe_pipeline_tests.defs.graph_support import fake_definitions, live_config, tick_requests
from llmoe_pipeline_tests.e2e.support import SLICE_START, SLICE_TICKERS, cut_csv

CUT = "2013-09-20"  # the data ends here before the first night
NIGHTS = 10  # trading days revealed one at a time: 2013-09-23 .. 2013-10-04 (the month turns on the 7th night)
MODELS = (
    "llmoe_search/llm",
    "expert_models/llm[optimistic]",
    "expert_models/llm[pessimistic]",
    "baseline_models/moe",
    "baseline_models/lstm",
    "baseline_models/mlp",
    "baseline_models/lightgbm",
)


def _reveal(reference: Path, data: Path, day: str) -> None:
    """Append the real rows of `day` (prices and every headline) to the data files, as a data vendor would."""
    for name in ("prices.csv", "headlines.csv"):
        ref = pd.read_csv(reference / name, dtype=str, keep_default_na=False)
        new = ref[ref["ticker"].isin(SLICE_TICKERS) & (ref["date"] == day)]
        new.to_csv(data / name, mode="a", header=False, index=False)


def _nightly(defs: dg.Definitions, instance: dg.DagsterInstance, night: dt.date, run: bool = True) -> dict:
    """The schedule's tick after `night`'s close, and every step that follows it (per ticker: asset -> metadata)."""
    tick = dt.datetime.combine(night + dt.timedelta(days=1), dt.time(2), ZoneInfo("America/New_York"))
    requests = tick_requests(defs, instance, tick)
    assert sorted(r.partition_key for r in requests) == sorted(SLICE_TICKERS)
    return {r.partition_key: materializations(run_requests(defs, instance, [r])) for r in requests} if run else {}


@pytest.fixture(scope="module")
def replay(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("live")
    data = root / "data"
    prices = cut_csv(data_dir / "prices.csv", data / "prices.csv", end=CUT)
    cut_csv(data_dir / "headlines.csv", data / "headlines.csv", end=CUT)
    config = live_config(root / "config.yaml", data, retrain={"every": "month"})
    settings = load_settings(config, home=root / "home")
    defs, instance = fake_definitions(settings), dg.DagsterInstance.ephemeral()
    days = sorted(d for d in pd.read_csv(data_dir / "prices.csv", usecols=["date"])["date"].unique() if d > CUT)
    nights = [dt.date.fromisoformat(d) for d in days[:NIGHTS]]
    first = _nightly(defs, instance, dt.date.fromisoformat(CUT))
    per_night, snapshots = [], {}
    for night in nights:
        _reveal(data_dir, data, str(night))
        fakes.SCORED.clear()
        fakes.EXPLAINED.clear()
        done = _nightly(defs, instance, night)
        per_night.append((night, done, (len(fakes.SCORED) - len(fakes.EXPLAINED), len(fakes.EXPLAINED))))
        snapshots[night] = defs.load_asset_value("predictions", partition_key="AAPL", instance=instance)
    assert SLICE_START < CUT and len(prices) > 0
    return settings, defs, instance, first, per_night, snapshots, data


def test_each_night_labels_one_window_per_ticker_and_appends_one_signal_dated_the_new_day(replay):
    settings, defs, instance, first, per_night, _, _ = replay
    assert len(per_night) == NIGHTS
    folder = settings.home / "signals"
    for night, done, (labelled, explained) in per_night:
        assert labelled == len(SLICE_TICKERS), night  # one new window per ticker reached "the model"
        assert explained == len(SLICE_TICKERS), night  # and was explained after the results (its live window)
        for ticker in SLICE_TICKERS:
            assert done[ticker]["router_explanations"]["explained_now"] == 1, (night, ticker)
            assert done[ticker]["router_explanations"]["signals_explained_now"] == 1, (night, ticker)
            assert done[ticker]["router_labels"]["labelled_now"] == 1, (night, ticker)
            assert done[ticker]["feature_windows"]["live_as_of"] == str(night)
            assert done[ticker]["trading_signals"]["new_signals"] == 1, (night, ticker)
            assert done[ticker]["trading_signals"]["latest_signal"]["as_of"] == str(night)
    history = read_history(folder, list(SLICE_TICKERS), last=None)
    for ticker in SLICE_TICKERS:
        days = history.loc[history["ticker"] == ticker, "as_of"].astype(str).tolist()
        assert days == [CUT] + [str(n) for n, _, _ in per_night]  # no day missing, none twice
    assert history["explanation"].str.startswith("fake explanation").all()  # each filled in after its signal


def test_models_are_retrained_exactly_when_the_month_turns(replay):
    _, _, _, first, per_night, _, _ = replay
    for ticker in SLICE_TICKERS:
        assert all(first[ticker][key]["reused_from_cache"] is False for key in MODELS)
        previous = dt.date.fromisoformat(CUT)
        for night, done, _ in per_night:
            new_month, previous = night.month != previous.month, night
            reused = {key: done[ticker][key]["reused_from_cache"] for key in MODELS}
            assert set(reused.values()) == {not new_month}, (night, reused)
            trained = dt.date(night.year, night.month, 1) - dt.timedelta(days=1)
            assert done[ticker]["feature_windows"]["trained_through"] == str(trained)
    assert [n.month for n, _, _ in per_night].count(10) == 4  # the replay does cross a month end


def test_signals_equal_the_batch_paths_predictions_with_the_same_models(replay):
    settings, _, _, _, per_night, snapshots, _ = replay
    history = read_history(settings.home / "signals", ["AAPL"], last=None).set_index("as_of")
    checked = 0
    for night, _, _ in per_night:
        # The batch run of the last night trained through the same month end as the signal's night.
        later = [
            n
            for n in snapshots
            if n > night and history.loc[n, "trained_through"] == history.loc[night, "trained_through"]
        ]
        if not later:
            continue
        batch = snapshots[later[-1]]
        rows = batch[(batch["model"] == "LLMoE") & (batch["date"] == pd.Timestamp(night))]
        assert len(rows) == 2  # both seeds predicted that day as a test day
        assert history.loc[night, "prob_up"] == pytest.approx(rows["p_up"].mean(), abs=1e-12)
        assert history.loc[night, "position"] == int(rows["p_up"].mean() > 0.5)
        assert history.loc[night, "regime"] == rows["regime"].iloc[0]
        checked += 1
    assert checked >= 6


def test_every_signal_is_one_finished_mlflow_run_in_the_live_experiment(replay):
    from mlflow import MlflowClient

    settings, _, _, _, per_night, _, _ = replay
    client = MlflowClient(f"sqlite:///{settings.home / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("llmoe-live")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    by_day = {(r.data.tags["llmoe.ticker"], r.data.tags["llmoe.as_of"]): r for r in runs}
    assert len(by_day) == len(runs) == len(SLICE_TICKERS) * (NIGHTS + 1)  # one run per ticker and day, none twice
    history = read_history(settings.home / "signals", list(SLICE_TICKERS), last=None)
    for _, signal in history.iterrows():
        run = by_day[(signal["ticker"], str(signal["as_of"]))]
        assert run.info.status == "FINISHED"
        assert run.data.metrics["position"] == signal["position"]
        assert run.data.metrics["prob_up"] == pytest.approx(signal["prob_up"], abs=1e-12)
        assert run.data.tags["llmoe.regime"] == signal["regime"]


def test_a_night_killed_mid_way_is_completed_by_the_next_one(tmp_path, data_dir):
    data = tmp_path / "data"
    cut_csv(data_dir / "prices.csv", data / "prices.csv", end=CUT)
    cut_csv(data_dir / "headlines.csv", data / "headlines.csv", end=CUT)
    config = live_config(tmp_path / "config.yaml", data)
    settings = load_settings(config, tickers="AAPL", home=tmp_path / "home")
    defs, instance = fake_definitions(settings), dg.DagsterInstance.ephemeral()
    folder = settings.home / "signals"
    _nightly_one(defs, instance, CUT)
    _reveal(data_dir, data, "2013-09-23")
    # Night 1 dies after its first step (the process is killed): no experts, no evaluation, no signal.
    run_requests_first_step_only(defs, instance)
    assert recorded_days(folder, "AAPL") == {dt.date(2013, 9, 20)}
    _reveal(data_dir, data, "2013-09-24")
    _nightly_one(defs, instance, "2013-09-24")
    assert sorted(map(str, recorded_days(folder, "AAPL"))) == ["2013-09-20", "2013-09-23", "2013-09-24"]
    history = read_history(folder, ["AAPL"], last=None)
    assert history["as_of"].is_unique and len(history) == 3


def _nightly_one(defs, instance, day: str) -> None:
    run_requests(
        defs, instance, [dg.RunRequest(job_name="llmoe_job", partition_key="AAPL", tags={"llmoe/trigger": "nightly"})]
    )


def run_requests_first_step_only(defs, instance) -> None:
    defs.resolve_job_def("llmoe_job").execute_in_process(
        partition_key="AAPL", instance=instance, tags={"llmoe/trigger": "nightly"}
    )
