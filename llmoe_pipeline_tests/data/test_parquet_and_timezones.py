"""Parquet inputs (nulls, bytes, index columns, typed timestamps) and time-zone-aware dates (issue #14, items 3-4).

A Parquet cell is validated like the CSV cell it stands for: a null is an error naming file, row and column (it was
read as the text "None": a headline "None", or a ticker "NONE" that made the day vanish from its real ticker);
bytes are UTF-8 text (they were read as "b'...'"). Aware timestamps take their date on the exchange's calendar
(America/New_York by default); they were cut to their own date (midnight in Tokyo stayed the next day in New York).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmoe_pipeline import DataValidationError, daily_news, load_headlines, load_prices
from llmoe_pipeline.config.protocol import PipelineConfig

TOKYO, NEW_YORK = "Asia/Tokyo", "America/New_York"


def _headlines_table(**columns) -> pa.Table:
    base = {
        "date": pa.array(["2016-01-04", "2016-01-05", "2016-01-06"]),
        "ticker": pa.array(["AAPL", "AAPL", "AAPL"]),
        "headline": pa.array(["one", "two", "three"]),
        "source": pa.array(["nyt", "nyt", "reuters"]),
    }
    return pa.table({**base, **columns})


def _write(table: pa.Table, path):
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("column", ["date", "ticker", "headline"])
def test_null_in_a_parquet_headline_file_is_an_error_naming_file_row_and_column(tmp_path, column):
    values = {"date": ["2016-01-04", None, "2016-01-06"], "ticker": ["AAPL", None, "AAPL"]}
    values["headline"] = ["one", None, "three"]
    path = _write(_headlines_table(**{column: pa.array(values[column], pa.string())}), tmp_path / "h.parquet")
    with pytest.raises(DataValidationError) as err:
        load_headlines(path)
    assert (err.value.path, err.value.column, err.value.rows) == (str(path), column, [3])
    assert "missing value (null)" in str(err.value)


def test_null_source_is_an_empty_source_as_in_csv(tmp_path):
    path = _write(_headlines_table(source=pa.array(["nyt", None, None], pa.string())), tmp_path / "h.parquet")
    assert load_headlines(path)["source"].tolist() == ["nyt", "", ""]


def test_null_price_is_an_error_naming_the_row(tmp_path):
    prices = pd.DataFrame(
        {
            "date": ["2016-01-04", "2016-01-05"],
            "ticker": "AAPL",
            "open": [10.0, 10.0],
            "high": [11.0, 11.0],
            "low": [9.0, 9.0],
            "close": [10.5, None],
            "adj_close": [10.4, 10.4],
            "volume": [100, 100],
        }
    )
    path = tmp_path / "p.parquet"
    prices.to_parquet(path)
    with pytest.raises(DataValidationError) as err:
        load_prices(path)
    assert (err.value.column, err.value.rows) == ("close", [3]) and "missing value (null)" in str(err.value)


def test_utf8_bytes_are_decoded_and_other_bytes_are_rejected(tmp_path):
    good = _headlines_table(headline=pa.array(["Apple’s iPhone".encode(), b"two", b"three"], pa.binary()))
    got = load_headlines(_write(good, tmp_path / "good.parquet"))
    assert got["headline"].tolist() == ["Apple’s iPhone", "two", "three"]
    bad = _headlines_table(headline=pa.array([b"one", b"\xff\xfe broken", b"three"], pa.binary()))
    path = _write(bad, tmp_path / "bad.parquet")
    with pytest.raises(DataValidationError) as err:
        load_headlines(path)
    assert (err.value.column, err.value.rows) == ("headline", [3]) and "not UTF-8" in str(err.value)


def test_parquet_loads_like_the_csv_it_was_made_from(data_dir, tmp_path):
    """Typed Parquet (dates, floats, ints, a categorical, pandas' index column) gives what the CSV gives."""
    prices_csv = load_prices(data_dir / "prices.csv", tickers=["MSFT"])
    typed = prices_csv.iloc[100:400].set_index(pd.RangeIndex(100, 400) * 3)  # a stored, non-range index
    typed.to_parquet(tmp_path / "p.parquet")
    pd.testing.assert_frame_equal(load_prices(tmp_path / "p.parquet"), typed.reset_index(drop=True))
    heads = load_headlines(data_dir / "headlines.csv", tickers=["MSFT"]).iloc[:500]
    heads.assign(ticker=heads["ticker"].astype("category")).to_parquet(tmp_path / "h.parquet")
    pd.testing.assert_frame_equal(load_headlines(tmp_path / "h.parquet"), heads.reset_index(drop=True))


# ------------------------------------------------------------------------------------------------ time zones
def _tokyo_headlines(tmp_path, as_parquet: bool):
    stamps = [dt.datetime(2016, 1, 5, 0, 0), dt.datetime(2016, 1, 5, 23, 0), dt.datetime(2016, 1, 9, 12, 0)]
    frame = pd.DataFrame(
        {
            "date": pd.DatetimeIndex(stamps).tz_localize(TOKYO),
            "ticker": "AAPL",
            "headline": ["midnight in Tokyo", "late in Tokyo", "Saturday noon in Tokyo"],
        }
    )
    if as_parquet:
        frame.to_parquet(tmp_path / "h.parquet")
        return tmp_path / "h.parquet"
    frame["date"] = frame["date"].map(lambda t: t.isoformat())  # 2016-01-05T00:00:00+09:00
    frame.to_csv(tmp_path / "h.csv", index=False)
    return tmp_path / "h.csv"


@pytest.mark.parametrize("as_parquet", [False, True], ids=["csv_iso_offsets", "parquet_tz_aware"])
def test_tokyo_midnight_headline_lands_on_its_new_york_date(tmp_path, aapl_prices, as_parquet):
    path = _tokyo_headlines(tmp_path, as_parquet)
    got = load_headlines(path)
    # 00:00 Tokyo = 10:00 the day before in New York; 23:00 Tokyo = 09:00 the same day; Sat noon = Fri 22:00.
    assert [str(d.date()) for d in got["date"]] == ["2016-01-04", "2016-01-05", "2016-01-08"]
    news = daily_news(got, aapl_prices).set_index("date")["headlines"]
    # The Monday 2016-01-04 window has the Tokyo-midnight item; no look-ahead into Tuesday's.
    assert news[pd.Timestamp("2016-01-04")] == ["midnight in Tokyo"]
    assert news[pd.Timestamp("2016-01-05")] == ["late in Tokyo"]
    assert news[pd.Timestamp("2016-01-08")] == ["Saturday noon in Tokyo"]
    # Another exchange's calendar: the same instants on Tokyo's own dates.
    tokyo = load_headlines(path, exchange_timezone=TOKYO)
    assert [str(d.date()) for d in tokyo["date"]] == ["2016-01-05", "2016-01-05", "2016-01-09"]


def test_naive_dates_and_timestamps_are_exchange_local(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(
        "date,ticker,headline\n2016-01-04,AAPL,a plain date\n2016-01-04T23:30:00,AAPL,naive late evening\n"
        "2016-01-04 23:30:00-05:00,AAPL,late evening in New York\n2016-01-05T04:30:00Z,AAPL,the same instant in UTC\n",
        encoding="utf-8",
    )
    assert {str(d.date()) for d in load_headlines(path)["date"]} == {"2016-01-04"}


@pytest.mark.parametrize("as_parquet", [False, True], ids=["csv_iso_offsets", "parquet_tz_aware"])
def test_aware_price_timestamps_take_the_exchange_date(tmp_path, aapl_prices, as_parquet):
    bars = aapl_prices[aapl_prices["date"].between("2016-01-04", "2016-01-08")].reset_index(drop=True)
    # Each bar stamped at its 16:00 New York close, written in Tokyo time: the next calendar day there.
    stamps = (bars["date"] + pd.Timedelta(hours=16)).dt.tz_localize(NEW_YORK).dt.tz_convert(TOKYO)
    assert str(stamps.iloc[0]) == "2016-01-05 06:00:00+09:00"
    frame = bars.assign(date=stamps if as_parquet else stamps.map(lambda t: t.isoformat()))
    path = tmp_path / ("p.parquet" if as_parquet else "p.csv")
    frame.to_parquet(path) if as_parquet else frame.to_csv(path, index=False)
    pd.testing.assert_frame_equal(load_prices(path), bars)


def test_exchange_timezone_is_configurable_and_checked():
    assert PipelineConfig().data.exchange_timezone == NEW_YORK
    assert PipelineConfig.model_validate({"data": {"exchange_timezone": TOKYO}}).data.exchange_timezone == TOKYO
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        PipelineConfig.model_validate({"data": {"exchange_timezone": "Mars/Olympus"}})


def test_mixed_iso_dates_and_timestamps_are_one_family_but_us_dates_are_not(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("date,ticker,headline\n2016-01-04,AAPL,a\n2016-01-05T10:00:00+01:00,AAPL,b\n1/6/2016,AAPL,c\n")
    with pytest.raises(DataValidationError, match="mixed date formats") as err:
        load_headlines(path)
    assert err.value.rows == [4]
