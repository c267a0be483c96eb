"""A local HTTP server on 127.0.0.1 (http.server in a thread) that answers like a provider; cassettes: recorded-
style interactions in each API's documented schema, keys scrubbed, replayed by matching path and query; a
synthetic market on the real exchange calendar for the fetch over several nights, and Alpaca (bars, news) and NYT
serving it night by night (`serve_market`)."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.connectors import fetch as fetch_module
from llmoe_pipeline.connectors.calendar import sessions_between
from llmoe_pipeline.data import HEADLINE_COLUMNS, PRICE_COLUMNS

CASSETTES = Path(__file__).parent / "cassettes"
SCRUBBED = {"api-key", "token"}  # query parameters that carry a key: never recorded, never matched
PAGING = {"page", "page_token"}  # a request for a later page matches only the interaction recorded for that page


@dataclass
class Request:
    path: str
    query: dict[str, str]
    headers: dict[str, str]


Respond = Callable[[Request], tuple[int, Any]]


@dataclass
class LocalServer:
    url: str
    requests: list[Request] = field(default_factory=list)


@contextmanager
def local_server(respond: Respond) -> Iterator[LocalServer]:
    """Serve `respond(request) -> (status, JSON body)` until the block ends."""
    served = LocalServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            parts = urlsplit(self.path)
            request = Request(parts.path, dict(parse_qsl(parts.query)), {k.lower(): v for k, v in self.headers.items()})
            served.requests.append(request)
            status, body = respond(request)
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):  # keep the test output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def cassette(name: str) -> list[dict]:
    return json.loads((CASSETTES / f"{name}.json").read_text())["interactions"]


def replay(*names: str) -> Respond:
    """Answer each request with the first recorded interaction whose path matches and whose recorded query is part
    of the request's, page included (scrubbed parameters ignored); anything unrecorded is a 404."""
    interactions = [i for name in names for i in cassette(name)]

    def respond(request: Request) -> tuple[int, Any]:
        asked = {k: v for k, v in request.query.items() if k not in SCRUBBED}
        for interaction in interactions:
            recorded = interaction["request"]
            wanted = recorded["query"]
            same_page = all(k in wanted for k in asked if k in PAGING)
            if recorded["path"] == request.path and same_page and {k: asked.get(k) for k in wanted} == wanted:
                return interaction["response"]["status"], interaction["response"]["body"]
        return 404, {"message": f"no recorded interaction for {request.path} {asked}"}

    return respond


def served_bodies(name: str, path: str) -> list[Any]:
    return [i["response"]["body"] for i in cassette(name) if i["request"]["path"] == path]


