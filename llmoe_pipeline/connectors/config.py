"""The `fetch:` section: which providers bring the new days in, where they live and how hard to retry.

Empty provider lists (the default) mean fetching is off: `make run` and the schedule behave as before. Keys are
never values here, only the NAMES of the environment variables that hold them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmoe_pipeline.config.section import ConfigSection
from llmoe_pipeline.connectors.http import RetryBudget

PriceProviderName = Literal["yfinance", "alpaca"]
HeadlineProviderName = Literal["nyt", "alpaca_news"]
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # the name of an environment variable, never the key itself


class YFinanceConfig(ConfigSection):
    # yfinance's URLs are fixed inside the library; a proxy is how a firm routes it.
    proxy: str = ""


class AlpacaConfig(ConfigSection):
    """Alpaca market data (bars and news share the host and the two key headers)."""

    base_url: str = "https://data.alpaca.markets"
    key_id_env: str = Field("APCA_API_KEY_ID", pattern=ENV_NAME)
    secret_key_env: str = Field("APCA_API_SECRET_KEY", pattern=ENV_NAME)
    feed: Literal["iex", "sip"] = "iex"  # iex: the free plan's feed


class NytConfig(ConfigSection):
    """The New York Times Article Search API (the paper's headline source)."""

    base_url: str = "https://api.nytimes.com/svc/search/v2"
    key_env: str = Field("NYT_API_KEY", pattern=ENV_NAME)
    # The `fq` filter per ticker (Lucene syntax); a ticker without one is an error naming it.
    filters: dict[str, str] = {
        "AAPL": 'organizations:("Apple Inc")',
        "MSFT": 'organizations:("Microsoft Corp")',
    }
    # NYT allows 5 requests a minute: 12 s between pages keeps a long query under it.
    page_pause_seconds: float = Field(12.0, ge=0.0)


class FetchConfig(ConfigSection):
    # Price providers are tried in order, each for the sessions the ones before it did not deliver.
    prices: list[PriceProviderName] = []
    # Every headline provider is asked: each writes its own files and keeps its own coverage.
    headlines: list[HeadlineProviderName] = []
    yfinance: YFinanceConfig = Field(default_factory=YFinanceConfig)
    alpaca: AlpacaConfig = Field(default_factory=AlpacaConfig)
    nyt: NytConfig = Field(default_factory=NytConfig)
    calendar: str = "XNYS"  # exchange_calendars' name of the exchange
    # A session is due this long after its close (vendors publish the day's bar within minutes; 2 h is generous).
    ready_after_minutes: int = Field(120, ge=0)
    # Stored sessions asked for again on every fetch: a changed adjusted close among them is a split or dividend.
    overlap_sessions: int = Field(5, ge=1)
    adjusted_tolerance: float = Field(1e-4, gt=0.0)  # relative; vendors round adjusted prices differently
    attempts: int = Field(5, ge=1, le=20)
    backoff_seconds: float = Field(2.0, ge=0.0)
    max_backoff_seconds: float = Field(60.0, ge=0.0)
    timeout_seconds: float = Field(30.0, gt=0.0)

    @property
    def enabled(self) -> bool:
        return bool(self.prices or self.headlines)

    def retry_budget(self) -> RetryBudget:
        return RetryBudget(self.attempts, self.backoff_seconds, self.max_backoff_seconds, self.timeout_seconds)
