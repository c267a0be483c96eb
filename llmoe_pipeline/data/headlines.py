"""Dated headlines (tidy `date,ticker,headline[,source]`, or the paper's raw files with `ticker=`), and their
assignment to trading days.

Accepted: control characters inside headlines (replaced by spaces), headlines longer than
`MAX_HEADLINE_CHARS` (cut). Rejected: empty headlines and unreadable cells. Tickers are case-insensitive
(`aapl` in a headline file is AAPL). Dates: `dates.parse_dates` (time-zone-aware timestamps become the exchange's
calendar date).

Memory: the file is read in chunks (`csv_stream`), each headline is cleaned and cut as its chunk is read and the
repeated columns (date, ticker, source) are categorical, so loading costs about twice the file's size, not a
multiple of it (`llmoe_pipeline_tests/data/test_memory.py`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from llmoe_pipeline.data.prices import PAPER_COLUMNS
from llmoe_pipeline.data.reader import (
    DEFAULT_EXCHANGE_TIMEZONE,
    DataValidationError,
    check_columns,
    check_tickers,
    normalize_ticker,
    parse_dates,
    read_table,
)

HEADLINE_COLUMNS = ["date", "ticker", "headline", "source"]
MAX_HEADLINE_CHARS = 4000
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _clean_headline(text: str) -> str:
    text = _CONTROL_CHARS.sub(" ", text).strip()
    return text[:MAX_HEADLINE_CHARS]


def _prepare_chunk(chunk: pd.DataFrame) -> pd.DataFrame:
    """Per chunk, as it is read: headlines cleaned and cut (the long text is dropped at once), repeated columns
    categorical (a category per distinct value instead of a string per row)."""
    if "headline" in chunk.columns:
        chunk["headline"] = chunk["headline"].map(_clean_headline)
    for col in ("date", "Date", "ticker", "source"):
        if col in chunk.columns:
            chunk[col] = chunk[col].astype("category")
    return chunk


def _read_headline_file(path: Path, ticker: str | None, timezone: str) -> pd.DataFrame:
    df, lines = read_table(path, _prepare_chunk, nullable=["source"])
    if "Unnamed: 0" in df.columns or (len(df.columns) and df.columns[0] == ""):
        df = df.drop(columns=[df.columns[0]])
    if "Date" in df.columns:  # paper format: one News cell per day; the whole cell is one item
        check_columns(path, df, PAPER_COLUMNS)
        if not ticker:
            raise DataValidationError(path, None, [], "paper-format file has no ticker column: pass ticker=...")
        keep = (df["News"].astype(str).str.strip() != "").to_numpy()  # days without news are simply absent here
        df = pd.DataFrame(
            {"date": df["Date"], "ticker": ticker, "headline": df["News"].map(_clean_headline), "source": "paper"}
        )
        df, lines = df[keep].reset_index(drop=True), lines[keep]
    else:
        check_columns(path, df, HEADLINE_COLUMNS[:3], optional=["source"])
        df["source"] = df["source"].astype(object) if "source" in df.columns else ""
    df["date"] = parse_dates(path, df["date"], lines, "date", timezone)
    df["ticker"] = check_tickers(path, df["ticker"], lines)
    blank = (df["headline"] == "").to_numpy()
    if blank.any():
        raise DataValidationError(path, "headline", lines[blank].tolist(), "headline is empty or only whitespace")
    return df[HEADLINE_COLUMNS]


def load_headlines(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    tickers: Sequence[str] | None = None,
    ticker: str | None = None,
    exchange_timezone: str = DEFAULT_EXCHANGE_TIMEZONE,
) -> pd.DataFrame:
    """Load dated headlines (tidy `date,ticker,headline[,source]`, or a paper file with `ticker=`).

    Returns date (datetime64, calendar date as published, on the exchange's calendar: aware timestamps are
    converted to `exchange_timezone`), ticker, headline, source; sorted by (ticker, date); exact duplicate
    (ticker, date, headline) rows are dropped.
    """
    path_list = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    df = pd.concat([_read_headline_file(p, ticker, exchange_timezone) for p in path_list], ignore_index=True)
    if tickers is not None:
        tickers = [normalize_ticker(t) for t in tickers]
        df = df[df["ticker"].isin(list(tickers))]
    df = df.drop_duplicates(["ticker", "date", "headline"])
    return df.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)


def daily_news(headlines: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """Attach each headline to the trading day whose window it belongs to, for every trading day.

    A headline dated on a non-trading day (weekend, holiday) belongs to the *next* trading day; one
    dated after the last trading day is not used yet. Every trading day appears, with an empty list
    when it has no news. Returns ticker, date, headlines (list[str], most recent first within a day
    keeps file order).
    """
    out = []
    for tkr, days in prices.groupby("ticker", sort=True):
        trading = np.sort(days["date"].to_numpy())
        news = headlines[headlines["ticker"] == tkr]
        idx = np.searchsorted(trading, news["date"].to_numpy(), side="left")
        ok = idx < len(trading)
        assigned = pd.DataFrame({"date": trading[idx[ok]], "headline": news["headline"].to_numpy()[ok]})
        grouped = assigned.groupby("date")["headline"].agg(list)
        frame = pd.DataFrame({"ticker": tkr, "date": trading})
        frame["headlines"] = [grouped.get(d, []) for d in frame["date"]]
        out.append(frame)
    if not out:
        return pd.DataFrame(
            {"ticker": pd.Series(dtype=str), "date": pd.Series(dtype="datetime64[ns]"), "headlines": []}
        )
    return pd.concat(out, ignore_index=True)
