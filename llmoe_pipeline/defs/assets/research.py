"""The verdict's evidence per ticker: the walk-forward (research/walkforward.py, when enabled) and the
significance of every comparison (research/significance/), on the test split and the walk-forward years."""

import math

import dagster as dg
import pandas as pd

from llmoe_pipeline.catalog import LLMOE, RouterVariant
from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.defs.checks import OWNERS
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.progress import progress_log
from llmoe_pipeline.defs.resources import ModelStoreResource, ProtocolResource
from llmoe_pipeline.models import LLMoESearch
from llmoe_pipeline.reporting.tables import to_markdown
from llmoe_pipeline.research.significance import model_set_tests, pairwise_sharpe_tests, seed_averaged_returns
from llmoe_pipeline.research.significance.track_record import selection, track_record
from llmoe_pipeline.research.verdict import TickerEvidence, power_words, selection_words
from llmoe_pipeline.research.walkforward import walk_forward, walk_forward_summary


def json_safe(value):
    """Nested records with NaN and infinities as None (undefined statistics; JSON has no such numbers)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def significance_tables(daily: pd.DataFrame, cfg: PipelineConfig, split: str) -> dict[str, list[dict]]:
    """Ledoit-Wolf pairs (with their power), SPA, MCS, PSR and the LLMoE variants' track record of one split at the
    protocol's cost, as JSON-able records."""
    periods, cost, power = cfg.backtest.periods_per_year, cfg.backtest.cost_bps, cfg.significance
    pairs = pairwise_sharpe_tests(
        daily,
        split=split,
        cost_bps=cost,
        periods=periods,
        power_gap=power.power_gap,
        target_power=power.target_power,
        power_simulations=power.power_simulations,
    )
    tables = model_set_tests(daily, split=split, cost_bps=cost, periods=periods)
    records = {
        name: frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        for name, frame in (("pairs", pairs), ("spa", tables.spa), ("mcs", tables.mcs), ("psr", tables.psr))
    }
    returns = seed_averaged_returns(daily, split=split, cost_bps=cost)
    records["track_record"] = [
        {"ticker": ticker, **row} for ticker, frame in returns.items() for row in track_record(frame, periods=periods)
    ]
    return records


def selection_tables(daily: pd.DataFrame, searches: dict[str, LLMoESearch], cfg: PipelineConfig) -> list[dict]:
    """Per ticker: the deflated Sharpe ratio of the reported LLMoE and the PBO of its grid (test split)."""
    cost = cfg.backtest.cost_bps
    configurations = {name: search.configurations for name, search in searches.items()}
    return [
        {"ticker": ticker}
        | selection(
            frame,
            configurations,
            reported=LLMOE,
            cost_bps=cost,
            periods=cfg.backtest.periods_per_year,
            blocks=cfg.significance.pbo_blocks,
        )
        for ticker, frame in seed_averaged_returns(daily, split="test", cost_bps=cost).items()
    ]


def _markdown(records: list[dict], columns: list[str]) -> str:
    frame = pd.DataFrame(records)
    return frame[[c for c in columns if c in frame]].to_markdown(index=False, floatfmt=".3f") if len(frame) else "-"


