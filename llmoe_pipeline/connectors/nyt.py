"""Headlines from the New York Times Article Search API, the paper's source.

Documented (https://developer.nytimes.com/docs/articlesearch-product/1/overview; the OpenAPI file
nytimes/public_api_specs article_search/article_search_v2.json): GET {base}/articlesearch.json with `fq` (Lucene
filter), `begin_date` / `end_date` (YYYYMMDD, inclusive), `sort=oldest`, `page` (10 results a page; at most 100
pages, i.e. 1000 results, per query) and `api-key` → {"status", "response": {"docs": [{"headline": {"main"},
"pub_date": "2016-01-04T05:00:00+0000", "source", ...}], "meta": {"hits", "offset", "time"}}}. The 2025 revision
of the API renamed `meta` to `metadata`; both are read. HTTP 429 at the per-minute and per-day limits is retried by
`http.JsonClient`; `page_pause_seconds` between pages keeps a long query under 5 requests a minute.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Mapping

import pandas as pd

from llmoe_pipeline.connectors.config import NytConfig
from llmoe_pipeline.connectors.http import JsonClient, key_from_env
from llmoe_pipeline.connectors.protocol import ProviderError
from llmoe_pipeline.connectors.tidy import exchange_date, field, headline_frame

NAME = "nyt"
PAGE_SIZE, MAX_PAGES = 10, 100


class NytHeadlines:
    name = NAME

    def __init__(
        self,
        config: NytConfig,
        client: JsonClient,
        timezone: str,
        environ: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.config, self.client, self.timezone, self.sleep = config, client, timezone, sleep
        self._environ = os.environ if environ is None else environ
        self._requests = 0

    def headlines(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        fq = self.config.filters.get(ticker)
        if not fq:
            raise ProviderError(NAME, f"no fq filter for ticker {ticker} (set fetch.nyt.filters.{ticker})")
        key = key_from_env(NAME, self.config.key_env, self._environ)
        rows: list[dict] = []
        self._query(ticker, fq, key, start, end, rows)
        return headline_frame(rows)

    def _query(self, ticker: str, fq: str, key: str, start: dt.date, end: dt.date, rows: list[dict]) -> None:
        """Every doc of [start, end]; a range with more hits than 100 pages reach is split in two."""
        for page in range(MAX_PAGES):
            response = self._page(fq, key, start, end, page)
            meta = response.get("meta") or response.get("metadata")
            hits = int(field(NAME, meta or {}, "hits", "response.meta"))
            if page == 0 and hits > PAGE_SIZE * MAX_PAGES and start < end:
                middle = start + (end - start) // 2
                self._query(ticker, fq, key, start, middle, rows)
                self._query(ticker, fq, key, middle + dt.timedelta(days=1), end, rows)
                return
            docs = field(NAME, response, "docs", "response")
            for i, doc in enumerate(docs):
                where = f"response.docs[{page * PAGE_SIZE + i}]"
                headline = field(NAME, field(NAME, doc, "headline", where), "main", f"{where}.headline")
                day = exchange_date(NAME, field(NAME, doc, "pub_date", where), self.timezone, f"{where}.pub_date")
                rows.append({"date": day, "ticker": ticker, "headline": headline, "source": "nyt"})
            if not docs or (page + 1) * PAGE_SIZE >= hits:
                return

    def _page(self, fq: str, key: str, start: dt.date, end: dt.date, page: int) -> dict:
        if self._requests:
            self.sleep(self.config.page_pause_seconds)
        self._requests += 1
        body = self.client.get(
            self.config.base_url.rstrip("/") + "/articlesearch.json",
            params={
                "fq": fq,
                "begin_date": start.strftime("%Y%m%d"),
                "end_date": end.strftime("%Y%m%d"),
                "sort": "oldest",
                "page": page,
                "api-key": key,
            },
        )
        return field(NAME, body, "response", "")
