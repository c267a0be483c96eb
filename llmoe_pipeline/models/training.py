"""Training a model set (search on validation, then every seed), the same way for the Dagster assets and for the
walk-forward, with the fingerprint that lets the model store skip what was trained before."""

from __future__ import annotations

from typing import Any

import pandas as pd

from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.core.parallel import map_fits
from llmoe_pipeline.models.common import fit_network_model, input_columns, split_mask
from llmoe_pipeline.models.experts import (
    LLMoESearch,
    expert_name,
    expert_param_grid,
    router_labels_for,
    search_router_threshold,
    train_expert,
)
from llmoe_pipeline.models.model_set import ModelSet
from llmoe_pipeline.models.nets import FeedForwardNet
from llmoe_pipeline.models.registry import ModelSpec
from llmoe_pipeline.models.search import run_search
from llmoe_pipeline.models.store import training_fingerprint
from llmoe_pipeline.router.regimes import apply_threshold

SINGLE_EXPERT = "llmoe_single"


def training_rows(features: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    """What training reads: the train/validation rows' dates, split, target and inputs (and router label)."""
    used = features[features["split"].isin(["train", "validation"])]
    frame = used[["date", "split", "target", *input_columns(features)]]
    if labels is not None:
        frame = frame.assign(label=router_labels_for(used, labels).to_numpy())
    return frame


def baseline_fingerprint(spec: ModelSpec, features: pd.DataFrame, cfg: PipelineConfig, key: str) -> str:
    return training_fingerprint(
        training_rows(features),
        asset=key,
        candidates=spec.candidates(cfg.baselines),
        seeds=cfg.seeds,
        search_seed=cfg.baselines.search_seed,
    )


def fit_baseline_set(spec: ModelSpec, features: pd.DataFrame, cfg: PipelineConfig) -> ModelSet:
    """Random search on validation, then one fit per seed; the search's winning fit is the search seed's model."""
    search = spec.search(features, cfg.baselines)
    models = seed_models(
        lambda seed: spec.fit(features, search.best_params, seed),
        cfg.seeds,
        cfg.baselines.search_seed,
        search.best_model,
    )
    return ModelSet(spec.name, search.best_params, models, search.table)


def seed_models(fit_seed, seeds: list[int], search_seed: int, best_model) -> dict[int, Any]:
    """One model per seed; the search seed's is the search's winning fit `best_model` (no refit), the others fit in
    parallel."""
    others = [seed for seed in seeds if seed != search_seed]
    fitted = dict(zip(others, map_fits(fit_seed, others)))
    return {seed: best_model if seed == search_seed else fitted[seed] for seed in seeds}


def scored_rows(features: pd.DataFrame, routing: pd.DataFrame) -> pd.DataFrame:
    """Training rows with each window's routing score: what the LLMoE grid reads."""
    rows = training_rows(features)
    keys = pd.MultiIndex.from_frame(features.loc[rows.index, ["ticker", "date"]])
    return rows.assign(p_optimistic=routing.set_index(["ticker", "date"])["p_optimistic"].reindex(keys).to_numpy())


def search_settings(cfg: PipelineConfig, quantiles: list[float] | None, fixed: float | None) -> dict[str, Any]:
    return {
        "grid": expert_param_grid(cfg.experts),
        "quantiles": quantiles or cfg.experts.threshold_quantile_grid,
        "fixed_threshold": fixed,
        "search_seed": cfg.experts.search_seed,
        "configurations": "test positions",  # searches stored before they kept their configurations are redone
    }


def fit_llmoe_search(
    features: pd.DataFrame,
    routing: pd.DataFrame,
    cfg: PipelineConfig,
    quantiles: list[float] | None = None,
    fixed: float | None = None,
) -> LLMoESearch:
    return search_router_threshold(
        features, routing, cfg.experts, cfg.experts.search_seed, quantiles=quantiles, fixed_threshold=fixed
    )


def expert_fingerprint(
    features: pd.DataFrame, routing: pd.DataFrame, search: LLMoESearch, regime: str, cfg: PipelineConfig, key: str
) -> str:
    rows = training_rows(features, apply_threshold(routing, search.threshold))
    return training_fingerprint(
        rows[rows["label"] == regime],
        asset=key,
        candidates=[search.expert_params(regime)],
        seeds=cfg.seeds,
        search_seed=cfg.experts.search_seed,
    )


def fit_expert_set(
    features: pd.DataFrame, routing: pd.DataFrame, search: LLMoESearch, regime: str, seeds: list[int]
) -> ModelSet:
    """The `regime` expert with the grid's hyperparameters, once per seed, on the days routed to it."""
    routed, params = apply_threshold(routing, search.threshold), search.expert_params(regime)
    models = dict(zip(seeds, map_fits(lambda seed: train_expert(features, routed, regime, params, seed), seeds)))
    return ModelSet(expert_name(regime), params, models, search.table)


def single_expert_candidates(cfg: PipelineConfig) -> list[dict]:
    return expert_param_grid(cfg.experts)


def fit_single_expert_set(features: pd.DataFrame, cfg: PipelineConfig) -> ModelSet:
    """Routing off (the `single` ablation): one network of the experts' architecture on all days, with the
    experts' grid and search seed."""

    def fit(params: dict, seed: int):
        return fit_network_model(
            SINGLE_EXPERT,
            lambda n: FeedForwardNet(n, params["hidden_sizes"], params["dropout"]),
            features,
            split_mask(features, "train"),
            split_mask(features, "validation"),
            params,
            seed,
        )

    seed0 = cfg.experts.search_seed
    search = run_search(single_expert_candidates(cfg), lambda params: fit(params, seed0), features)
    models = seed_models(lambda seed: fit(search.best_params, seed), cfg.seeds, seed0, search.best_model)
    return ModelSet(SINGLE_EXPERT, search.best_params, models, search.table)


def single_expert_fingerprint(features: pd.DataFrame, cfg: PipelineConfig, key: str) -> str:
    return training_fingerprint(
        training_rows(features),
        asset=key,
        candidates=single_expert_candidates(cfg),
        seeds=cfg.seeds,
        search_seed=cfg.experts.search_seed,
    )
