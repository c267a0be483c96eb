"""The data-quality and news-coverage asset checks through Dagster (issue #14, items 2 and 5).

On the reliability slice (60 AAPL days): an unapplied split fails `raw_prices`' blocking checks (ERROR) before its
value is stored, so nothing downstream runs; configured as WARN it is reported and the run goes on. Headline
files without the ticker fail `raw_headlines.news_coverage` (ERROR, naming the tickers the files contain); sparse
news is a WARN. The metadata names the offending dates and values, as the UI shows them.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import yaml

from llmoe_pipeline_tests.reliability.helpers import (
    csv_bytes,
    materialize_pipeline,
    materialized_assets,
    pipeline_assets,
    snapshot,
    step_failure_text,
    write_data_folder,
)

PRICE_CHECKS = {"enough_clean_days", "adjustment_ratio_steady", "no_long_gaps", "plausible_daily_moves"}
PRICE_CHECKS |= {"plausible_magnitudes"}


def evaluations(result) -> dict[str, dg.AssetCheckEvaluation]:
    """The data assets' check evaluations by name (feature_windows has checks of its own)."""
    data = {"raw_prices", "raw_headlines"}
    return {e.check_name: e for e in result.get_asset_check_evaluations() if e.asset_key.to_user_string() in data}


def split_not_applied(prices: pd.DataFrame, rows: int = 30, factor: float = 7.0) -> pd.DataFrame:
    """The slice's first `rows` days with open/high/low/close unadjusted (x factor), adj_close adjusted."""
    out = prices.copy()
    for col in ("open", "high", "low", "close"):
        out.loc[: rows - 1, col] = [repr(float(v) * factor) for v in out.loc[: rows - 1, col]]
    return out


def run(tmp_path, monkeypatch, prices: pd.DataFrame, headlines: pd.DataFrame, **config):
    config_file = write_data_folder(tmp_path / "data", csv_bytes(prices), csv_bytes(headlines), **config)
    return materialize_pipeline(tmp_path / "home", config_file, monkeypatch)


def test_the_checks_are_declared_on_the_assets():
    raw_prices, raw_headlines, *_ = pipeline_assets()
    assert {k.name for k in raw_prices.check_keys} == PRICE_CHECKS
    assert {k.name for k in raw_headlines.check_keys} == {"news_coverage"}
    assert all(spec.blocking for spec in [*raw_prices.check_specs, *raw_headlines.check_specs])


def test_clean_slice_passes_every_check(slices, tmp_path, monkeypatch):
    result = run(tmp_path, monkeypatch, slices.prices, slices.headlines)
    assert result.success, step_failure_text(result)
    got = evaluations(result)
    assert set(got) == PRICE_CHECKS | {"news_coverage"} and all(e.passed for e in got.values())
    coverage = got["news_coverage"].metadata
    assert coverage["trading_days"].value == 60 and coverage["days_with_news"].value > 50


def test_unapplied_split_blocks_before_anything_is_stored(slices, tmp_path, monkeypatch):
    prices = split_not_applied(slices.prices)
    result = run(tmp_path, monkeypatch, prices, slices.headlines)
    assert not result.success and set(step_failure_text(result)) == {"raw_prices"}
    failed = {name: e for name, e in evaluations(result).items() if not e.passed}
    assert set(failed) == {"adjustment_ratio_steady", "plausible_daily_moves"}
    assert all(e.severity == dg.AssetCheckSeverity.ERROR for e in failed.values())
    day = prices.loc[30, "date"]
    offenders = failed["adjustment_ratio_steady"].metadata["offenders"].value
    assert [o["date"] for o in offenders] == [day] and f"AAPL {day} ratio" in failed[
        "adjustment_ratio_steady"
    ].description
    assert materialized_assets(result) == set()
    assert not [p for p in snapshot(tmp_path / "home") if p.startswith("assets/")]


def test_a_warn_severity_reports_and_lets_the_run_go_on(slices, tmp_path, monkeypatch):
    quality = {"adjustment_ratio": {"severity": "warn"}, "daily_moves": {"severity": "warn"}}
    result = run(tmp_path, monkeypatch, split_not_applied(slices.prices), slices.headlines, quality=quality)
    assert result.success, step_failure_text(result)
    failed = {name: e.severity for name, e in evaluations(result).items() if not e.passed}
    assert failed == dict.fromkeys(("adjustment_ratio_steady", "plausible_daily_moves"), dg.AssetCheckSeverity.WARN)
    assert materialized_assets(result) == {"raw_prices", "raw_headlines", "feature_windows"}


def test_headline_files_without_the_ticker_block_raw_headlines_and_name_what_they_contain(
    slices, tmp_path, monkeypatch
):
    heads = slices.headlines.copy()
    heads["ticker"] = ["aapl_x" if i % 2 else "MSFT" for i in range(len(heads))]
    result = run(tmp_path, monkeypatch, slices.prices, heads)
    assert not result.success and set(step_failure_text(result)) == {"raw_headlines"}
    coverage = evaluations(result)["news_coverage"]
    assert not coverage.passed and coverage.severity == dg.AssetCheckSeverity.ERROR
    assert coverage.description.startswith("no headlines for AAPL")
    contained = coverage.description.split("the headline files contain ")[1]
    assert "AAPL_X" in contained and "MSFT" in contained
    assert set(coverage.metadata["tickers_in_headline_files"].value) == {"AAPL_X", "MSFT"}
    # The prices and features (which do not read headlines) are stored; the router would not run.
    assert materialized_assets(result) == {"raw_prices", "feature_windows"}


def test_sparse_news_is_a_warning(slices, tmp_path, monkeypatch):
    heads = slices.headlines[slices.headlines["date"] == slices.headlines["date"].iloc[0]]
    result = run(tmp_path, monkeypatch, slices.prices, heads)
    assert result.success, step_failure_text(result)
    coverage = evaluations(result)["news_coverage"]
    assert (coverage.passed, coverage.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert coverage.metadata["days_with_news"].value == 1 and "news on 1 of 60 trading days" in coverage.description


def test_news_coverage_threshold_is_configurable(slices, tmp_path, monkeypatch):
    heads = slices.headlines[slices.headlines["date"] == slices.headlines["date"].iloc[0]]
    result = run(tmp_path, monkeypatch, slices.prices, heads, quality={"news_coverage": {"min_share": 0.0}})
    assert evaluations(result)["news_coverage"].passed
    config = yaml.safe_load((tmp_path / "data" / "config.yaml").read_text())
    assert config["quality"] == {"news_coverage": {"min_share": 0.0}}
