"""The file drop: what is stored already, and new dated files in the tidy format the loaders read.

Nothing existing is rewritten: every write is a new file, written to a temp file and renamed (`io.atomic_path`),
so an interrupted fetch leaves no partial file. Names carry the ticker, the first and last day and the provider:
`prices_AAPL_2024-04-01_2024-04-05_alpaca.csv` (the loaders' default patterns `prices*.csv`, `headlines*.csv`
match them). A headline provider's coverage (the last calendar day it has answered for, news or not) is kept in
`.headline_coverage/<provider>_<TICKER>` because a day without news leaves no file.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from llmoe_pipeline.config.protocol import DataConfig
from llmoe_pipeline.core.files import atomic_path, write_text_atomic
from llmoe_pipeline.data import load_headlines, load_prices

COVERAGE_DIR = ".headline_coverage"


def stored_prices(data: DataConfig, tickers: list[str]) -> pd.DataFrame:
    """The stored bars of `tickers` (data folder and updates folder together), or none when no file matches."""
    paths = data.paths(data.price_files)
    if not paths:
        return pd.DataFrame(columns=["date", "ticker", "adj_close"])
    prices = load_prices(paths, exchange_timezone=data.exchange_timezone)
    prices = prices[prices["ticker"].isin(tickers)].copy()
    prices["date"] = prices["date"].dt.date
    return prices


def last_headline_days(data: DataConfig, tickers: list[str]) -> dict[str, dt.date]:
    """Each ticker's last stored headline day (data folder and updates folder), for tickers with any."""
    paths = data.paths(data.headline_files)
    if not paths:
        return {}
    news = load_headlines(paths, tickers=tickers, exchange_timezone=data.exchange_timezone)
    return {str(t): d.date() for t, d in news.groupby("ticker", observed=True)["date"].max().items()}


def dated_name(kind: str, ticker: str, first: dt.date, last: dt.date, provider: str) -> str:
    return f"{kind}_{ticker}_{first.isoformat()}_{last.isoformat()}_{provider}.csv"


def write_new_file(frame: pd.DataFrame, folder: Path, name: str, check: Callable[[Path], object]) -> Path | None:
    """Write `frame` as CSV to folder/name unless that file exists (the same fetch, already written): None then.
    `check` reads the temp file before it is renamed into place (the loader: a file it would refuse is never
    dropped where every later run would trip on it)."""
    target = folder / name
    if target.exists():
        return None
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False, date_format="%Y-%m-%d")
        check(tmp)
    return target


def headline_coverage(updates_dir: Path, provider: str, ticker: str) -> dt.date | None:
    """The last calendar day `provider` has answered for about `ticker`, if any."""
    marker = updates_dir / COVERAGE_DIR / f"{provider}_{ticker}"
    return dt.date.fromisoformat(marker.read_text().strip()) if marker.exists() else None


def record_headline_coverage(updates_dir: Path, provider: str, ticker: str, last: dt.date) -> None:
    write_text_atomic(last.isoformat() + "\n", updates_dir / COVERAGE_DIR / f"{provider}_{ticker}")
