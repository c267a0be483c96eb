"""mlflow_runs: one MLflow parent run per model with one child per seed (llmoe_pipeline/tracking/).

Its own asset, so a failed logging step (a store or network error) is retried alone, without re-running the
backtests; the value is each model's parent run URL.
"""

import dagster as dg
import numpy as np
import pandas as pd

from llmoe_pipeline.catalog import LLMOE, RouterVariant, soft_name
from llmoe_pipeline.core.hashing import sha256_text
from llmoe_pipeline.defs.assets.evaluation import model_inputs, model_sets
from llmoe_pipeline.defs.checks import OWNERS
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.progress import progress_log
from llmoe_pipeline.defs.resources import MLflowResource, ModelStoreResource, ProtocolResource
from llmoe_pipeline.features.windows import window_columns
from llmoe_pipeline.router.families import shown_kernel_family
from llmoe_pipeline.tracking.provenance import data_files_hash
from llmoe_pipeline.tracking.records import log_records, model_records


def router_tags(labels: pd.DataFrame, threshold: float) -> dict[str, str]:
    model_id = str(labels["model_id"].iloc[0])
    return {
        "router.model_id": model_id,
        "router.kernel_family": shown_kernel_family(model_id),
        "router.prompt_version": str(labels["prompt_version"].iloc[0]),
        "router.prompts_sha256": sha256_text("".join(labels["prompt_sha256"]))[:16],
        "router.threshold": f"{threshold:.6f}",
    }


def build_tracking_assets(partitions: Partitions, variants: list[RouterVariant]) -> list:
    @dg.asset(
        partitions_def=partitions.tickers,
        group_name="evaluation",
        kinds={"mlflow"},
        owners=OWNERS,
        retry_policy=dg.RetryPolicy(max_retries=2, delay=10),
        ins={
            "backtest_results": dg.AssetIn(),
            "predictions": dg.AssetIn(),
            "feature_windows": dg.AssetIn(),
            **model_inputs(variants),
        },
    )
    def mlflow_runs(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        mlflow: MLflowResource,
        model_store: ModelStoreResource,
        backtest_results: pd.DataFrame,
        predictions: pd.DataFrame,
        feature_windows: pd.DataFrame,
        **values,
    ) -> dg.Output:
        """Every model × seed of the ticker in MLflow: params, metrics, loss curves, predictions, models, plots."""
        cfg, ticker = protocol.config, context.partition_key
        if not mlflow.config.research_runs:  # e.g. the nightly live setup: its signals are logged by trading_signals
            return dg.Output({}, metadata={"skipped": "mlflow.research_runs is false"})
        example = feature_windows.loc[feature_windows["split"] == "test", window_columns(cfg.window)].head(5)
        tags = {
            "dagster.run_id": context.run.run_id,
            "dagster.partition": ticker,
            "dagster.asset": "mlflow_runs",
            **router_tags(values["routing__llm"], values["search__llm"].threshold),
        }
        variant_tags = {
            v.display_name: {
                "llmoe.router_variant": v.name,
                **({"llmoe.router_threshold": f"{values[f'search__{v.name}'].threshold:.6f}"} if v.experts else {}),
                # The oracle reads the future: marked on its runs so that no comparison mistakes it for a result.
                **({"llmoe.uses_future": "true"} if v.uses_future else {}),
            }
            for v in variants
        }
        for v in variants:  # soft routing: the same experts as its top-1 variant
            if v.name in cfg.router.soft_routing and v.display_name in variant_tags:
                variant_tags[soft_name(v.display_name)] = {**variant_tags[v.display_name], "llmoe.routing": "soft"}
        records = model_records(
            backtest_results, predictions, model_sets(values, variants), example.to_numpy(np.float32), variant_tags
        )
        urls = log_records(
            mlflow.tracker(),
            records,
            ticker,
            cfg.config_hash(),
            data_files_hash(cfg.data.price_paths() + cfg.data.headline_paths()),
            tags,
            model_store.artifacts_dir(ticker) / "plots",
        )
        progress_log(context, f"logged {len(urls)} MLflow parent runs with their seed runs")
        return dg.Output(
            urls,
            metadata={
                "mlflow_llmoe_run": dg.MetadataValue.url(urls[LLMOE]),
                "mlflow_parent_runs": dg.MetadataValue.json(urls),
            },
        )

    return [mlflow_runs]
