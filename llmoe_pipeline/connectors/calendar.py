"""Which sessions should exist: the exchange's calendar (exchange_calendars), so a holiday is never "missing".

A session is due once `ready_after` has passed since its close (early closes included).
"""

from __future__ import annotations

import datetime as dt
import functools

import pandas as pd


@functools.lru_cache(maxsize=8)
def _calendar(name: str, first_year: int):
    import exchange_calendars as xcals

    # The library's default history is ~20 years; a --since before it needs an explicit start.
    return xcals.get_calendar(name, start=f"{first_year}-01-01")


def due_sessions(calendar: str, first: dt.date, now: dt.datetime, ready_after: dt.timedelta) -> list[dt.date]:
    """The sessions from `first` on whose close + `ready_after` is at or before `now` (aware), oldest first."""
    if now.tzinfo is None:
        raise ValueError("due_sessions: `now` must be time-zone aware")
    cal = _calendar(calendar, min(first.year, now.year) - 1)
    last_day = min(now.date(), cal.last_session.date())
    if first > last_day:
        return []
    sessions = cal.sessions_in_range(pd.Timestamp(first), pd.Timestamp(last_day))
    cutoff = pd.Timestamp(now) - pd.Timedelta(ready_after)
    closes = cal.closes.loc[sessions]
    return [s.date() for s, close in zip(sessions, closes) if close <= cutoff]


def sessions_between(calendar: str, first: dt.date, last: dt.date) -> list[dt.date]:
    """Every session in [first, last]."""
    if first > last:
        return []
    cal = _calendar(calendar, first.year - 1)
    return [s.date() for s in cal.sessions_in_range(pd.Timestamp(first), pd.Timestamp(last))]
