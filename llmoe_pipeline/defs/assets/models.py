"""Models: the LLMoE grid (llmoe_search), its experts per ticker and regime (expert_models), and the
baselines of the registry (baseline_models/<name>); llmoe_pipeline/models/ does the work.

Every model is trained from a fingerprint of what training reads (rows, grid, seeds, code) and reused from
the model store when nothing changed, so a nightly refresh retrains nothing unless the policy says so.
"""

import time
from collections.abc import Callable

import dagster as dg
import pandas as pd

from llmoe_pipeline.defs.checks import OWNERS
from llmoe_pipeline.defs.partitions import Partitions, split_expert_partition_key
from llmoe_pipeline.defs.progress import progress_log
from llmoe_pipeline.defs.resources import ModelStoreResource, ProtocolResource
from llmoe_pipeline.models import (
    LLMoESearch,
    ModelSet,
    expert_param_grid,
    input_columns,
    registry,
    router_labels_for,
    search_router_threshold,
    train_expert,
)
from llmoe_pipeline.models.experts import expert_name
from llmoe_pipeline.models.store import training_fingerprint
from llmoe_pipeline.regimes import apply_threshold


def training_rows(features: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """What training reads: the train/validation rows' dates, split, target and inputs (and router label)."""
    used = features[features["split"].isin(["train", "validation"])]
    frame = used[["date", "split", "target", *input_columns(features)]]
    if labels is not None:
        frame = frame.assign(label=router_labels_for(used, labels).to_numpy())
    return frame


def model_set_output(
    context,
    model_store: ModelStoreResource,
    fingerprint: str,
    train: Callable[[], ModelSet],
    output_name: str = "result",
) -> dg.Output:
    """The model set for `fingerprint`: reused from the store, else trained and stored."""

    def timed() -> ModelSet:
        started = time.time()
        value = train()
        return ModelSet(value.name, value.params, value.models, value.search_table, round(time.time() - started, 1))

    value, reused = model_store.store().get_or_train(fingerprint, ModelSet, timed)
    progress_log(
        context,
        f"{value.name}: {'reused' if reused else 'trained'} {len(value.models)} seeds ({value.train_seconds} s)",
    )
    first = next(iter(value.models.values()))
    return dg.Output(
        value,
        output_name=output_name,
        metadata={
            "seeds": len(value.models),
            "params": dg.MetadataValue.json(dict(value.params)),
            "search": dg.MetadataValue.md(value.search_table.to_markdown(index=False)),
            "train_rows": len(first.train_rows),
            "validation_rows": len(first.validation_rows),
            "reused_from_cache": reused,
            "train_seconds": value.train_seconds,
            "fingerprint": fingerprint,
        },
    )


def build_llmoe_assets(partitions: Partitions, variant: str = "llm", routing_asset: str = "router_labels") -> list:
    """The LLMoE grid and experts for one router variant, whose routing scores are `routing_asset`."""
    search_key = dg.AssetKey(["llmoe_search", variant])

    @dg.asset(
        key=search_key,
        partitions_def=partitions.tickers,
        group_name="models",
        kinds={"pytorch"},
        owners=OWNERS,
        ins={"feature_windows": dg.AssetIn(), "routing": dg.AssetIn(routing_asset)},
    )
    def llmoe_search(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        model_store: ModelStoreResource,
        feature_windows: pd.DataFrame,
        routing: pd.DataFrame,
    ):
        """The LLMoE grid on the validation tail: router threshold quantile × each regime's network."""
        cfg = protocol.config
        rows = training_rows(feature_windows)
        keys = pd.MultiIndex.from_frame(feature_windows.loc[rows.index, ["ticker", "date"]])
        rows = rows.assign(p_optimistic=routing.set_index(["ticker", "date"])["p_optimistic"].reindex(keys).to_numpy())
        fingerprint = training_fingerprint(
            rows,
            asset=search_key.to_user_string(),
            grid=expert_param_grid(cfg.experts),
            quantiles=cfg.experts.threshold_quantile_grid,
            search_seed=cfg.experts.search_seed,
        )
        search, reused = model_store.store().get_or_train(
            fingerprint,
            LLMoESearch,
            lambda: search_router_threshold(feature_windows, routing, cfg.experts, cfg.experts.search_seed),
        )
        progress_log(
            context,
            f"router threshold quantile {search.threshold_quantile} (score > {search.threshold:.4f}) "
            f"chosen on validation{' (reused)' if reused else ''}",
        )
        return dg.Output(
            search,
            metadata={
                "threshold_quantile": search.threshold_quantile,
                "threshold": search.threshold,
                "params": dg.MetadataValue.json({k: dict(v) for k, v in search.params.items()}),
                "search": dg.MetadataValue.md(search.table.to_markdown(index=False)),
                "reused_from_cache": reused,
                "fingerprint": fingerprint,
            },
        )

    @dg.asset(
        key=["expert_models", variant],
        partitions_def=partitions.experts,
        group_name="models",
        kinds={"pytorch"},
        owners=OWNERS,
        ins={"feature_windows": dg.AssetIn(), "routing": dg.AssetIn(routing_asset), "search": dg.AssetIn(search_key)},
    )
    def expert_models(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        model_store: ModelStoreResource,
        feature_windows: pd.DataFrame,
        routing: pd.DataFrame,
        search: LLMoESearch,
    ):
        """One feed-forward expert per seed, trained only on the training days routed to this partition's regime
        (55→h1→h2→h3→1, ReLU, dropout, sigmoid), with the hyperparameters the LLMoE grid chose."""
        cfg = protocol.config
        _, regime = split_expert_partition_key(context.partition_key)
        routed = apply_threshold(routing, search.threshold)
        params = search.expert_params(regime)
        rows = training_rows(feature_windows, routed)
        fingerprint = training_fingerprint(
            rows[rows["label"] == regime],
            asset=f"expert_models/{variant}/{regime}",
            candidates=[params],
            seeds=cfg.seeds,
            search_seed=cfg.experts.search_seed,
        )

        def train() -> ModelSet:
            models = {seed: train_expert(feature_windows, routed, regime, params, seed) for seed in cfg.seeds}
            return ModelSet(expert_name(regime), params, models, search.table)

        return model_set_output(context, model_store, fingerprint, train)

    return [llmoe_search, expert_models]


def build_baseline_assets(partitions: Partitions) -> list:
    @dg.multi_asset(
        outs={
            spec.name: dg.AssetOut(
                key=["baseline_models", spec.name],
                group_name="models",
                owners=OWNERS,
                is_required=False,
                kinds={spec.flavor},
                description=f"{spec.display_name}: {spec.description} Random search on the "
                "validation tail, then one model per seed.",
            )
            for spec in registry.BASELINES
        },
        ins={"feature_windows": dg.AssetIn()},
        partitions_def=partitions.tickers,
        can_subset=True,
    )
    def baseline_models(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        model_store: ModelStoreResource,
        feature_windows: pd.DataFrame,
    ):
        cfg = protocol.config
        rows = training_rows(feature_windows)
        for spec in registry.BASELINES:
            key = dg.AssetKey(["baseline_models", spec.name])
            if key not in context.selected_asset_keys:
                continue
            candidates = spec.candidates(cfg.baselines)
            fingerprint = training_fingerprint(
                rows,
                asset=key.to_user_string(),
                candidates=candidates,
                seeds=cfg.seeds,
                search_seed=cfg.baselines.search_seed,
            )

            def train(spec=spec) -> ModelSet:
                search = spec.search(feature_windows, cfg.baselines)
                # The search's winning fit is seed search_seed: reuse it rather than fitting it again.
                models = {
                    seed: search.best_model
                    if seed == cfg.baselines.search_seed
                    else spec.fit(feature_windows, search.best_params, seed)
                    for seed in cfg.seeds
                }
                return ModelSet(spec.name, search.best_params, models, search.table)

            yield model_set_output(context, model_store, fingerprint, train, output_name=spec.name)

    return [baseline_models]
