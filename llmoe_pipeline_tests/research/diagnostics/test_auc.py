"""AUC and its block-bootstrap interval against a brute-force pairwise computation."""

import itertools

import numpy as np
import pytest

from llmoe_pipeline.research.diagnostics.auc import (
    MIN_BLOCK,
    auc_and_hit_rate,
    auc_difference,
    auc_score,
    block_bootstrap_counts,
    block_length_for,
    weighted_auc,
)


def pairwise_auc(score, target) -> float:
    """P(score of an up day > score of a down day), ties one half: every pair, by hand."""
    ups = [s for s, t in zip(score, target) if t == 1]
    downs = [s for s, t in zip(score, target) if t == 0]
    if not ups or not downs:
        return float("nan")
    wins = sum(1.0 if u > d else 0.5 if u == d else 0.0 for u, d in itertools.product(ups, downs))
    return wins / (len(ups) * len(downs))


def test_auc_matches_the_pairwise_definition_with_ties():
    score = [0.1, 0.4, 0.35, 0.8, 0.4, 0.4, 0.9, 0.1]
    target = [0, 0, 1, 1, 1, 0, 1, 1]
    # By hand: ups 0.35, 0.8, 0.4, 0.9, 0.1 vs downs 0.1, 0.4, 0.4 -> (1+0+0) + 3 + (1+.5+.5) + 3 + (.5+0+0) = 9.5
    assert pairwise_auc(score, target) == pytest.approx(9.5 / 15)
    assert auc_score(score, target) == pytest.approx(9.5 / 15)
    rng = np.random.default_rng(3)
    s, t = rng.integers(0, 6, 40).astype(float), rng.integers(0, 2, 40)
    assert auc_score(s, t) == pytest.approx(pairwise_auc(s, t))


def test_weights_count_repeated_observations():
    rng = np.random.default_rng(4)
    s, t = rng.normal(size=30).round(1), rng.integers(0, 2, 30)
    counts = rng.integers(0, 4, size=(5, 30))
    got = weighted_auc(s, t, counts)
    for row, value in zip(counts, got):
        assert value == pytest.approx(pairwise_auc(np.repeat(s, row), np.repeat(t, row)))


def test_perfect_reversed_uninformative_and_one_sided_scores():
    t = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    assert auc_score(t.astype(float), t) == 1.0
    assert auc_score(1.0 - t, t) == 0.0
    assert auc_score(np.full(8, 0.3), t) == 0.5
    assert np.isnan(auc_score([0.1, 0.2], [1, 1]))
    with pytest.raises(ValueError, match="NaN"):
        auc_score([0.1, np.nan], [0, 1])


def test_interval_is_the_percentile_interval_of_the_resampled_aucs():
    rng = np.random.default_rng(5)
    n, reps, block = 80, 60, 8
    s, t = rng.normal(size=n), rng.integers(0, 2, n)
    hit = rng.integers(0, 2, n)
    auc, hit_rate = auc_and_hit_rate(s, t, hit, block_length=block, reps=reps, seed=11)
    counts = block_bootstrap_counts(n, block, reps, 11)  # the same seed draws the same resamples
    by_hand = np.array([pairwise_auc(np.repeat(s, c), np.repeat(t, c)) for c in counts.astype(int)])
    assert auc.value == pytest.approx(pairwise_auc(s, t))
    assert (auc.ci_low, auc.ci_high) == pytest.approx(tuple(np.percentile(by_hand, [2.5, 97.5])))
    hits_by_hand = [np.repeat(hit, c).mean() for c in counts.astype(int)]
    assert hit_rate.value == pytest.approx(hit.mean())
    assert (hit_rate.ci_low, hit_rate.ci_high) == pytest.approx(tuple(np.percentile(hits_by_hand, [2.5, 97.5])))
    assert auc.ci_low < auc.value < auc.ci_high
    assert (auc.n, auc.block_length, auc.reps) == (n, block, reps)


def test_resamples_are_whole_circular_blocks_and_seeded():
    counts = block_bootstrap_counts(50, 10, 20, seed=1)
    assert counts.shape == (20, 50)
    assert (counts.sum(axis=1) == 50).all()
    np.testing.assert_array_equal(counts, block_bootstrap_counts(50, 10, 20, seed=1))
    assert not np.array_equal(counts, block_bootstrap_counts(50, 10, 20, seed=2))
    # Blocks of 10 consecutive days: a day drawn k times has neighbours drawn about as often (no isolated draws
    # of single days as in an iid bootstrap): most adjacent pairs have equal counts.
    assert (counts[:, 1:] == counts[:, :-1]).mean() > 0.75


def test_block_length_floor_cap_and_persistent_scores():
    rng = np.random.default_rng(6)
    assert block_length_for(rng.normal(size=500)) == MIN_BLOCK
    assert block_length_for(np.cumsum(rng.normal(size=2000))) > MIN_BLOCK  # a random walk persists for long
    assert block_length_for(rng.normal(size=30)) == 10  # at most a third of the sample
    assert block_length_for(np.ones(100)) == MIN_BLOCK


def test_auc_difference_is_calibrated_on_two_noise_scores_and_finds_a_planted_gain():
    rng = np.random.default_rng(3)
    covered = []
    for _ in range(100):
        up = rng.integers(0, 2, 400)
        gain = auc_difference(rng.normal(size=400), rng.normal(size=400), up, block_length=20, reps=200, seed=rng)
        covered.append(gain.ci_low <= 0 <= gain.ci_high)
    assert 0.88 <= np.mean(covered) <= 1.0  # a 95 % interval
    up = rng.integers(0, 2, 400)
    informed = up + rng.normal(scale=1.5, size=400)  # AUC ≈ 0.68
    gain = auc_difference(informed, rng.normal(size=400), up, block_length=20, reps=200, seed=1)
    assert gain.ci_low > 0 and 0.1 < gain.value < 0.3
    with pytest.raises(ValueError, match="same days"):
        auc_difference(informed, informed[:-1], up)
