"""Expanding-window walk-forward: for each test year Y, every model (baselines, every LLMoE variant with its grid
and router threshold, the single expert) is refitted on all days before Y, the last `validation_fraction` of them
as validation, and predicts Y. The out-of-sample years concatenate into one daily return series per model and seed.

Routing scores come from the routing tables (a window's score does not depend on the split: the LLM's labels come
from its content-addressed cache), so a fold costs training only; the probes (`llm_probe`, `features_probe`), fitted
on training windows, are refitted on each fold's (`fold_probe_scores`: the hidden states from `llm`'s labels). No
model of year Y sees a row dated in Y or later.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import multiprocessing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from llmoe_pipeline.catalog import TRADING_DAYS_PER_YEAR, RouterVariant, soft_name
from llmoe_pipeline.config.protocol import PipelineConfig, SplitConfig
from llmoe_pipeline.core.parallel import one_fit_at_a_time
from llmoe_pipeline.features.windows import LIVE, assign_split
from llmoe_pipeline.models import LLMoESearch, ModelSet, registry
from llmoe_pipeline.models import training as tr
from llmoe_pipeline.models.store import training_fingerprint
from llmoe_pipeline.reporting.tables import summarize
from llmoe_pipeline.router.probe import feature_inputs, fit_probe, hidden_inputs
from llmoe_pipeline.router.regimes import REGIMES, apply_threshold
from llmoe_pipeline.trading.evaluation import RoutedExperts, evaluate, predict_all, soft_routed
from llmoe_pipeline.trading.metrics import compute_metrics, sharpe_ratio

# (fingerprint, kind, train) -> (value, reused): the model store, or a plain call in tests.
Store = Callable[[str, type, Callable], tuple]


def no_store(fingerprint: str, kind: type, train: Callable) -> tuple:
    return train(), False


@dataclass(frozen=True)
class Fold:
    year: int
    split: SplitConfig  # train = all days before the year (validation = its tail), test = the year


def folds(cfg: PipelineConfig, first_year: int, last_year: int, last_date: dt.date) -> list[Fold]:
    """One fold per test year, expanding from the protocol's train_start; the last year ends at the data's end
    (or the protocol's test_end, whichever comes first)."""
    end = min(last_date, cfg.split.test_end) if cfg.split.test_end else last_date
    out = []
    for year in range(first_year, last_year + 1):
        start = dt.date(year, 1, 1)
        if start > end:
            break
        split = SplitConfig(
            train_start=cfg.split.train_start,
            train_end=dt.date(year - 1, 12, 31),
            test_start=start,
            test_end=min(dt.date(year, 12, 31), end),
            validation_fraction=cfg.split.validation_fraction,
        )
        out.append(Fold(year, split))
    return out


def fold_features(features: pd.DataFrame, fold: Fold) -> pd.DataFrame:
    """The features with the fold's split; a live window (no target yet) stays live: never trained or scored."""
    split = assign_split(features["date"], fold.split).to_numpy()
    return features.assign(split=np.where(features["split"] == LIVE, LIVE, split))


def with_split(routing: pd.DataFrame, features: pd.DataFrame) -> pd.DataFrame:
    """The routing table with the fold's split of each window (windows outside the features are dropped)."""
    splits = features.set_index(["ticker", "date"])["split"]
    keys = pd.MultiIndex.from_frame(routing[["ticker", "date"]])
    out = routing.assign(split=splits.reindex(keys).to_numpy())
    return out[out["split"].notna()].reset_index(drop=True)


def fold_probe_scores(
    v: RouterVariant, features: pd.DataFrame, routing: Mapping[str, pd.DataFrame], cfg: PipelineConfig
) -> pd.DataFrame:
    """A probe's scores refitted on the training windows of the fold whose split `features` carry."""
    windows = features[features["split"] != "none"].reset_index(drop=True)
    inputs = hidden_inputs(windows, routing["llm"]) if v.reads_hidden_states else feature_inputs(windows, cfg.window)
    return fit_probe(windows, inputs).scores


def fold_models(
    features: pd.DataFrame,
    routing: Mapping[str, pd.DataFrame],
    variants: list[RouterVariant],
    cfg: PipelineConfig,
    store: Store,
    tag: str,
) -> tuple[dict[str, RoutedExperts], dict[str, Mapping]]:
    """Every model of one fold: (LLMoE display name → routed experts, other display name → seed → model)."""

    def cached(key: str, rows: pd.DataFrame, kind: type, train: Callable, **settings) -> Any:
        return store(training_fingerprint(rows, asset=f"{tag}/{key}", **settings), kind, train)[0]

    routed: dict[str, RoutedExperts] = {}
    plain: dict[str, Mapping] = {}
    searches: dict[str, LLMoESearch] = {}
    for v in sorted(variants, key=lambda v: v.threshold == "llm_share"):  # the llm's search first
        if not v.experts:
            plain[v.display_name] = cached(
                v.name,
                tr.training_rows(features),
                ModelSet,
                lambda: tr.fit_single_expert_set(features, cfg),
                candidates=tr.single_expert_candidates(cfg),
                seeds=cfg.seeds,
            ).models
            continue
        quantiles = [searches["llm"].threshold_quantile] if v.threshold == "llm_share" else None
        table = fold_probe_scores(v, features, routing, cfg) if v.probe else with_split(routing[v.name], features)
        searches[v.name], routed[v.display_name] = _llmoe_fold(v, features, table, cfg, cached, quantiles)
        if v.name in cfg.router.soft_routing:
            routed[soft_name(v.display_name)] = soft_routed(routed[v.display_name], searches[v.name].threshold_quantile)
    for spec in registry.BASELINES:
        plain[spec.display_name] = cached(
            spec.name,
            tr.training_rows(features),
            ModelSet,
            lambda spec=spec: tr.fit_baseline_set(spec, features, cfg),
            candidates=spec.candidates(cfg.baselines),
            seeds=cfg.seeds,
        ).models
    return routed, plain


def _llmoe_fold(
    v: RouterVariant,
    features: pd.DataFrame,
    table: pd.DataFrame,
    cfg: PipelineConfig,
    cached: Callable,
    quantiles: list[float] | None,
) -> tuple[LLMoESearch, RoutedExperts]:
    """One variant's LLMoE grid and experts in one fold."""
    fixed = v.fixed_threshold if v.threshold == "fixed" else None
    search = cached(
        f"search/{v.name}",
        tr.scored_rows(features, table),
        LLMoESearch,
        lambda: tr.fit_llmoe_search(features, table, cfg, quantiles, fixed),
        **tr.search_settings(cfg, quantiles, fixed),
    )
    labels = apply_threshold(table, search.threshold)
    rows = tr.training_rows(features, labels)
    experts = {
        regime: cached(
            f"experts/{v.name}/{regime}",
            rows[rows["label"] == regime],
            ModelSet,
            lambda regime=regime: tr.fit_expert_set(features, table, search, regime, cfg.seeds),
            candidates=[search.expert_params(regime)],
            seeds=cfg.seeds,
        ).models
        for regime in REGIMES
    }
    return search, RoutedExperts(experts, labels)


def run_fold(
    features: pd.DataFrame,
    routing: Mapping[str, pd.DataFrame],
    variants: list[RouterVariant],
    cfg: PipelineConfig,
    fold: Fold,
    store: Store,
) -> tuple[pd.DataFrame, str]:
    """One fold: its models trained (or reused), its test year predicted and backtested at every cost."""
    ticker = str(features["ticker"].iloc[0])
    feats = fold_features(features, fold)
    routed, plain = fold_models(feats, routing, variants, cfg, store, f"walk_forward/{ticker}/{fold.year}")
    predictions = predict_all(feats, routed, plain)
    predictions = predictions[predictions["split"] == "test"]
    costs = [cfg.backtest.cost_bps, *[c for c in cfg.backtest.extra_cost_bps if c != cfg.backtest.cost_bps]]
    _, daily = evaluate(predictions, costs, cfg.backtest.periods_per_year, cfg.backtest.risk_free)
    return daily.assign(year=fold.year), (
        f"walk-forward {fold.year}: {len(plain) + len(routed)} models trained "
        f"through {fold.split.train_end}, {predictions['date'].nunique()} test days"
    )


def walk_forward(
    features: pd.DataFrame,
    routing: Mapping[str, pd.DataFrame],
    variants: list[RouterVariant],
    cfg: PipelineConfig,
    first_year: int,
    last_year: int,
    store: Store = no_store,
    progress: Callable[[str], None] = lambda message: None,
    workers: int = 1,
) -> pd.DataFrame:
    """The out-of-sample daily returns of every model × seed over the test years, at every cost: columns year,
    ticker, model, seed, split ("test"), cost_bps, date, position, strategy_return, equity (within its year).

    `workers` > 1 trains folds in parallel processes (training is single-threaded, so a fold per core; each fold
    fits its models one after another); the results do not depend on it (every fit is seeded and deterministic)."""
    fold_list = folds(cfg, first_year, last_year, pd.Timestamp(features["date"].max()).date())
    args = [(features, routing, variants, cfg, fold, store) for fold in fold_list]
    if workers > 1 and len(fold_list) > 1:
        context = multiprocessing.get_context("spawn")  # a clean interpreter: no inherited threads or locks
        with concurrent.futures.ProcessPoolExecutor(
            min(workers, len(fold_list)), mp_context=context, initializer=one_fit_at_a_time
        ) as pool:
            futures = [pool.submit(run_fold, *a) for a in args]
            results = []
            for future in futures:
                results.append(future.result())
                progress(results[-1][1])
    else:
        results = []
        for a in args:
            results.append(run_fold(*a))
            progress(results[-1][1])
    return pd.concat([daily for daily, _ in results], ignore_index=True)


def yearly_sharpe(daily: pd.DataFrame, cost_bps: float = 0.0, periods: int = TRADING_DAYS_PER_YEAR) -> pd.DataFrame:
    """Mean over seeds of each model's Sharpe ratio in each out-of-sample year (rows: models, columns: years)."""
    sel = daily[daily["cost_bps"] == cost_bps]
    per_seed = sel.groupby(["model", "seed", "year"])["strategy_return"].apply(
        lambda r: sharpe_ratio(r.to_numpy(), periods=periods)
    )
    return per_seed.groupby(["model", "year"]).mean().unstack("year")


def concatenated_metrics(
    daily: pd.DataFrame, periods: int = TRADING_DAYS_PER_YEAR, risk_free: float = 0.0
) -> pd.DataFrame:
    """The seven metrics of each model × seed × cost over all out-of-sample years joined into one series (the
    shape `report.summarize` reads, with split "walk_forward")."""
    rows = []
    for (ticker, model, seed, cost), g in daily.groupby(["ticker", "model", "seed", "cost_bps"], sort=False):
        returns = g.sort_values("date")["strategy_return"]
        rows.append(
            {
                "ticker": ticker,
                "model": model,
                "seed": int(seed),
                "split": "walk_forward",
                "cost_bps": float(cost),
                **compute_metrics(returns, periods=periods, risk_free=risk_free),
            }
        )
    return pd.DataFrame(rows)


def walk_forward_summary(
    daily: pd.DataFrame, cost_bps: float, periods: int = TRADING_DAYS_PER_YEAR, risk_free: float = 0.0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What the verdict and the asset's metadata show of a walk-forward: the metrics over all its years joined
    (`summarize` rows of split "walk_forward", every cost) and the models × years table of mean Sharpe at `cost_bps`."""
    joined = summarize(concatenated_metrics(daily, periods, risk_free))
    return joined, yearly_sharpe(daily, cost_bps, periods)
