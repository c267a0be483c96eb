"""Raw inputs: daily prices and dated headlines for one ticker (llmoe_pipeline/data.py does the work)."""

import dagster as dg
import pandas as pd

from llmoe_pipeline.data import PRICE_COLUMNS, load_headlines, load_prices
from llmoe_pipeline.defs.checks import OWNERS, checks_then_output
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.resources import ProtocolResource
from llmoe_pipeline.features import DEFAULT_WINDOW, MA_WINDOWS

MIN_DAYS = DEFAULT_WINDOW + max(MA_WINDOWS)  # a complete window plus one day with a target


def build_data_assets(partitions: Partitions) -> list:
    @dg.asset(
        partitions_def=partitions.tickers,
        group_name="data",
        kinds={"pandas", "parquet"},
        owners=OWNERS,
        code_version="1",
        check_specs=[
            dg.AssetCheckSpec(
                "enough_clean_days",
                asset="raw_prices",
                blocking=True,
                description="schema as expected and enough trading days for one window",
            )
        ],
    )
    def raw_prices(context: dg.AssetExecutionContext, protocol: ProtocolResource):
        """Daily OHLCV + adjusted close, validated (bad files fail with file, row and column named)."""
        cfg = protocol.config
        prices = load_prices(cfg.data.price_paths(), tickers=[context.partition_key])
        yield from checks_then_output(
            prices,
            [
                dg.AssetCheckResult(
                    check_name="enough_clean_days",
                    passed=list(prices.columns) == PRICE_COLUMNS and len(prices) >= MIN_DAYS,
                    metadata={"rows": len(prices), "needed": MIN_DAYS},
                )
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
        code_version="1",
    )
    def raw_headlines(context: dg.AssetExecutionContext, protocol: ProtocolResource) -> dg.Output[pd.DataFrame]:
        """Dated headlines as published (calendar dates; mapped to trading days by the router's windows)."""
        cfg = protocol.config
        headlines = load_headlines(cfg.data.headline_paths(), tickers=[context.partition_key])
        per_source = headlines.groupby("source").size().to_dict() if len(headlines) else {}
        return dg.Output(
            headlines,
            metadata={
                "rows": len(headlines),
                "days_with_news": int(headlines["date"].nunique()),
                "first_date": str(headlines["date"].min().date()) if len(headlines) else "n/a",
                "last_date": str(headlines["date"].max().date()) if len(headlines) else "n/a",
                "per_source": dg.MetadataValue.json({str(k): int(v) for k, v in per_source.items()}),
            },
        )

    return [raw_prices, raw_headlines]
