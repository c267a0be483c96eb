"""Routing scores without a language model of their own: the rules (`momentum`, `random`, `oracle`;
router/variants.py) and the probes (`llm_probe` on the hidden states stored with `llm`'s labels, `features_probe` on
the price features; router/probe.py), one table per ticker: ticker, date, split, p_optimistic (higher = Optimistic).
"""

import time

import dagster as dg
import pandas as pd

from llmoe_pipeline.catalog import RouterVariant
from llmoe_pipeline.defs.checks import OWNERS
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.resources import ProtocolResource
from llmoe_pipeline.router.probe import PROBE_CS, feature_inputs, fit_probe, hidden_inputs
from llmoe_pipeline.router.variants import RULE_SCORES, random_scores


def rule_router_asset(partitions: Partitions, variant: RouterVariant):
    score = RULE_SCORES[variant.name]

    @dg.asset(
        name=variant.routing_asset,
        partitions_def=partitions.tickers,
        group_name="router",
        kinds={"pandas", "parquet"},
        owners=OWNERS,
        code_version="1",
        description=f"Router variant `{variant.name}`: {variant.description}. Its routing score per window "
        "(column p_optimistic: higher = Optimistic); no language model."
        + (" USES THE FUTURE: an upper bound, never a result." if variant.uses_future else ""),
    )
    def scores(protocol: ProtocolResource, feature_windows: pd.DataFrame) -> dg.Output:
        windows = feature_windows[feature_windows["split"] != "none"].reset_index(drop=True)
        table = (
            random_scores(windows, protocol.config.router.random_seed) if variant.name == "random" else score(windows)
        )
        return dg.Output(
            table,
            metadata={
                "rows": len(table),
                "uses_future": variant.uses_future,
                "score_mean": float(table["p_optimistic"].mean()),
            },
        )

    return scores


def probe_router_asset(partitions: Partitions, variant: RouterVariant):
    """A probe's scores: a pure function of the windows (and, for llm_probe, of `llm`'s labels with their hidden
    states), fitted on the training windows only."""
    ins = {"feature_windows": dg.AssetIn()}
    if variant.reads_hidden_states:
        ins["labels"] = dg.AssetIn("router_labels")

    @dg.asset(
        name=variant.routing_asset,
        partitions_def=partitions.tickers,
        group_name="router",
        kinds={"scikitlearn", "parquet"},
        owners=OWNERS,
        code_version="1",
        ins=ins,
        description=f"Router variant `{variant.name}`: {variant.description}. P(up) of an L2 logistic regression "
        f"(standardized inputs; C among {len(PROBE_CS)} values from {PROBE_CS[0]:g} to {PROBE_CS[-1]:g} by "
        "time-ordered cross-validation inside the training period, then refit on every training window) per window "
        "(column p_optimistic); validation and test targets are never read.",
    )
    def scores(protocol: ProtocolResource, feature_windows: pd.DataFrame, **labels: pd.DataFrame) -> dg.Output:
        started = time.time()
        windows = feature_windows[feature_windows["split"] != "none"].reset_index(drop=True)
        if variant.reads_hidden_states:
            x = hidden_inputs(windows, labels["labels"])
        else:
            x = feature_inputs(windows, protocol.config.window)
        fit = fit_probe(windows, x)
        return dg.Output(
            fit.scores,
            metadata={
                "rows": len(fit.scores),
                "C": fit.c,
                "cv_auc": round(fit.cv_auc, 4),
                "train_windows": fit.train_windows,
                "inputs": fit.inputs,
                "seconds": round(time.time() - started, 1),
                "score_mean": float(fit.scores["p_optimistic"].mean()),
            },
        )

    return scores
