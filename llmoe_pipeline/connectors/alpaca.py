"""Alpaca market data over plain HTTP (`requests`): daily bars and ticker-tagged news.

Plain HTTP rather than alpaca-py: one transport, one retry budget (`http.JsonClient`) and one test seam (a local
server at `fetch.alpaca.base_url`) for every keyed provider, and no pydantic model layer between the documented
JSON and the tidy rows.

Documented schemas (https://docs.alpaca.markets/reference/stockbars and .../reference/news-3):
- GET {base}/v2/stocks/{symbol}/bars?timeframe=1Day&start&end&adjustment&feed&limit&page_token →
  {"bars": [{"t": RFC-3339, "o", "h", "l", "c", "v", "n", "vw"}], "symbol", "next_page_token"}; daily bars are
  stamped at midnight New York time.
- GET {base}/v1beta1/news?symbols&start&end&limit (≤ 50)&sort&page_token →
  {"news": [{"id", "headline", "author", "created_at", "updated_at", "summary", "content", "url", "images",
  "symbols", "source"}], "next_page_token"}
Auth: the headers APCA-API-KEY-ID and APCA-API-SECRET-KEY.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Mapping
from typing import Any

import pandas as pd

from llmoe_pipeline.connectors.config import AlpacaConfig
from llmoe_pipeline.connectors.http import JsonClient, key_from_env
from llmoe_pipeline.connectors.protocol import SchemaError
from llmoe_pipeline.connectors.tidy import exchange_date, field, headline_frame, price_frame
from llmoe_pipeline.data import PRICE_FIELDS

PRICES, NEWS = "alpaca", "alpaca_news"
MAX_PAGES = 1000  # a guard against a server that hands out next_page_token forever


class _AlpacaApi:
    name: str

    def __init__(
        self, config: AlpacaConfig, client: JsonClient, timezone: str, environ: Mapping[str, str] | None = None
    ):
        self.config, self.client, self.timezone = config, client, timezone
        self._environ = os.environ if environ is None else environ

    def _headers(self) -> dict[str, str]:
        return {
            "APCA-API-KEY-ID": key_from_env(self.name, self.config.key_id_env, self._environ),
            "APCA-API-SECRET-KEY": key_from_env(self.name, self.config.secret_key_env, self._environ),
        }

    def _pages(self, path: str, params: dict[str, Any], items: str) -> Iterator[tuple[int, dict]]:
        """Every item of every page (following next_page_token), with its index for error messages."""
        url, headers, token, n = self.config.base_url.rstrip("/") + path, self._headers(), None, 0
        for _ in range(MAX_PAGES):
            body = self.client.get(url, params={**params, **({"page_token": token} if token else {})}, headers=headers)
            if not isinstance(body, dict) or items not in body:
                raise SchemaError(self.name, items, "is missing")
            for item in body[items] or []:  # Alpaca sends null for an empty page
                yield n, item
                n += 1
            token = body.get("next_page_token")
            if not token:
                return
        raise SchemaError(self.name, "next_page_token", f"still set after {MAX_PAGES} pages")


class AlpacaPrices(_AlpacaApi):
    """OHLCV as traded (adjustment=raw) plus the close adjusted for splits and dividends (adjustment=all)."""

    name = PRICES

    def _bars(self, ticker: str, start: dt.date, end: dt.date, adjustment: str) -> dict[dt.date, tuple[str, dict]]:
        """Each session's bar, and where it was in the response (for error messages)."""
        params = {
            "timeframe": "1Day",
            "start": start.isoformat(),
            "end": end.isoformat(),
            "adjustment": adjustment,
            "feed": self.config.feed,
            "limit": 10000,
        }
        out = {}
        for i, bar in self._pages(f"/v2/stocks/{ticker}/bars", params, "bars"):
            where = f"bars[{i}]"
            out[exchange_date(self.name, field(self.name, bar, "t", where), self.timezone, f"{where}.t")] = (where, bar)
        return out

    def daily_bars(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        raw, adjusted = self._bars(ticker, start, end, "raw"), self._bars(ticker, start, end, "all")
        rows = []
        for day, (where, bar) in raw.items():
            if day not in adjusted:
                raise SchemaError(self.name, f"{where}.t", f"{day} has a raw bar of {ticker} but no adjusted one")
            values = {col: field(self.name, bar, key, where) for col, key in zip(PRICE_FIELDS, "ohlc")}
            adjusted_where, adjusted_bar = adjusted[day]
            rows.append(
                {
                    "date": day,
                    "ticker": ticker,
                    **values,
                    "adj_close": field(self.name, adjusted_bar, "c", f"{adjusted_where}(adjustment=all)"),
                    "volume": int(field(self.name, bar, "v", where)),
                }
            )
        return price_frame(rows)


class AlpacaNews(_AlpacaApi):
    name = NEWS

    def headlines(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        # Calendar days in the exchange's zone: from its midnight on `start` to its midnight after `end`.
        first = pd.Timestamp(start).tz_localize(self.timezone).tz_convert("UTC")
        after = pd.Timestamp(end + dt.timedelta(days=1)).tz_localize(self.timezone).tz_convert("UTC")
        params = {
            "symbols": ticker,
            "start": first.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": after.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "limit": 50,
            "sort": "asc",
        }
        rows = []
        for i, item in self._pages("/v1beta1/news", params, "news"):
            where = f"news[{i}]"
            day = exchange_date(
                self.name, field(self.name, item, "created_at", where), self.timezone, f"{where}.created_at"
            )
            headline = field(self.name, item, "headline", where)
            rows.append(
                {
                    "date": day,
                    "ticker": ticker,
                    "headline": headline,
                    "source": f"alpaca:{item.get('source') or 'news'}",
                }
            )
        return headline_frame(rows)
