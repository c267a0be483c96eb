"""Tomorrow's decision: for each window whose next session is to be traded, the router's regime and explanation, the
routed expert's P(up) over seeds, the all-in/all-out position, every baseline's position, and what produced them.

A signal is computed exactly as the backtest computes that day's prediction (the same models, the same inputs),
so the live track record and the backtest agree by construction. The history keeps one small Parquet file per
ticker and day, written once: a night that is re-run or catches up a missed day never rewrites a decision, and a
night's cost does not grow with the length of the history. The router's explanation of a window is generated after
the results (router_explanations): a signal recorded before it gets it filled in (`fill_explanations`), its decision
untouched.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from llmoe_pipeline.core.files import write_parquet_atomic
from llmoe_pipeline.features.windows import LIVE
from llmoe_pipeline.models import FittedModel, input_columns, router_labels_for

SIGNAL_COLUMNS = [
    "ticker",
    "as_of",
    "position",
    "regime",
    "p_optimistic",
    "prob_up",
    "prob_up_std",
    "explanation",
    "baseline_positions",
    "trained_through",
    "threshold",
    "model_id",
    "prompt_version",
    "model_ids",
    "computed_at",
]
MAX_CATCH_UP_DAYS = 31  # missed nights are filled in (a decision never recorded is recomputed), within a month


def days_to_signal(features: pd.DataFrame, recorded: set[dt.date]) -> pd.DataFrame:
    """The live windows, and the test windows after the last recorded decision that have none (a night that
    failed), at most MAX_CATCH_UP_DAYS of them."""
    live = features[features["split"] == LIVE]
    if not recorded:
        return live
    last = pd.Timestamp(max(recorded))
    missed = features[(features["split"] == "test") & (features["date"] > last)].tail(MAX_CATCH_UP_DAYS)
    out = pd.concat([missed, live])
    return out[~out["date"].dt.date.isin(recorded)]


def _position(p_up: np.ndarray) -> int:
    """All in when the mean P(up) over seeds is above one half (the backtest's rule for one seed's P(up))."""
    return int(float(np.mean(p_up)) > 0.5)


def compute_signals(
    rows: pd.DataFrame,
    labels: pd.DataFrame,
    experts: Mapping[str, Mapping[int, FittedModel]],
    baselines: Mapping[str, Mapping[int, FittedModel]],
    trained_through: dt.date,
    threshold: float,
    model_ids: Mapping[str, str],
    computed_at: dt.datetime,
) -> pd.DataFrame:
    """One signal per row of `rows` (feature rows): `labels` is the LLM router's table with `label` at the
    threshold the LLMoE grid chose and the explanations; experts: regime -> seed -> expert; baselines: display
    name -> seed -> model."""
    if rows.empty:
        return pd.DataFrame(columns=SIGNAL_COLUMNS)
    x = rows[input_columns(rows)].to_numpy()
    regimes = router_labels_for(rows, labels).to_numpy()
    by_key = labels.assign(date=pd.to_datetime(labels["date"])).set_index(["ticker", "date"])
    out = []
    for i, (_, row) in enumerate(rows.iterrows()):
        regime = regimes[i]
        p_up = np.array([m.predict_proba(x[i : i + 1])[0] for _, m in sorted(experts[regime].items())])
        router = by_key.loc[(row["ticker"], pd.Timestamp(row["date"]))]
        others = {
            name: _position(np.array([m.predict_proba(x[i : i + 1])[0] for m in by_seed.values()]))
            for name, by_seed in baselines.items()
        }
        out.append(
            {
                "ticker": row["ticker"],
                "as_of": pd.Timestamp(row["date"]).date(),
                "position": _position(p_up),
                "regime": regime,
                "p_optimistic": float(router["p_optimistic"]),
                "prob_up": float(p_up.mean()),
                "prob_up_std": float(p_up.std(ddof=1)) if len(p_up) > 1 else 0.0,
                "explanation": router["explanation"] if isinstance(router["explanation"], str) else "",
                "baseline_positions": json.dumps(others),
                "trained_through": trained_through,
                "threshold": float(threshold),
                "model_id": str(router["model_id"]),
                "prompt_version": str(router["prompt_version"]),
                "model_ids": json.dumps(dict(model_ids)),
                "computed_at": computed_at,
            }
        )
    return pd.DataFrame(out, columns=SIGNAL_COLUMNS)


def signal_file(folder: Path, ticker: str, day: dt.date) -> Path:
    return Path(folder) / ticker / f"{day:%Y-%m-%d}.parquet"


def recorded_days(folder: Path, ticker: str) -> set[dt.date]:
    """The days whose decision is in the history (from the file names: no file is read)."""
    return {dt.date.fromisoformat(p.stem) for p in (Path(folder) / ticker).glob("*.parquet")}


def append_signals(folder: Path, signals: pd.DataFrame) -> list[Path]:
    """Write each signal to its own file, atomically; a day already recorded is left as it was (no duplicates,
    no rewritten decisions). Returns the files written."""
    written = []
    for _, row in signals.iterrows():
        path = signal_file(folder, row["ticker"], row["as_of"])
        if not path.exists():
            written.append(write_parquet_atomic(pd.DataFrame([row]), path))
    return written


def fill_explanations(folder: Path, explanations: pd.DataFrame) -> list[Path]:
    """Fill in the router's explanation of recorded signals that have none (their explanation was generated after
    the signal: router_explanations runs after the results). `explanations`: ticker, date, explanation. Only the
    explanation column of a day's file changes (atomically); the decision is never rewritten. Returns the files."""
    written = []
    for _, row in explanations.iterrows():
        text = row["explanation"]
        if not isinstance(text, str) or not text.strip():
            continue
        path = signal_file(folder, row["ticker"], pd.Timestamp(row["date"]).date())
        if not path.exists():
            continue
        signal = pd.read_parquet(path)
        if signal["explanation"].map(lambda e: isinstance(e, str) and e.strip() != "").all():
            continue
        written.append(write_parquet_atomic(signal.assign(explanation=text), path))
    return written


