"""Readers and validation for daily prices and dated headlines (tidy CSV/Parquet, or the paper's raw files).

Every problem raises `DataValidationError` naming the file, the row number(s) (as a spreadsheet shows
them: the header is row 1) and the column. Nothing here writes files.

Accepted and documented: a UTF-8 byte-order mark, rows in any date order (they are sorted), control
characters inside headlines (replaced by spaces), headlines longer than `MAX_HEADLINE_CHARS` (cut).
NUL bytes in a CSV file become spaces right after decoding, because pandas' parser would otherwise end
the cell there and silently drop the rest: a headline keeps all its text, while a number or date with a
NUL inside ("115.0\x0099") is then rejected like any other unparsable value.
Rejected: everything else listed in README "What happens when things go wrong", among them prices with
open or close outside [low, high] (beyond a relative 1e-6 for rounding; close is not checked in the
paper's raw files, whose AAPL Close is unadjusted before the 2014 split), volumes that do not fit int64,
and tickers that are not `TICKER_PATTERN` (tickers become file names, so "../x" must never pass).
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

PRICE_COLUMNS = ["date", "ticker", "open", "high", "low", "close", "adj_close", "volume"]
HEADLINE_COLUMNS = ["date", "ticker", "headline", "source"]
PAPER_COLUMNS = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume", "News"]
_PAPER_TO_TIDY = {"Date": "date", "Open": "open", "High": "high", "Low": "low", "Close": "close",
                  "Adj Close": "adj_close", "Volume": "volume"}
PRICE_FIELDS = ["open", "high", "low", "close", "adj_close"]
MAX_HEADLINE_CHARS = 4000
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_US_DATE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")
# Letters, digits, '.', '_', '-'; not starting with '.' or '-' (no hidden files, no options). Use fullmatch.
TICKER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
OHLC_TOLERANCE = 1e-6  # relative slack for open/close vs [low, high]: vendors round the four independently
MAX_VOLUME = 2**63  # volumes are stored as int64; a larger float would wrap around to a negative number


class DataValidationError(ValueError):
    """An input file is malformed; the message names the file, the row(s) and the column."""

    def __init__(self, path: str | os.PathLike, column: str | None, rows: Sequence[int], problem: str):
        self.path, self.column, self.rows, self.problem = str(path), column, list(rows), problem
        shown = ", ".join(str(r) for r in self.rows[:5]) + (f" (+{len(self.rows) - 5} more)" if len(self.rows) > 5 else "")
        where = f"row {shown}" if len(self.rows) == 1 else (f"rows {shown}" if self.rows else "")
        col = f"column '{column}'" if column else ""
        location = ", ".join(x for x in (where, col) if x)
        super().__init__(f"{self.path}: {location + ': ' if location else ''}{problem}")


# ---------------------------------------------------------------------------------------------- reading
def _read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """Read every cell as text. Returns the frame and each row's number in the file (header = row 1)."""
    if not path.exists():
        raise DataValidationError(path, None, [], "file does not exist")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            df = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise DataValidationError(path, None, [], f"not a readable Parquet file ({exc})") from None
        if df.empty:
            raise DataValidationError(path, None, [], "file has no data rows")
        df = df.astype(object).where(df.notna(), None)
        df = df.apply(lambda col: col.map(lambda v: None if v is None else str(v.date()) if isinstance(v, pd.Timestamp) else str(v)))
        return df, np.arange(2, len(df) + 2)
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataValidationError(path, None, [line], f"is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    if not text.strip():
        raise DataValidationError(path, None, [], "file is empty")
    text = text.replace("\x00", " ")  # see the module docstring: pandas would cut the cell at a NUL
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.ParserError as exc:
        # pandas reports 'line N' (1-based) for ragged rows but 'row N' (0-based, header = 0) for an
        # unclosed quote; both count the lines outside quoted cells.
        m = re.search(r"\b(line|row) (\d+)", str(exc))
        rows = [int(m.group(2)) + (m.group(1) == "row")] if m else []
        raise DataValidationError(path, None, rows, f"malformed CSV ({exc})") from None
    if df.empty:
        raise DataValidationError(path, None, [], "file has a header but no data rows")
    # Line numbers: quoted fields may span lines, so count physical lines per record when they do.
    return df, _record_line_numbers(path, text, len(df))


def _record_line_numbers(path: Path, text: str, n_rows: int) -> np.ndarray:
    if '"' not in text:
        return np.arange(2, n_rows + 2)
    # A cell can be as long as the file (headlines are cut only after loading); the default limit is 128 KiB.
    csv.field_size_limit(max(csv.field_size_limit(), len(text)))
    # newline="": csv sees the line endings as pandas does (\r, \n and \r\n all end a line).
    reader = csv.reader(io.StringIO(text, newline=""))
    starts = []
    try:
        next(reader, None)
        prev_end = reader.line_num
        for row in reader:
            if row and not (len(row) == 1 and row[0].isspace()):  # pandas skips blank lines: not records
                starts.append(prev_end + 1)
            prev_end = reader.line_num
    except csv.Error as exc:
        raise DataValidationError(path, None, [reader.line_num], f"malformed CSV ({exc})") from None
    return np.asarray(starts[:n_rows]) if len(starts) >= n_rows else np.arange(2, n_rows + 2)


def _check_columns(path: Path, df: pd.DataFrame, required: list[str], optional: Iterable[str] = ()) -> None:
    cols = list(df.columns)
    missing = [c for c in required if c not in cols]
    if missing:
        hint = " (is the delimiter a comma?)" if len(cols) == 1 else ""
        raise DataValidationError(path, missing[0], [1], f"missing column(s) {missing}; found {cols}{hint}")
    extra = [c for c in cols if c not in required and c not in optional]
    if extra:
        raise DataValidationError(path, extra[0], [1], f"unexpected column(s) {extra}; expected {required + list(optional)}")


def _parse_dates(path: Path, values: pd.Series, lines: np.ndarray, column: str) -> pd.Series:
    s = values.astype(str).str.strip()
    iso, us = s.str.match(_ISO_DATE), s.str.match(_US_DATE)
    if iso.any() and us.any():
        bad = lines[(us if iso.sum() >= us.sum() else iso).to_numpy()]
        raise DataValidationError(path, column, bad.tolist(), "mixed date formats (expected one of YYYY-MM-DD or M/D/YYYY throughout)")
    fmt = "%m/%d/%Y" if us.any() else "%Y-%m-%d"
    parsed = pd.to_datetime(s, format=fmt, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise DataValidationError(path, column, lines[bad].tolist(), f"unparsable date(s) {s[bad].head(3).tolist()}")
    return parsed.astype("datetime64[ns]")


def _parse_numbers(path: Path, df: pd.DataFrame, lines: np.ndarray, column: str) -> pd.Series:
    s = df[column].astype(str).str.strip()
    num = pd.to_numeric(s, errors="coerce")
    bad = (num.isna() | ~np.isfinite(num.astype(float))).to_numpy()
    if bad.any():
        raise DataValidationError(path, column, lines[bad].tolist(), f"not a finite number: {s[bad].head(3).tolist()}")
    return num.astype(float)


def _check_tickers(path: Path, values: pd.Series, lines: np.ndarray) -> pd.Series:
    """The stripped tickers; an empty one or one that is not `TICKER_PATTERN` is an error."""
    tickers = values.astype(str).str.strip()
    empty = (tickers == "").to_numpy()
    if empty.any():
        raise DataValidationError(path, "ticker", lines[empty].tolist(), "empty ticker")
    bad = ~tickers.str.fullmatch(TICKER_PATTERN.pattern).to_numpy(dtype=bool)
    if bad.any():
        raise DataValidationError(path, "ticker", lines[bad].tolist(),
                                  f"invalid ticker(s) {tickers[bad].unique()[:3].tolist()}: a ticker is letters, "
                                  "digits, '.', '_' or '-', starting with a letter or digit")
    return tickers


def _check_duplicates(path: Path, df: pd.DataFrame, lines: np.ndarray) -> None:
    dup = df.duplicated(["ticker", "date"], keep=False).to_numpy()
    if dup.any():
        first = df[dup].iloc[0]
        raise DataValidationError(path, "date", lines[dup].tolist(),
                                  f"duplicate (ticker, date) rows, e.g. ({first['ticker']}, {first['date'].date()})")


# ---------------------------------------------------------------------------------------------- prices
def _read_price_file(path: Path, ticker: str | None) -> pd.DataFrame:
    df, lines = _read_table(path)
    if "Unnamed: 0" in df.columns or (len(df.columns) and df.columns[0] == ""):
        df = df.drop(columns=[df.columns[0]])  # the paper's MSFT file carries a pandas index column
    paper_format = "Date" in df.columns
    if paper_format:  # the paper's raw format
        _check_columns(path, df, PAPER_COLUMNS[:-1], optional=["News"])
        if not ticker:
            raise DataValidationError(path, None, [], "paper-format file has no ticker column: pass ticker=...")
        df = df.rename(columns=_PAPER_TO_TIDY).drop(columns=["News"], errors="ignore")
        df["ticker"] = ticker
    else:
        _check_columns(path, df, PRICE_COLUMNS)
    df["ticker"] = _check_tickers(path, df["ticker"], lines)
    df["date"] = _parse_dates(path, df["date"], lines, "date")
    for col in PRICE_FIELDS:
        df[col] = _parse_numbers(path, df, lines, col)
        bad = (df[col] <= 0).to_numpy()
        if bad.any():
            raise DataValidationError(path, col, lines[bad].tolist(), f"price must be positive, got {df.loc[bad, col].head(3).tolist()}")
    vol = _parse_numbers(path, df, lines, "volume")
    bad = ((vol < 0) | (vol != np.floor(vol))).to_numpy()
    if bad.any():
        raise DataValidationError(path, "volume", lines[bad].tolist(), f"volume must be a non-negative integer, got {vol[bad].head(3).tolist()}")
    bad = (vol >= MAX_VOLUME).to_numpy()
    if bad.any():
        raise DataValidationError(path, "volume", lines[bad].tolist(),
                                  f"volume does not fit int64 (must be below 2**63), got {vol[bad].head(3).tolist()}")
    df["volume"] = vol.astype("int64")
    bad = (df["high"] < df["low"]).to_numpy()
    if bad.any():
        raise DataValidationError(path, "high", lines[bad].tolist(), "high is below low")
    # The paper's AAPL file has an unadjusted Close before the 2014 split (SOURCES.md) while its
    # open/high/low are adjusted: that known quirk stays loadable, so only its open is checked.
    for col in ("open",) if paper_format else ("open", "close"):
        bad = ((df[col] > df["high"] * (1 + OHLC_TOLERANCE)) | (df[col] < df["low"] * (1 - OHLC_TOLERANCE))).to_numpy()
        if bad.any():
            first = df[bad].iloc[0]
            raise DataValidationError(path, col, lines[bad].tolist(), f"{col} is outside [low, high], e.g. "
                                      f"{col} {first[col]} with low {first['low']}, high {first['high']}")
    _check_duplicates(path, df, lines)
    df["_file"], df["_line"] = str(path), lines
    return df[PRICE_COLUMNS + ["_file", "_line"]]


def load_prices(paths: str | os.PathLike | Sequence[str | os.PathLike], tickers: Sequence[str] | None = None,
                ticker: str | None = None) -> pd.DataFrame:
    """Load daily bars from tidy CSV/Parquet file(s), or a paper-format file with `ticker=`.

    Returns columns date (datetime64), ticker, open, high, low, close, adj_close (float64), volume (int64),
    sorted by (ticker, date), with no duplicate (ticker, date). `tickers` keeps only those tickers and
    raises if one of them has no rows.
    """
    path_list = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    frames = [_read_price_file(p, ticker) for p in path_list]
    df = pd.concat(frames, ignore_index=True)
    if len(frames) > 1:
        dup = df.duplicated(["ticker", "date"], keep=False).to_numpy()
        if dup.any():
            rows = df[dup]
            raise DataValidationError(rows["_file"].iloc[-1], "date", rows["_line"].tolist(),
                                      f"(ticker, date) rows repeated across files {sorted(set(rows['_file']))}")
    if tickers is not None:
        missing = sorted(set(tickers) - set(df["ticker"]))
        if missing:
            raise DataValidationError(", ".join(map(str, path_list)), "ticker", [], f"no price rows for ticker(s) {missing}")
        df = df[df["ticker"].isin(list(tickers))]
    return df.drop(columns=["_file", "_line"]).sort_values(["ticker", "date"]).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------- headlines
def _clean_headline(text: str) -> str:
    text = _CONTROL_CHARS.sub(" ", text).strip()
    return text[:MAX_HEADLINE_CHARS]


def _read_headline_file(path: Path, ticker: str | None) -> pd.DataFrame:
    df, lines = _read_table(path)
    if "Unnamed: 0" in df.columns or (len(df.columns) and df.columns[0] == ""):
        df = df.drop(columns=[df.columns[0]])
    if "Date" in df.columns:  # paper format: one News cell per day; the whole cell is one item
        _check_columns(path, df, PAPER_COLUMNS)
        if not ticker:
            raise DataValidationError(path, None, [], "paper-format file has no ticker column: pass ticker=...")
        df = pd.DataFrame({"date": df["Date"], "ticker": ticker, "headline": df["News"], "source": "paper"})
        keep = df["headline"].astype(str).str.strip() != ""  # days without news are simply absent here
        df, lines = df[keep.to_numpy()].reset_index(drop=True), lines[keep.to_numpy()]
    else:
        _check_columns(path, df, HEADLINE_COLUMNS[:3], optional=["source"])
        if "source" not in df.columns:
            df["source"] = ""
    df["date"] = _parse_dates(path, df["date"], lines, "date")
    df["ticker"] = _check_tickers(path, df["ticker"], lines)
    cleaned = df["headline"].astype(str).map(_clean_headline)
    blank = (cleaned == "").to_numpy()
    if blank.any():
        raise DataValidationError(path, "headline", lines[blank].tolist(), "headline is empty or only whitespace")
    df["headline"] = cleaned
    return df[HEADLINE_COLUMNS]


def load_headlines(paths: str | os.PathLike | Sequence[str | os.PathLike], tickers: Sequence[str] | None = None,
                   ticker: str | None = None) -> pd.DataFrame:
    """Load dated headlines (tidy `date,ticker,headline[,source]`, or a paper file with `ticker=`).

    Returns date (datetime64, calendar date as published), ticker, headline, source; sorted by
    (ticker, date); exact duplicate (ticker, date, headline) rows are dropped.
    """
    path_list = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    df = pd.concat([_read_headline_file(p, ticker) for p in path_list], ignore_index=True)
    if tickers is not None:
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
        return pd.DataFrame({"ticker": pd.Series(dtype=str), "date": pd.Series(dtype="datetime64[ns]"), "headlines": []})
    return pd.concat(out, ignore_index=True)
