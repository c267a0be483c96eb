"""Models: per router variant, the LLMoE grid (llmoe_search/<variant>) and its experts per ticker and regime
(expert_models/<variant>); the `single` ablation (llmoe_single); the registry's baselines (baseline_models/<name>).
llmoe_pipeline/models/ does the work (training.py: the same functions the walk-forward uses).

Every model is trained from a fingerprint of what training reads (rows, grid, seeds, code) and reused from the
model store when nothing changed, so a nightly refresh retrains nothing unless the policy says so.
"""

import functools
import time
from collections.abc import Callable

import dagster as dg
import pandas as pd

from llmoe_pipeline.catalog import RouterVariant
from llmoe_pipeline.defs.checks import OWNERS
from llmoe_pipeline.defs.partitions import Partitions, split_expert_partition_key
from llmoe_pipeline.defs.progress import progress_log
from llmoe_pipeline.defs.resources import ModelStoreResource, ProtocolResource
from llmoe_pipeline.models import LLMoESearch, ModelSet, registry
from llmoe_pipeline.models import training as tr
from llmoe_pipeline.models.store import training_fingerprint


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


def build_llmoe_assets(partitions: Partitions, variant: RouterVariant) -> list:
    """The LLMoE grid and its experts for one router variant (routing scores from `variant.routing_asset`)."""
    search_key = dg.AssetKey(["llmoe_search", variant.name])
    extra = {"llm_search": dg.AssetIn(["llmoe_search", "llm"])} if variant.threshold == "llm_share" else {}
    future = " USES THE FUTURE: an upper bound, never a result." if variant.uses_future else ""

    @dg.asset(
        key=search_key,
        partitions_def=partitions.tickers,
        group_name="models",
        kinds={"pytorch"},
        owners=OWNERS,
        ins={"feature_windows": dg.AssetIn(), "routing": dg.AssetIn(variant.routing_asset), **extra},
        description=f"LLMoE grid for router `{variant.name}` ({variant.description}): the router threshold "
        f"× each regime's network, chosen on the validation tail.{future}",
    )
    def llmoe_search(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        model_store: ModelStoreResource,
        feature_windows: pd.DataFrame,
        routing: pd.DataFrame,
        **llm,
    ) -> dg.Output:
        cfg = protocol.config
        quantiles = [llm["llm_search"].threshold_quantile] if "llm_search" in llm else None
        fixed = variant.fixed_threshold if variant.threshold == "fixed" else None
        fingerprint = training_fingerprint(
            tr.scored_rows(feature_windows, routing),
            asset=search_key.to_user_string(),
            **tr.search_settings(cfg, quantiles, fixed),
        )
        search, reused = model_store.store().get_or_train(
            fingerprint, LLMoESearch, lambda: tr.fit_llmoe_search(feature_windows, routing, cfg, quantiles, fixed)
        )
        progress_log(
            context,
            f"router threshold quantile {search.threshold_quantile} (score > "
            f"{search.threshold:.4f}) chosen on validation{' (reused)' if reused else ''}",
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
                "uses_future": variant.uses_future,
            },
        )

    @dg.asset(
        key=["expert_models", variant.name],
        partitions_def=partitions.experts,
        group_name="models",
        kinds={"pytorch"},
        owners=OWNERS,
        ins={
            "feature_windows": dg.AssetIn(),
            "routing": dg.AssetIn(variant.routing_asset),
            "search": dg.AssetIn(search_key),
        },
        description=f"LLMoE experts for router `{variant.name}`: one feed-forward network (55→h1→h2→h3→1, "
        "ReLU, dropout, sigmoid) per seed, trained only on the training days routed to this "
        f"partition's regime, with the hyperparameters the LLMoE grid chose.{future}",
    )
    def expert_models(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        model_store: ModelStoreResource,
        feature_windows: pd.DataFrame,
        routing: pd.DataFrame,
        search: LLMoESearch,
    ) -> dg.Output:
        cfg = protocol.config
        _, regime = split_expert_partition_key(context.partition_key)
        key = f"expert_models/{variant.name}/{regime}"
        fingerprint = tr.expert_fingerprint(feature_windows, routing, search, regime, cfg, key)
        return model_set_output(
            context,
            model_store,
            fingerprint,
            lambda: tr.fit_expert_set(feature_windows, routing, search, regime, cfg.seeds),
        )

    return [llmoe_search, expert_models]


def build_single_expert_asset(partitions: Partitions, variant: RouterVariant):
    @dg.asset(
        name=tr.SINGLE_EXPERT,
        partitions_def=partitions.tickers,
        group_name="models",
        kinds={"pytorch"},
        owners=OWNERS,
        description=f"Router ablation `single`: {variant.description} (the experts' grid on "
        "the validation tail, then one network per seed).",
    )
    def llmoe_single(
        context: dg.AssetExecutionContext,
        protocol: ProtocolResource,
        model_store: ModelStoreResource,
        feature_windows: pd.DataFrame,
    ) -> dg.Output:
        cfg = protocol.config
        fingerprint = tr.single_expert_fingerprint(feature_windows, cfg, tr.SINGLE_EXPERT)
        return model_set_output(
            context, model_store, fingerprint, lambda: tr.fit_single_expert_set(feature_windows, cfg)
        )

    return llmoe_single


def build_model_assets(partitions: Partitions, variants: list[RouterVariant]) -> list:
    """Every variant's LLMoE assets (or the single expert) and the baselines."""
    out: list = []
    for v in variants:
        out += build_llmoe_assets(partitions, v) if v.experts else [build_single_expert_asset(partitions, v)]
    return out + build_baseline_assets(partitions)


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
        for spec in registry.BASELINES:
            key = dg.AssetKey(["baseline_models", spec.name])
            if key in context.selected_asset_keys:
                fingerprint = tr.baseline_fingerprint(spec, feature_windows, cfg, key.to_user_string())
                yield model_set_output(
                    context,
                    model_store,
                    fingerprint,
                    functools.partial(tr.fit_baseline_set, spec, feature_windows, cfg),
                    output_name=spec.name,
                )

    return [baseline_models]