def read_history(folder: Path, tickers: list[str] | None = None, last: int | None = 1) -> pd.DataFrame:
    """The last `last` recorded signals of each ticker (all with None), oldest first."""
    folder = Path(folder)
    names = tickers if tickers is not None else sorted(p.name for p in folder.glob("*") if p.is_dir())
    frames = []
    for ticker in names:
        files = sorted((folder / ticker).glob("*.parquet"))
        frames += [pd.read_parquet(f) for f in (files if last is None else files[-last:])]
    if not frames:
        return pd.DataFrame(columns=SIGNAL_COLUMNS)
    return pd.concat(frames, ignore_index=True).sort_values(["ticker", "as_of"]).reset_index(drop=True)


def format_signals(signals: pd.DataFrame) -> str:
    """One line per signal: ticker, as_of, position, regime, p_optimistic, P(up), explanation."""
    if signals.empty:
        return "no signals yet: run `llmoe run` (or let the nightly refresh run) first"
    lines = [f"{'ticker':<8} {'as_of':<10} {'position':<8} {'regime':<11} {'p_opt':>6} {'P(up)':>6}  explanation"]
    for _, s in signals.iterrows():
        position = "LONG" if s["position"] == 1 else "CASH"
        lines.append(
            f"{s['ticker']:<8} {s['as_of']!s:<10} {position:<8} {s['regime']:<11} {s['p_optimistic']:>6.3f} "
            f"{s['prob_up']:>6.3f}  {s['explanation'] or '-'}"
        )
    return "\n".join(lines)


def signals_json(signals: pd.DataFrame) -> list[dict]:
    """JSON records: ticker, as_of (ISO date), position (0/1), regime, p_optimistic, prob_up, explanation, ..."""
    out = []
    for _, s in signals.iterrows():
        out.append(
            {
                "ticker": s["ticker"],
                "as_of": str(s["as_of"]),
                "position": int(s["position"]),
                "regime": s["regime"],
                "p_optimistic": float(s["p_optimistic"]),
                "prob_up": float(s["prob_up"]),
                "prob_up_std": float(s["prob_up_std"]),
                "explanation": s["explanation"],
                "baseline_positions": json.loads(s["baseline_positions"]),
                "trained_through": str(s["trained_through"]),
                "model_id": s["model_id"],
                "prompt_version": s["prompt_version"],
            }
        )
    return out
