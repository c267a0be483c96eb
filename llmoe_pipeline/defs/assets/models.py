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
from llmoe_pipeline.models import (REGIMES, baseline_candidates, expert_param_grid, fit_baseline, input_columns,
                                   router_labels_for, run_search, train_expert)
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
                      seeds: list[int], search_seed: int, fit: Callable[[dict, int], object]) -> dg.Output:
    """Search `candidates` on validation (fitted with `search_seed`), then fit every seed with the winner.

    Reused from the model store when the fingerprint (training rows, candidates, seeds, code) is known.
    """
    fingerprint = training_fingerprint(rows, asset=key.to_user_string(), candidates=candidates, seeds=seeds,
                                       search_seed=search_seed)

    def train() -> dict:
        started = time.time()
        result = run_search(candidates, lambda params: fit(params, search_seed), features)
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
    rows = _training_rows(feature_windows, router_labels)
    for regime in REGIMES:
        key = dg.AssetKey(["expert_models", regime.lower()])
        if key not in context.selected_asset_keys:
            continue
        yield _model_set_output(
            context, key, feature_windows, rows[rows["label"] == regime], expert_param_grid(cfg.experts), cfg.seeds,
            cfg.baselines.search_seed,
            lambda params, seed, regime=regime: train_expert(feature_windows, router_labels, regime, params, seed))


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
