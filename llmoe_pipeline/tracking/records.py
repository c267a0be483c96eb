"""What each MLflow run of a ticker's evaluation holds (the records), apart from how runs are written (the tracker).

One parent per model (its display name), one child per seed: the child gets the seed's hyperparameters, its
metrics on validation and test at every cost, its loss curves, its own predictions and its trained models;
the parent gets the per-seed table, the mean/std of every metric and the plots.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmoe_pipeline.core.files import write_parquet_atomic
from llmoe_pipeline.core.parallel import map_fits
from llmoe_pipeline.models.model_set import ModelSet
from llmoe_pipeline.tracking.models import ModelToLog
from llmoe_pipeline.tracking.tracker import ExperimentTracker
from llmoe_pipeline.trading.metrics import METRIC_NAMES

PREDICTIONS_FILE = "predictions.parquet"


@dataclass(frozen=True)
class SeedRecord:
    seed: int
    metrics: dict[str, float]
    curves: dict[str, list[float]]
    predictions: pd.DataFrame
    models: list[ModelToLog] = field(default_factory=list)


@dataclass(frozen=True)
class ModelRecord:
    model: str  # display name
    params: dict[str, Any]  # "<part>.<param>": value, for every part (e.g. both experts of LLMoE)
    seeds: list[SeedRecord]
    tags: dict[str, str] = field(default_factory=dict)  # e.g. the router variant and threshold


def seed_metrics(metrics: pd.DataFrame, model: str, seed: int) -> dict[str, float]:
    """`test_sharpe_ratio` at cost 0, `test_sharpe_ratio_10bps` at 10 bps, ... for one model and seed."""
    sel = metrics[(metrics["model"] == model) & (metrics["seed"] == seed)]
    out: dict[str, float] = {}
    for _, row in sel.iterrows():
        suffix = "" if row["cost_bps"] == 0 else f"_{row['cost_bps']:g}bps"
        out |= {f"{row['split']}_{m}{suffix}": float(row[m]) for m in METRIC_NAMES}
    return out


def model_records(
    metrics: pd.DataFrame,
    predictions: pd.DataFrame,
    model_sets: Mapping[str, Mapping[str, ModelSet]],
    input_example: np.ndarray,
    tags: Mapping[str, Mapping[str, str]] | None = None,
) -> list[ModelRecord]:
    """One record per model in `metrics`. model_sets: display name → {part name: model set} (a model without
    parts, e.g. buy-and-hold, logs metrics and predictions only)."""
    records = []
    for model in metrics["model"].unique():
        parts = model_sets.get(model, {})
        params = {f"{name}.{k}": v for name, part in parts.items() for k, v in part.params.items()}
        seeds = []
        for seed in sorted(int(s) for s in metrics.loc[metrics["model"] == model, "seed"].unique()):
            fitted = {name: part.models[seed] for name, part in parts.items()}
            curves = {
                f"{name}.{col}": fm.history[col].tolist()
                for name, fm in fitted.items()
                for col in ("train_loss", "val_loss")
                if col in fm.history
            }
            own = predictions[(predictions["model"] == model) & (predictions["seed"] == seed)].reset_index(drop=True)
            models = [ModelToLog(fm.estimator, fm.flavor, input_example, name=name) for name, fm in fitted.items()]
            seeds.append(SeedRecord(seed, seed_metrics(metrics, model, seed), curves, own, models))
        records.append(ModelRecord(str(model), params, seeds, dict((tags or {}).get(model, {}))))
    return records


def _log_seed(tracker: ExperimentTracker, parent: str, params: dict, tags: dict, folder: Path, seed: SeedRecord) -> str:
    path = write_parquet_atomic(seed.predictions, folder / f"seed-{seed.seed}" / PREDICTIONS_FILE)
    return tracker.log_seed_run(
        parent,
        seed.seed,
        params=params,
        metrics=seed.metrics,
        curves=seed.curves,
        tags=tags,
        artifacts={"predictions": path},
        models=seed.models,
    )


def log_records(
    tracker: ExperimentTracker,
    records: list[ModelRecord],
    ticker: str,
    config_hash: str,
    data_hash: str,
    tags: Mapping[str, str],
    plots_dir: str | Path | None = None,
) -> dict[str, str]:
    """Write every record as a parent run with its seed runs; returns model → parent run URL.

    A failure marks the parent (and the seed run in progress) FAILED, never leaves it RUNNING.
    """
    urls = {}
    for record in records:
        run_tags = {**tags, **record.tags}
        params = {"ticker": ticker, "model": record.model, **record.params}
        parent = tracker.parent_run(ticker, record.model, config_hash, data_hash, params=params, tags=run_tags)
        with tracker.failed_on_error(parent), tempfile.TemporaryDirectory(prefix="llmoe-seed-") as tmp:
            # Seeds are independent runs, and logging a model is mostly single-threaded work (torch.export):
            # spread over the fit workers (in a worker, `tracker` reconnects to the same experiment: its
            # __reduce__). A sqlite store takes writes from several processes (store.py).
            map_fits(functools.partial(_log_seed, tracker, parent, params, run_tags, Path(tmp)), record.seeds)
            table = pd.DataFrame([{"seed": seed.seed, **seed.metrics} for seed in record.seeds])
            tracker.finish_parent(parent, table, artifacts={"plots": plots_dir} if plots_dir else None)
        urls[record.model] = tracker.run_url(parent)
    return urls
