"""A signal recorded before its window was explained gets the explanation filled in later (router_explanations), and
nothing else of it changes: the decision is never rewritten, an explanation already recorded is kept."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from llmoe_pipeline.trading.signals import SIGNAL_COLUMNS, append_signals, fill_explanations, read_history


def signal(day: str, explanation: str) -> dict:
    row = dict.fromkeys(SIGNAL_COLUMNS, "x")
    return row | {
        "ticker": "AAPL",
        "as_of": dt.date.fromisoformat(day),
        "position": 1,
        "p_optimistic": 0.625,
        "prob_up": 0.5625,
        "explanation": explanation,
    }


def test_fill_explanations_fills_only_what_is_missing(tmp_path):
    append_signals(tmp_path, pd.DataFrame([signal("2013-09-20", ""), signal("2013-09-23", "Already said.")]))
    before = read_history(tmp_path, ["AAPL"], last=None)
    explained = pd.DataFrame(
        {
            "ticker": "AAPL",
            "date": pd.to_datetime(["2013-09-19", "2013-09-20", "2013-09-23", "2013-09-24"]),
            "explanation": ["No signal that day.", "Earnings beat.", "Another sentence.", None],
        }
    )
    written = fill_explanations(tmp_path, explained)
    assert [p.name for p in written] == ["2013-09-20.parquet"]
    after = read_history(tmp_path, ["AAPL"], last=None)
    assert after["explanation"].tolist() == ["Earnings beat.", "Already said."]
    pd.testing.assert_frame_equal(after.drop(columns="explanation"), before.drop(columns="explanation"))
    assert fill_explanations(tmp_path, explained) == []  # nothing left to fill
