"""Readers and validation for daily prices and dated headlines (tidy CSV/Parquet, or the paper's raw files).

Every problem raises `DataValidationError` naming the file, the row number(s) and the column. Nothing here
writes files. CSV files are streamed in chunks (`csv_stream`), Parquet files read batch by batch (`parquet`);
dates and time zones: `dates`. What is accepted and what is rejected: README, "What happens when things go wrong".
"""

from llmoe_pipeline.data.headlines import HEADLINE_COLUMNS, MAX_HEADLINE_CHARS, daily_news, load_headlines
from llmoe_pipeline.data.prices import PRICE_COLUMNS, PRICE_FIELDS, load_prices
from llmoe_pipeline.data.reader import DEFAULT_EXCHANGE_TIMEZONE, TICKER_PATTERN, DataValidationError, normalize_ticker

__all__ = [
    "DEFAULT_EXCHANGE_TIMEZONE",
    "DataValidationError",
    "HEADLINE_COLUMNS",
    "MAX_HEADLINE_CHARS",
    "PRICE_COLUMNS",
    "PRICE_FIELDS",
    "TICKER_PATTERN",
    "daily_news",
    "load_headlines",
    "load_prices",
    "normalize_ticker",
]
