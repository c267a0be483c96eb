"""Reading results back without running anything: the values the assets stored, for `llmoe run`, `llmoe report`,
`llmoe-cluster run` and the verdict bench.

One reader over the assets' storage, the same files the IO manager writes (`<home>/assets`, or a cluster's shared
store). With a Dagster instance, a partition counts once that instance has materialized it (as the UI shows it);
without one (the cluster's client, which has no instance of its own), once its file exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import dagster as dg
import pandas as pd

from llmoe_pipeline.config.protocol import BacktestConfig
from llmoe_pipeline.config.settings import Settings
from llmoe_pipeline.core.paths import resolve_inside
from llmoe_pipeline.core.storage import Store, open_store
from llmoe_pipeline.defs.io_manager import asset_stored, load_asset_value
from llmoe_pipeline.reporting.tables import summarize
from llmoe_pipeline.research.verdict import TickerEvidence
from llmoe_pipeline.research.walkforward import walk_forward_summary

ASSETS_FOLDER = "assets"


class StoredResults:
    """The stored results of one home or shared store, at the protocol's backtest settings."""

    def __init__(
        self,
        assets: Store,
        backtest: BacktestConfig,
        walk_forward: bool,
        instance: dg.DagsterInstance | None = None,
    ):
        self.assets, self.backtest, self.walk_forward, self.instance = assets, backtest, walk_forward, instance

    @classmethod
    def of(cls, settings: Settings, instance: dg.DagsterInstance | None = None) -> StoredResults:
        shared = settings.storage.shared_url
        assets = (
            open_store(shared).child(ASSETS_FOLDER)
            if shared
            else open_store(resolve_inside(settings.home, ASSETS_FOLDER, "the LLMOE home folder"))
        )
        protocol = settings.protocol
        return cls(assets, protocol.backtest, protocol.walk_forward.enabled, instance)

    def has(self, key: list[str], ticker: str) -> bool:
        if key == ["walk_forward_returns"] and not self.walk_forward:
            return False  # not in this configuration's graph: an older run's file is not this run's result
        if self.instance is not None:
            return ticker in self.instance.get_materialized_partitions(dg.AssetKey(key))
        return asset_stored(self.assets, key, ticker)

    def latest(self, key: str | list[str], ticker: str) -> Any:
        """An asset's stored value for `ticker`, or None when that partition was never materialized."""
        path = [key] if isinstance(key, str) else list(key)
        return load_asset_value(self.assets, path, ticker) if self.has(path, ticker) else None

    def backtest_results(self, tickers: Iterable[str]) -> pd.DataFrame:
        """The per-seed metrics of each ticker's latest backtest; a ticker without results is skipped, none at all
        is an error that says what to run."""
        tickers = list(tickers)
        frames = [f for t in tickers if (f := self.latest("backtest_results", t)) is not None]
        if not frames:
            raise FileNotFoundError(
                f"no backtest results for {', '.join(tickers)} yet: run `llmoe run` (or materialize "
                "the tickers in the UI) first"
            )
        return pd.concat(frames, ignore_index=True)

    def evidence(self, ticker: str) -> TickerEvidence:
        """What the verdict and the research report read for one ticker."""
        cost = self.backtest.cost_bps
        summary = summarize(self.backtest_results([ticker])).query("split == 'test' and cost_bps == @cost")
        walk, wf_summary, yearly = self.latest("walk_forward_returns", ticker), None, None
        if walk is not None:
            joined, yearly = walk_forward_summary(walk, cost, self.backtest.periods_per_year, self.backtest.risk_free)
            wf_summary = joined[joined["cost_bps"] == cost]
        return TickerEvidence(
            ticker,
            summary.reset_index(drop=True),
            self.latest("significance", ticker) or {},
            self.latest("router_diagnostics", ticker),
            wf_summary,
            yearly,
        )

    def daily_returns(self, tickers: Iterable[str]) -> pd.DataFrame:
        frames = [d for t in tickers if (d := self.latest("daily_returns", t)) is not None]
        if not frames:
            raise FileNotFoundError("no daily returns yet: run `llmoe run` for these tickers first")
        return pd.concat(frames, ignore_index=True)
