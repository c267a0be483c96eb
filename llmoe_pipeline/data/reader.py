"""Reading a data file and validating its cells: every problem is a `DataValidationError` naming the file, the
row number(s) as a spreadsheet shows them (the header is row 1) and the column.

Accepted and documented: a UTF-8 byte-order mark; NUL bytes in a CSV file become spaces right after decoding,
because pandas' parser would otherwise end the cell there and silently drop the rest (a number or date with a
NUL inside is then rejected like any other unparsable value).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_US_DATE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")
# Letters, digits, '.', '_', '-'; not starting with '.' or '-' (no hidden files, no options). Use fullmatch.
TICKER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_TICKER_CHARS = 32  # tickers become file names and partition keys


class DataValidationError(ValueError):
    """An input file is malformed; the message names the file, the row(s) and the column."""

    def __init__(self, path: str | os.PathLike, column: str | None, rows: Sequence[int], problem: str):
        self.path, self.column, self.rows, self.problem = str(path), column, list(rows), problem
        shown = ", ".join(str(r) for r in self.rows[:5]) + (
            f" (+{len(self.rows) - 5} more)" if len(self.rows) > 5 else ""
        )
        where = f"row {shown}" if len(self.rows) == 1 else (f"rows {shown}" if self.rows else "")
        col = f"column '{column}'" if column else ""
        location = ", ".join(x for x in (where, col) if x)
        super().__init__(f"{self.path}: {location + ': ' if location else ''}{problem}")


def normalize_ticker(ticker: str) -> str:
    """Tickers are case-insensitive: stripped and upper-cased wherever they are read (files, flags, config)."""
    return str(ticker).strip().upper()


def read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
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
        df = df.apply(
            lambda col: col.map(
                lambda v: None if v is None else str(v.date()) if isinstance(v, pd.Timestamp) else str(v)
            )
        )
        return df, np.arange(2, len(df) + 2)
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataValidationError(
            path, None, [line], f"is not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
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


def check_columns(path: Path, df: pd.DataFrame, required: list[str], optional: Iterable[str] = ()) -> None:
    cols = list(df.columns)
    missing = [c for c in required if c not in cols]
    if missing:
        hint = " (is the delimiter a comma?)" if len(cols) == 1 else ""
        raise DataValidationError(path, missing[0], [1], f"missing column(s) {missing}; found {cols}{hint}")
    extra = [c for c in cols if c not in required and c not in optional]
    if extra:
        raise DataValidationError(
            path, extra[0], [1], f"unexpected column(s) {extra}; expected {required + list(optional)}"
        )


def parse_dates(path: Path, values: pd.Series, lines: np.ndarray, column: str) -> pd.Series:
    s = values.astype(str).str.strip()
    iso, us = s.str.match(_ISO_DATE), s.str.match(_US_DATE)
    if iso.any() and us.any():
        bad = lines[(us if iso.sum() >= us.sum() else iso).to_numpy()]
        raise DataValidationError(
            path, column, bad.tolist(), "mixed date formats (expected one of YYYY-MM-DD or M/D/YYYY throughout)"
        )
    fmt = "%m/%d/%Y" if us.any() else "%Y-%m-%d"
    parsed = pd.to_datetime(s, format=fmt, errors="coerce")
    bad = parsed.isna().to_numpy()
    if bad.any():
        raise DataValidationError(path, column, lines[bad].tolist(), f"unparsable date(s) {s[bad].head(3).tolist()}")
    return parsed.astype("datetime64[ns]")


def parse_numbers(path: Path, df: pd.DataFrame, lines: np.ndarray, column: str) -> pd.Series:
    s = df[column].astype(str).str.strip()
    num = pd.to_numeric(s, errors="coerce")
    bad = (num.isna() | ~np.isfinite(num.astype(float))).to_numpy()
    if bad.any():
        raise DataValidationError(path, column, lines[bad].tolist(), f"not a finite number: {s[bad].head(3).tolist()}")
    return num.astype(float)


def check_tickers(path: Path, values: pd.Series, lines: np.ndarray) -> pd.Series:
    """The normalized tickers; an empty one, one that is not `TICKER_PATTERN` or a too long one is an error."""
    tickers = values.astype(str).map(normalize_ticker)
    empty = (tickers == "").to_numpy()
    if empty.any():
        raise DataValidationError(path, "ticker", lines[empty].tolist(), "empty ticker")
    bad = ~tickers.str.fullmatch(TICKER_PATTERN.pattern).to_numpy(dtype=bool)
    if bad.any():
        raise DataValidationError(
            path,
            "ticker",
            lines[bad].tolist(),
            f"invalid ticker(s) {tickers[bad].unique()[:3].tolist()}: a ticker is letters, "
            "digits, '.', '_' or '-', starting with a letter or digit",
        )
    long = (tickers.str.len() > MAX_TICKER_CHARS).to_numpy()
    if long.any():
        raise DataValidationError(
            path,
            "ticker",
            lines[long].tolist(),
            f"ticker longer than {MAX_TICKER_CHARS} characters: {tickers[long].iloc[0][:40]}…",
        )
    return tickers


def check_duplicates(path: Path, df: pd.DataFrame, lines: np.ndarray) -> None:
    dup = df.duplicated(["ticker", "date"], keep=False).to_numpy()
    if dup.any():
        first = df[dup].iloc[0]
        raise DataValidationError(
            path,
            "date",
            lines[dup].tolist(),
            f"duplicate (ticker, date) rows, e.g. ({first['ticker']}, {first['date'].date()})",
        )
