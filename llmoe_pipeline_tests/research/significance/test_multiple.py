"""SPA (studentized) against a benchmark and the Model Confidence Set, over arch.bootstrap."""

import numpy as np
import pandas as pd
import pytest
from arch.bootstrap import SPA

from llmoe_pipeline.research.significance.multiple import (
    model_confidence_set,
    spa_test,
    stationary_block_size,
    stationary_bootstrap_variance,
)

N = 500


def _bench_and_models(rng, shifts, noise=0.004):
    """Benchmark returns (GARCH-free t(5)), and models = benchmark + independent noise + a daily shift."""
    bench = pd.Series(0.0003 + 0.01 * rng.standard_t(5, N) / np.sqrt(5 / 3))
    models = pd.DataFrame({f"m{i}": bench + s + noise * rng.standard_normal(N) for i, s in enumerate(shifts)})
    return bench, models


def test_variance_is_the_one_arch_computes():
    rng = np.random.default_rng(0)
    bench, models = _bench_and_models(rng, [0.0, 0.0, 0.0])
    spa = SPA(-bench.to_numpy(), -models.to_numpy(), block_size=4, reps=10, seed=0)
    spa.compute()
    ours = stationary_bootstrap_variance(models.to_numpy() - bench.to_numpy()[:, None], 4)
    np.testing.assert_allclose(ours, spa._loss_diff_var, rtol=1e-12)


def test_spa_does_not_reject_when_no_model_beats_the_benchmark():
    rng = np.random.default_rng(1)
    pvalues = [spa_test(*_bench_and_models(rng, [0.0] * 5), reps=300, seed=k).consistent for k in range(20)]
    assert np.mean(np.array(pvalues) > 0.1) >= 0.8, pvalues


def test_spa_finds_a_planted_better_model_even_beside_a_noisy_one():
    rng = np.random.default_rng(2)
    bench, models = _bench_and_models(rng, [0.0, 0.0, 0.0, 0.0008])  # m3: +20 % a year, noise 0.4 % a day
    models["noisy"] = bench + 0.03 * rng.standard_normal(N)  # zero mean, very noisy: dominates an unscaled max
    res = spa_test(bench, models, reps=1000, seed=3)
    assert res.consistent < 0.05 and res.lower <= res.consistent <= res.upper
    assert res.superior == ("m3",) and res.dropped == () and res.reason is None
    assert res.models == ("m0", "m1", "m2", "m3", "noisy") and res.reps == 1000 and res.block_size >= 1
    assert spa_test(bench, models, reps=1000, seed=3) == res  # seeded: reproducible
    raw = SPA(-bench, -models, block_size=res.block_size, reps=1000, seed=3, studentize=True)
    raw.compute()  # arch ignores `studentize`: the noisy model's mean decides. If this fails, arch now
    assert raw.pvalues["consistent"] > 0.05  # studentizes itself and our pre-scaling is merely redundant.


def test_spa_drops_models_identical_to_the_benchmark():
    rng = np.random.default_rng(4)
    bench, models = _bench_and_models(rng, [0.0])
    models["same"] = bench
    res = spa_test(bench, models, reps=200)
    assert res.dropped == ("same",) and res.models == ("m0",)
    only = spa_test(bench, models[["same"]], reps=200)
    assert (only.consistent, only.models, only.reason) == (1.0, (), "no model differs from the benchmark")
    with pytest.raises(ValueError, match="same days"):
        spa_test(bench[:-1], models, reps=200)


def test_mcs_keeps_the_best_and_excludes_a_clearly_worse_model():
    rng = np.random.default_rng(5)
    bench, models = _bench_and_models(rng, [0.001, 0.0, -0.002])
    returns = pd.concat(
        [bench.rename("bh"), models.rename(columns={"m0": "best", "m1": "like_bh", "m2": "worse"})], axis=1
    )
    returns["best_again"] = returns["best"]  # an identical copy shares the p-value
    res = model_confidence_set(returns, reps=1000, seed=6)
    assert "best" in res.included and "best_again" in res.included and "worse" not in res.included
    table = res.table
    assert table.at["best", "pvalue"] == table.at["best_again", "pvalue"] == 1.0
    assert table.at["worse", "pvalue"] < 0.1 and not table.at["worse", "in_mcs"]
    assert list(table.index) == list(returns.columns) and (res.size, res.method, res.reps) == (0.1, "R", 1000)
    np.testing.assert_allclose(table["mean_return"], returns.mean())
    assert model_confidence_set(returns, reps=1000, seed=6).table.equals(table)


def test_mcs_of_identical_models_keeps_them_all():
    x = pd.Series(np.random.default_rng(7).standard_normal(N) * 0.01)
    res = model_confidence_set(pd.DataFrame({"a": x, "b": x}), reps=100)
    assert res.included == ("a", "b") and (res.table["pvalue"] == 1.0).all()


def test_block_size_is_at_least_one_and_bounded():
    rng = np.random.default_rng(8)
    assert stationary_block_size(rng.standard_normal((N, 3))) >= 1
    iid, walk = rng.standard_normal(60), np.cumsum(rng.standard_normal(60))
    assert stationary_block_size(iid) < stationary_block_size(walk) <= 20  # persistence: longer blocks, <= T/3
    assert stationary_block_size(np.zeros((N, 2))) == 1


def test_too_few_days_give_undefined_tests_with_a_reason_not_an_error():
    import numpy as np
    import pandas as pd

    from llmoe_pipeline.research.significance.multiple import model_confidence_set, spa_test

    rng = np.random.default_rng(0)
    returns = pd.DataFrame(rng.normal(0, 0.01, (12, 3)), columns=["a", "b", "c"])
    mcs = model_confidence_set(returns)
    assert mcs.reason == "too few days (12 < 20)" and mcs.table["in_mcs"].isna().all() and mcs.included == ()
    spa = spa_test(returns["a"], returns[["b", "c"]])
    assert spa.reason == "too few days (12 < 20)" and np.isnan(spa.consistent)
