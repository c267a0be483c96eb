"""The fetch over nights with in-memory providers on a synthetic market (the real exchange calendar): new dated
files only, nothing rewritten, nothing partial, gaps filled the next night, holidays not errors, revised histories
reported and re-based only on request. The loaders read what it writes."""

from __future__ import annotations

import datetime as dt
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from llmoe_pipeline.config.protocol import DataConfig
from llmoe_pipeline.connectors import fetch as fetch_module
from llmoe_pipeline.connectors import store
from llmoe_pipeline.connectors.config import FetchConfig
from llmoe_pipeline.connectors.fetch import fetch
from llmoe_pipeline.connectors.protocol import ProviderError
from llmoe_pipeline.data import load_headlines, load_prices
from llmoe_pipeline_tests.connectors.support import Market

MARKET = Market.between(dt.date(2024, 2, 1), dt.date(2024, 4, 12))
STORED_THROUGH = dt.date(2024, 3, 22)  # a Friday
CONFIG = FetchConfig(prices=["yfinance"], headlines=["nyt"])  # the names only label the fakes' files here


def night(day: dt.date) -> dt.datetime:
    """02:00 New York on `day` (the schedule's hour), as UTC."""
    return dt.datetime(day.year, day.month, day.day, 6, 0, tzinfo=dt.timezone.utc)


