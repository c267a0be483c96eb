"""backtest_results: predictions → all-in/all-out backtests → seven metrics → MLflow runs and plots
(llmoe_pipeline/evaluation.py, backtest.py, metrics.py, tracking.py, plots.py, report.py)."""

import base64
import hashlib
import tempfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from llmoe_pipeline.defs.assets.data import OWNERS
from llmoe_pipeline.defs.assets.models import SEARCHED_BASELINES
from llmoe_pipeline.defs.partitions import ticker_partitions
from llmoe_pipeline.defs.progress import progress_log
from llmoe_pipeline.defs.resources import MLflowResource, ProtocolResource
from llmoe_pipeline.evaluation import DISPLAY_NAMES, equity_curves, evaluate, predict_all
from llmoe_pipeline.features import window_columns
from llmoe_pipeline.io import write_parquet_atomic
from llmoe_pipeline.metrics import METRIC_NAMES
from llmoe_pipeline.models import REGIMES
from llmoe_pipeline.paths import llmoe_home
from llmoe_pipeline.plots import plot_drawdown, plot_equity, plot_regimes
from llmoe_pipeline.router.labels import apply_threshold
from llmoe_pipeline.report import summarize, to_markdown
from llmoe_pipeline.tracking import ModelToLog, file_sha256

PREDICTIONS_FILE = "predictions.parquet"
_MODEL_INS = {f"experts_{r.lower()}": dg.AssetIn(key=["expert_models", r.lower()]) for r in REGIMES}
_MODEL_INS |= {f"baseline_{n}": dg.AssetIn(key=["baseline_models", n]) for n in SEARCHED_BASELINES}


def _png_markdown(path) -> dg.MetadataValue:
    data = base64.b64encode(open(path, "rb").read()).decode()
    return dg.MetadataValue.md(f"![{path.name}](data:image/png;base64,{data})")


def _data_hash(cfg) -> str:
    files = cfg.data.paths(cfg.data.price_files + cfg.data.headline_files)
    joined = "".join(f"{p.name}:{file_sha256(p)}" for p in files if p.exists())
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def _seed_metrics(metrics: pd.DataFrame, model: str, seed: int) -> dict[str, float]:
    """`test_sharpe_ratio` at the paper's cost (0 bps), `test_sharpe_ratio_10bps` at each extra cost."""
    sel = metrics[(metrics["model"] == model) & (metrics["seed"] == seed)]
    out = {}
    for _, row in sel.iterrows():
        suffix = "" if row["cost_bps"] == 0 else f"_{row['cost_bps']:g}bps"
        out |= {f"{row['split']}_{m}{suffix}": float(row[m]) for m in METRIC_NAMES}
    return out


def _models_to_log(model_set: dict, input_example: np.ndarray, seed: int) -> list[ModelToLog]:
    return [ModelToLog(m.estimator, m.flavor, input_example, name=name)
            for name, m in model_set.items() if m.flavor in ("pytorch", "lightgbm") and m.seed == seed]


def log_to_mlflow(context, tracker, cfg, ticker: str, metrics: pd.DataFrame, predictions: pd.DataFrame,
                  model_sets: dict[str, dict], router_tags: dict, input_example: np.ndarray,
                  plots_dir) -> dict[str, str]:
    """One parent per model, one child per seed; returns model → parent run URL.

    Each seed run gets its own predictions (that model and seed, validation and test days); the parent
    gets the plots. A failure marks the parent (and the seed run in progress) FAILED, not RUNNING forever.
    """
    data_hash = _data_hash(cfg)
    common_tags = {**router_tags, "dagster.run_id": context.run.run_id, "dagster.partition": ticker,
                   "dagster.asset": "backtest_results"}
    urls = {}
    for model in metrics["model"].unique():
        parts = model_sets.get(model, {})  # name → {"params":..., "models": {seed: FittedModel}}
        params = {f"{name}.{k}": v for name, part in parts.items() for k, v in part["params"].items()}
        parent = tracker.parent_run(ticker, model, cfg.config_hash(), data_hash,
                                    params={"ticker": ticker, "model": model, **params}, tags=common_tags)
        seeds = sorted(metrics.loc[metrics["model"] == model, "seed"].unique())
        table = []
        with tracker.failed_on_error(parent), tempfile.TemporaryDirectory(prefix="llmoe-seed-") as tmp:
            for seed in seeds:
                seed_metrics = _seed_metrics(metrics, model, seed)
                fitted = {name: part["models"][seed] for name, part in parts.items()}
                curves = {f"{name}.{col}": fm.history[col].tolist() for name, fm in fitted.items()
                          for col in ("train_loss", "val_loss") if col in fm.history}
                own = predictions[(predictions["model"] == model) & (predictions["seed"] == seed)]
                own_path = write_parquet_atomic(own.reset_index(drop=True), Path(tmp) / f"seed-{seed}" / PREDICTIONS_FILE)
                tracker.log_seed_run(parent, int(seed), params={"ticker": ticker, "model": model, **params},
                                     metrics=seed_metrics, curves=curves, tags=common_tags,
                                     artifacts={"predictions": own_path},
                                     models=_models_to_log(fitted, input_example, seed))
                table.append({"seed": int(seed), **seed_metrics})
            tracker.finish_parent(parent, pd.DataFrame(table), artifacts={"plots": plots_dir})
        urls[model] = tracker.run_url(parent)
    return urls


