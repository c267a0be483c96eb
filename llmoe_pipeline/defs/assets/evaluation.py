"""Evaluation: every model's P(up) on validation and test days (predictions), the all-in/all-out backtests and
seven metrics (backtest_results, daily_returns) and the plots (llmoe_pipeline/evaluation.py, backtest.py,
metrics.py, plots.py, report.py)."""

import base64
from pathlib import Path

import dagster as dg
import pandas as pd

from llmoe_pipeline.defs.checks import OWNERS
from llmoe_pipeline.defs.partitions import Partitions, split_expert_partition_key
from llmoe_pipeline.defs.resources import ModelStoreResource, ProtocolResource
from llmoe_pipeline.evaluation import RoutedExperts, equity_curves, evaluate, predict_all
from llmoe_pipeline.models import BUY_AND_HOLD, LLMoESearch, ModelSet, registry
from llmoe_pipeline.plots import plot_drawdown, plot_equity, plot_regimes
from llmoe_pipeline.regimes import apply_threshold
from llmoe_pipeline.report import summarize, to_markdown
from llmoe_pipeline.routing import VARIANTS


def model_inputs() -> dict[str, dg.AssetIn]:
    """Every trained model of a ticker: each variant's routing, grid choice and experts, and each baseline."""
    ins = {}
    for v in VARIANTS:
        ins[f"routing__{v.name}"] = dg.AssetIn(v.routing_asset)
        ins[f"search__{v.name}"] = dg.AssetIn(["llmoe_search", v.name])
        ins[f"experts__{v.name}"] = dg.AssetIn(["expert_models", v.name])
    ins |= {f"baseline__{s.name}": dg.AssetIn(["baseline_models", s.name]) for s in registry.BASELINES}
    return ins


def routed_experts(values: dict) -> dict[str, RoutedExperts]:
    """Display name → experts (regime → seed → model) and the labels at the chosen threshold, per variant."""
    out = {}
    for v in VARIANTS:
        search: LLMoESearch = values[f"search__{v.name}"]
        by_regime = {split_expert_partition_key(pk)[1]: ms.models for pk, ms in values[f"experts__{v.name}"].items()}
        out[v.display_name] = RoutedExperts(by_regime, apply_threshold(values[f"routing__{v.name}"], search.threshold))
    return out


def model_sets(values: dict) -> dict[str, dict[str, ModelSet]]:
    """Display name → {part name: model set} (LLMoE: one part per expert)."""
    out = {v.display_name: {ms.name: ms for ms in values[f"experts__{v.name}"].values()} for v in VARIANTS}
    return out | {s.display_name: {s.name: values[f"baseline__{s.name}"]} for s in registry.BASELINES}


def _png_markdown(path: Path) -> dg.MetadataValue:
    data = base64.b64encode(path.read_bytes()).decode()
    return dg.MetadataValue.md(f"![{path.name}](data:image/png;base64,{data})")


def build_evaluation_assets(partitions: Partitions) -> list:
    @dg.asset(
        partitions_def=partitions.tickers,
        group_name="evaluation",
        kinds={"parquet"},
        owners=OWNERS,
        ins={"feature_windows": dg.AssetIn(), **model_inputs()},
    )
    def predictions(context: dg.AssetExecutionContext, feature_windows: pd.DataFrame, **values) -> dg.Output:
        """P(up) of every model × seed on every validation and test day (LLMoE rows: with the routed regime)."""
        routed = routed_experts(values)
        baselines = {s.display_name: values[f"baseline__{s.name}"].models for s in registry.BASELINES}
        table = predict_all(feature_windows, routed, baselines)
        return dg.Output(
            table,
            metadata={
                "rows": len(table),
                "models": dg.MetadataValue.json(sorted(table["model"].unique().tolist())),
                "days": int(table["date"].nunique()),
            },
        )

    @dg.multi_asset(
        outs={
            "backtest_results": dg.AssetOut(
                group_name="evaluation",
                kinds={"parquet"},
                owners=OWNERS,
                description="Seven metrics per model × seed × split × cost.",
            ),
            "daily_returns": dg.AssetOut(
                group_name="evaluation",
                kinds={"parquet"},
                owners=OWNERS,
                description="Position, strategy return and equity per day, model, seed, split and cost.",
            ),
        },
        partitions_def=partitions.tickers,
        ins={
            "predictions": dg.AssetIn(),
            "raw_prices": dg.AssetIn(),
            **{f"routing__{v.name}": dg.AssetIn(v.routing_asset) for v in VARIANTS[:1]},
            **{f"search__{v.name}": dg.AssetIn(["llmoe_search", v.name]) for v in VARIANTS[:1]},
        },
    )
    def backtests(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        model_store: ModelStoreResource,
        predictions: pd.DataFrame,
        raw_prices: pd.DataFrame,
        **values,
    ):
        """All-in/all-out backtest of every model × seed at every cost, the seven metrics, and the plots."""
        cfg, ticker = protocol.config, context.partition_key
        costs = [cfg.backtest.cost_bps, *[c for c in cfg.backtest.extra_cost_bps if c != cfg.backtest.cost_bps]]
        metrics, daily = evaluate(predictions, costs, cfg.backtest.periods_per_year, cfg.backtest.risk_free)
        plots_dir = model_store.artifacts_dir(ticker) / "plots"
        curves = equity_curves(daily, "test", cfg.backtest.cost_bps)
        bench = curves.pop(BUY_AND_HOLD).iloc[:, 0]
        llm = VARIANTS[0]
        routed = apply_threshold(values[f"routing__{llm.name}"], values[f"search__{llm.name}"].threshold)
        test_labels = routed[routed["split"] == "test"].set_index("date")["label"]
        prices = raw_prices.set_index("date")["adj_close"].rename(f"{ticker} adj close")
        prices = prices.loc[test_labels.index.min() : test_labels.index.max()]
        plots = {
            "equity": plot_equity(
                curves, bench, plots_dir / "equity.png", title=f"{ticker}: test equity (mean ± 1 std over seeds)"
            ),
            "drawdown": plot_drawdown(curves, bench, plots_dir / "drawdown.png", title=f"{ticker}: test drawdown"),
            "regimes": plot_regimes(
                prices, test_labels, plots_dir / "regimes.png", title=f"{ticker}: router regimes (test)"
            ),
        }
        summary = summarize(metrics[metrics["cost_bps"] == cfg.backtest.cost_bps])
        test = summary[summary["split"] == "test"]
        yield dg.Output(
            metrics,
            output_name="backtest_results",
            metadata={
                "rows": len(metrics),
                "results_test": dg.MetadataValue.md(to_markdown(test)),
                "llmoe_test_sharpe_mean": float(
                    test.loc[test["model"] == llm.display_name, "sharpe_ratio_mean"].iloc[0]
                ),
                "plots_dir": dg.MetadataValue.path(str(plots_dir)),
                **{f"plot_{k}": _png_markdown(v) for k, v in plots.items()},
            },
        )
        yield dg.Output(daily, output_name="daily_returns", metadata={"rows": len(daily)})

    return [predictions, backtests]
