"""The 55-input feature windows, target and split for one ticker (llmoe_pipeline/features/windows.py)."""

import dagster as dg
import numpy as np
import pandas as pd

from llmoe_pipeline.defs.checks import OWNERS, checks_then_output
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.resources import ProtocolResource
from llmoe_pipeline.features.windows import LIVE, build_features, dropped_row_counts, live_windows, window_columns
from llmoe_pipeline.trading.retraining import effective_split

_CHECKS = [
    dg.AssetCheckSpec(
        "finite_features",
        asset="feature_windows",
        blocking=True,
        description="no NaN or infinite value in the 55 inputs",
    ),
    dg.AssetCheckSpec(
        "split_order",
        asset="feature_windows",
        blocking=True,
        description="train < validation < test < live in time, and train, validation and test have rows",
    ),
]


def split_order_problems(features: pd.DataFrame, require_test: bool = True) -> list[str]:
    """What is wrong with the split: a missing split, or two splits out of time order. Under a retraining policy
    the test split is empty right after a retraining (the first night of a period): then only train and
    validation must have rows."""
    problems = []
    spans = {s: (g["date"].min(), g["date"].max()) for s, g in features.groupby("split")}
    for name in ("train", "validation", "test") if require_test else ("train", "validation"):
        if name not in spans:
            problems.append(f"no {name} rows")
    for early, late in (("train", "validation"), ("validation", "test"), ("test", LIVE)):
        if early in spans and late in spans and spans[early][1] >= spans[late][0]:
            problems.append(f"{early} ends {spans[early][1].date()} after {late} starts {spans[late][0].date()}")
    return problems


def build_feature_assets(partitions: Partitions) -> list:
    @dg.asset(
        partitions_def=partitions.tickers,
        group_name="features",
        kinds={"pandas", "parquet"},
        owners=OWNERS,
        code_version="1",
        check_specs=_CHECKS,
    )
    def feature_windows(context: dg.AssetExecutionContext, protocol: ProtocolResource, raw_prices: pd.DataFrame):
        """11 features/day × 5-day window = 55 inputs, next-day target, train/validation/test split, and the live
        window (the last day: its target is not known yet, it is what the next session trades on). The split is the
        protocol's, or the retraining policy's for the newest day in the data."""
        cfg = protocol.config
        split = effective_split(cfg, raw_prices["date"].max().date())
        features = pd.concat(
            [build_features(raw_prices, split, window=cfg.window), live_windows(raw_prices, window=cfg.window)],
            ignore_index=True,
        )
        counts = features.groupby("split").size().to_dict()
        values = features[window_columns(cfg.window)].to_numpy()
        n_bad = int((~np.isfinite(values)).any(axis=1).sum())
        problems = split_order_problems(features, require_test=cfg.retrain.every == "never")
        yield from checks_then_output(
            features,
            [
                dg.AssetCheckResult(check_name="finite_features", passed=n_bad == 0, metadata={"bad_rows": n_bad}),
                dg.AssetCheckResult(
                    check_name="split_order", passed=not problems, metadata={"problems": "; ".join(problems) or "none"}
                ),
            ],
            metadata={
                "rows": len(features),
                "dropped_incomplete_rows": dropped_row_counts(raw_prices, features)[context.partition_key],
                "rows_per_split": dg.MetadataValue.json({k: int(v) for k, v in counts.items()}),
                "first_date": str(features["date"].min().date()),
                "last_date": str(features["date"].max().date()),
                "up_share_train": float(features.loc[features["split"] == "train", "target"].mean()),
                "trained_through": str(split.train_end),
                "live_as_of": str(features.loc[features["split"] == LIVE, "date"].max().date())
                if (features["split"] == LIVE).any()
                else "none",
            },
        )

    return [feature_windows]
