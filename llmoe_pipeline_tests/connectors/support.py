"""A local HTTP server on 127.0.0.1 (http.server in a thread) that answers like a provider; cassettes: recorded-
style interactions in each API's documented schema, keys scrubbed, replayed by matching path and query; and a
synthetic market on the real exchange calendar for the fetch over several nights."""

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

import numpy as np
import pandas as pd

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
