"""The verdict: ranked models with the p-value against LLMoE and MCS membership, the router's AUC line, and one
plain sentence that follows the tests (significant wins and losses only)."""

import pandas as pd

from llmoe_pipeline.research.verdict import (
    TickerEvidence,
    plain_words,
    power_words,
    ranking,
    selection_words,
    verdict_text,
)


def _summary(sharpes: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "ticker": "AAPL",
                "model": m,
                "split": "test",
                "cost_bps": 0.0,
                "n_seeds": 10,
                "sharpe_ratio_mean": s,
                "sharpe_ratio_std": 0.1,
            }
            for m, s in sharpes.items()
        ]
    )


def _evidence(pairs: list[tuple[str, float, float]], diagnostics=None) -> TickerEvidence:
    sharpes = {"LLMoE": 0.5, "LLMoE[oracle]": 5.0, "LSTM": 0.9, "MLP": 0.2, "Buy&Hold": 0.4}
    records = [
        {
            "model_a": "LLMoE",
            "model_b": b,
            "sharpe_diff": d,
            "p_value": p,
            "p_value_hac": p,
            "sharpe_a": 0.5,
            "sharpe_b": 0.5 - d,
        }
        for b, d, p in pairs
    ]
    mcs = [{"model": m, "in_mcs": m != "MLP", "sharpe": s, "mcs_pvalue": 0.5} for m, s in sharpes.items()]
    return TickerEvidence("AAPL", _summary(sharpes), {"test": {"pairs": records, "mcs": mcs}}, diagnostics)


def test_ranking_orders_by_sharpe_with_the_future_last_and_joins_the_tests():
    e = _evidence([("LSTM", -0.4, 0.30), ("MLP", 0.3, 0.01), ("Buy&Hold", 0.1, None), ("LLMoE[oracle]", -4.5, 0.001)])
    table = ranking(e)
    assert table["model"].tolist() == ["LSTM", "LLMoE", "Buy&Hold", "MLP", "LLMoE[oracle]"]
    row = table.set_index("model")
    assert row.loc["LSTM", "p_vs_llmoe"] == 0.30 and pd.isna(row.loc["LLMoE", "p_vs_llmoe"])
    assert row.loc["MLP", "in_mcs"] == False and row.loc["LSTM", "in_mcs"] == True  # noqa: E712
    assert row.loc["LLMoE[oracle]", "uses_future"]


def test_plain_words_follow_the_significant_differences_only():
    assert plain_words(_evidence([("LSTM", -0.4, 0.30), ("MLP", 0.3, 0.20)])).startswith(
        "No Sharpe difference between LLMoE and any other model is significant"
    )
    assert plain_words(_evidence([("LSTM", -0.4, 0.30), ("MLP", 0.3, 0.01)])) == (
        "LLMoE beats MLP at the 5 % level on the test days."
    )
    # The oracle's significant win over LLMoE is an upper bound, not a result: it never enters the sentence.
    assert plain_words(_evidence([("LSTM", -0.4, 0.01), ("LLMoE[oracle]", -4.5, 0.001)])) == (
        "LLMoE is worse than LSTM at the 5 % level; it beats no model significantly."
    )
    assert plain_words(_evidence([("LSTM", -0.4, 0.01), ("MLP", 0.3, 0.02)])).startswith("Mixed")


def test_verdict_text_has_the_table_the_router_line_and_the_sentence():
    diagnostics = pd.DataFrame(
        [{"variant": "llm", "split": "test", "metric": "auc", "value": 0.49, "ci_low": 0.44, "ci_high": 0.54}]
    )
    text = verdict_text(_evidence([("LSTM", -0.4, 0.30)], diagnostics))
    assert text.splitlines()[0].startswith("AAPL: verdict")
    assert "LLMoE[oracle] *" in text and "0.300" in text
    assert "Router (llm) test AUC 0.490 [95 % CI 0.440, 0.540]: no better than chance." in text
    assert "In plain words: No Sharpe difference" in text