@dg.asset(
    partitions_def=ticker_partitions,
    group_name="evaluation",
    kinds={"mlflow", "parquet"},
    owners=OWNERS,
    ins={"feature_windows": dg.AssetIn(), "router_labels": dg.AssetIn(), "raw_prices": dg.AssetIn(), **_MODEL_INS},
)
def backtest_results(context: dg.AssetExecutionContext, protocol: ProtocolResource, mlflow: MLflowResource,
                     feature_windows: pd.DataFrame, router_labels: pd.DataFrame,
                     raw_prices: pd.DataFrame, **model_values):
    """Seven metrics per model × seed × split × cost (all-in/all-out), logged to MLflow, with plots.

    The value is the long per-seed metrics table that `llmoe report` summarizes (mean ± std over seeds).
    """
    cfg = protocol.load()
    ticker = context.partition_key
    experts = {r: model_values[f"experts_{r.lower()}"]["models"] for r in REGIMES}
    baselines = {n: model_values[f"baseline_{n}"]["models"] for n in SEARCHED_BASELINES}
    # LLMoE routes with the threshold its grid search chose (the same for both experts), not router_labels' median.
    thresholds = {model_values[f"experts_{r.lower()}"]["params"]["threshold"] for r in REGIMES}
    if len(thresholds) != 1:
        raise dg.Failure(f"the two experts were trained with different router thresholds {sorted(thresholds)}: "
                         "materialize expert_models for both regimes together")
    routed = apply_threshold(router_labels, thresholds.pop())
    predictions = predict_all(feature_windows, routed, experts, baselines)
    costs = [cfg.backtest.cost_bps, *[c for c in cfg.backtest.extra_cost_bps if c != cfg.backtest.cost_bps]]
    metrics, daily = evaluate(predictions, costs, cfg.backtest.periods_per_year, cfg.backtest.risk_free)

    out_dir = llmoe_home() / "artifacts" / ticker
    write_parquet_atomic(predictions, out_dir / "predictions" / PREDICTIONS_FILE)
    write_parquet_atomic(daily, out_dir / "daily" / "daily_returns.parquet")
    curves = equity_curves(daily, "test", cfg.backtest.cost_bps)
    bench = curves.pop("Buy&Hold").iloc[:, 0]
    test_labels = routed[routed["split"] == "test"].set_index("date")["label"]
    prices = raw_prices.set_index("date")["adj_close"].rename(f"{ticker} adj close").loc[test_labels.index.min():test_labels.index.max()]
    plots = {
        "equity": plot_equity(curves, bench, out_dir / "plots" / "equity.png", title=f"{ticker}: test equity (mean ± 1 std over seeds)"),
        "drawdown": plot_drawdown(curves, bench, out_dir / "plots" / "drawdown.png", title=f"{ticker}: test drawdown"),
        "regimes": plot_regimes(prices, test_labels, out_dir / "plots" / "regimes.png", title=f"{ticker}: router regimes (test)"),
    }

    model_sets = {"LLMoE": {f"expert_{r.lower()}": model_values[f"experts_{r.lower()}"] for r in REGIMES}}
    model_sets |= {DISPLAY_NAMES[n]: {n: model_values[f"baseline_{n}"]} for n in SEARCHED_BASELINES}
    router_tags = {"router.model_id": str(router_labels["model_id"].iloc[0]),
                   "router.prompt_version": str(router_labels["prompt_version"].iloc[0]),
                   "router.prompts_sha256": hashlib.sha256("".join(router_labels["prompt_sha256"]).encode()).hexdigest()[:16],
                   "router.threshold": f"{routed['threshold'].iloc[0]:.6f}"}
    example = feature_windows.loc[feature_windows["split"] == "test", window_columns(cfg.window)].head(5)
    urls = log_to_mlflow(context, mlflow.tracker(), cfg, ticker, metrics, predictions, model_sets, router_tags,
                         example.to_numpy(np.float32), out_dir / "plots")

    progress_log(context, f"logged {len(urls)} MLflow parent runs with their seed runs")
    summary = summarize(metrics[metrics["cost_bps"] == cfg.backtest.cost_bps])
    return dg.Output(metrics, metadata={
        "rows": len(metrics),
        "results_test": dg.MetadataValue.md(to_markdown(summary[summary["split"] == "test"])),
        "llmoe_test_sharpe_mean": float(summary.query("model == 'LLMoE' and split == 'test'")["sharpe_ratio_mean"].iloc[0]),
        "mlflow_llmoe_run": dg.MetadataValue.url(urls["LLMoE"]),
        "mlflow_parent_runs": dg.MetadataValue.json(urls),
        **{f"plot_{k}": _png_markdown(v) for k, v in plots.items()},
    })
