"""Data-quality checks (llmoe_pipeline/data/quality.py; issue #14, items 2 and 5): implausible price series and missing
news are reported with the offending dates and values, and the defaults pass all 22 reference tickers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from llmoe_pipeline import load_headlines, load_prices
from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.config.settings import ConfigError, load_settings
from llmoe_pipeline.data.quality import PRICE_CHECKS, QualityConfig, news_coverage, price_quality

DEFAULTS = QualityConfig()


@pytest.fixture(scope="module")
def all_prices(data_dir) -> pd.DataFrame:
    return load_prices([data_dir / "prices.csv", data_dir / "prices_extra.csv"])


@pytest.fixture(scope="module")
def all_headlines(data_dir) -> pd.DataFrame:
    return load_headlines([data_dir / "headlines.csv", data_dir / "headlines_extra.csv"])


def outcomes(prices, cfg=DEFAULTS) -> dict:
    return {o.name: o for o in price_quality(prices, cfg)}


def test_the_22_reference_tickers_pass_every_default_check_with_margin(all_prices, all_headlines):
    assert all_prices["ticker"].nunique() == 22
    for ticker, prices in all_prices.groupby("ticker"):
        failed = [o.description for o in price_quality(prices, DEFAULTS) if not o.passed]
        assert not failed, (ticker, failed)
    # The measured extremes behind the defaults (quality.py's docstring), with their margins.
    g = all_prices.groupby("ticker")
    ratio = all_prices["close"] / all_prices["adj_close"]
    ratio_change = (ratio / ratio.groupby(all_prices["ticker"]).shift() - 1).abs().max()
    moves = max((all_prices[c] / g[c].shift() - 1).abs().max() for c in ("close", "adj_close"))
    days = all_prices["date"].to_numpy().astype("datetime64[D]")
    same = (all_prices["ticker"] == all_prices["ticker"].shift()).to_numpy()[1:]
    missing = (np.busday_count(days[:-1], days[1:]) - 1)[same].max()
    prices = all_prices[["open", "high", "low", "close", "adj_close"]]
    assert 0.03 < ratio_change < 0.035 < DEFAULTS.adjustment_ratio.max_change / 5
    assert 0.47 < moves < 0.48 < DEFAULTS.daily_moves.max_abs_return
    assert missing == 2 < DEFAULTS.gaps.max_missing_business_days
    assert DEFAULTS.magnitudes.min_price < 2.4 < prices.min().min() < prices.max().max() < 251
    assert all_prices["volume"].max() < 1e9 < DEFAULTS.magnitudes.max_volume
    # News: every reference ticker has news on 17-90 % of its trading days (min_share 10 %).
    in_files = all_headlines["ticker"].value_counts().to_dict()
    shares = {}
    for ticker in sorted(in_files):
        outcome = news_coverage(all_headlines, all_prices, ticker, in_files, DEFAULTS.news_coverage)
        assert outcome.passed, outcome.description
        shares[ticker] = outcome.metadata["share"]
    assert len(shares) == 22 and min(shares.values()) > 0.16 and max(shares.values()) < 0.91


def test_aapl_2014_split_applied_to_both_columns_passes(all_prices):
    aapl = all_prices[all_prices["ticker"] == "AAPL"]
    around = aapl[aapl["date"].between("2014-06-02", "2014-06-13")]
    assert all(o.passed for o in price_quality(around, DEFAULTS))


def unapplied_split(prices: pd.DataFrame, day: str, factor: float) -> pd.DataFrame:
    """Raw (unadjusted) open/high/low/close before `day`, adj_close adjusted: a split applied to one column only."""
    out = prices.copy()
    before = out["date"] < pd.Timestamp(day)
    out.loc[before, ["open", "high", "low", "close"]] *= factor
    return out


def test_a_7_for_1_split_in_close_but_not_adj_close_is_flagged_with_its_date(aapl_prices):
    got = outcomes(unapplied_split(aapl_prices, "2014-06-09", 7.0))
    ratio = got["adjustment_ratio_steady"]
    assert not ratio.passed and ratio.severity == "error"
    assert ratio.metadata["offending_days"] == 1
    first = ratio.metadata["offenders"][0]
    assert (first["ticker"], first["date"]) == ("AAPL", "2014-06-09") and first["change"] == pytest.approx(-6 / 7, 1e-3)
    assert "1 day(s) with close/adj_close changed by more than 20%" in ratio.description
    assert "AAPL 2014-06-09" in ratio.description
    moves = got["plausible_daily_moves"]
    assert not moves.passed and [(o["date"], o["column"]) for o in moves.metadata["offenders"]] == [
        ("2014-06-09", "close")
    ]
    assert got["no_long_gaps"].passed and got["plausible_magnitudes"].passed


def test_a_200_day_gap_is_flagged_with_both_ends(aapl_prices):
    hole = aapl_prices["date"].between("2012-03-01", "2012-09-16")  # 200 calendar days
    got = outcomes(aapl_prices[~hole])["no_long_gaps"]
    assert not got.passed and got.metadata["offending_days"] == 1
    assert got.metadata["offenders"] == [
        {"ticker": "AAPL", "date": "2012-09-17", "previous_date": "2012-02-29", "missing_business_days": 142}
    ]
    assert "AAPL 2012-02-29 -> 2012-09-17 (142 missing)" in got.description


def test_an_absurd_price_is_flagged_with_its_value(aapl_prices):
    broken = aapl_prices.copy()
    day = broken["date"] == pd.Timestamp("2015-03-02")
    broken.loc[day, ["open", "high", "low", "close", "adj_close"]] = 1e300
    got = outcomes(broken)
    magnitudes = got["plausible_magnitudes"]
    assert not magnitudes.passed and magnitudes.metadata["offending_days"] == 1
    assert len(magnitudes.metadata["offenders"]) == 5  # the five price columns of that day
    assert {(o["date"], o["value"]) for o in magnitudes.metadata["offenders"]} == {("2015-03-02", 1e300)}
    assert "AAPL 2015-03-02 adj_close 1e+300" in magnitudes.description
    moves = got["plausible_daily_moves"]  # up on the day, down on the next
    assert {o["date"] for o in moves.metadata["offenders"]} == {"2015-03-02", "2015-03-03"}


def test_thresholds_and_severities_come_from_the_config(aapl_prices):
    cfg = QualityConfig.model_validate(
        {"adjustment_ratio": {"max_change": 0.9, "severity": "warn"}, "daily_moves": {"severity": "warn"}}
    )
    got = outcomes(unapplied_split(aapl_prices, "2014-06-09", 7.0), cfg)
    assert got["adjustment_ratio_steady"].passed  # 6/7 = 86 % < 90 %
    assert (got["plausible_daily_moves"].passed, got["plausible_daily_moves"].severity) == (False, "warn")
    assert list(got) == list(PRICE_CHECKS)


def test_quality_section_loads_from_yaml_and_bad_values_are_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"quality": {"gaps": {"max_missing_business_days": 10, "severity": "warn"}}}))
    assert load_settings(path).protocol.quality.gaps.max_missing_business_days == 10
    path.write_text(yaml.safe_dump({"quality": {"gaps": {"severity": "fatal"}}}))
    with pytest.raises(ConfigError, match=r"quality\.gaps\.severity: Input should be 'warn' or 'error'"):
        load_settings(path)
    path.write_text(yaml.safe_dump({"quality": {"magnitudes": {"min_price": 10, "max_price": 1}}}))
    with pytest.raises(ConfigError, match="min_price 10.0 must be below max_price 1.0"):
        load_settings(path)
    # Thresholds gate runs but change no result: they are not part of the experiment's identity.
    assert (
        PipelineConfig(quality=QualityConfig(gaps={"severity": "warn"})).config_hash() == PipelineConfig().config_hash()
    )


# -------------------------------------------------------------------------------------------------- news
def test_a_ticker_missing_from_the_headline_files_is_an_error_naming_what_they_contain(aapl_prices):
    heads = pd.DataFrame({"date": [pd.Timestamp("2015-01-05")], "ticker": ["AAPL_X"], "headline": ["h"], "source": ""})
    got = news_coverage(heads, aapl_prices, "AAPL", {"AAPL_X": 1, "MSFT": 40}, DEFAULTS.news_coverage)
    assert (got.passed, got.severity) == (False, "error")
    assert got.description.startswith("no headlines for AAPL: every window would say 'No news'")
    assert "the headline files contain MSFT, AAPL_X" in got.description
    assert got.metadata["tickers_in_headline_files"] == {"MSFT": 40, "AAPL_X": 1}
    assert (got.metadata["trading_days"], got.metadata["days_with_news"]) == (len(aapl_prices), 0)


def test_lowercase_tickers_in_headline_files_match_the_prices(aapl_prices, tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("date,ticker,headline\n2015-01-05,aapl,Apple up\n2015-01-10,Aapl ,Apple on a Saturday\n")
    heads = load_headlines(path)
    assert set(heads["ticker"]) == {"AAPL"}
    got = news_coverage(heads, aapl_prices, "AAPL", {"AAPL": 2}, DEFAULTS.news_coverage)
    assert got.metadata["days_with_news"] == 2  # Monday 5th, and Monday 12th for the Saturday item
    assert (got.passed, got.severity) == (False, "warn")  # 2 of 2,769 days: below min_share, a warning
    assert "below quality.news_coverage.min_share 10%" in got.description


def test_news_only_outside_the_price_history_is_an_error_too(aapl_prices):
    heads = pd.DataFrame({"date": [pd.Timestamp("2030-01-02")], "ticker": ["AAPL"], "headline": ["h"], "source": ""})
    got = news_coverage(heads, aapl_prices, "AAPL", {"AAPL": 1}, DEFAULTS.news_coverage)
    assert (got.passed, got.severity) == (False, "error")
    assert got.description.startswith("no headline dated within the price history of AAPL")
