"""Fits spread over worker processes are bitwise the fits made in this process, in the same order."""

import os

import numpy as np
import pytest

from llmoe_pipeline.core.parallel import WORKERS_ENV, fit_workers, map_fits
from llmoe_pipeline.models.common import input_columns
from llmoe_pipeline.models.experts import train_expert
from llmoe_pipeline.models.search import run_search
from llmoe_pipeline.models.training import seed_models
from llmoe_pipeline_tests.model_fixtures import rule_labels, small_features

PARAMS = {"hidden_sizes": [16, 8, 4], "dropout": 0.1, "learning_rate": 3e-3, "max_epochs": 6, "patience": 2}


@pytest.fixture(scope="module")
def features(aapl_prices):
    return small_features(aapl_prices)


def _fits(features, workers: str, monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, workers)
    labels = rule_labels(features)
    candidates = [{**PARAMS, "batch_size": b} for b in (32, 64, 128)]
    search = run_search(candidates, lambda p: train_expert(features, labels, "Optimistic", p, 0), features)
    seeds = seed_models(
        lambda s: train_expert(features, labels, "Optimistic", search.best_params, s), [0, 1, 2], 0, search.best_model
    )
    x = features.loc[features["split"] == "test", input_columns(features)].to_numpy()
    return search.table, {seed: m.predict_proba(x) for seed, m in seeds.items()}


def test_parallel_fits_equal_serial_fits_bitwise(features, monkeypatch):
    serial_table, serial = _fits(features, "1", monkeypatch)
    parallel_table, parallel = _fits(features, "2", monkeypatch)
    assert serial_table.equals(parallel_table)
    assert list(parallel) == [0, 1, 2]
    for seed in serial:
        assert np.array_equal(serial[seed], parallel[seed]), seed
    assert not np.array_equal(serial[0], serial[1])  # seeds differ: the comparison is not of one model


def test_map_fits_keeps_order_and_uses_other_processes(monkeypatch):
    monkeypatch.setenv(WORKERS_ENV, "2")
    pids = map_fits(_pid_after, [0.3, 0.0, 0.3, 0.0])
    assert [p for p, _ in pids] and [x for _, x in pids] == [0.3, 0.0, 0.3, 0.0]
    assert os.getpid() not in {p for p, _ in pids}


def _pid_after(delay: float):
    import time

    time.sleep(delay)
    return os.getpid(), delay


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_bad_worker_count_names_the_variable(monkeypatch, value):
    monkeypatch.setenv(WORKERS_ENV, value)
    with pytest.raises(ValueError, match=f"{WORKERS_ENV}={value!r}"):
        fit_workers()