def build_research_assets(partitions: Partitions, variants: list[RouterVariant], cfg: PipelineConfig) -> list:
    scored = [v for v in variants if v.experts]
    assets = []
    if cfg.walk_forward.enabled:

        @dg.asset(
            partitions_def=partitions.tickers,
            group_name="evaluation",
            kinds={"pytorch", "parquet"},
            owners=OWNERS,
            ins={
                "feature_windows": dg.AssetIn(),
                **{f"routing__{v.name}": dg.AssetIn(v.routing_asset) for v in scored},
            },
        )
        def walk_forward_returns(
            context: dg.AssetExecutionContext,
            protocol: ProtocolResource,
            model_store: ModelStoreResource,
            feature_windows: pd.DataFrame,
            **routing,
        ):
            """Expanding-window walk-forward: every model refitted before each test year, daily out-of-sample
            returns of every model × seed × year (models reused from the store when their training rows match)."""
            cfg = protocol.config
            store = model_store.store()
            daily = walk_forward(
                feature_windows,
                {name.removeprefix("routing__"): t for name, t in routing.items()},
                variants,
                cfg,
                cfg.walk_forward.first_year,
                cfg.walk_forward.last_year,
                store=store.get_or_train,
                workers=cfg.walk_forward.workers,
                progress=lambda m: progress_log(context, m),
            )
            bt = cfg.backtest
            joined, years = walk_forward_summary(daily, bt.cost_bps, bt.periods_per_year, bt.risk_free)
            return dg.Output(
                daily,
                metadata={
                    "rows": len(daily),
                    "years": dg.MetadataValue.json(sorted(int(y) for y in daily["year"].unique())),
                    "sharpe_per_year": dg.MetadataValue.md(years.round(2).to_markdown()),
                    "results_walk_forward": dg.MetadataValue.md(to_markdown(joined[joined["cost_bps"] == 0])),
                },
            )

        assets.append(walk_forward_returns)

    wf_in = {"walk_forward_returns": dg.AssetIn()} if cfg.walk_forward.enabled else {}
    # The grids of the variants that do not use the future: what the reported LLMoE was selected among.
    search_in = {
        f"search__{v.name}": dg.AssetIn(["llmoe_search", v.name]) for v in variants if v.experts and not v.uses_future
    }
    display = {f"search__{v.name}": v.display_name for v in variants}

    @dg.asset(
        partitions_def=partitions.tickers,
        group_name="evaluation",
        kinds={"pandas"},
        owners=OWNERS,
        ins={"daily_returns": dg.AssetIn(), **wf_in, **search_in},
    )
    def significance(
        context: dg.AssetExecutionContext, protocol: ProtocolResource, daily_returns: pd.DataFrame, **inputs
    ) -> dg.Output:
        """Each LLMoE variant vs every other model: Ledoit-Wolf Sharpe tests on the seed-averaged returns with their
        power, minimum detectable effect and equivalence bound, and the seeds' win share; SPA against buy-and-hold;
        the 10 % Model Confidence Set; each model's PSR and LLMoE's minimum track record; the deflated Sharpe ratio
        and the probability of backtest overfitting of the LLMoE grid. On the test split, and on the joined
        walk-forward years when they exist."""
        cfg = protocol.config
        value = {}
        searches = {display[k]: v for k, v in inputs.items() if k.startswith("search__")}
        if (daily_returns["split"] == "test").any():  # none yet right after a retraining
            value["test"] = significance_tables(daily_returns, cfg, "test")
            if LLMOE in searches:
                value["test"]["selection"] = selection_tables(daily_returns, searches, cfg)
        if "walk_forward_returns" in inputs:
            wf = inputs["walk_forward_returns"].assign(split="walk_forward")
            value["walk_forward"] = significance_tables(wf, cfg, "walk_forward")
        metadata = {}
        for split, tables in value.items():
            metadata[f"{split}_pairs"] = dg.MetadataValue.md(
                _markdown(
                    tables["pairs"],
                    [
                        "model_a",
                        "model_b",
                        "sharpe_a",
                        "sharpe_b",
                        "sharpe_diff",
                        "p_value",
                        "p_value_hac",
                        "mde",
                        "power_at_gap",
                        "ruled_out_above",
                        "seed_win_share",
                        "uses_future",
                    ],
                )
            )
            metadata[f"{split}_mcs"] = dg.MetadataValue.md(
                _markdown(tables["mcs"], ["model", "in_mcs", "mcs_pvalue", "sharpe", "uses_future"])
            )
            metadata[f"{split}_spa"] = dg.MetadataValue.md(
                _markdown(tables["spa"], ["benchmark", "p_consistent", "superior", "excluded"])
            )
        value = json_safe(value)
        evidence = TickerEvidence(context.partition_key, pd.DataFrame(), value)
        words = [power_words(evidence, split) for split in value] + [selection_words(evidence)]
        metadata["verdict"] = dg.MetadataValue.md("\n\n".join(w for w in words if w) or "-")
        return dg.Output(value, metadata=metadata)

    return [*assets, significance]
