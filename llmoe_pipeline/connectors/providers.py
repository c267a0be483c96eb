"""Providers by the names the config gives them (`fetch.prices`, `fetch.headlines`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from llmoe_pipeline.connectors.alpaca import AlpacaNews, AlpacaPrices
from llmoe_pipeline.connectors.config import FetchConfig
from llmoe_pipeline.connectors.http import JsonClient
from llmoe_pipeline.connectors.nyt import NytHeadlines
from llmoe_pipeline.connectors.protocol import HeadlineProvider, PriceProvider
from llmoe_pipeline.connectors.yahoo import YFinancePrices


def build_providers(
    config: FetchConfig,
    timezone: str,
    environ: Mapping[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[PriceProvider], list[HeadlineProvider]]:
    """(price providers in the configured order, headline providers). `environ` holds the keys (default: the
    process environment); `sleep` is every wait (retries, NYT's page pause)."""

    def client(name: str) -> JsonClient:
        return JsonClient(name, config.retry_budget(), sleep=sleep)

    prices: dict[str, Callable[[], PriceProvider]] = {
        "yfinance": lambda: YFinancePrices(config.yfinance),
        "alpaca": lambda: AlpacaPrices(config.alpaca, client("alpaca"), timezone, environ),
    }
    headlines: dict[str, Callable[[], HeadlineProvider]] = {
        "nyt": lambda: NytHeadlines(config.nyt, client("nyt"), timezone, environ, sleep),
        "alpaca_news": lambda: AlpacaNews(config.alpaca, client("alpaca_news"), timezone, environ),
    }
    return [prices[name]() for name in config.prices], [headlines[name]() for name in config.headlines]
