"""Does an LLM router's one-sentence explanation contradict the label its score gave the window?

The keyword rule (`explanation_stance`), on lower-cased whole words:
1. Stance words decide: optimistic, optimism, bullish (Optimistic) against pessimistic, pessimism, bearish
   (Pessimistic). The side with more of them wins.
2. If they tie (none, or the question's "optimistic or pessimistic" repeated), direction words decide: positive,
   up, upward, rise, gain, growth, rally, strong, higher, ... against negative, down, fall, decline, drop, loss,
   weak, lower, ...; the side with more wins.
3. Still a tie: the explanation takes no side (None).
A keyword within the two words after a negation (not, no, never, isn't, unlikely, ...) counts for the other
side: "the outlook is not optimistic" is Pessimistic.

An explained window contradicts its label when its explanation takes the other side. Windows whose explanation
takes no side count as neither; the share is over all explained windows, and the share of those that take a side
is given beside it.
"""

from __future__ import annotations

import re

import pandas as pd

from llmoe_pipeline.router.regimes import REGIMES

OPTIMISTIC, PESSIMISTIC = REGIMES
STANCE_WORDS = {
    OPTIMISTIC: frozenset({"optimistic", "optimism", "bullish"}),
    PESSIMISTIC: frozenset({"pessimistic", "pessimism", "bearish"}),
}
_UP_WORDS = (
    "positive up upward upside rise rises rising gain gains growth grow growing rally rebound recover recovery "
    "strong strength higher increase increasing boost improve improving"
)
_DOWN_WORDS = (
    "negative down downward downside fall falls falling decline declines declining drop drops dropping loss "
    "losses weak weakness lower decrease decreasing slump sell-off selloff"
)
DIRECTION_WORDS = {OPTIMISTIC: frozenset(_UP_WORDS.split(" ")), PESSIMISTIC: frozenset(_DOWN_WORDS.split(" "))}
NEGATIONS = frozenset({"not", "no", "never", "isn't", "aren't", "wasn't", "won't", "don't", "doesn't", "unlikely"})
NEGATION_REACH = 2  # a keyword is negated when a negation is among the two words before it
_WORD = re.compile(r"[a-z]+(?:['’-][a-z]+)*")


def _votes(words: list[str], vocabulary: dict[str, frozenset[str]]) -> dict[str, int]:
    votes = dict.fromkeys(REGIMES, 0)
    other = {OPTIMISTIC: PESSIMISTIC, PESSIMISTIC: OPTIMISTIC}
    for i, word in enumerate(words):
        for side, keys in vocabulary.items():
            if word in keys:
                negated = any(w in NEGATIONS for w in words[max(0, i - NEGATION_REACH) : i])
                votes[other[side] if negated else side] += 1
    return votes


def explanation_stance(text: str | None) -> str | None:
    """ "Optimistic", "Pessimistic" or None (no side, or no text) for one explanation, by the rule above."""
    if not isinstance(text, str) or not text.strip():
        return None
    words = _WORD.findall(text.lower().replace("’", "'"))
    for vocabulary in (STANCE_WORDS, DIRECTION_WORDS):
        votes = _votes(words, vocabulary)
        if votes[OPTIMISTIC] != votes[PESSIMISTIC]:
            return OPTIMISTIC if votes[OPTIMISTIC] > votes[PESSIMISTIC] else PESSIMISTIC
    return None


def contradiction_table(labelled: pd.DataFrame) -> pd.DataFrame:
    """Per split with explained windows: explained, sided (take a side), contradicting, contradiction_share
    (contradicting / explained) and contradiction_share_of_sided. `labelled`: split, label, explanation."""
    columns = ["split", "explained", "sided", "contradicting", "contradiction_share", "contradiction_share_of_sided"]
    if "explanation" not in labelled.columns:
        return pd.DataFrame(columns=columns)
    text = labelled["explanation"]
    explained = labelled[text.notna() & (text.astype(str).str.strip() != "")]
    stance = explained["explanation"].map(explanation_stance)
    rows = []
    for split, idx in explained.groupby("split", sort=False).groups.items():
        side = stance.loc[idx]
        n, sided = len(idx), int(side.notna().sum())
        contradicting = int((side.notna() & (side != explained.loc[idx, "label"])).sum())
        rows.append(
            [split, n, sided, contradicting, contradicting / n, contradicting / sided if sided else float("nan")]
        )
    return pd.DataFrame(rows, columns=columns)
