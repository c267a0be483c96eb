"""Loaders on the real reference files, the paper's raw format, and errors that name file, row and column."""

import pandas as pd
import pytest

from llmoe_pipeline import DataValidationError, daily_news, load_headlines, load_prices


def test_tidy_prices_typed_sorted_unique(data_dir):
    p = load_prices(data_dir / "prices.csv")
    assert list(p.columns) == ["date", "ticker", "open", "high", "low", "close", "adj_close", "volume"]
    assert str(p["date"].dtype) == "datetime64[ns]" and str(p["volume"].dtype) == "int64"
    assert p.groupby("ticker").size().to_dict() == {"AAPL": 2769, "MSFT": 2769}
    assert not p.duplicated(["ticker", "date"]).any()
    assert p.equals(p.sort_values(["ticker", "date"]).reset_index(drop=True))
    first = p.iloc[0]
    assert (first["ticker"], str(first["date"].date()), first["open"], first["volume"]) == (
        "AAPL",
        "2006-01-03",
        10.34,
        201808600,
    )


def test_paper_raw_file_matches_tidy_prices(data_dir):
    paper = load_prices(data_dir / "paper_original" / "AppleNewsStock.csv", ticker="AAPL")
    tidy = load_prices(data_dir / "prices.csv", tickers=["AAPL"])
    assert len(paper) == 2517 and paper["date"].min() == pd.Timestamp("2006-12-01")
    merged = paper.merge(tidy, on=["ticker", "date"], suffixes=("_paper", ""))
    assert len(merged) == 2517
    # SOURCES.md: open/high/low equal the paper file; the tidy close equals the paper's Adj Close.
    for col in ("open", "high", "low"):
        assert (merged[f"{col}_paper"] - merged[col]).abs().max() < 1e-6
    assert (merged["adj_close_paper"] - merged["close"]).abs().max() < 1e-6


def test_paper_file_without_ticker_is_an_error(data_dir):
    with pytest.raises(DataValidationError, match="pass ticker="):
        load_prices(data_dir / "paper_original" / "MicrosoftNewsStock.csv")


def test_tickers_filter_and_unknown_ticker(data_dir):
    p = load_prices([data_dir / "prices.csv", data_dir / "prices_extra.csv"], tickers=["GE", "MSFT"])
    assert sorted(p["ticker"].unique()) == ["GE", "MSFT"]
    with pytest.raises(DataValidationError, match=r"no price rows for ticker\(s\) \['NOPE'\]"):
        load_prices(data_dir / "prices.csv", tickers=["NOPE"])


def _write(tmp_path, text, name="prices.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


HEADER = "date,ticker,open,high,low,close,adj_close,volume\n"
GOOD = "2020-01-02,XYZ,10,11,9,10.5,10.4,100\n"


@pytest.mark.parametrize(
    "row, column, message",
    [
        ("2020-01-03,XYZ,10,11,9,abc,10.4,100", "close", "not a finite number"),
        ("2020-01-03,XYZ,10,11,9,,10.4,100", "close", "not a finite number"),
        ("2020-01-03,XYZ,10,11,9,10.5,-1,100", "adj_close", "must be positive"),
        ("2020-01-03,XYZ,10,9,11,10.5,10.4,100", "high", "below low"),
        ("2020-13-45,XYZ,10,11,9,10.5,10.4,100", "date", "unparsable date"),
        ("2020-01-03,XYZ,10,11,9,10.5,10.4,1.5", "volume", "non-negative integer"),
        ("2020-01-02,XYZ,10,11,9,10.5,10.4,100", "date", "duplicate"),
    ],
)
def test_bad_row_names_file_row_and_column(tmp_path, row, column, message):
    path = _write(tmp_path, HEADER + GOOD + row + "\n")
    with pytest.raises(DataValidationError) as err:
        load_prices(path)
    e = err.value
    assert e.column == column and 3 in e.rows and e.path == str(path)
    assert str(path) in str(e) and "row" in str(e) and f"'{column}'" in str(e) and message in str(e)


def test_missing_column_and_wrong_delimiter(tmp_path):
    with pytest.raises(DataValidationError, match="missing column.*'volume'"):
        load_prices(_write(tmp_path, HEADER.replace(",volume", "") + GOOD.rsplit(",", 1)[0] + "\n"))
    with pytest.raises(DataValidationError, match="delimiter"):
        load_prices(_write(tmp_path, HEADER.replace(",", ";") + GOOD.replace(",", ";")))


def test_daily_news_maps_weekend_headlines_to_next_trading_day(data_dir):
    prices = load_prices(data_dir / "prices.csv", tickers=["AAPL"])
    heads = pd.DataFrame(
        {
            "date": pd.to_datetime(["2015-01-02", "2015-01-03", "2015-01-04", "2015-01-05"]),  # Fri, Sat, Sun, Mon
            "ticker": "AAPL",
            "headline": ["fri", "sat", "sun", "mon"],
            "source": "t",
        }
    )
    news = daily_news(heads, prices).set_index("date")["headlines"]
    assert news[pd.Timestamp("2015-01-02")] == ["fri"]
    assert news[pd.Timestamp("2015-01-05")] == ["sat", "sun", "mon"]
    assert news[pd.Timestamp("2015-01-06")] == []  # explicit empty list, not dropped
    assert len(news) == len(prices)


def test_real_headlines_load(data_dir):
    h = load_headlines(data_dir / "headlines.csv", tickers=["MSFT"])
    assert set(h.columns) == {"date", "ticker", "headline", "source"}
    assert set(h["source"]) == {"nyt", "reuters"} and (h["headline"].str.len() > 0).all()
    assert not h.duplicated(["ticker", "date", "headline"]).any()
