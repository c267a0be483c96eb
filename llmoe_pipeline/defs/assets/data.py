"""Raw inputs: daily prices and dated headlines for one ticker (llmoe_pipeline/data/ does the work), with their
data-quality checks (llmoe_pipeline/data/quality.py).

`raw_headlines` takes `raw_prices` as input: its `news_coverage` check counts the ticker's trading days with
news, which only the prices know. A check whose severity is ERROR (config `quality:`) fails the asset before its
value is stored (`checks_then_output`), so the steps below do not run and the last good version stays.
"""

import dagster as dg
import pandas as pd

from llmoe_pipeline.data import PRICE_COLUMNS, load_headlines, load_prices
from llmoe_pipeline.data.quality import PRICE_CHECKS, CheckOutcome, news_coverage, price_quality
from llmoe_pipeline.defs.checks import OWNERS, checks_then_output
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.resources import ProtocolResource
from llmoe_pipeline.features.windows import DEFAULT_WINDOW, MA_WINDOWS

MIN_DAYS = DEFAULT_WINDOW + max(MA_WINDOWS)  # a complete window plus one day with a target
_SEVERITY = {"warn": dg.AssetCheckSeverity.WARN, "error": dg.AssetCheckSeverity.ERROR}


def check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    """A pure check outcome as Dagster shows it: lists and mappings as JSON metadata."""
    metadata = {k: dg.MetadataValue.json(v) if isinstance(v, (list, dict)) else v for k, v in outcome.metadata.items()}
    return dg.AssetCheckResult(
        check_name=outcome.name,
        passed=outcome.passed,
        severity=_SEVERITY[outcome.severity],
        description=outcome.description,
        metadata={"summary": outcome.description, **metadata},
    )


def build_data_assets(partitions: Partitions, after_fetch: bool = False) -> list:
    """`after_fetch`: raw_prices runs after `fetched_data` (defs/assets/fetch.py), in the same run."""

    @dg.asset(
        partitions_def=partitions.tickers,
        group_name="data",
        kinds={"pandas", "parquet"},
        owners=OWNERS,
        code_version="2",
        deps=["fetched_data"] if after_fetch else None,
        check_specs=[
            dg.AssetCheckSpec(
                "enough_clean_days",
                asset="raw_prices",
                blocking=True,
                description="schema as expected and enough trading days for one window",
            ),
            *(
                dg.AssetCheckSpec(name, asset="raw_prices", blocking=True, description=text)
                for name, text in PRICE_CHECKS.items()
            ),
        ],
    )
    def raw_prices(context: dg.AssetExecutionContext, protocol: ProtocolResource):
        """Daily OHLCV + adjusted close, validated (bad files fail with file, row and column named) and checked
        for implausible series (unapplied splits, long gaps, absurd moves or magnitudes: config `quality:`)."""
        cfg = protocol.config
        prices = load_prices(
            cfg.data.price_paths(), tickers=[context.partition_key], exchange_timezone=cfg.data.exchange_timezone
        )
        yield from checks_then_output(
            prices,
            [
                dg.AssetCheckResult(
                    check_name="enough_clean_days",
                    passed=list(prices.columns) == PRICE_COLUMNS and len(prices) >= MIN_DAYS,
                    metadata={"rows": len(prices), "needed": MIN_DAYS},
                ),
                *(check_result(outcome) for outcome in price_quality(prices, cfg.quality)),
            ],
            metadata={
                "rows": len(prices),
                "first_date": str(prices["date"].min().date()),
                "last_date": str(prices["date"].max().date()),
                "files": ", ".join(str(p) for p in cfg.data.price_paths()),
            },
        )

    @dg.asset(
        partitions_def=partitions.tickers,
        group_name="data",
        kinds={"pandas", "parquet"},
        owners=OWNERS,
        code_version="2",
        check_specs=[
            dg.AssetCheckSpec(
                "news_coverage",
                asset="raw_headlines",
                blocking=True,
                description="share of the ticker's trading days with a headline: WARN below "
                "quality.news_coverage.min_share, ERROR when the headline files have none for this ticker "
                "(the metadata lists the tickers they do contain)",
            )
        ],
    )
    def raw_headlines(context: dg.AssetExecutionContext, protocol: ProtocolResource, raw_prices: pd.DataFrame):
        """Dated headlines as published (calendar dates; mapped to trading days by the router's windows)."""
        cfg = protocol.config
        ticker = context.partition_key
        everything = load_headlines(cfg.data.headline_paths(), exchange_timezone=cfg.data.exchange_timezone)
        in_files = {str(t): int(n) for t, n in everything["ticker"].value_counts().items()}
        headlines = everything[everything["ticker"] == ticker].reset_index(drop=True)
        del everything
        coverage = news_coverage(headlines, raw_prices, ticker, in_files, cfg.quality.news_coverage)
        per_source = headlines.groupby("source").size().to_dict() if len(headlines) else {}
        yield from checks_then_output(
            headlines,
            [check_result(coverage)],
            metadata={
                "rows": len(headlines),
                "days_with_news": int(headlines["date"].nunique()),
                "trading_days_with_news": coverage.metadata["days_with_news"],
                "first_date": str(headlines["date"].min().date()) if len(headlines) else "n/a",
                "last_date": str(headlines["date"].max().date()) if len(headlines) else "n/a",
                "per_source": dg.MetadataValue.json({str(k): int(v) for k, v in per_source.items()}),
                "files": ", ".join(str(p) for p in cfg.data.headline_paths()),
            },
        )

    return [raw_prices, raw_headlines]
