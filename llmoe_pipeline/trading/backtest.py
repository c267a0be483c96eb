"""All-in/all-out backtest of daily up/down predictions, and the buy-and-hold benchmark.

Timing: a prediction is made at the close of day t (1 = up); the position held over t -> t+1 is 1
(all in) when the prediction is up, else 0 (all cash, earning 0). Row t's `next_returns` value is the
asset's return from t to t+1, exactly the feature table's `next_return` column, so every row of the
result is indexed by the decision date t and describes the holding period that follows it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmoe_pipeline.trading.metrics import validate_returns

BACKTEST_COLUMNS = ["position", "asset_return", "strategy_return", "equity", "trade"]


def _validate_predictions(predictions: pd.Series, threshold: float) -> np.ndarray:
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must lie strictly between 0 and 1, got {threshold}")
    try:
        values = predictions.to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"predictions must be numeric ({exc})") from None
    bad = np.flatnonzero(~((values >= 0.0) & (values <= 1.0)))  # also catches NaN
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"predictions at {predictions.index[i]} is {values[i]}: must be 0/1 or a probability in [0, 1]"
        )
    return values


def backtest(
    predictions: pd.Series, next_returns: pd.Series, cost_bps: float = 0.0, threshold: float = 0.5
) -> pd.DataFrame:
    """Trade the predictions; one row per decision date t.

    predictions: Series indexed by date, 1 = up / 0 = down, or probabilities of up in [0, 1]; the
        position is 1 where prediction > threshold (so 0/1 labels are used as they are, and a
        probability of exactly `threshold` stays in cash).
    next_returns: Series on the same index (sorted, unique dates): the asset's return from t to t+1.
    cost_bps: cost per unit of position change, in basis points of wealth (entering or leaving is 1 unit).

    Columns: position (0/1, held over t -> t+1), asset_return (= next_returns), trade (|position change|;
    the run starts from cash, so entering on the first day is a trade), strategy_return
    (position * asset_return - cost_bps / 1e4 * trade), equity (wealth after the holding period, from 1,
    compounded).
    """
    if not isinstance(predictions, pd.Series) or not isinstance(next_returns, pd.Series):
        raise TypeError("predictions and next_returns must be pandas Series indexed by date")
    if not predictions.index.equals(next_returns.index):
        raise ValueError("predictions and next_returns must have the same index (the same dates, in the same order)")
    if not predictions.index.is_unique or not predictions.index.is_monotonic_increasing:
        raise ValueError("the date index must be sorted and without duplicates")
    if not np.isfinite(cost_bps) or cost_bps < 0:
        raise ValueError(f"cost_bps must be a non-negative number, got {cost_bps}")
    asset_return = validate_returns(next_returns, name="next_returns")
    position = (_validate_predictions(predictions, threshold) > threshold).astype(int)

    trade = np.abs(np.diff(position, prepend=0))
    strategy_return = position * asset_return - cost_bps / 1e4 * trade
    return pd.DataFrame(
        {
            "position": position,
            "asset_return": asset_return,
            "strategy_return": strategy_return,
            "equity": np.cumprod(1.0 + strategy_return),
            "trade": trade,
        },
        index=next_returns.index,
    )


def buy_and_hold(next_returns: pd.Series) -> pd.DataFrame:
    """The benchmark: always invested (position 1), no costs; the same frame as `backtest`."""
    return backtest(pd.Series(1, index=next_returns.index), next_returns, cost_bps=0.0)
