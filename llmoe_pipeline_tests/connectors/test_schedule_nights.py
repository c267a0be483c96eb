"""Issue #23's end to end: ten calendar nights through the nightly schedule, the fetch, the refresh and the signal.

Sat 23 Nov - Mon 2 Dec 2013: two weekends and Thanksgiving (Thu 28 Nov; Fri 29 Nov is an early close). Alpaca
(bars, news) and NYT serve a synthetic market on 127.0.0.1 (connectors/support.py); Alpaca is down at the tick after
Tue 26 Nov. The schedule's ticks are the ones its cron gives (02:00 New York, Monday to Friday); each tick's run
requests are executed in process with every step the chain sensor starts after them (`runner.run_requests`), the
language model replaced by the deterministic fake (fakes.py). The fetch's clock is the tick's.

What the design intends, and what is checked: a tick with nothing due (after a weekend, after the holiday) adds no
signal; the night Alpaca is down, `fetched_data`'s ERROR check `sessions_complete` fails naming ticker, session and
provider, NYT's headlines still come in, and the rest of the refresh runs on the data it has (no new signal: that day
is missing); the next tick fetches both sessions and `trading_signals` records both (the missed day as a caught-up
test window). In the end: exactly one signal per ticker and trading night, and the fetched rows are the served ones.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest

from llmoe_pipeline.app.runner import materializations, run_requests
from llmoe_pipeline.config.settings import load_settings
from llmoe_pipeline.connectors.calendar import sessions_between
from llmoe_pipeline.data import load_headlines, load_prices
from llmoe_pipeline.trading.signals import read_history
from llmoe_pipeline_tests.connectors.support import KEYS, Market, fetch_section, serve_market
from llmoe_pipeline_tests.defs.graph_support import fake_definitions, live_config, schedule_ticks, tick_requests
from llmoe_pipeline_tests.e2e.support import SLICE_TICKERS

NEW_YORK = ZoneInfo("America/New_York")
D = dt.date
# Long enough for the e2e split (e2e/support.py: training windows from June 2012, the test split from September 2013).
MARKET = Market.between(D(2012, 4, 2), D(2013, 12, 6), tickers=SLICE_TICKERS)
STORED_THROUGH = D(2013, 11, 22)  # a Friday: the data before the first night, and the first run's signal
NIGHTS = [STORED_THROUGH + dt.timedelta(days=i) for i in range(1, 11)]  # Sat 23 Nov .. Mon 2 Dec
DOWN_TICK = D(2013, 11, 27)  # Wednesday 02:00: Alpaca answers 503, so Tuesday 26 Nov's bar is missing
# The schedule's ticks (02:00 on weekdays) and the sessions each one adds a signal for.
EXPECTED = {
    D(2013, 11, 25): [],  # Monday: Friday is stored, nothing is due after the weekend
    D(2013, 11, 26): [D(2013, 11, 25)],
    DOWN_TICK: [],
    D(2013, 11, 28): [D(2013, 11, 26), D(2013, 11, 27)],  # the gap filled, both decisions recorded
    D(2013, 11, 29): [],  # after Thanksgiving: no session
    D(2013, 12, 2): [D(2013, 11, 29)],  # the early close, fetched after the weekend
    D(2013, 12, 3): [D(2013, 12, 2)],
}
CHECKS = ("sessions_complete", "history_unchanged", "headlines_fetched")


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    root = tmp_path_factory.mktemp("nights")
    data = MARKET.write_history(root / "data", STORED_THROUGH)
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        serve_market(MARKET, NIGHTS[0], monkeypatch) as (providers, server),
    ):
        files = {"price_files": ["prices*.csv"], "headline_files": ["headlines*.csv"]}  # the updates too
        config = live_config(
            root / "config.yaml",
            data,
            data={**files, "updates_dir": str(root / "updates")},
            fetch=fetch_section(server.url),
        )
        settings = load_settings(config, home=root / "home")
        defs, instance = fake_definitions(settings), dg.DagsterInstance.ephemeral()
        # The first refresh, on Saturday (nothing to fetch): the stored history's signal.
        run_requests(defs, instance, [dg.RunRequest(job_name="llmoe_job", partition_key=t) for t in SLICE_TICKERS])
        evening = dt.time(18)
        ticks = schedule_ticks(
            defs,
            dt.datetime.combine(NIGHTS[0], evening, NEW_YORK),
            dt.datetime.combine(NIGHTS[-1] + dt.timedelta(days=1), evening, NEW_YORK),
        )
        per_tick = {}
        for tick in ticks:
            providers.night, providers.alpaca_down = tick.date(), tick.date() == DOWN_TICK
            requests = tick_requests(defs, instance, tick)
            assert sorted(r.partition_key for r in requests) == sorted(SLICE_TICKERS)
            per_tick[tick.date()] = {r.partition_key: run_requests(defs, instance, [r]) for r in requests}
        yield settings, defs, instance, ticks, per_tick


def _checks(results: list[dg.ExecuteInProcessResult]) -> dict[str, dg.AssetCheckEvaluation]:
    return {str(e.check_name): e for r in results for e in r.get_asset_check_evaluations() if e.check_name in CHECKS}


def test_the_schedule_ticks_after_weekday_nights_and_the_calendar_has_the_holiday(nights):
    _, _, _, ticks, _ = nights
    assert [t.date() for t in ticks] == list(EXPECTED)  # no tick on Saturday or Sunday morning
    assert {t.time() for t in ticks} == {dt.time(2)} and {t.utcoffset() for t in ticks} == {dt.timedelta(hours=-5)}
    sessions = sessions_between("XNYS", NIGHTS[0], NIGHTS[-1])
    assert sessions == [D(2013, 11, d) for d in (25, 26, 27, 29)] + [D(2013, 12, 2)]  # Thanksgiving is not one
    assert sorted(s for signalled in EXPECTED.values() for s in signalled) == sessions


def test_one_signal_per_ticker_and_trading_night(nights):
    settings, _, _, _, per_tick = nights
    for tick, by_ticker in per_tick.items():
        for ticker, results in by_ticker.items():
            done = materializations(results)
            assert done["trading_signals"]["new_signals"] == len(EXPECTED[tick]), (tick, ticker)
            latest = done["trading_signals"]["latest_signal"]
            assert latest.get("as_of") == (str(EXPECTED[tick][-1]) if EXPECTED[tick] else None), (tick, ticker)
            # Only the new days' windows reach the model: none after a weekend, the holiday or the failed fetch.
            assert done["router_labels"]["labelled_now"] == len(EXPECTED[tick]), (tick, ticker)
            # Every step of the ticker's refresh ran, the night Alpaca was down included.
            assert sorted(r.dagster_run.job_name for r in results) == sorted(
                ["llmoe_job", "experts_job", "experts_job", "evaluation_job", "explanations_job"]
            )
            assert all(r.success for r in results)
    history = read_history(settings.home / "signals", list(SLICE_TICKERS), last=None)
    trading_nights = [d for d in NIGHTS if d in set(MARKET.sessions)]
    for ticker in SLICE_TICKERS:
        days = [pd.Timestamp(d).date() for d in history.loc[history["ticker"] == ticker, "as_of"]]
        assert days == [STORED_THROUGH, *trading_nights], ticker  # each trading night once, nothing else
    assert not {pd.Timestamp(d).date() for d in history["as_of"]} & {D(2013, 11, 28), D(2013, 11, 30), D(2013, 12, 1)}


def test_the_night_a_provider_is_down_fails_visibly_and_the_next_night_fills_the_gap(nights):
    settings, _, _, _, per_tick = nights
    for tick, by_ticker in per_tick.items():
        for ticker, results in by_ticker.items():
            checks = _checks(results)
            assert set(checks) == set(CHECKS), (tick, ticker)
            if tick != DOWN_TICK:
                assert all(c.passed for c in checks.values()), (tick, ticker, checks)
                continue
            missing = checks["sessions_complete"]
            assert not missing.passed and missing.severity == dg.AssetCheckSeverity.ERROR
            assert str(missing.description).startswith(
                f"{ticker} session 2013-11-26: no provider has it (alpaca: GET /v2/stocks/{ticker}/bars failed 2 times"
            ), missing.description
            news = checks["headlines_fetched"]
            assert not news.passed and "alpaca_news" in str(news.description)
            for secret in KEYS.values():  # keys are never in what the UI shows
                assert secret not in str(missing.description) + str(news.description)
            written = materializations(results)["fetched_data"]["written"]
            # NYT was up: its headlines of the day are in; no price file was written.
            assert [p.rsplit("/", 1)[-1] for p in written] == [f"headlines_{ticker}_2013-11-26_2013-11-26_nyt.csv"]
            assert materializations(results)["raw_prices"]["last_date"] == "2013-11-25"
    after = {t: materializations(r) for t, r in per_tick[D(2013, 11, 28)].items()}
    for ticker in SLICE_TICKERS:
        assert after[ticker]["raw_prices"]["last_date"] == "2013-11-27"
    history = read_history(settings.home / "signals", list(SLICE_TICKERS), last=None)
    caught_up = history[history["as_of"].astype(str) == "2013-11-26"]
    assert sorted(caught_up["ticker"]) == sorted(SLICE_TICKERS)


def test_the_fetched_rows_are_the_served_rows(nights):
    settings, defs, instance, _, _ = nights
    data = settings.protocol.data
    updates = sorted(p.name for p in Path(data.updates_dir).glob("prices_*.csv"))
    spans = [("11-25", "11-25"), ("11-26", "11-27"), ("11-29", "11-29"), ("12-02", "12-02")]
    assert updates == [f"prices_{t}_2013-{a}_2013-{b}_alpaca.csv" for t in SLICE_TICKERS for a, b in spans]
    last = NIGHTS[-1]
    served = MARKET.bars[(MARKET.bars["date"] > STORED_THROUGH) & (MARKET.bars["date"] <= last)]
    fetched = load_prices(sorted(Path(data.updates_dir).glob("prices_*.csv")), exchange_timezone=data.exchange_timezone)
    pd.testing.assert_frame_equal(
        fetched.assign(date=fetched["date"].dt.date),
        served.sort_values(["ticker", "date"], ignore_index=True),
        check_dtype=False,
    )
    news = load_headlines(
        sorted(Path(data.updates_dir).glob("headlines_*.csv")), exchange_timezone=data.exchange_timezone
    )
    published = MARKET.news[(MARKET.news["date"] > STORED_THROUGH) & (MARKET.news["date"] <= last)]
    want = sorted(zip(published["date"], published["ticker"], published["headline"]))
    for source, prefix in (("nyt", ""), ("alpaca:benzinga", "[wire] ")):
        rows = news[news["source"] == source]
        got = sorted(zip(rows["date"].dt.date, rows["ticker"].astype(str), rows["headline"]))
        assert got == [(d, t, prefix + h) for d, t, h in want], source
    # What the last refresh read: the stored history and every fetched session, nothing twice.
    for ticker in SLICE_TICKERS:
        raw = defs.load_asset_value("raw_prices", partition_key=ticker, instance=instance)
        pd.testing.assert_frame_equal(
            raw.assign(date=raw["date"].dt.date).reset_index(drop=True),
            MARKET.prices(ticker, MARKET.sessions[0], last),
            check_dtype=False,
            check_categorical=False,
        )
