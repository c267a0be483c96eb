"""Helpers for the reliability suite: a small real slice (60 AAPL days around the paper's
train/test boundary, as raw text cells), a writer for a data folder plus YAML config, and Dagster runs
into a throwaway LLMOE home."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml

SLICE_DAYS = 60
TEST_START = "2014-12-03"  # the paper's first test day
WARM_UP_DAYS = 34  # rows per ticker that give no feature row (features.py: 33 incomplete windows + last day)


@dataclass(frozen=True)
class Slices:
    """Raw text cells exactly as in the reference files (no parsing), for breaking them in tests."""

    prices: pd.DataFrame  # 60 AAPL rows: 34 warm-up days, 10 training windows, 16 test days
    headlines: pd.DataFrame  # the first two AAPL headlines of each calendar day in that span


def read_raw(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def load_slices(data_dir: Path) -> Slices:
    prices = read_raw(data_dir / "prices.csv")
    aapl = prices[prices["ticker"] == "AAPL"].reset_index(drop=True)
    # 10 training windows before the test start: 8 train + 2 validation (20 %), the rest test.
    start = int(aapl.index[aapl["date"] == TEST_START][0]) - WARM_UP_DAYS - 10
    aapl = aapl.iloc[start : start + SLICE_DAYS].reset_index(drop=True)
    headlines = read_raw(data_dir / "headlines.csv")
    span = (headlines["ticker"] == "AAPL") & headlines["date"].between(aapl["date"].iloc[0], aapl["date"].iloc[-1])
    headlines = headlines[span].groupby("date", sort=True).head(2).reset_index(drop=True)
    return Slices(prices=aapl, headlines=headlines)


def csv_bytes(df: pd.DataFrame, sep: str = ",", newline: str = "\n", **to_csv) -> bytes:
    return df.to_csv(index=False, sep=sep, lineterminator=newline, **to_csv).encode("utf-8")


def write_data_folder(folder: Path, prices: bytes, headlines: bytes, **config_overrides) -> Path:
    """prices.csv + headlines.csv + a YAML config pointing the pipeline at them (AAPL only). Returns the config."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "prices.csv").write_bytes(prices)
    (folder / "headlines.csv").write_bytes(headlines)
    config = {
        "data": {
            "data_dir": str(folder),
            "price_files": ["prices.csv"],
            "headline_files": ["headlines.csv"],
            "tickers": ["AAPL"],
        },
        **config_overrides,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (temp files included) with the SHA-256 of its content."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def pipeline_assets(tickers=("AAPL",)) -> list:
    """raw_prices, raw_headlines, feature_windows, built by their factories for `tickers`' partitions."""
    from llmoe_pipeline.defs.assets.data import build_data_assets
    from llmoe_pipeline.defs.assets.features import build_feature_assets
    from llmoe_pipeline.defs.partitions import Partitions

    partitions = Partitions.for_tickers(list(tickers))
    return [*build_data_assets(partitions), *build_feature_assets(partitions)]


def pipeline_resources(settings) -> dict:
    """The resources those assets use, exactly as `defs.resources.build_resources` makes them."""
    from llmoe_pipeline.defs.resources import build_resources

    resources = build_resources(settings)
    return {name: resources[name] for name in ("protocol", "io_manager")}


def materialize_pipeline(home: Path, config_file: Path, monkeypatch: pytest.MonkeyPatch, resources=None):
    """Materialize raw_prices, raw_headlines, feature_windows for AAPL with the resources those assets use
    (as `build_resources` makes them from `load_settings(config_file, home=home)`), writing under `home`
    (also set as LLMOE_HOME, so that nothing can fall back to another home). `resources` replace those of
    the same names. A bad config raises `settings.ConfigError` before Dagster runs; failures of the run do not
    raise."""
    import dagster as dg

    from llmoe_pipeline.config.settings import load_settings

    monkeypatch.setenv("LLMOE_HOME", str(home))
    settings = load_settings(config_file, home=home)
    # Dispose of the instance: one left to the garbage collector runs finalizers at random moments, and on
    # Python 3.11.7 one inside pytest's failure report becomes an INTERNALERROR (CPython gh-106905).
    with dg.DagsterInstance.ephemeral() as instance:
        return dg.materialize(
            pipeline_assets(settings.tickers),
            resources={**pipeline_resources(settings), **(resources or {})},
            partition_key="AAPL",
            instance=instance,
            raise_on_error=False,
        )


def step_failure_text(result) -> dict[str, str]:
    """Failed step name -> the error text (cause chain included)."""
    return {e.step_key: e.step_failure_data.error.to_string() for e in result.all_events if e.is_step_failure}


def failed_checks(result) -> set[str]:
    return {
        e.event_specific_data.check_name
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION" and not e.event_specific_data.passed
    }


def materialized_assets(result) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"}
