"""Each provider against recorded-style responses in its documented schema, served on 127.0.0.1: the rows it
returns are the rows served, and a changed response is one line naming the provider and the field."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest

from llmoe_pipeline.connectors.alpaca import AlpacaNews, AlpacaPrices
from llmoe_pipeline.connectors.config import AlpacaConfig, NytConfig, YFinanceConfig
from llmoe_pipeline.connectors.http import JsonClient, RetryBudget
from llmoe_pipeline.connectors.nyt import NytHeadlines
from llmoe_pipeline.connectors.protocol import ProviderError, SchemaError
from llmoe_pipeline.connectors.yahoo import YFinancePrices, tidy_yfinance_frame
from llmoe_pipeline.data import HEADLINE_COLUMNS, PRICE_COLUMNS
from llmoe_pipeline_tests.connectors.support import local_server, replay, served_bodies

NY = "America/New_York"
KEYS = {"APCA_API_KEY_ID": "test-key-id", "APCA_API_SECRET_KEY": "test-secret", "NYT_API_KEY": "test-nyt-key"}
APRIL_1, APRIL_5 = dt.date(2024, 4, 1), dt.date(2024, 4, 5)


def client(name: str, sleeps: list | None = None) -> JsonClient:
    return JsonClient(name, RetryBudget(attempts=3, backoff_seconds=1.0), sleep=(sleeps or []).append)


def served_bars(adjustment: str) -> list[dict]:
    bodies = served_bodies("alpaca_bars_AAPL", "/v2/stocks/AAPL/bars")
    half = len(bodies) // 2  # the cassette holds the raw pages, then the adjusted ones
    return [b for body in (bodies[:half] if adjustment == "raw" else bodies[half:]) for b in body["bars"]]


def test_alpaca_bars_are_the_served_bars_with_the_adjusted_close():
    with local_server(replay("alpaca_bars_AAPL")) as server:
        provider = AlpacaPrices(AlpacaConfig(base_url=server.url), client("alpaca"), NY, KEYS)
        bars = provider.daily_bars("AAPL", APRIL_1, APRIL_5)
    raw, adjusted = served_bars("raw"), served_bars("all")
    assert list(bars.columns) == PRICE_COLUMNS
    assert bars["date"].tolist() == [dt.date(2024, 4, d) for d in (1, 2, 3, 4, 5)]  # midnight New York = that day
    assert bars["open"].tolist() == [b["o"] for b in raw]
    assert bars["close"].tolist() == [b["c"] for b in raw]
    assert bars["adj_close"].tolist() == [b["c"] for b in adjusted]
    assert bars["volume"].tolist() == [b["v"] for b in raw]
    assert len(server.requests) == 4  # two pages, twice (raw and adjusted)
    assert {r.query["adjustment"] for r in server.requests} == {"raw", "all"}
    assert all(r.headers["apca-api-key-id"] == "test-key-id" for r in server.requests)
    assert all(r.headers["apca-api-secret-key"] == "test-secret" for r in server.requests)


def test_alpaca_news_pages_and_new_york_dates():
    with local_server(replay("alpaca_news_AAPL")) as server:
        provider = AlpacaNews(AlpacaConfig(base_url=server.url), client("alpaca_news"), NY, KEYS)
        news = provider.headlines("AAPL", APRIL_1, dt.date(2024, 4, 6))
    items = [n for body in served_bodies("alpaca_news_AAPL", "/v1beta1/news") for n in body["news"]]
    assert list(news.columns) == HEADLINE_COLUMNS
    assert news["headline"].tolist() == [n["headline"] for n in items]
    # 02:30 UTC on 2 April is 22:30 on 1 April in New York: the exchange's calendar day.
    assert news["date"].tolist() == [dt.date(2024, 4, d) for d in (1, 1, 2, 4, 6)]
    assert news["source"].tolist() == ["alpaca:benzinga", "alpaca:benzinga", "alpaca:reuters"] + ["alpaca:benzinga"] * 2
    assert [r.query.get("page_token") for r in server.requests] == [None, "MTcxMjQxNTgwMjAwMDAwMDAwMHwzODAwMDAwMw=="]


def test_nyt_pages_fq_dates_and_key():
    with local_server(replay("nyt_AAPL")) as server:
        config = NytConfig(base_url=server.url + "/svc/search/v2", page_pause_seconds=12.0)
        pauses: list[float] = []
        provider = NytHeadlines(config, client("nyt"), NY, KEYS, sleep=pauses.append)
        news = provider.headlines("AAPL", APRIL_1, APRIL_5)
    docs = [
        d for body in served_bodies("nyt_AAPL", "/svc/search/v2/articlesearch.json") for d in body["response"]["docs"]
    ]
    assert news["headline"].tolist() == [d["headline"]["main"] for d in docs]
    assert news["date"].value_counts().sort_index().tolist() == [
        3,
        2,
        2,
        3,
        2,
    ]  # 03:15 UTC on 2 April counts on 1 April
    assert set(news["source"]) == {"nyt"}
    assert [r.query["page"] for r in server.requests] == ["0", "1"]  # 12 hits: two pages of 10
    assert all(r.query["api-key"] == "test-nyt-key" for r in server.requests)
    assert server.requests[0].query["fq"] == 'organizations:("Apple Inc")'
    assert (server.requests[0].query["begin_date"], server.requests[0].query["end_date"]) == ("20240401", "20240405")
    assert pauses == [12.0]  # NYT's 5 requests a minute: a pause before the second page


def test_nyt_ticker_without_filter_is_named():
    provider = NytHeadlines(NytConfig(), client("nyt"), NY, KEYS)
    with pytest.raises(ProviderError, match=r"^nyt: no fq filter for ticker TSLA \(set fetch.nyt.filters.TSLA\)$"):
        provider.headlines("TSLA", APRIL_1, APRIL_5)


def test_missing_key_names_the_variable_not_a_value():
    provider = AlpacaPrices(AlpacaConfig(base_url="http://127.0.0.1:9"), client("alpaca"), NY, {"APCA_API_KEY_ID": "x"})
    with pytest.raises(ProviderError, match=r"^alpaca: the environment variable APCA_API_SECRET_KEY .* is not set$"):
        provider.daily_bars("AAPL", APRIL_1, APRIL_5)


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        (lambda body: body["bars"][1].pop("c"), r"^alpaca: response field 'bars\[1\]\.c' is missing$"),
        (lambda body: body.pop("bars"), r"^alpaca: response field 'bars' is missing$"),
        (lambda body: body["bars"][0].update(t="yesterday"), r"^alpaca: response field 'bars\[0\]\.t' is not a"),
    ],
)
def test_alpaca_changed_response_is_one_line_naming_the_field(broken, message):
    body = served_bodies("alpaca_bars_AAPL", "/v2/stocks/AAPL/bars")[1]
    broken(body)
    with local_server(lambda request: (200, body)) as server:
        provider = AlpacaPrices(AlpacaConfig(base_url=server.url), client("alpaca"), NY, KEYS)
        with pytest.raises(SchemaError, match=message) as caught:
            provider.daily_bars("AAPL", APRIL_1, APRIL_5)
    assert "\n" not in str(caught.value)


def test_nyt_changed_response_names_the_field():
    body = served_bodies("nyt_AAPL", "/svc/search/v2/articlesearch.json")[1]
    del body["response"]["docs"][1]["headline"]["main"]
    with local_server(lambda request: (200, body)) as server:
        provider = NytHeadlines(NytConfig(base_url=server.url), client("nyt"), NY, KEYS, sleep=lambda s: None)
        with pytest.raises(SchemaError, match=r"^nyt: response field 'response.docs\[1\].headline.main' is missing$"):
            provider.headlines("AAPL", APRIL_1, APRIL_5)


# yfinance: its transport (curl_cffi) is out of reach of vcrpy, so the seam is the DataFrame yf.download returns.
YF_FIELDS = ["Adj Close", "Close", "High", "Low", "Open", "Volume"]
YF_VALUES = np.array(
    [[169.06, 170.03, 171.25, 169.48, 171.19, 46240500], [167.88, 168.84, 169.34, 168.23, 169.08, 49329500]]
)


def yf_frame(multi_index: bool, fields: list[str] = YF_FIELDS) -> pd.DataFrame:
    index = pd.DatetimeIndex(["2024-04-01", "2024-04-02"], name="Date")
    columns = pd.MultiIndex.from_product([fields, ["AAPL"]], names=["Price", "Ticker"]) if multi_index else fields
    return pd.DataFrame(YF_VALUES[:, [YF_FIELDS.index(f) for f in fields]], index=index, columns=columns)


@pytest.mark.parametrize("multi_index", [True, False])
def test_yfinance_frame_to_tidy_rows(multi_index):
    rows = tidy_yfinance_frame(yf_frame(multi_index), "AAPL")
    assert list(rows.columns) == PRICE_COLUMNS
    assert rows["date"].tolist() == [APRIL_1, dt.date(2024, 4, 2)]
    assert rows["adj_close"].tolist() == [169.06, 167.88]
    assert rows["open"].tolist() == [171.19, 169.08]
    assert rows["volume"].tolist() == [46240500, 49329500]


def test_yfinance_auto_adjust_frame_is_one_line_naming_adj_close():
    adjusted_only = yf_frame(True, [f for f in YF_FIELDS if f != "Adj Close"])  # what auto_adjust=True returns
    with pytest.raises(SchemaError) as caught:
        tidy_yfinance_frame(adjusted_only, "AAPL")
    assert str(caught.value) == "yfinance: response field 'Adj Close' is missing (download with auto_adjust=False)"


def test_yfinance_unsettled_session_is_dropped_and_download_is_unadjusted():
    frame = yf_frame(True)
    frame.iloc[1, 0] = np.nan  # Yahoo shows a session that has not settled as NaN
    calls = []

    def download(ticker, **kwargs):
        calls.append((ticker, kwargs))
        return frame

    rows = YFinancePrices(YFinanceConfig(), download=download).daily_bars("AAPL", APRIL_1, dt.date(2024, 4, 2))
    assert rows["date"].tolist() == [APRIL_1]
    assert calls[0][0] == "AAPL"
    assert calls[0][1]["auto_adjust"] is False
    assert (calls[0][1]["start"], calls[0][1]["end"]) == ("2024-04-01", "2024-04-03")  # yfinance's end is exclusive


def test_nyt_range_beyond_100_pages_is_split():
    def respond(request):
        days = (request.query["begin_date"], request.query["end_date"])
        if days[0] != days[1]:  # two days: more hits than 100 pages of 10 can reach
            return 200, {"response": {"docs": [], "meta": {"hits": 1500, "offset": 0}}}
        day = dt.datetime.strptime(days[0], "%Y%m%d").date()
        docs = [{"headline": {"main": f"story {i} of {day}"}, "pub_date": f"{day}T15:00:00+0000"} for i in range(3)]
        return 200, {"response": {"docs": docs, "meta": {"hits": 3, "offset": 0}}}

    with local_server(respond) as server:
        provider = NytHeadlines(NytConfig(base_url=server.url), client("nyt"), NY, KEYS, sleep=lambda s: None)
        news = provider.headlines("AAPL", APRIL_1, dt.date(2024, 4, 2))
    asked = [(r.query["begin_date"], r.query["end_date"], r.query["page"]) for r in server.requests]
    assert asked == [("20240401", "20240402", "0"), ("20240401", "20240401", "0"), ("20240402", "20240402", "0")]
    assert news["headline"].tolist() == [f"story {i} of 2024-04-0{d}" for d in (1, 2) for i in range(3)]


def test_yfinance_failure_is_a_provider_error_not_an_empty_answer(monkeypatch):
    import yfinance

    def unreachable(ticker, **kwargs):  # what yf.download does offline: log, then return an empty frame
        logging.getLogger("yfinance").error("\n1 Failed download:")
        logging.getLogger("yfinance").error("['AAPL']: DNSError('Could not resolve host: query2.finance.yahoo.com')")
        return yf_frame(True).iloc[:0]

    monkeypatch.setattr(yfinance, "download", unreachable)
    with pytest.raises(ProviderError) as caught:
        YFinancePrices(YFinanceConfig()).daily_bars("AAPL", APRIL_1, APRIL_5)
    assert str(caught.value) == (
        "yfinance: download of AAPL failed: ['AAPL']: DNSError('Could not resolve host: query2.finance.yahoo.com')"
    )