class Prices:
    def __init__(self, name: str = "yfinance", down: bool = False, lacks: set[dt.date] = frozenset(), scale: float = 1):
        self.name, self.down, self.lacks, self.scale, self.calls = name, down, set(lacks), scale, []

    def daily_bars(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        self.calls.append((ticker, start, end))
        if self.down:
            raise ProviderError(self.name, "GET /bars failed 5 times (last: HTTP 503); retry budget spent")
        rows = MARKET.prices(ticker, start, end)
        rows = rows.assign(adj_close=rows["adj_close"] * self.scale)
        return rows[~rows["date"].isin(self.lacks)].reset_index(drop=True)


class Headlines:
    def __init__(self, name: str = "nyt", down: bool = False):
        self.name, self.down, self.calls = name, down, []

    def headlines(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        self.calls.append((ticker, start, end))
        if self.down:
            raise ProviderError(
                self.name, "GET /articlesearch.json failed 5 times (last: HTTP 429); retry budget spent"
            )
        return MARKET.headlines(ticker, start, end)


@pytest.fixture
def data(tmp_path) -> DataConfig:
    folder = MARKET.write_history(tmp_path / "data", STORED_THROUGH)
    return DataConfig(data_dir=str(folder), updates_dir=str(tmp_path / "updates"), tickers=["AAPL", "MSFT"])


def run(data, day, prices=None, headlines=None, **kwargs):
    return fetch(
        data,
        kwargs.pop("config", CONFIG),
        ["AAPL", "MSFT"],
        [Prices()] if prices is None else prices,
        [Headlines()] if headlines is None else headlines,
        now=night(day),
        **kwargs,
    )


def loaded(data: DataConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    prices = load_prices(data.price_paths(), exchange_timezone=data.exchange_timezone)
    news = load_headlines(data.headline_paths(), exchange_timezone=data.exchange_timezone)
    return prices.assign(date=prices["date"].dt.date), news.assign(date=news["date"].dt.date)


def served(through: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    prices = MARKET.bars[MARKET.bars["date"] <= through].sort_values(["ticker", "date"]).reset_index(drop=True)
    news = MARKET.news[MARKET.news["date"] <= through]
    return prices, news


def updates(data: DataConfig) -> list[str]:
    return sorted(p.name for p in Path(data.updates_dir).iterdir() if p.is_file())


def test_first_night_writes_the_due_sessions_and_the_loaders_read_them(data):
    report = run(data, dt.date(2024, 3, 26))  # Tuesday 02:00: Monday's session is due
    assert report.ok, report.lines()
    assert updates(data) == [
        "headlines_AAPL_2024-03-23_2024-03-25_nyt.csv",  # the weekend's news too: it belongs to Monday's window
        "headlines_MSFT_2024-03-23_2024-03-25_nyt.csv",
        "prices_AAPL_2024-03-25_2024-03-25_yfinance.csv",
        "prices_MSFT_2024-03-25_2024-03-25_yfinance.csv",
    ]
    prices, news = loaded(data)
    want_prices, want_news = served(dt.date(2024, 3, 25))
    pd.testing.assert_frame_equal(prices, want_prices, check_dtype=False)
    assert sorted(news["headline"]) == sorted(want_news["headline"])


def test_second_fetch_of_the_same_night_writes_and_asks_nothing(data):
    run(data, dt.date(2024, 3, 26))
    before = {p: p.stat().st_mtime_ns for p in Path(data.updates_dir).iterdir() if p.is_file()}
    prices, headlines = Prices(), Headlines()
    report = run(data, dt.date(2024, 3, 26), [prices], [headlines])
    assert report.ok and report.written == []
    assert prices.calls == [] and headlines.calls == []
    assert {p: p.stat().st_mtime_ns for p in Path(data.updates_dir).iterdir() if p.is_file()} == before


def test_one_provider_down_the_next_one_delivers(data):
    down, backup = Prices("yfinance", down=True), Prices("alpaca")
    report = run(data, dt.date(2024, 3, 27), [down, backup])
    assert report.ok
    assert "prices_AAPL_2024-03-25_2024-03-26_alpaca.csv" in updates(data)
    assert report.notes[0].startswith("AAPL: alpaca delivered after yfinance: GET /bars failed 5 times")


def test_every_provider_down_names_ticker_session_provider_and_next_night_fills_the_gap(data):
    report = run(data, dt.date(2024, 3, 27), [Prices(down=True)])
    assert [str(m) for m in report.missing][:2] == [
        "AAPL session 2024-03-25: no provider has it (yfinance: GET /bars failed 5 times (last: HTTP 503); "
        "retry budget spent)",
        "AAPL session 2024-03-26: no provider has it (yfinance: GET /bars failed 5 times (last: HTTP 503); "
        "retry budget spent)",
    ]
    assert not report.ok and len(report.missing) == 4
    assert report.problems[1] == (  # a run of sessions is one line
        "MSFT sessions 2024-03-25..2024-03-26 (2): no provider has them (yfinance: GET /bars failed 5 times "
        "(last: HTTP 503); retry budget spent)"
    )
    assert [n for n in updates(data) if n.startswith("prices")] == []
    assert len([n for n in updates(data) if n.startswith("headlines")]) == 2  # the other provider's data stays in
    assert run(data, dt.date(2024, 3, 28)).ok
    assert "prices_AAPL_2024-03-25_2024-03-27_yfinance.csv" in updates(data)
    pd.testing.assert_frame_equal(loaded(data)[0], served(dt.date(2024, 3, 27))[0], check_dtype=False)


def test_only_an_unbroken_run_is_written(data):
    report = run(data, dt.date(2024, 3, 28), [Prices(lacks={dt.date(2024, 3, 26)})])
    assert "prices_AAPL_2024-03-25_2024-03-25_yfinance.csv" in updates(data)
    assert {(m.ticker, m.session) for m in report.missing} == {
        (t, dt.date(2024, 3, d)) for t in ("AAPL", "MSFT") for d in (26, 27)
    }
    assert "yfinance: no bar for AAPL on 2024-03-26" in report.missing[0].reasons


def test_a_holiday_is_not_missing(data):
    run(data, dt.date(2024, 3, 29))  # Friday 02:00: Thursday's session
    prices = Prices()
    report = run(data, dt.date(2024, 3, 30), [prices])  # Saturday 02:00: Good Friday was a holiday
    assert report.ok and report.missing == [] and prices.calls == []
    report = run(data, dt.date(2024, 4, 2), [prices])
    assert report.ok and "prices_AAPL_2024-04-01_2024-04-01_yfinance.csv" in updates(data)


def test_changed_adjusted_history_is_reported_and_nothing_written(data):
    report = run(data, dt.date(2024, 3, 26), [Prices(scale=0.5)])  # a 2:1 split applied to the history
    assert all(p.name.startswith("headlines_") for p in report.written)  # the headlines are not held back
    assert [n for n in updates(data) if n.startswith("prices")] == []
    revision = report.revisions[0]
    assert (revision.ticker, revision.provider) == ("AAPL", "yfinance")
    assert revision.dates == tuple(MARKET.sessions[MARKET.sessions.index(STORED_THROUGH) - 4 :][:5])
    assert "--rebase" in str(revision)


def test_rebase_writes_a_new_file_set_beside_the_stored_one(data):
    report = run(data, dt.date(2024, 3, 26), [Prices(scale=0.5)], rebase=True)
    rebased = sorted(Path(data.updates_dir, "rebased").glob("*/prices_*.csv"))
    assert [p.name for p in rebased] == [
        "prices_AAPL_2024-02-01_2024-03-25_yfinance.csv",
        "prices_MSFT_2024-02-01_2024-03-25_yfinance.csv",
    ]
    assert f"list it in data.price_files (e.g. 'rebased/{rebased[0].parent.name}/prices_*.csv'" in report.notes[0]
    history = load_prices(rebased)
    assert history["adj_close"].tolist() == pytest.approx((served(dt.date(2024, 3, 25))[0]["adj_close"] * 0.5).tolist())
    assert (Path(data.data_dir) / "prices.csv").stat().st_size > 0 and report.revisions == []
    assert loaded(data)[0]["date"].max() == STORED_THROUGH  # what the loaders read is unchanged


def test_interrupted_write_leaves_no_file_and_the_next_fetch_writes_it(data, monkeypatch):
    def interrupted_before_the_rename(frame, folder, name, check):
        def check_then_stop(tmp):
            check(tmp)
            raise KeyboardInterrupt  # Ctrl-C (or SIGTERM) once the temp file is complete

        return store.write_new_file(frame, folder, name, check_then_stop)

    monkeypatch.setattr(fetch_module, "write_new_file", interrupted_before_the_rename)
    with pytest.raises(KeyboardInterrupt):
        run(data, dt.date(2024, 3, 26))
    assert [p.name for p in Path(data.updates_dir).iterdir() if p.is_file()] == []  # no file, no temp file
    monkeypatch.undo()
    assert run(data, dt.date(2024, 3, 26)).ok
    assert len(list(Path(data.updates_dir).glob("prices_*.csv"))) == 2


def test_rows_the_loader_would_refuse_are_not_written(data):
    class Broken(Prices):
        def daily_bars(self, ticker, start, end):
            rows = super().daily_bars(ticker, start, end)
            return rows.assign(high=rows["low"] * 0.5)  # high below low

    report = run(data, dt.date(2024, 3, 26), [Broken()])
    assert [n for n in updates(data) if n.startswith("prices")] == []
    assert "yfinance: prices of AAPL fail the loader's checks" in report.missing[0].reasons[0]
    assert "high is below low" in report.missing[0].reasons[0]


def test_headline_provider_down_keeps_its_coverage_for_the_next_night(data):
    report = run(data, dt.date(2024, 3, 26), headlines=[Headlines(down=True)])
    assert report.failures[0].startswith("AAPL headlines 2024-03-23..2024-03-25: nyt: GET /articlesearch.json")
    assert "prices_AAPL_2024-03-25_2024-03-25_yfinance.csv" in updates(data)  # prices are in
    headlines = Headlines()
    assert run(data, dt.date(2024, 3, 27), headlines=[headlines]).ok
    assert headlines.calls[0] == ("AAPL", dt.date(2024, 3, 23), dt.date(2024, 3, 26))  # from the old day
    assert sorted(loaded(data)[1]["headline"]) == sorted(served(dt.date(2024, 3, 26))[1]["headline"])


def test_a_new_ticker_needs_since(data):
    report = fetch(data, CONFIG, ["NVDA"], [Prices()], [], now=night(dt.date(2024, 3, 26)))
    assert report.failures == ["NVDA: no stored prices yet; pass --since DATE for its first fetch"]


def test_a_new_ticker_from_since(data):
    report = fetch(data, CONFIG, ["AAPL"], [Prices()], [], now=night(dt.date(2024, 3, 26)), since=dt.date(2024, 3, 25))
    assert report.ok and [p.name for p in report.written] == ["prices_AAPL_2024-03-25_2024-03-25_yfinance.csv"]


def test_two_fetches_at_once_write_each_session_once(data):
    class Slow(Prices):
        def daily_bars(self, ticker, start, end):
            time.sleep(0.2)  # long enough for the other fetch to read the stored days meanwhile, were it not locked
            return super().daily_bars(ticker, start, end)

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda name: run(data, dt.date(2024, 3, 27), [Slow(name)]), ["yfinance", "alpaca"]))
    assert all(r.ok for r in reports)
    assert sorted(len(r.written) for r in reports) == [0, 4]  # the second one found everything stored
    pd.testing.assert_frame_equal(loaded(data)[0], served(dt.date(2024, 3, 26))[0], check_dtype=False)


def test_after_a_rebase_the_rebased_set_and_the_next_nights_read_together(data, tmp_path):
    run(data, dt.date(2024, 3, 26))  # one ordinary night first: prices_<T>_2024-03-25_... in the updates folder
    split = Prices(scale=0.5)
    run(data, dt.date(2024, 3, 27), [split], rebase=True)
    stamp = next(Path(data.updates_dir, "rebased").iterdir()).name
    aside = tmp_path / "aside"
    aside.mkdir()
    for old in Path(data.updates_dir).glob("prices_*.csv"):  # what the note says to do
        old.rename(aside / old.name)
    rebased = data.model_copy(update={"price_files": [f"rebased/{stamp}/prices_*.csv", "prices_*.csv"]})
    report = run(rebased, dt.date(2024, 3, 29), [split])
    assert report.ok and report.revisions == []
    assert [p.name for p in report.written if p.name.startswith("prices")] == [
        "prices_AAPL_2024-03-27_2024-03-28_yfinance.csv",
        "prices_MSFT_2024-03-27_2024-03-28_yfinance.csv",
    ]
    prices = loaded(rebased)[0]
    want = served(dt.date(2024, 3, 28))[0]
    assert prices["date"].tolist() == want["date"].tolist()
    assert prices["adj_close"].tolist() == pytest.approx((want["adj_close"] * 0.5).tolist())
