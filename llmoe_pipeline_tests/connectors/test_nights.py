"""End to end over ten nights: `llmoe fetch` against Alpaca (bars, news) and NYT served on 127.0.0.1 in their
documented schemas, with Alpaca down one night and Good Friday on the way; then the loaders read the files and the
last session is each ticker's one new live window. The fetched rows are the served ones. The `fetched_data` asset
runs the same fetch, fails its check while a due session is missing, and raw_prices / raw_headlines read what it
brought in the same run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from llmoe_pipeline.app.cli import main
from llmoe_pipeline.config.settings import load_settings
from llmoe_pipeline.data import load_headlines, load_prices
from llmoe_pipeline.definitions import build_definitions
from llmoe_pipeline.features.windows import live_windows
from llmoe_pipeline_tests.connectors.support import Market, fetch_section, serve_market

MARKET = Market.between(dt.date(2024, 1, 2), dt.date(2024, 4, 12))
STORED_THROUGH = dt.date(2024, 3, 22)


@pytest.fixture
def served(tmp_path, monkeypatch):
    with serve_market(MARKET, dt.date(2024, 3, 26), monkeypatch) as (providers, server):
        config = {
            "data": {
                "data_dir": str(MARKET.write_history(tmp_path / "data", STORED_THROUGH)),
                "updates_dir": str(tmp_path / "updates"),
                "tickers": ["AAPL", "MSFT"],
            },
            "fetch": fetch_section(server.url),
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        yield providers, server, path


WEEKNIGHTS = [dt.date(2024, 3, d) for d in (26, 27, 28, 29)] + [dt.date(2024, 4, d) for d in (1, 2, 3, 4, 5, 8)]


def test_ten_nights_of_llmoe_fetch(served, capsys):
    providers, server, config = served
    exit_codes = {}
    for night in WEEKNIGHTS:  # the schedule's cron: 02:00 on weekdays
        providers.night, providers.alpaca_down = night, night == dt.date(2024, 4, 3)
        exit_codes[night] = main(["fetch", "--config", str(config)])
        output = capsys.readouterr()
        if night == dt.date(2024, 4, 3):
            first = "AAPL session 2024-04-02: no provider has it (alpaca: GET /v2/stocks/AAPL/bars failed 2 times"
            assert output.err.startswith(f"llmoe fetch: error: {first}")
            assert "not-real" not in output.out + output.err  # keys are never printed
        if night == dt.date(2024, 4, 1):  # Good Friday and the weekend: nothing due, nothing missing
            assert output.out.strip() == "nothing new: every due session and headline day is stored"
    assert [n for n, code in exit_codes.items() if code] == [dt.date(2024, 4, 3)]

    settings = load_settings(config)
    data = settings.protocol.data
    prices = load_prices(data.price_paths(), exchange_timezone=data.exchange_timezone)
    want = MARKET.bars[MARKET.bars["date"] <= dt.date(2024, 4, 5)].sort_values(["ticker", "date"], ignore_index=True)
    pd.testing.assert_frame_equal(prices.assign(date=prices["date"].dt.date), want, check_dtype=False)
    assert dt.date(2024, 3, 29) not in set(prices["date"].dt.date)

    news = load_headlines(data.headline_paths(), exchange_timezone=data.exchange_timezone)
    fetched = news[news["date"].dt.date > STORED_THROUGH]
    published = MARKET.news[(MARKET.news["date"] > STORED_THROUGH) & (MARKET.news["date"] <= dt.date(2024, 4, 5))]
    assert sorted(fetched.loc[fetched["source"] == "nyt", "headline"]) == sorted(published["headline"])
    assert sorted(fetched.loc[fetched["source"] == "alpaca:benzinga", "headline"]) == sorted(
        "[wire] " + published["headline"]
    )

    live = live_windows(prices)
    assert live[["ticker", "date"]].astype(str).values.tolist() == [["AAPL", "2024-04-05"], ["MSFT", "2024-04-05"]]
    assert {r.headers.get("apca-api-key-id") for r in server.requests if r.path.startswith("/v")} == {"key-id-not-real"}


def test_fetched_data_asset_runs_the_fetch_and_fails_its_check_on_a_missing_session(served):
    providers, _, config = served
    settings = load_settings(config, tickers="AAPL")
    defs = build_definitions(settings)
    graph = defs.resolve_asset_graph()
    assert dg.AssetKey("fetched_data") in graph.get(dg.AssetKey("raw_prices")).parent_keys
    job = defs.resolve_job_def("llmoe_job")
    assert dg.AssetKey("fetched_data") in job.asset_layer.executable_asset_keys

    def materialize_fetch(night: dt.date, down: bool) -> dict[str, bool]:
        providers.night, providers.alpaca_down = night, down
        result = dg.materialize(
            [defs.get_assets_def("fetched_data")],
            resources=defs.resources,
            partition_key="AAPL",
            raise_on_error=False,
        )
        return {str(e.check_name): e.passed for e in result.get_asset_check_evaluations()}

    checks = materialize_fetch(dt.date(2024, 3, 27), down=True)
    assert checks == {"sessions_complete": False, "history_unchanged": True, "headlines_fetched": False}
    assert not list(Path(settings.protocol.data.updates_dir).glob("prices_*.csv"))
    checks = materialize_fetch(dt.date(2024, 3, 28), down=False)
    assert checks == {"sessions_complete": True, "history_unchanged": True, "headlines_fetched": True}
    assert [p.name for p in Path(settings.protocol.data.updates_dir).glob("prices_*.csv")] == [
        "prices_AAPL_2024-03-25_2024-03-27_alpaca.csv"
    ]

    # The next night, as the schedule's llmoe_job starts: the fetch, then the data assets read the new day.
    providers.night = dt.date(2024, 3, 29)
    result = dg.materialize(
        [defs.get_assets_def(key) for key in ("fetched_data", "raw_prices", "raw_headlines")],
        resources=defs.resources,
        partition_key="AAPL",
    )
    raw_prices = result.output_for_node("raw_prices")
    want = MARKET.prices("AAPL", MARKET.sessions[0], dt.date(2024, 3, 28))
    assert raw_prices["date"].dt.date.tolist() == want["date"].tolist()
    assert raw_prices["adj_close"].tolist() == want["adj_close"].tolist()
    assert result.output_for_node("raw_headlines")["date"].max() == pd.Timestamp("2024-03-28")


def test_default_config_has_no_fetch_asset(tmp_path):
    defs = build_definitions(load_settings(home=tmp_path))
    assert dg.AssetKey("fetched_data") not in defs.resolve_asset_graph().get_all_asset_keys()
