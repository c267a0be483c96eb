"""Evaluation: every model's P(up) on validation and test days (predictions), the all-in/all-out backtests and
seven metrics (backtest_results, daily_returns) and the plots (llmoe_pipeline/trading/evaluation.py, backtest.py,
metrics.py, plots.py, report.py)."""

import base64
from collections.abc import Collection
from pathlib import Path

import dagster as dg
import pandas as pd

from llmoe_pipeline.catalog import BUY_AND_HOLD, RouterVariant, soft_name, uses_future
from llmoe_pipeline.defs.checks import OWNERS
from llmoe_pipeline.defs.partitions import Partitions, split_expert_partition_key
from llmoe_pipeline.defs.resources import ModelStoreResource, ProtocolResource
from llmoe_pipeline.models import LLMoESearch, ModelSet, registry
from llmoe_pipeline.models.training import SINGLE_EXPERT
from llmoe_pipeline.reporting.plots import plot_drawdown, plot_equity, plot_regimes
from llmoe_pipeline.reporting.tables import summarize, to_markdown
from llmoe_pipeline.router.regimes import apply_threshold
from llmoe_pipeline.trading.evaluation import RoutedExperts, equity_curves, evaluate, predict_all, soft_routed


def model_inputs(variants: list[RouterVariant]) -> dict[str, dg.AssetIn]:
    """Every trained model of a ticker: each variant's routing, grid choice and experts (or the single expert),
    and each baseline."""
    ins = {}
    for v in variants:
        if not v.experts:
            ins[f"single__{v.name}"] = dg.AssetIn(SINGLE_EXPERT)
            continue
        ins[f"routing__{v.name}"] = dg.AssetIn(v.routing_asset)
        ins[f"search__{v.name}"] = dg.AssetIn(["llmoe_search", v.name])
        ins[f"experts__{v.name}"] = dg.AssetIn(["expert_models", v.name])
    return ins | {f"baseline__{s.name}": dg.AssetIn(["baseline_models", s.name]) for s in registry.BASELINES}


def routed_labels(values: dict, variant: RouterVariant) -> pd.DataFrame:
    """The variant's routing table with `label` at the threshold its LLMoE grid chose."""
    search: LLMoESearch = values[f"search__{variant.name}"]
    return apply_threshold(values[f"routing__{variant.name}"], search.threshold)


def routed_experts(values: dict, variants: list[RouterVariant], soft: Collection[str] = ()) -> dict[str, RoutedExperts]:
    """Display name → experts (regime → seed → model) and the labels at the chosen threshold, per variant; for the
    variants in `soft`, also their soft routing (`LLMoE-soft`: the same experts weighted by the router's score)."""
    out = {}
    for v in variants:
        if v.experts:
            experts = values[f"experts__{v.name}"].items()
            by_regime = {split_expert_partition_key(pk)[1]: ms.models for pk, ms in experts}
            out[v.display_name] = RoutedExperts(by_regime, routed_labels(values, v))
            if v.name in soft:
                out[soft_name(v.display_name)] = soft_routed(
                    out[v.display_name], values[f"search__{v.name}"].threshold_quantile
                )
    return out


def plain_models(values: dict, variants: list[RouterVariant]) -> dict[str, ModelSet]:
    """Display name → model set of every model that predicts without routing: the single expert, the baselines."""
    out = {v.display_name: values[f"single__{v.name}"] for v in variants if not v.experts}
    return out | {s.display_name: values[f"baseline__{s.name}"] for s in registry.BASELINES}


def model_sets(values: dict, variants: list[RouterVariant]) -> dict[str, dict[str, ModelSet]]:
    """Display name → {part name: model set} (LLMoE: one part per expert)."""
    out = {v.display_name: {ms.name: ms for ms in values[f"experts__{v.name}"].values()} for v in variants if v.experts}
    return out | {name: {ms.name: ms} for name, ms in plain_models(values, variants).items()}


def _png_markdown(path: Path) -> dg.MetadataValue:
    data = base64.b64encode(path.read_bytes()).decode()
    return dg.MetadataValue.md(f"![{path.name}](data:image/png;base64,{data})")


def _legend(curves: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {f"{k} (uses the future)" if uses_future(k) else k: v for k, v in curves.items()}


def test_plots(
    daily: pd.DataFrame, labels: pd.DataFrame, raw_prices: pd.DataFrame, ticker: str, cost_bps: float, plots_dir: Path
) -> dict[str, Path]:
    """Equity and drawdown of every model against buy-and-hold, and the LLM router's regimes, over the test days
    (none right after a retraining, when there is no test day yet)."""
    curves = equity_curves(daily, "test", cost_bps)
    if BUY_AND_HOLD not in curves:
        return {}
    bench = curves.pop(BUY_AND_HOLD).iloc[:, 0]
    test_labels = labels.query("split == 'test'").set_index("date")["label"]
    prices = raw_prices.set_index("date")["adj_close"].rename(f"{ticker} adj close")
    prices = prices.loc[test_labels.index.min() : test_labels.index.max()]
    return {
        "equity": plot_equity(
            _legend(curves), bench, plots_dir / "equity.png", title=f"{ticker}: test equity (mean ± 1 std over seeds)"
        ),
        "drawdown": plot_drawdown(_legend(curves), bench, plots_dir / "drawdown.png", title=f"{ticker}: test drawdown"),
        "regimes": plot_regimes(
            prices, test_labels, plots_dir / "regimes.png", title=f"{ticker}: LLM router regimes (test)"
        ),
    }


def build_evaluation_assets(partitions: Partitions, variants: list[RouterVariant]) -> list:
    llm = next(v for v in variants if v.name == "llm")

    @dg.asset(
        partitions_def=partitions.tickers,
        group_name="evaluation",
        kinds={"parquet"},
        owners=OWNERS,
        ins={"feature_windows": dg.AssetIn(), **model_inputs(variants)},
    )
    def predictions(
        context: dg.AssetExecutionContext, protocol: ProtocolResource, feature_windows: pd.DataFrame, **values
    ) -> dg.Output:
        """P(up) of every model × seed on every validation and test day (LLMoE rows: with the routed regime)."""
        plain = {name: ms.models for name, ms in plain_models(values, variants).items()}
        routed = routed_experts(values, variants, protocol.config.router.soft_routing)
        table = predict_all(feature_windows, routed, plain)
        return dg.Output(
            table,
            metadata={
                "rows": len(table),
                "days": int(table["date"].nunique()),
                "models": dg.MetadataValue.json(sorted(table["model"].unique().tolist())),
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
            "routing__llm": dg.AssetIn(llm.routing_asset),
            "search__llm": dg.AssetIn(["llmoe_search", "llm"]),
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
        plots = test_plots(daily, routed_labels(values, llm), raw_prices, ticker, cfg.backtest.cost_bps, plots_dir)
        summary = summarize(metrics[metrics["cost_bps"] == cfg.backtest.cost_bps])
        test = summary[summary["split"] == "test"]
        yield dg.Output(
            metrics,
            output_name="backtest_results",
            metadata={
                "rows": len(metrics),
                "results_test": dg.MetadataValue.md(to_markdown(test)),
                "llmoe_test_sharpe_mean": float(
                    test.loc[test["model"] == llm.display_name, "sharpe_ratio_mean"].mean()
                ),
                "plots_dir": dg.MetadataValue.path(str(plots_dir)),
                **{f"plot_{k}": _png_markdown(v) for k, v in plots.items()},
            },
        )
        yield dg.Output(daily, output_name="daily_returns", metadata={"rows": len(daily)})

    return [predictions, backtests]
