"""Reading a data file and validating its cells: every problem is a `DataValidationError` naming the file, the
row number(s) as a spreadsheet shows them (the header is row 1) and the column.

CSV files are streamed (`csv_stream`: memory bounded by what is kept, not by the file's size) and Parquet files
are read batch by batch into the same text cells (`parquet`), so both go through one validation. Accepted and
documented: a UTF-8 byte-order mark; NUL bytes in a CSV file become spaces (pandas' parser would otherwise end
the cell there and silently drop the rest; a number or date with a NUL inside is then rejected like any other
unparsable value). Columns with few distinct values (dates, tickers) may arrive as categoricals: the checks below
work on the distinct values and map the result back to the rows.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from llmoe_pipeline.data.csv_stream import Prepare, read_csv_chunks
from llmoe_pipeline.data.dates import DEFAULT_EXCHANGE_TIMEZONE, parse_dates
from llmoe_pipeline.data.errors import DataValidationError
from llmoe_pipeline.data.parquet import read_parquet_batches

__all__ = [
    "DEFAULT_EXCHANGE_TIMEZONE",
    "MAX_TICKER_CHARS",
    "PARQUET_SUFFIXES",
    "TICKER_PATTERN",
    "DataValidationError",
    "check_columns",
    "check_path",
    "check_duplicates",
    "check_tickers",
    "list_tickers",
    "normalize_ticker",
    "parse_dates",
    "parse_numbers",
    "read_table",
]

# Letters, digits, '.', '_', '-'; not starting with '.' or '-' (no hidden files, no options). Use fullmatch.
TICKER_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_TICKER_CHARS = 32  # tickers become file names and partition keys
PARQUET_SUFFIXES = (".parquet", ".pq")


def normalize_ticker(ticker: str) -> str:
    """Tickers are case-insensitive: stripped and upper-cased wherever they are read (files, flags, config)."""
    return str(ticker).strip().upper()


def check_path(path: Path) -> None:
    """A clear error for a path that is missing or a folder (instead of FileNotFoundError / IsADirectoryError)."""
    if path.is_dir():
        raise DataValidationError(
            path,
            None,
            [],
            "is a folder, not a data file: give a CSV or Parquet file (or a glob pattern such as "
            "'prices*.csv' in data.price_files / data.headline_files)",
        )
    if not path.exists():
        raise DataValidationError(path, None, [], "file does not exist")


def read_table(
    path: Path, prepare: Prepare | None = None, nullable: Iterable[str] = ()
) -> tuple[pd.DataFrame, np.ndarray]:
    """Every cell as text (each chunk passed through `prepare`), and each row's number in the file (header = 1).

    `nullable`: Parquet columns where a null is an empty cell (as in CSV) rather than an error."""
    check_path(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return read_parquet_batches(path, prepare, nullable=nullable)
    return read_csv_chunks(path, prepare)


def list_tickers(path: str | os.PathLike) -> set[str]:
    """The (normalized) tickers of a tidy data file; a missing, unreadable or ticker-less file names its path."""
    path = Path(path)
    check_path(path)

    def only_tickers(chunk: pd.DataFrame) -> pd.DataFrame:
        if "ticker" not in chunk.columns:
            raise DataValidationError(path, "ticker", [1], f"no 'ticker' column; found {list(chunk.columns)}")
        return chunk[["ticker"]].astype("category")

    if path.suffix.lower() in PARQUET_SUFFIXES:
        df, _ = read_parquet_batches(path, columns=["ticker"])
    else:
        df, _ = read_csv_chunks(path, only_tickers)
    found = {normalize_ticker(t) for t in pd.unique(df["ticker"])}
    return {t for t in found if t}


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


def parse_numbers(path: Path, df: pd.DataFrame, lines: np.ndarray, column: str) -> pd.Series:
    s = df[column].astype(str).str.strip()
    num = pd.to_numeric(s, errors="coerce")
    bad = (num.isna() | ~np.isfinite(num.astype(float))).to_numpy()
    if bad.any():
        raise DataValidationError(path, column, lines[bad].tolist(), f"not a finite number: {s[bad].head(3).tolist()}")
    return num.astype(float)


def check_tickers(path: Path, values: pd.Series, lines: np.ndarray) -> pd.Series:
    """The normalized tickers; an empty one, one that is not `TICKER_PATTERN` or a too long one is an error."""
    codes, uniques = pd.factorize(values)
    distinct = pd.Series(np.asarray(uniques, dtype=object)).astype(str).map(normalize_ticker)
    tickers = pd.Series(distinct.to_numpy(dtype=object)[codes], index=values.index, dtype=object)

    def rows(mask: pd.Series) -> list[int]:
        return lines[mask.to_numpy(dtype=bool)[codes]].tolist()

    empty = distinct == ""
    if empty.any():
        raise DataValidationError(path, "ticker", rows(empty), "empty ticker")
    bad = ~distinct.str.fullmatch(TICKER_PATTERN.pattern).astype(bool)
    if bad.any():
        raise DataValidationError(
            path,
            "ticker",
            rows(bad),
            f"invalid ticker(s) {tickers[bad.to_numpy()[codes]].unique()[:3].tolist()}: a ticker is letters, "
            "digits, '.', '_' or '-', starting with a letter or digit",
        )
    long = distinct.str.len() > MAX_TICKER_CHARS
    if long.any():
        raise DataValidationError(
            path,
            "ticker",
            rows(long),
            f"ticker longer than {MAX_TICKER_CHARS} characters: {tickers[long.to_numpy()[codes]].iloc[0][:40]}…",
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
