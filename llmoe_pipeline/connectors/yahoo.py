"""Daily prices from Yahoo Finance through `yfinance` (no key).

yfinance's transport (curl_cffi) is not interceptable by vcrpy, so the seam under test is `tidy_yfinance_frame`:
the DataFrame `yf.download` returns → tidy rows. It accepts both column layouts (flat, and the (Price, Ticker)
MultiIndex of yfinance >= 0.2.51) and refuses a frame without `Adj Close` (what `auto_adjust=True`, the default
since 0.2.54, gives) with one line naming the provider and the field.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import pandas as pd

from llmoe_pipeline.connectors.config import YFinanceConfig
from llmoe_pipeline.connectors.protocol import ProviderError, SchemaError
from llmoe_pipeline.connectors.tidy import price_frame

NAME = "yfinance"
_FIELDS = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Adj Close": "adj_close", "Volume": "volume"}


def tidy_yfinance_frame(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """`yf.download(ticker, auto_adjust=False)` → tidy price rows of `ticker` (rows with a missing value dropped:
    Yahoo shows a session that has not settled as NaN)."""
    if frame.empty:
        return price_frame([])
    if isinstance(frame.columns, pd.MultiIndex):
        tickers = frame.columns.get_level_values(-1)
        if ticker not in set(tickers):
            raise SchemaError(NAME, "columns", f"have no ticker level {ticker!r} (got {sorted(set(tickers))[:5]})")
        frame = frame.xs(ticker, axis=1, level=-1)
    for name in _FIELDS:
        if name not in frame.columns:
            hint = " (download with auto_adjust=False)" if name == "Adj Close" else ""
            raise SchemaError(NAME, name, f"is missing{hint}")
    out = frame[list(_FIELDS)].rename(columns=_FIELDS).dropna()
    index = pd.DatetimeIndex(out.index)
    dates = (index.tz_localize(None) if index.tz is not None else index).date  # Yahoo's daily index is the session date
    return price_frame(
        {"date": d, "ticker": ticker, **{k: row[k] for k in _FIELDS.values()}}
        for d, row in zip(dates, out.to_dict("records"))
    ).astype({"volume": "int64"})


class YFinancePrices:
    name = NAME

    def __init__(self, config: YFinanceConfig, download: Callable[..., pd.DataFrame] | None = None):
        self.config, self._download = config, download

    def daily_bars(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        download = self._download or self._yfinance_download
        frame = download(
            ticker,
            start=start.isoformat(),
            end=(end + dt.timedelta(days=1)).isoformat(),  # yfinance's end is exclusive
            auto_adjust=False,
            actions=False,
            progress=False,
            threads=False,
        )
        return tidy_yfinance_frame(frame if frame is not None else pd.DataFrame(), ticker)

    def _yfinance_download(self, ticker: str, **kwargs) -> pd.DataFrame:
        """yf.download, whose failures (network, unknown ticker) are an empty frame and ERROR records on its logger:
        made a ProviderError, so that "Yahoo unreachable" is not reported as "Yahoo has no bar"."""
        import yfinance as yf

        if self.config.proxy:
            yf.set_config(proxy=self.config.proxy)
        errors = _ErrorRecords()
        logger = logging.getLogger("yfinance")
        logger.addHandler(errors)
        try:
            frame = yf.download(ticker, **kwargs)
        finally:
            logger.removeHandler(errors)
        if (frame is None or frame.empty) and errors.lines:
            detail = next((line for line in errors.lines if ticker in line), errors.lines[0])
            raise ProviderError(NAME, f"download of {ticker} failed: {detail[:200]}")
        return frame


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += [line.strip() for line in record.getMessage().splitlines() if line.strip()]
