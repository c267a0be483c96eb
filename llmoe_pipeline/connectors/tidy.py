"""Provider answers → the tidy rows the loaders read; shared by every provider so each only maps its fields."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from llmoe_pipeline.connectors.protocol import SchemaError
from llmoe_pipeline.data import HEADLINE_COLUMNS, PRICE_COLUMNS


def field(provider: str, record: Mapping[str, Any], name: str, where: str) -> Any:
    """record[name], or a SchemaError naming the provider and `where.name`."""
    if not isinstance(record, Mapping):
        raise SchemaError(provider, where, f"is a {type(record).__name__}, expected an object")
    if name not in record or record[name] is None:
        raise SchemaError(provider, f"{where}.{name}" if where else name, "is missing")
    return record[name]


def exchange_date(provider: str, stamp: str, timezone: str, where: str) -> dt.date:
    """An ISO timestamp (with an offset, or UTC if none) as the exchange's calendar date."""
    try:
        ts = pd.Timestamp(stamp)
    except (ValueError, TypeError):
        raise SchemaError(provider, where, f"is not a timestamp: {str(stamp)[:40]!r}") from None
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert(timezone).date()


def price_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows with PRICE_COLUMNS → a frame sorted by date (empty frames keep the columns)."""
    frame = pd.DataFrame(list(rows), columns=PRICE_COLUMNS)
    return frame.sort_values("date", kind="stable").reset_index(drop=True)


def headline_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=HEADLINE_COLUMNS)
    frame = frame[frame["headline"].astype(str).str.strip() != ""]  # the loader rejects empty headlines
    return (
        frame.drop_duplicates(["date", "ticker", "headline"]).sort_values("date", kind="stable").reset_index(drop=True)
    )
