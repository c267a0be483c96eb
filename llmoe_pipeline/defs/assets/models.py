"""expert_models (one per router regime, llmoe_pipeline/models/experts.py) and baseline_models
(llmoe_pipeline/models/baselines.py): hyperparameter search on validation, then one model per seed."""

import time
from typing import Callable

import dagster as dg
import pandas as pd

from llmoe_pipeline.defs.assets.data import OWNERS
from llmoe_pipeline.defs.progress import progress_log
from llmoe_pipeline.defs.partitions import ticker_partitions
from llmoe_pipeline.defs.resources import ProtocolResource
from llmoe_pipeline.models import (REGIMES, SearchResult, baseline_candidates, expert_param_grid, fit_baseline,
                                   input_columns, router_labels_for, run_search, search_router_threshold, train_expert)
from llmoe_pipeline.router.labels import apply_threshold
from llmoe_pipeline.paths import llmoe_home
from llmoe_pipeline.training_cache import cached_training, training_fingerprint

SEARCHED_BASELINES = ("lightgbm", "mlp", "lstm", "moe")


def _training_rows(features: pd.DataFrame, labels: pd.DataFrame | None = None) -> pd.DataFrame:
    used = features[features["split"].isin(["train", "validation"])]
    cols = ["date", "split", "target", *input_columns(features)]
    frame = used[cols]
    if labels is not None:
        frame = frame.assign(label=router_labels_for(used, labels).to_numpy())
    return frame


def _model_set_output(context, key: dg.AssetKey, features: pd.DataFrame, rows: pd.DataFrame, candidates: list[dict],
                      seeds: list[int], search_seed: int, fit: Callable[[dict, int], object],
                      chosen: SearchResult | None = None) -> dg.Output:
    """Search `candidates` on validation (fitted with `search_seed`), then fit every seed with the winner.

    Reused from the model store when the fingerprint (training rows, candidates, seeds, code) is known.
    `chosen`: the search already happened upstream (`candidates` is its winner): fit the seeds with
    chosen.best_params and show chosen.table.
    """
    fingerprint = training_fingerprint(rows, asset=key.to_user_string(), candidates=candidates, seeds=seeds,
                                       search_seed=search_seed)

    def train() -> dict:
        started = time.time()
        result = chosen or run_search(candidates, lambda params: fit(params, search_seed), features)
        models = {seed: fit(result.best_params, seed) for seed in seeds}
        return {"params": result.best_params, "search_table": result.table, "models": models,
                "train_seconds": round(time.time() - started, 1)}

    value, reused = cached_training(llmoe_home() / "model_cache", fingerprint, train)
    progress_log(context, f"{key.to_user_string()}: {'reused' if reused else 'trained'} {len(value['models'])} seeds "
                          f"({value['train_seconds']} s)")
    return dg.Output(value, output_name=key.to_python_identifier(),
                     metadata=_output_metadata(value, reused, fingerprint))


def _output_metadata(value: dict, reused: bool, fingerprint: str) -> dict:
    first = next(iter(value["models"].values()))
    return {
        "seeds": len(value["models"]),
        "params": dg.MetadataValue.json(value["params"]),
        "search": dg.MetadataValue.md(value["search_table"].to_markdown(index=False)),
        "train_rows": len(first.train_rows),
        "validation_rows": len(first.validation_rows),
        "reused_from_cache": reused,
        "train_seconds": value["train_seconds"],
        "fingerprint": fingerprint,
    }


@dg.multi_asset(
    outs={f"expert_models__{r.lower()}": dg.AssetOut(
        key=["expert_models", r.lower()], group_name="models", kinds={"pytorch"}, owners=OWNERS, is_required=False,
        description=f"LLMoE expert for {r} windows: a 55→h1→h2→h3→1 ReLU/dropout/sigmoid network trained only "
                    f"on the training days the router labelled {r}; one per seed.") for r in REGIMES},
    ins={"feature_windows": dg.AssetIn(), "router_labels": dg.AssetIn()},
    partitions_def=ticker_partitions,
    can_subset=True,
)
def expert_models(context: dg.AssetExecutionContext, protocol: ProtocolResource,
                  feature_windows: pd.DataFrame, router_labels: pd.DataFrame):
    cfg = protocol.load()
    # The LLMoE grid: router threshold quantile × each regime's network (models/experts.py), on validation.
    search_rows = _training_rows(feature_windows)
    keys = pd.MultiIndex.from_frame(feature_windows.loc[search_rows.index, ["ticker", "date"]])
    search_rows = search_rows.assign(  # the search's input: training/validation rows and their p_optimistic
        p_optimistic=router_labels.set_index(["ticker", "date"])["p_optimistic"].reindex(keys).to_numpy())
    fingerprint = training_fingerprint(search_rows, asset="expert_models/threshold_search",
                                       grid=expert_param_grid(cfg.experts),
                                       quantiles=cfg.experts.threshold_quantile_grid, search_seed=cfg.baselines.search_seed)
    search, reused = cached_training(llmoe_home() / "model_cache", fingerprint, lambda: search_router_threshold(
        feature_windows, router_labels, cfg.experts, cfg.baselines.search_seed))
    choice = search.best_params
    progress_log(context, f"expert_models: router threshold quantile {choice['threshold_quantile']} "
                          f"(p_optimistic > {choice['threshold']:.4f}) chosen on validation{' (reused)' if reused else ''}")
    routed = apply_threshold(router_labels, choice["threshold"])
    rows = _training_rows(feature_windows, routed)
    for regime in REGIMES:
        key = dg.AssetKey(["expert_models", regime.lower()])
        if key not in context.selected_asset_keys:
            continue
        params = {**choice[regime], "threshold_quantile": choice["threshold_quantile"], "threshold": choice["threshold"]}
        yield _model_set_output(
            context, key, feature_windows, rows[rows["label"] == regime], [params], cfg.seeds, cfg.baselines.search_seed,
            lambda params, seed, regime=regime: train_expert(feature_windows, routed, regime, params, seed),
            chosen=SearchResult(params, search.table))


@dg.multi_asset(
    outs={f"baseline_models__{name}": dg.AssetOut(
        key=["baseline_models", name], group_name="models", owners=OWNERS, is_required=False,
        kinds={"lightgbm" if name == "lightgbm" else "pytorch"},
        description=f"Baseline {name}: random search on the validation tail, then one model per seed.")
        for name in SEARCHED_BASELINES},
    ins={"feature_windows": dg.AssetIn()},
    partitions_def=ticker_partitions,
    can_subset=True,
)
def baseline_models(context: dg.AssetExecutionContext, protocol: ProtocolResource, feature_windows: pd.DataFrame):
    cfg = protocol.load()
    rows = _training_rows(feature_windows)
    for name in SEARCHED_BASELINES:
        key = dg.AssetKey(["baseline_models", name])
        if key not in context.selected_asset_keys:
            continue
        yield _model_set_output(
            context, key, feature_windows, rows, baseline_candidates(name, cfg.baselines), cfg.seeds,
            cfg.baselines.search_seed, lambda params, seed, name=name: fit_baseline(name, feature_windows, params, seed))
