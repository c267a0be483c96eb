"""The 55-input feature windows, target and split for one ticker (llmoe_pipeline/features.py)."""

import dagster as dg
import numpy as np
import pandas as pd

from llmoe_pipeline.defs.checks import OWNERS, checks_then_output
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.resources import ProtocolResource
from llmoe_pipeline.features import build_features, dropped_row_counts, window_columns

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
        description="train < validation < test in time, and every split has rows",
    ),
]


def split_order_problems(features: pd.DataFrame) -> list[str]:
    problems = []
    spans = {s: (g["date"].min(), g["date"].max()) for s, g in features.groupby("split")}
    for name in ("train", "validation", "test"):
        if name not in spans:
            problems.append(f"no {name} rows")
    for early, late in (("train", "validation"), ("validation", "test")):
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
        """11 features/day × 5-day window = 55 inputs, next-day target, train/validation/test split."""
        cfg = protocol.config
        features = build_features(raw_prices, cfg.split, window=cfg.window)
        counts = features.groupby("split").size().to_dict()
        values = features[window_columns(cfg.window)].to_numpy()
        n_bad = int((~np.isfinite(values)).any(axis=1).sum())
        problems = split_order_problems(features)
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
            },
        )

    return [feature_windows]
