"""router_diagnostics: what each router variant's score says about the next day's direction, and what it tracks
(issue #10, section 2; llmoe_pipeline/research/diagnostics/, plots_router.py).

Per variant with a score (not `single`) and split: the AUC of p_optimistic for the next day's direction and the
hit rate of its label at the threshold its LLMoE grid chose, each with a block-bootstrap interval; the Optimistic
share (per month: a table and a plot); the rank correlation of the score with the 11 inputs of day t; the
agreement between variants' labels; for LLM variants, the share of explanations that contradict the label. The
value is the long table (variant, split, metric, value, ci_low, ci_high, n, detail, uses_future); the other
tables are Markdown metadata and CSV artifacts of the ticker's MLflow run `router-diagnostics-<ticker>`.
"""

import base64
from pathlib import Path

import dagster as dg
import pandas as pd

from llmoe_pipeline.catalog import AUC_GAINS, RouterVariant
from llmoe_pipeline.defs.checks import OWNERS
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.progress import progress_log
from llmoe_pipeline.defs.resources import MLflowResource, ModelStoreResource, ProtocolResource
from llmoe_pipeline.reporting.router_plots import plot_optimistic_share
from llmoe_pipeline.research.diagnostics import VariantRouting, mlflow_metrics, router_diagnostics
from llmoe_pipeline.research.diagnostics.auc import DEFAULT_REPS, MIN_BLOCK
from llmoe_pipeline.research.diagnostics.markdown import (
    agreement_table,
    contradiction_markdown,
    correlation_table,
    interval_table,
    monthly_table,
)
from llmoe_pipeline.research.diagnostics.tracking import ROLE, log_diagnostics
from llmoe_pipeline.tracking.provenance import data_files_hash

ASSET = "router_diagnostics"
BOOTSTRAP_SEED = 0
PLOT_FILE = "router_optimistic_share.png"


def diagnostics_inputs(variants: list[RouterVariant]) -> dict[str, dg.AssetIn]:
    """The windows, and each variant's routing scores and LLMoE grid choice (variants with a score only)."""
    ins = {"feature_windows": dg.AssetIn()}
    for v in variants:
        if v.experts:
            ins[f"routing__{v.name}"] = dg.AssetIn(v.routing_asset)
            ins[f"search__{v.name}"] = dg.AssetIn(["llmoe_search", v.name])
    return ins


def _png_markdown(path: Path) -> dg.MetadataValue:
    data = base64.b64encode(path.read_bytes()).decode()
    return dg.MetadataValue.md(f"![{path.name}](data:image/png;base64,{data})")


def _test_period(features: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    dates = pd.to_datetime(features.loc[features["split"] == "test", "date"])
    return (dates.min(), dates.max()) if len(dates) else None


def build_diagnostics_assets(partitions: Partitions, variants: list[RouterVariant]) -> list:
    """The `router_diagnostics` asset (ticker-partitioned, group "router") over every variant with a score."""
    scored = [v for v in variants if v.experts]
    if not scored:
        return []

    @dg.asset(
        name=ASSET,
        partitions_def=partitions.tickers,
        group_name="router",
        kinds={"parquet", "mlflow"},
        owners=OWNERS,
        code_version="1",
        retry_policy=dg.RetryPolicy(max_retries=2, delay=10),  # an MLflow store that fails may answer next time
        ins=diagnostics_inputs(scored),
        description="Router diagnostics per variant and split: AUC of p_optimistic for the next day's direction "
        "and hit rate of the label (block-bootstrap 95 % intervals), Optimistic share per month, rank correlation "
        "with the inputs of day t, agreement between variants, LLM explanations that contradict the label. "
        "Variants that use the future (oracle) are flagged.",
    )
    def router_diagnostics_asset(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        mlflow: MLflowResource,
        model_store: ModelStoreResource,
        feature_windows: pd.DataFrame,
        **values,
    ) -> dg.Output:
        cfg, ticker = protocol.config, context.partition_key
        routings = [
            VariantRouting(
                v.name,
                values[f"routing__{v.name}"],
                float(values[f"search__{v.name}"].threshold),
                v.uses_future,
                v.is_llm,
            )
            for v in scored
        ]
        diag = router_diagnostics(feature_windows, routings, reps=DEFAULT_REPS, seed=BOOTSTRAP_SEED, gains=AUC_GAINS)
        plot = plot_optimistic_share(
            diag.monthly_share,
            model_store.artifacts_dir(ticker) / "plots" / PLOT_FILE,
            _test_period(feature_windows),
            diag.future_variants,
            title=f"{ticker}: share of windows labelled Optimistic per month (test shaded)",
        )
        metrics = mlflow_metrics(diag.summary)
        url = log_diagnostics(
            mlflow.tracker(),
            ticker,
            cfg.config_hash(),
            data_files_hash(cfg.data.price_paths() + cfg.data.headline_paths()),
            metrics,
            diag.tables(),
            params={
                "bootstrap": "circular block",
                "bootstrap_reps": DEFAULT_REPS,
                "bootstrap_min_block": MIN_BLOCK,
                "bootstrap_seed": BOOTSTRAP_SEED,
                "variants": ",".join(v.name for v in scored),
            },
            tags={
                "dagster.run_id": context.run.run_id,
                "dagster.partition": ticker,
                "dagster.asset": ASSET,
                "llmoe.uses_future": ",".join(diag.future_variants),
                **{f"llmoe.router_threshold.{r.name}": f"{r.threshold:.6f}" for r in routings},
            },
            plots={"optimistic_share": plot},
        )
        progress_log(context, f"router diagnostics of {len(scored)} variants logged to MLflow ({ROLE} run)")
        headline = {k: v for k, v in metrics.items() if k.startswith(("auc_test_", "hit_rate_test_"))}
        return dg.Output(
            diag.summary,
            metadata={
                "rows": len(diag.summary),
                "auc": dg.MetadataValue.md(interval_table(diag, "auc")),
                "hit_rate": dg.MetadataValue.md(interval_table(diag, "hit_rate")),
                "input_correlations": dg.MetadataValue.md(correlation_table(diag)),
                "agreement": dg.MetadataValue.md(agreement_table(diag)),
                "contradictions": dg.MetadataValue.md(contradiction_markdown(diag)),
                "optimistic_share_test_months": dg.MetadataValue.md(monthly_table(diag, "test")),
                "plot_optimistic_share": _png_markdown(plot),
                "uses_future": dg.MetadataValue.json(list(diag.future_variants)),
                "mlflow_run": dg.MetadataValue.url(url),
                **headline,
            },
        )

    return [router_diagnostics_asset]