@dataclass
class Market:
    """A synthetic market on the exchange's real calendar: every ticker's bars for `sessions` and a headline or two
    every calendar day (weekends and holidays included), for the fakes and the local server to serve."""

    tickers: list[str]
    sessions: list[dt.date]
    bars: pd.DataFrame  # PRICE_COLUMNS, date as datetime.date
    news: pd.DataFrame  # HEADLINE_COLUMNS

    @classmethod
    def between(cls, first: dt.date, last: dt.date, tickers: tuple[str, ...] = ("AAPL", "MSFT")) -> Market:
        sessions = sessions_between("XNYS", first, last)
        rng = np.random.default_rng(7)
        rows = []
        for t_index, ticker in enumerate(tickers):
            close = 100.0 + 50 * t_index
            for day in sessions:
                open_ = round(close * (1 + rng.normal(0, 0.005)), 2)
                close = round(close * (1 + rng.normal(0, 0.01)), 2)
                high, low = round(max(open_, close) * 1.004, 2), round(min(open_, close) * 0.996, 2)
                volume = int(rng.integers(1_000_000, 9_000_000))
                rows.append([day, ticker, open_, high, low, close, round(close * 0.98, 4), volume])
        days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
        news = [
            [day, ticker, f"{ticker} headline {n} of {day.isoformat()}", "fake"]
            for ticker in tickers
            for day in days
            for n in range(1 + day.day % 2)
        ]
        return cls(
            list(tickers),
            sessions,
            pd.DataFrame(rows, columns=PRICE_COLUMNS),
            pd.DataFrame(news, columns=HEADLINE_COLUMNS),
        )

    def prices(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        rows = self.bars[(self.bars["ticker"] == ticker) & (self.bars["date"] >= start) & (self.bars["date"] <= end)]
        return rows.reset_index(drop=True)

    def headlines(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        rows = self.news[(self.news["ticker"] == ticker) & (self.news["date"] >= start) & (self.news["date"] <= end)]
        return rows.reset_index(drop=True)

    def write_history(self, folder: Path, through: dt.date) -> Path:
        """prices.csv and headlines.csv with everything up to `through`: the stored data before the first night."""
        folder.mkdir(parents=True, exist_ok=True)
        self.bars[self.bars["date"] <= through].to_csv(folder / "prices.csv", index=False)
        self.news[self.news["date"] <= through].to_csv(folder / "headlines.csv", index=False)
        return folder


# --------------------------------------------------------------------- a market served night by night
PAGE = 3  # small pages, so that every night follows next_page_token
NYT_FILTERS = {"AAPL": 'organizations:("Apple Inc")', "MSFT": 'organizations:("Microsoft Corp")'}
KEYS = {"APCA_API_KEY_ID": "key-id-not-real", "APCA_API_SECRET_KEY": "secret-not-real", "NYT_API_KEY": "nyt-not-real"}
EXCHANGE_TZ = ZoneInfo("America/New_York")


class Providers:
    """Alpaca (bars, news) and NYT serving `market` as of a night: only the days before `night` exist, and the clock
    of the fetch (`now`) reads 02:00 New York on `night`, the schedule's hour; Alpaca can be down (HTTP 503)."""

    def __init__(self, market: Market, night: dt.date):
        self.market, self.night, self.alpaca_down = market, night, False

    def now(self) -> dt.datetime:
        return dt.datetime.combine(self.night, dt.time(2), EXCHANGE_TZ)

    def __call__(self, request: Request) -> tuple[int, object]:
        if request.path.startswith("/svc/search/v2/"):
            return self.nyt(request.query)
        if self.alpaca_down:
            return 503, {"message": "service unavailable"}
        if request.path == "/v1beta1/news":
            return self.alpaca_news(request.query)
        return self.alpaca_bars(request.path.split("/")[3], request.query)

    def _published(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows[rows["date"] < self.night]

    @staticmethod
    def _page(items: list, query: dict, key: str) -> dict:
        start = int(query.get("page_token", 0))
        more = start + PAGE < len(items)
        return {key: items[start : start + PAGE] or None, "next_page_token": str(start + PAGE) if more else None}

    def alpaca_bars(self, ticker: str, query: dict) -> tuple[int, object]:
        start, end = dt.date.fromisoformat(query["start"]), dt.date.fromisoformat(query["end"])
        rows = self._published(self.market.prices(ticker, start, end))
        close = "close" if query["adjustment"] == "raw" else "adj_close"
        bars = [
            {"t": _midnight_utc(r.date), "o": r.open, "h": r.high, "l": r.low, "c": getattr(r, close), "v": r.volume}
            for r in rows.itertuples()
        ]
        return 200, {**self._page(bars, query, "bars"), "symbol": ticker}

    def alpaca_news(self, query: dict) -> tuple[int, object]:
        start = pd.Timestamp(query["start"]).tz_convert(EXCHANGE_TZ).date()
        end = pd.Timestamp(query["end"]).tz_convert(EXCHANGE_TZ).date() - dt.timedelta(days=1)
        rows = self._published(self.market.headlines(query["symbols"], start, end))
        news = [
            {"id": i, "headline": f"[wire] {r.headline}", "created_at": f"{r.date}T15:00:00Z", "source": "benzinga"}
            for i, r in enumerate(rows.itertuples())
        ]
        return 200, self._page(news, query, "news")

    def nyt(self, query: dict) -> tuple[int, object]:
        ticker = {f: t for t, f in NYT_FILTERS.items()}[query["fq"]]
        start, end = (dt.datetime.strptime(query[k], "%Y%m%d").date() for k in ("begin_date", "end_date"))
        rows = self._published(self.market.headlines(ticker, start, end))
        page = int(query["page"])
        docs = [
            {"headline": {"main": r.headline}, "pub_date": f"{r.date}T14:00:00+0000", "source": "The New York Times"}
            for r in rows.iloc[page * 10 : page * 10 + 10].itertuples()
        ]
        return 200, {"status": "OK", "response": {"docs": docs, "meta": {"hits": len(rows), "offset": page * 10}}}


def _midnight_utc(day: dt.date) -> str:
    """Alpaca stamps a daily bar at midnight New York time (04:00Z in summer, 05:00Z in winter)."""
    return dt.datetime.combine(day, dt.time(0), EXCHANGE_TZ).astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch_section(url: str) -> dict:
    """The config's `fetch:` for the providers served at `url`: Alpaca bars, NYT and Alpaca news; no waiting."""
    return {
        "prices": ["alpaca"],
        "headlines": ["nyt", "alpaca_news"],
        "alpaca": {"base_url": url},
        "nyt": {"base_url": url + "/svc/search/v2", "filters": NYT_FILTERS, "page_pause_seconds": 0},
        "attempts": 2,
        "backoff_seconds": 0,
    }


@contextmanager
def serve_market(
    market: Market, night: dt.date, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Providers, LocalServer]]:
    """The providers of `market` on a local server, the keys in the environment and the fetch's clock at the
    providers' night, for the block."""
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    providers = Providers(market, night)
    monkeypatch.setattr(fetch_module, "utc_now", lambda: providers.now().astimezone(dt.timezone.utc))
    with local_server(providers) as server:
        yield providers, server
