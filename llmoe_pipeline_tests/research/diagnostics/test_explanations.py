"""The keyword rule that says when an LLM router's explanation contradicts its label."""

import pandas as pd
import pytest

from llmoe_pipeline.research.diagnostics.explanations import contradiction_table, explanation_stance


@pytest.mark.parametrize(
    ("text", "stance"),
    [
        ("The outlook is optimistic because revenue grew.", "Optimistic"),
        ("I am pessimistic given the sharp drop in sales.", "Pessimistic"),
        ("Bearish: even though some headlines are positive, the trend is weak.", "Pessimistic"),
        ("Bullish momentum despite the decline and the lower guidance.", "Optimistic"),
        ("The outlook is not optimistic after weak earnings.", "Pessimistic"),
        ("I am not pessimistic.", "Optimistic"),
        ("Shares are likely to rise on strong iPhone sales.", "Optimistic"),
        ("The stock may fall as demand slows.", "Pessimistic"),
        ("The stock is unlikely to rise tomorrow.", "Pessimistic"),
        ("Outlook: Optimistic.", "Optimistic"),
        ("It could be optimistic or pessimistic depending on the market.", None),
        ("Microsoft named a new chief executive.", None),
        ("", None),
        (None, None),
    ],
)
def test_stance_of_example_sentences(text, stance):
    assert explanation_stance(text) == stance


def test_contradiction_share_counts_explained_windows_and_ignores_no_side():
    windows = pd.DataFrame(
        {
            "split": ["test"] * 6 + ["validation"] * 2,
            "label": ["Optimistic", "Optimistic", "Pessimistic", "Pessimistic", "Optimistic", "Optimistic"]
            + ["Pessimistic", "Optimistic"],
            "explanation": [
                "The outlook is pessimistic.",  # contradicts
                "Optimistic: strong sales.",  # agrees
                "Prices are likely to rise.",  # contradicts (direction words)
                "Microsoft named a new chief executive.",  # no side: neither
                None,  # not explained
                "  ",  # not explained
                "Bearish.",  # agrees
                "Weak demand, lower prices.",  # contradicts
            ],
        }
    )
    table = contradiction_table(windows).set_index("split")
    assert table.loc["test", ["explained", "sided", "contradicting"]].tolist() == [4, 3, 2]
    assert table.loc["test", "contradiction_share"] == pytest.approx(2 / 4)
    assert table.loc["test", "contradiction_share_of_sided"] == pytest.approx(2 / 3)
    assert table.loc["validation", ["explained", "sided", "contradicting"]].tolist() == [2, 2, 1]


def test_no_explanations_no_rows():
    assert contradiction_table(pd.DataFrame({"split": ["test"], "label": ["Optimistic"]})).empty
    no_text = pd.DataFrame({"split": ["test"], "label": ["Optimistic"], "explanation": [None]})
    assert contradiction_table(no_text).empty
