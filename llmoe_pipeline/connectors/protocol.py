"""What every provider is: one small Protocol for prices, one for headlines, and the errors they raise.

A provider returns tidy rows, the columns the loaders read (`data.PRICE_COLUMNS`, `data.HEADLINE_COLUMNS`), with
`date` a `datetime.date` on the exchange's calendar. Every error names the provider; keys never appear in one.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

import pandas as pd


class ProviderError(Exception):
    """A provider could not deliver (down after the retries, refused, or answered something unreadable)."""

    def __init__(self, provider: str, message: str):
        self.provider = provider
        super().__init__(f"{provider}: {message}")


class SchemaError(ProviderError):
    """The response no longer has the documented shape: one line naming the provider and the field."""

    def __init__(self, provider: str, field: str, detail: str):
        self.field = field
        super().__init__(provider, f"response field {field!r} {detail}")


class PriceProvider(Protocol):
    name: str

    def daily_bars(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Daily bars of `ticker` for the sessions in [start, end]: `data.PRICE_COLUMNS`, one row per session."""
        ...


class HeadlineProvider(Protocol):
    name: str

    def headlines(self, ticker: str, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Headlines about `ticker` published on the calendar days [start, end] (in the exchange's zone; an item just
        outside is dropped by the fetch): `data.HEADLINE_COLUMNS`."""
        ...
