"""Data-quality checks: price series that load but are implausible, and headline coverage. Pure (no Dagster).

A file can pass every cell check (`llmoe_pipeline.data`) and still be wrong as a series: a split applied to
`close` but not to `adj_close`, a 200-day hole (one "daily" return spans it and all its headlines land on one
day), a one-day move of +900 % or a price of 1e300. Each check here returns a `CheckOutcome`: passed or not, the
severity of a failure (`warn`: reported; `error`: the asset check blocks the steps below), a one-line description
and metadata naming the offending dates and values. `defs/assets/data.py` turns them into Dagster asset checks
on `raw_prices` and `raw_headlines`; thresholds and severities are the config's `quality:` section.

Defaults, measured on the 22 reference tickers 2006-2016 (`llmoe_pipeline_tests/data/test_quality.py` asserts that
all pass): close/adj_close changes by at most 3.1 % a day (dividends; AAPL's 7:1 split is applied to both), at
most 2 business days are missing in a row (New Year 2007 and President Ford's funeral; Hurricane Sandy, 2012),
the largest |daily return| is 48 % (AABA on 2008-02-01), prices lie in 2.4 .. 251 and volumes below 1e9; news
covers 17-90 % of trading days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from llmoe_pipeline.config.section import ConfigSection
from llmoe_pipeline.data import daily_news

Severity = Literal["warn", "error"]
MAX_LISTED = 20  # offending days listed in the metadata (the count is always complete)


class AdjustmentRatioCheck(ConfigSection):
    """close/adj_close drifts with dividends; a day-over-day change beyond `max_change` is a split or dividend
    applied to one column only (a 7:1 split not applied to adj_close changes it by 600 %)."""

    max_change: float = Field(0.2, gt=0.0, allow_inf_nan=False)
    severity: Severity = "error"


class GapCheck(ConfigSection):
    """More than `max_missing_business_days` weekdays in a row without a bar (exchange holidays miss 1-2; the
    longest closure since 1933, after 9/11, missed 4)."""

    max_missing_business_days: int = Field(5, ge=0)
    severity: Severity = "error"


class DailyMoveCheck(ConfigSection):
    """A one-day |return| of close or adj_close above `max_abs_return` (0.6: an unapplied 3:1 or larger split)."""

    max_abs_return: float = Field(0.6, gt=0.0, allow_inf_nan=False)
    severity: Severity = "error"


class MagnitudeCheck(ConfigSection):
    """Prices outside [min_price, max_price] or a volume above max_volume: a unit or parsing error."""

    min_price: float = Field(1e-6, gt=0.0, allow_inf_nan=False)
    max_price: float = Field(1e7, gt=0.0, allow_inf_nan=False)
    max_volume: float = Field(1e12, gt=0.0, allow_inf_nan=False)
    severity: Severity = "error"

    @model_validator(mode="after")
    def _ordered(self) -> MagnitudeCheck:
        if self.min_price >= self.max_price:
            raise ValueError(f"min_price {self.min_price} must be below max_price {self.max_price}")
        return self


class NewsCoverageCheck(ConfigSection):
    """Share of trading days with at least one headline below `min_share`: `severity`. No headline at all for
    the ticker (e.g. its name is spelled differently in the headline files) is always an error."""

    min_share: float = Field(0.1, ge=0.0, le=1.0)
    severity: Severity = "warn"


class QualityConfig(ConfigSection):
    adjustment_ratio: AdjustmentRatioCheck = Field(default_factory=AdjustmentRatioCheck)
    gaps: GapCheck = Field(default_factory=GapCheck)
    daily_moves: DailyMoveCheck = Field(default_factory=DailyMoveCheck)
    magnitudes: MagnitudeCheck = Field(default_factory=MagnitudeCheck)
    news_coverage: NewsCoverageCheck = Field(default_factory=NewsCoverageCheck)


@dataclass(frozen=True)
class CheckOutcome:
    name: str
    passed: bool
    severity: Severity
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


PRICE_CHECKS = {
    "adjustment_ratio_steady": "close/adj_close does not jump (a split or dividend applied to one column only)",
    "no_long_gaps": "no run of missing business days longer than quality.gaps.max_missing_business_days",
    "plausible_daily_moves": "no one-day |return| of close or adj_close above quality.daily_moves.max_abs_return",
    "plausible_magnitudes": "prices and volumes within quality.magnitudes' bounds",
}


def _day(d) -> str:
    return str(pd.Timestamp(d).date())


def _outcome(name: str, severity: Severity, found: pd.DataFrame, what: str, limit: dict, show) -> CheckOutcome:
    """`found`: one row per offending (day, column), sorted by date; `show(row)` describes one row in a few words."""
    if found.empty:
        return CheckOutcome(name, True, severity, f"no day with {what}", {**limit, "offending_days": 0})
    days = len(found[["ticker", "date"]].drop_duplicates())
    listed = [
        {k: (_day(v) if k == "date" else v) for k, v in row.items()}
        for row in found.head(MAX_LISTED).to_dict("records")
    ]
    examples = "; ".join(show(r) for r in found.head(3).to_dict("records"))
    more = f" (+{len(found) - 3} more)" if len(found) > 3 else ""
    return CheckOutcome(
        name,
        False,
        severity,
        f"{days} day(s) with {what}: {examples}{more}",
        {**limit, "offending_days": days, "offenders": listed},
    )


def _per_ticker(prices: pd.DataFrame) -> pd.DataFrame:
    return prices.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)


def adjustment_ratio(prices: pd.DataFrame, cfg: AdjustmentRatioCheck) -> CheckOutcome:
    p = _per_ticker(prices)
    ratio = p["close"] / p["adj_close"]
    prev = ratio.groupby(p["ticker"]).shift()
    change = ratio / prev - 1
    bad = (change.abs() > cfg.max_change).to_numpy()
    found = pd.DataFrame(
        {
            "ticker": p["ticker"][bad],
            "date": p["date"][bad],
            "close": p["close"][bad],
            "adj_close": p["adj_close"][bad],
            "ratio": ratio[bad].round(6),
            "previous_ratio": prev[bad].round(6),
            "change": change[bad].round(4),
        }
    )
    return _outcome(
        "adjustment_ratio_steady",
        cfg.severity,
        found,
        f"close/adj_close changed by more than {cfg.max_change:.0%} (a split or dividend in one column only)",
        {"max_change": cfg.max_change},
        lambda r: f"{r['ticker']} {_day(r['date'])} ratio {r['previous_ratio']:.4g} -> {r['ratio']:.4g}",
    )


def long_gaps(prices: pd.DataFrame, cfg: GapCheck) -> CheckOutcome:
    p = _per_ticker(prices)
    days = p["date"].to_numpy().astype("datetime64[D]")
    same = (p["ticker"] == p["ticker"].shift()).to_numpy()
    missing = np.zeros(len(p), dtype=np.int64)
    if len(p) > 1:
        missing[1:] = np.busday_count(days[:-1], days[1:]) - 1
    bad = same & (missing > cfg.max_missing_business_days)
    previous = p["date"].shift()
    found = pd.DataFrame(
        {
            "ticker": p["ticker"][bad],
            "date": p["date"][bad],
            "previous_date": previous[bad].map(_day),
            "missing_business_days": missing[bad],
        }
    )
    return _outcome(
        "no_long_gaps",
        cfg.severity,
        found,
        f"more than {cfg.max_missing_business_days} business days missing before it",
        {"max_missing_business_days": cfg.max_missing_business_days},
        lambda r: f"{r['ticker']} {r['previous_date']} -> {_day(r['date'])} ({r['missing_business_days']} missing)",
    )


def daily_moves(prices: pd.DataFrame, cfg: DailyMoveCheck) -> CheckOutcome:
    p = _per_ticker(prices)
    rows = []
    for col in ("close", "adj_close"):
        prev = p[col].groupby(p["ticker"]).shift()
        ret = p[col] / prev - 1
        bad = (ret.abs() > cfg.max_abs_return).to_numpy()
        rows.append(
            pd.DataFrame(
                {
                    "ticker": p["ticker"][bad],
                    "date": p["date"][bad],
                    "column": col,
                    "previous": prev[bad],
                    "value": p[col][bad],
                    "return": ret[bad].round(4),
                }
            )
        )
    found = pd.concat(rows).sort_values(["ticker", "date", "column"], kind="stable")
    return _outcome(
        "plausible_daily_moves",
        cfg.severity,
        found,
        f"a one-day |return| above {cfg.max_abs_return:.0%}",
        {"max_abs_return": cfg.max_abs_return},
        lambda r: (
            f"{r['ticker']} {_day(r['date'])} {r['column']} {r['previous']:.6g} -> {r['value']:.6g}"
            f" ({r['return']:+.1%})"
        ),
    )


def magnitudes(prices: pd.DataFrame, cfg: MagnitudeCheck) -> CheckOutcome:
    p = _per_ticker(prices)
    rows = []
    for col in ("open", "high", "low", "close", "adj_close", "volume"):
        values = p[col].astype(float)
        bad = (values > cfg.max_volume) if col == "volume" else (values < cfg.min_price) | (values > cfg.max_price)
        rows.append(
            pd.DataFrame({"ticker": p["ticker"][bad], "date": p["date"][bad], "column": col, "value": values[bad]})
        )
    found = pd.concat(rows).sort_values(["ticker", "date", "column"], kind="stable")
    return _outcome(
        "plausible_magnitudes",
        cfg.severity,
        found,
        f"a price outside [{cfg.min_price:g}, {cfg.max_price:g}] or a volume above {cfg.max_volume:g}",
        {"min_price": cfg.min_price, "max_price": cfg.max_price, "max_volume": cfg.max_volume},
        lambda r: f"{r['ticker']} {_day(r['date'])} {r['column']} {r['value']:.6g}",
    )


def price_quality(prices: pd.DataFrame, cfg: QualityConfig) -> list[CheckOutcome]:
    """Every price check, in `PRICE_CHECKS` order."""
    return [
        adjustment_ratio(prices, cfg.adjustment_ratio),
        long_gaps(prices, cfg.gaps),
        daily_moves(prices, cfg.daily_moves),
        magnitudes(prices, cfg.magnitudes),
    ]


def news_coverage(
    headlines: pd.DataFrame, prices: pd.DataFrame, ticker: str, in_files: dict[str, int], cfg: NewsCoverageCheck
) -> CheckOutcome:
    """Share of `ticker`'s trading days (from its prices) whose window has a headline, counted as the router sees
    them (a weekend headline counts for the next trading day). `in_files`: ticker -> headline rows in the files,
    so that a failure says which tickers the files do contain."""
    news = daily_news(headlines[headlines["ticker"] == ticker], prices[prices["ticker"] == ticker])
    trading_days = len(news)
    with_news = int((news["headlines"].map(len) > 0).sum())
    share = with_news / trading_days if trading_days else 0.0
    contained = sorted(in_files, key=lambda t: (-in_files[t], t))
    listed = ", ".join(contained[:10]) + (f" (+{len(contained) - 10} more)" if len(contained) > 10 else "")
    metadata = {
        "trading_days": trading_days,
        "days_with_news": with_news,
        "share": round(share, 4),
        "min_share": cfg.min_share,
        "headline_rows": int(in_files.get(ticker, 0)),
        "tickers_in_headline_files": {t: int(in_files[t]) for t in contained[:50]},
    }
    if with_news == 0:
        reason = "no headlines for" if not in_files.get(ticker) else "no headline dated within the price history of"
        return CheckOutcome(
            "news_coverage",
            False,
            "error",
            f"{reason} {ticker}: every window would say 'No news'; the headline files contain "
            f"{listed or 'no rows at all'} (tickers are case-insensitive; check the spelling)",
            metadata,
        )
    description = f"news on {with_news} of {trading_days} trading days ({share:.0%})"
    if share < cfg.min_share:
        return CheckOutcome(
            "news_coverage",
            False,
            cfg.severity,
            f"{description}, below quality.news_coverage.min_share {cfg.min_share:.0%}",
            metadata,
        )
    return CheckOutcome("news_coverage", True, cfg.severity, description, metadata)
