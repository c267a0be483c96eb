"""The retraining policy: through which date the models are trained, as new days arrive.

`every: never` keeps the protocol's fixed split (the paper's; research runs). Otherwise the models are trained on
every day up to the end of the last complete period (month, quarter or year) before the newest day in the data,
from the protocol's train_start (`window: expanding`) or the last `length_years` (`sliding`), the last
`validation_fraction` of them as validation; every later day is test. A nightly refresh therefore changes the
training rows, and retrains (the model store's fingerprints see it), exactly when a period ends.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from llmoe_pipeline.config.protocol import PipelineConfig, RetrainConfig, SplitConfig


def period_start(day: dt.date, every: str) -> dt.date:
    """First day of the period (month, quarter, year) that contains `day`."""
    if every == "month":
        return day.replace(day=1)
    if every == "quarter":
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if every == "year":
        return dt.date(day.year, 1, 1)
    raise ValueError(f"unknown retraining period {every!r}")


def trained_through(policy: RetrainConfig, split: SplitConfig, last_day: dt.date) -> dt.date:
    """The last day the models may train on, given the newest day in the data."""
    if policy.every == "never":
        return split.train_end
    return period_start(last_day, policy.every) - dt.timedelta(days=1)


def effective_split(cfg: PipelineConfig, last_day: dt.date) -> SplitConfig:
    """The split the models are trained and evaluated with when the data ends on `last_day`."""
    policy = cfg.retrain
    if policy.every == "never":
        return cfg.split
    train_end = trained_through(policy, cfg.split, last_day)
    train_start = cfg.split.train_start
    if policy.window == "sliding":
        train_start = max(train_start, (pd.Timestamp(train_end) - pd.DateOffset(years=policy.length_years)).date())
    if train_end <= train_start:
        raise ValueError(
            f"retrain: the data ends {last_day}, so the models would train through {train_end}, "
            f"before split.train_start {train_start}: add data or move train_start"
        )
    return SplitConfig(
        train_start=train_start,
        train_end=train_end,
        test_start=train_end + dt.timedelta(days=1),
        test_end=None,
        validation_fraction=cfg.split.validation_fraction,
    )
