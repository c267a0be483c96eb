"""The fetch: for each ticker, the sessions due since the last stored day, from the configured providers, written
as new dated files in the updates folder. Pure (no Dagster): `llmoe fetch` and the `fetched_data` asset call it.

Prices: the providers are tried in order, each for the sessions the ones before it did not deliver; only an
unbroken run of sessions is written (a gap would be skipped for good, since the next fetch starts after the last
stored day). A session still missing is reported with every provider's reason. Before anything is written, the
provider's adjusted closes of the last stored sessions are compared with the stored ones: a difference is a split
or dividend applied since, reported with its dates; nothing is written unless `rebase`, which writes the provider's
whole history of the ticker as a new file set under `rebased/<stamp>/`.

Headlines: every provider is asked for the calendar days after its own coverage (at first: after the last stored
headline), up to the latest due session; its coverage moves on only when it answered, so a provider that is down is
asked from the same day the next time.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from llmoe_pipeline.config.protocol import DataConfig
from llmoe_pipeline.connectors.calendar import due_sessions
from llmoe_pipeline.connectors.config import FetchConfig
from llmoe_pipeline.connectors.protocol import HeadlineProvider, PriceProvider, ProviderError
from llmoe_pipeline.connectors.store import (
    dated_name,
    headline_coverage,
    last_headline_days,
    record_headline_coverage,
    stored_prices,
    write_new_file,
)
from llmoe_pipeline.core.files import file_lock
from llmoe_pipeline.data import DataValidationError, load_headlines, load_prices

LOOKBACK_DAYS = 14  # the latest due session is within two weeks of any day (the longest NYSE closure was 4 days)


@dataclass(frozen=True)
class MissingSession:
    ticker: str
    session: dt.date
    reasons: tuple[str, ...]

    @property
    def why(self) -> str:
        return "; ".join(self.reasons) or "no price provider configured"

    def __str__(self) -> str:
        return f"{self.ticker} session {self.session}: no provider has it ({self.why})"


@dataclass(frozen=True)
class Revision:
    ticker: str
    provider: str
    dates: tuple[dt.date, ...]

    def __str__(self) -> str:
        days = ", ".join(d.isoformat() for d in self.dates)
        return (
            f"{self.ticker}: {self.provider}'s adjusted close differs from the stored one on {days} (a split or "
            "dividend since): nothing written; `llmoe fetch --rebase` writes a new file set"
        )


@dataclass
class FetchReport:
    written: list[Path] = field(default_factory=list)
    missing: list[MissingSession] = field(default_factory=list)
    revisions: list[Revision] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # a headline provider down, a ticker that cannot be fetched
    notes: list[str] = field(default_factory=list)  # a price provider down whose sessions another one delivered

    @property
    def problems(self) -> list[str]:
        """What makes the fetch fail, each naming ticker, session(s) or days, and provider; a ticker's run of missing
        sessions with the same reasons is one line (a provider down for a long backfill is not thousands)."""
        return _missing_lines(self.missing) + [str(r) for r in self.revisions] + self.failures

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        return [f"wrote {p}" for p in self.written] + [f"note: {n}" for n in self.notes] + self.problems


def _missing_lines(missing: list[MissingSession]) -> list[str]:
    lines = []
    for _, group in itertools.groupby(missing, key=lambda m: (m.ticker, m.reasons)):
        run = list(group)
        if len(run) == 1:
            lines.append(str(run[0]))
        else:
            first, last = run[0], run[-1]
            lines.append(
                f"{first.ticker} sessions {first.session}..{last.session} ({len(run)}): no provider has them "
                f"({first.why})"
            )
    return lines


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def fetch(
    data: DataConfig,
    config: FetchConfig,
    tickers: Sequence[str],
    price_providers: Sequence[PriceProvider],
    headline_providers: Sequence[HeadlineProvider],
    *,
    now: dt.datetime | None = None,
    since: dt.date | None = None,
    rebase: bool = False,
) -> FetchReport:
    """Fetch what is due for `tickers` at `now` (aware; default: the current time) into `data.updates_dir`."""
    now = now or utc_now()
    # One fetch at a time per updates folder (a CLI fetch beside the scheduled ones, the nightly runs of several
    # tickers): each reads what is stored only once the one before it has written.
    with file_lock(Path(data.updates_dir) / ".locks" / "fetch.lock"):
        return _fetch_locked(data, config, list(tickers), price_providers, headline_providers, now, since, rebase)


def _fetch_locked(
    data: DataConfig,
    config: FetchConfig,
    tickers: list[str],
    price_providers: Sequence[PriceProvider],
    headline_providers: Sequence[HeadlineProvider],
    now: dt.datetime,
    since: dt.date | None,
    rebase: bool,
) -> FetchReport:
    ready_after = dt.timedelta(minutes=config.ready_after_minutes)
    stored = stored_prices(data, tickers)
    last_news = last_headline_days(data, tickers)  # before anything is written tonight
    recent = due_sessions(config.calendar, now.date() - dt.timedelta(days=LOOKBACK_DAYS), now, ready_after)
    report = FetchReport()
    for ticker in tickers:
        mine = stored[stored["ticker"] == ticker].sort_values("date")
        last = mine["date"].max() if len(mine) else None
        if last is None and since is None:
            report.failures.append(f"{ticker}: no stored prices yet; pass --since DATE for its first fetch")
            continue
        first = max(d for d in (last + dt.timedelta(days=1) if last else None, since) if d is not None)
        job = _TickerFetch(data, config, ticker, mine, report, now)
        due = due_sessions(config.calendar, first, now, ready_after)
        if due:
            job.prices(price_providers, due, rebase)
        if recent:
            news_from = since or (last_news[ticker] + dt.timedelta(days=1) if ticker in last_news else first)
            job.headlines(headline_providers, news_from, recent[-1])
    return report


@dataclass
class _TickerFetch:
    data: DataConfig
    config: FetchConfig
    ticker: str
    stored: pd.DataFrame  # this ticker's stored bars, oldest first
    report: FetchReport
    now: dt.datetime

    @property
    def updates(self) -> Path:
        return Path(self.data.updates_dir)

    def prices(self, providers: Sequence[PriceProvider], due: list[dt.date], rebase: bool) -> None:
        overlap = self.stored.tail(self.config.overlap_sessions)
        remaining, reasons, compared = list(due), [], overlap.empty
        for provider in providers:
            if not remaining:
                break
            start = remaining[0] if compared else overlap["date"].iloc[0]
            try:
                bars = provider.daily_bars(self.ticker, start, remaining[-1])
            except ProviderError as exc:
                reasons.append(str(exc))
                continue
            if not compared:
                compared = True
                revised = self._revised(overlap, bars)
                if revised:
                    if rebase:
                        self._rebase(provider, due)
                    else:
                        self.report.revisions.append(Revision(self.ticker, provider.name, revised))
                    return
            delivered = set(bars["date"])
            unbroken = []
            for session in remaining:  # only an unbroken run from the first missing session
                if session not in delivered:
                    break
                unbroken.append(session)
            if unbroken:
                rows = bars[bars["date"].isin(unbroken)]
                if not self._write("prices", rows, unbroken[0], unbroken[-1], provider.name, reasons):
                    continue
                remaining = remaining[len(unbroken) :]
                if reasons:
                    self.report.notes.append(f"{self.ticker}: {provider.name} delivered after {'; '.join(reasons)}")
            if remaining:
                reasons.append(f"{provider.name}: no bar for {self.ticker} on {remaining[0]}")
        self.report.missing += [MissingSession(self.ticker, s, tuple(reasons)) for s in remaining]

    def _revised(self, overlap: pd.DataFrame, bars: pd.DataFrame) -> tuple[dt.date, ...]:
        both = overlap[["date", "adj_close"]].merge(bars[["date", "adj_close"]], on="date", suffixes=("_stored", ""))
        change = (both["adj_close"] / both["adj_close_stored"] - 1).abs()
        return tuple(both.loc[change > self.config.adjusted_tolerance, "date"])

    def _rebase(self, provider: PriceProvider, due: list[dt.date]) -> None:
        """The provider's whole history of the ticker, as a new file set beside (not over) the stored files."""
        first, last = self.stored["date"].iloc[0], due[-1]
        try:
            bars = provider.daily_bars(self.ticker, first, last)
        except ProviderError as exc:
            self.report.failures.append(f"{self.ticker}: rebase: {exc}")
            return
        folder = self.updates / "rebased" / self.now.strftime("%Y%m%dT%H%M%S")
        if self._write("prices", bars, first, last, provider.name, self.report.failures, folder):
            self.report.notes.append(
                f"{self.ticker}: rebased history in {folder}: to use it, list it in data.price_files (e.g. "
                f"'rebased/{folder.name}/prices_*.csv', read in the updates folder) in place of the files that hold "
                f"{self.ticker}'s stored prices, and move {self.updates}/prices_{self.ticker}_* aside"
            )

    def headlines(self, providers: Sequence[HeadlineProvider], first: dt.date, last: dt.date) -> None:
        for provider in providers:
            covered = headline_coverage(self.updates, provider.name, self.ticker)
            start = covered + dt.timedelta(days=1) if covered else first
            if start > last:
                continue
            try:
                rows = provider.headlines(self.ticker, start, last)
            except ProviderError as exc:
                self.report.failures.append(f"{self.ticker} headlines {start}..{last}: {exc}")
                continue
            rows = rows[(rows["date"] >= start) & (rows["date"] <= last)]  # a boundary item belongs to another file
            if rows.empty or self._write("headlines", rows, start, last, provider.name, self.report.failures):
                record_headline_coverage(self.updates, provider.name, self.ticker, last)

    def _write(
        self,
        kind: str,
        rows: pd.DataFrame,
        first: dt.date,
        last: dt.date,
        provider: str,
        problems: list[str],
        folder: Path | None = None,
    ) -> bool:
        """Write a new file, checked by the loader before it is renamed into place; False (and the reason in
        `problems`) when the loader refuses the rows."""
        load = load_prices if kind == "prices" else load_headlines
        try:
            path = write_new_file(
                rows,
                folder or self.updates,
                dated_name(kind, self.ticker, first, last, provider),
                check=lambda tmp: load(tmp, exchange_timezone=self.data.exchange_timezone),
            )
        except DataValidationError as exc:
            problems.append(f"{provider}: {kind} of {self.ticker} fail the loader's checks: {exc}")
            return False
        if path is not None:
            self.report.written.append(path)
        return True