def test_router_line_names_the_most_informative_router_and_what_the_text_adds():
    rows = [
        ("llm", "auc", 0.49, 0.44, 0.54, False),
        ("momentum", "auc", 0.53, 0.48, 0.58, False),
        ("oracle", "auc", 1.0, 1.0, 1.0, True),  # reads the future: never the most informative
        ("llm_probe", "auc", 0.52, 0.50, 0.57, False),
        ("features_probe", "auc", 0.51, 0.46, 0.56, False),
        ("llm_probe", "auc_gain:features_probe", 0.01, -0.04, 0.06, False),
    ]
    columns = ["variant", "metric", "value", "ci_low", "ci_high", "uses_future"]
    diagnostics = pd.DataFrame(rows, columns=columns).assign(split="test")
    text = verdict_text(_evidence([("LSTM", -0.4, 0.30)], diagnostics))
    assert "The most any router here extracts: momentum test AUC 0.530 [0.480, 0.580] (no better than chance)." in text
    assert "The text adds +0.010 AUC over the prices alone (llm_probe vs features_probe) [-0.040, +0.060]: not" in text


def _with_power(e: TickerEvidence) -> TickerEvidence:
    power = {"Buy&Hold": (1.31, 1.25, 0.21, 1.62), "LSTM": (0.9, 0.85, 0.5, 1.1), "LLMoE[oracle]": (2.0, 2.0, 0.1, 9.0)}
    for r in e.significance["test"]["pairs"]:
        mde, closed, at_gap, ruled = power[r["model_b"]]
        r |= {"mde": mde, "mde_closed_form": closed, "gap": 1.0, "target_power": 0.8, "power_at_gap": at_gap,
              "power_at_gap_closed_form": at_gap, "ruled_out_above": ruled}  # fmt: skip
    e.significance["test"]["track_record"] = [
        {"model": "LLMoE", "against": "zero", "benchmark_sharpe": 0.0, "psr": 0.71, "n_days": 502,
         "min_track_record_years": 9.4},
        {"model": "LLMoE", "against": "Buy&Hold", "benchmark_sharpe": 0.62, "psr": 0.4, "n_days": 502,
         "min_track_record_years": None},
    ]  # fmt: skip
    e.significance["test"]["selection"] = [
        {"ticker": "AAPL", "model": "LLMoE", "configurations_per_variant": {"LLMoE": 192, "LLMoE[momentum]": 192},
         "deflated": {"n_trials": 384, "sr0": 1.93, "dsr": 0.08},
         "pbo": {"pbo": 0.46, "combinations": 12870, "blocks": 16}}
    ]  # fmt: skip
    return e


def test_power_words_say_what_the_test_could_have_seen():
    e = _with_power(_evidence([("Buy&Hold", 0.1, 0.7), ("LSTM", -0.4, 0.3), ("LLMoE[oracle]", -4.5, 0.001)]))
    assert power_words(e) == (
        "Against Buy&Hold this test detects Sharpe differences of 1.31 or more with 80 % power (closed form 1.25); "
        "a gap of 1.0 would have been detected with probability 0.21; differences above 1.62 are ruled out at 5 %. "
        "Over the 2 comparisons with models that do not use the future, the detectable difference is 0.90 to 1.31."
    )
    assert power_words(_evidence([("LSTM", -0.4, 0.3)])) == ""  # tables of a run before the power columns


def test_selection_words_name_the_trials_the_deflated_sharpe_and_pbo():
    e = _with_power(_evidence([("Buy&Hold", 0.1, 0.7)]))
    words = selection_words(e)
    assert "PSR 0.71; a 95 % level needs 9.4 years of such returns (the test has 2.0)" in words
    assert "buy-and-hold's 0.62: PSR 0.40; no track record reaches a 95 % level" in words
    assert "one of 384 grid configurations tried (LLMoE 192, LLMoE[momentum] 192)" in words
    assert "deflated Sharpe ratio is 0.08" in words and "backtest overfitting of its grid is 0.46" in words
    text = verdict_text(e)
    assert "detects Sharpe differences of 1.31" in text and "deflated Sharpe ratio is 0.08" in text
