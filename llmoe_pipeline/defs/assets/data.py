"""Raw inputs: daily prices and dated headlines for one ticker (llmoe_pipeline/data.py does the work)."""

import dagster as dg
import pandas as pd

from llmoe_pipeline.data import PRICE_COLUMNS, load_headlines, load_prices
from llmoe_pipeline.defs.partitions import ticker_partitions
from llmoe_pipeline.defs.resources import ProtocolResource
from llmoe_pipeline.features import DEFAULT_WINDOW, MA_WINDOWS

OWNERS = ["team:llmoe-research"]
MIN_DAYS = DEFAULT_WINDOW + max(MA_WINDOWS)  # a complete window plus one day with a target


@dg.asset(
    partitions_def=ticker_partitions,
    group_name="data",
    kinds={"pandas", "parquet"},
    owners=OWNERS,
    code_version="1",
    check_specs=[dg.AssetCheckSpec("enough_clean_days", asset="raw_prices", blocking=True,
                                   description="schema as expected and enough trading days for one window")],
)
def raw_prices(context: dg.AssetExecutionContext, protocol: ProtocolResource):
    """Daily OHLCV + adjusted close, validated (bad files fail with file, row and column named)."""
    cfg = protocol.load()
    ticker = context.partition_key
    prices = load_prices(cfg.data.paths(cfg.data.price_files), tickers=[ticker])
    yield from checks_then_output(prices, [dg.AssetCheckResult(
        check_name="enough_clean_days",
        passed=list(prices.columns) == PRICE_COLUMNS and len(prices) >= MIN_DAYS,
        metadata={"rows": len(prices), "needed": MIN_DAYS},
    )], metadata={
        "rows": len(prices),
        "first_date": str(prices["date"].min().date()),
        "last_date": str(prices["date"].max().date()),
        "files": ", ".join(cfg.data.price_files),
    })


def checks_then_output(value, checks: list[dg.AssetCheckResult], metadata: dict):
    """Yield the check results, then the value, or fail before the value is stored.

    Dagster hands an output to the IO manager before later checks run, so a blocking check that failed
    after the output would still have overwritten the last good version on disk. Failing first keeps it.
    """
    yield from checks
    failed = [c.check_name for c in checks if not c.passed]
    if failed:
        # allow_retries=False: the same data fails the same check again; retrying only wastes the minutes.
        raise dg.Failure(description=f"blocking check(s) failed: {', '.join(failed)}; the stored asset is unchanged",
                         allow_retries=False,
                         metadata={c.check_name: dg.MetadataValue.json({k: v.value for k, v in c.metadata.items()})
                                   for c in checks if not c.passed})
    yield dg.Output(value, metadata=metadata)


@dg.asset(partitions_def=ticker_partitions, group_name="data", kinds={"pandas", "parquet"}, owners=OWNERS,
          code_version="1")
def raw_headlines(context: dg.AssetExecutionContext, protocol: ProtocolResource) -> dg.Output[pd.DataFrame]:
    """Dated headlines as published (calendar dates; mapped to trading days by the router's windows)."""
    cfg = protocol.load()
    ticker = context.partition_key
    headlines = load_headlines(cfg.data.paths(cfg.data.headline_files), tickers=[ticker])
    per_source = headlines.groupby("source").size().to_dict() if len(headlines) else {}
    return dg.Output(headlines, metadata={
        "rows": len(headlines),
        "days_with_news": int(headlines["date"].nunique()),
        "first_date": str(headlines["date"].min().date()) if len(headlines) else "n/a",
        "last_date": str(headlines["date"].max().date()) if len(headlines) else "n/a",
        "per_source": dg.MetadataValue.json({str(k): int(v) for k, v in per_source.items()}),
    })
