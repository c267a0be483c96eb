"""Date cells to calendar dates of the exchange.

Accepted, one family per file: `YYYY-MM-DD` (ISO 8601, optionally with a time: `2016-01-04T09:30:00`,
`2016-01-04 09:30`, with or without a UTC offset `Z`, `+09:00`, `-0500`) or `M/D/YYYY` (the paper's raw files).

The rule: a date or timestamp **without** an offset is taken as a calendar date (or local time) **of the exchange**
and keeps its date; a timestamp **with** an offset is converted to the exchange's time zone
(`data.exchange_timezone`, default America/New_York) and takes the date it has there. So midnight in Tokyo
(`2016-01-05T00:00:00+09:00`) is 10:00 on 2016-01-04 in New York: the news of 2016-01-04, not of the 5th (which
would be look-ahead for the window ending on the 4th) nor the UTC date.
"""

from __future__ import annotations

import re
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd

from llmoe_pipeline.data.errors import DataValidationError

DEFAULT_EXCHANGE_TIMEZONE = "America/New_York"
_ISO = re.compile(
    r"^\d{4}-\d{2}-\d{2}(?P<time>[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?P<offset>Z|[+-]\d{2}:?\d{2})?)?$"
)
_US_DATE = re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")
DATE_FORMATS = (
    "expected dates as YYYY-MM-DD or M/D/YYYY (one of them throughout a file), "
    "or ISO timestamps such as 2016-01-04T09:30:00-05:00"
)


def check_timezone(name: str) -> str:
    """`name` if it is an IANA time zone (e.g. America/New_York), else a ValueError saying so."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as America/New_York)") from None
    return name


def _to_exchange_dates(text: pd.Series, iso: np.ndarray, us: np.ndarray, timezone: str) -> pd.Series:
    """Each distinct cell to its exchange-local calendar date (NaT when it does not parse)."""
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    if us.any():  # the whole file is M/D/YYYY (mixed files are rejected before)
        return pd.to_datetime(text, format="%m/%d/%Y", errors="coerce").astype("datetime64[ns]")
    parts = text.str.extract(_ISO)
    timed = iso & parts["time"].notna().to_numpy(dtype=bool)
    aware = timed & parts["offset"].notna().to_numpy(dtype=bool)
    naive = timed & ~aware
    if aware.any():
        stamps = pd.to_datetime(text[aware], format="ISO8601", utc=True, errors="coerce")
        out[aware] = stamps.dt.tz_convert(timezone).dt.tz_localize(None).dt.normalize()
    if naive.any():
        out[naive] = pd.to_datetime(text[naive], format="ISO8601", errors="coerce").dt.normalize()
    plain = ~timed  # dates, and anything else: what %Y-%m-%d cannot read is reported below
    if plain.any():
        out[plain] = pd.to_datetime(text[plain], format="%Y-%m-%d", errors="coerce")
    return out


def parse_dates(
    path: Path, values: pd.Series, lines: np.ndarray, column: str, timezone: str = DEFAULT_EXCHANGE_TIMEZONE
) -> pd.Series:
    """Calendar dates (datetime64[ns] at midnight) of the exchange. Works on the distinct cells (a date column of
    headlines repeats each day many times), so a categorical column costs its categories, not its rows."""
    codes, uniques = pd.factorize(values)
    text = pd.Series(np.asarray(uniques, dtype=object)).astype(str).str.strip()
    iso = text.str.match(_ISO).to_numpy(dtype=bool)
    us = text.str.match(_US_DATE).to_numpy(dtype=bool)
    if iso.any() and us.any():
        row_iso, row_us = iso[codes], us[codes]
        bad = lines[row_us if row_iso.sum() >= row_us.sum() else row_iso]
        raise DataValidationError(
            path,
            column,
            bad.tolist(),
            "mixed date formats (expected one of YYYY-MM-DD or M/D/YYYY throughout), e.g. "
            f"{text[iso].iloc[0]!r} and {text[us].iloc[0]!r}",
        )
    parsed = _to_exchange_dates(text, iso, us, timezone).to_numpy()
    bad_value = np.isnat(parsed)
    if bad_value.any():
        bad_rows = bad_value[codes]
        shown = text[bad_value].head(3).tolist()
        raise DataValidationError(path, column, lines[bad_rows].tolist(), f"unparsable date(s) {shown}: {DATE_FORMATS}")
    return pd.Series(parsed[codes], index=values.index, dtype="datetime64[ns]")
