"""The probe routers: an L2-regularized logistic regression of the next day's direction, fitted on the training
windows only, whose P(up) is the routing score (`llm_probe` on the language model's hidden states, router/hidden.py;
`features_probe` on the 55 price features). After Chen, Kelly & Xiu ("Expected Returns and Large Language Models"):
read what the model's last layer holds instead of asking it for a word.

- inputs standardized by a scaler fitted inside each cross-validation fold (and on all training windows for the
  final fit), then `LogisticRegression` (L2, lbfgs);
- the strength C from `PROBE_CS` (13 values, 1e-5 … 10, log-spaced) by `GridSearchCV` over a `TimeSeriesSplit` of
  the training windows in date order (each fold validates on days after the ones it fits; ROC AUC);
- refit with that C on every training window; scores every window (train, validation, test, live).
The validation and test targets are never read: the threshold on the score is searched on validation downstream,
as for `llm`. Pure: no Dagster.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from llmoe_pipeline.features.windows import window_columns
from llmoe_pipeline.router.hidden import hidden_matrix
from llmoe_pipeline.router.variants import SCORE_COLUMNS

PROBE_CS = tuple(float(c) for c in np.logspace(-5, 1, 13))
CV_SPLITS = 5
MAX_ITER = 5000


@dataclass(frozen=True)
class ProbeFit:
    scores: pd.DataFrame  # SCORE_COLUMNS: P(up) in p_optimistic, every window
    c: float  # the strength the time-ordered cross-validation chose
    cv_auc: float  # its mean ROC AUC over the folds (training windows only)
    train_windows: int
    inputs: int


def fit_probe(windows: pd.DataFrame, x: np.ndarray) -> ProbeFit:
    """The probe on `windows` (ticker, date, split, target; one row per window) with inputs `x` (a row per window):
    fitted on the rows of split "train" only, scoring every row."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(windows):
        raise ValueError(f"probe inputs of shape {x.shape} for {len(windows)} windows")
    order = np.argsort(pd.to_datetime(windows["date"]).to_numpy(), kind="stable")
    is_train = (windows["split"] == "train").to_numpy() & windows["target"].notna().to_numpy()
    rows = order[is_train[order]]  # training windows in date order
    y = windows["target"].to_numpy()[rows].astype(int)
    if len(rows) <= 2 * CV_SPLITS or len(np.unique(y)) < 2:
        raise ValueError(
            f"the probe needs more than {2 * CV_SPLITS} training windows with both directions, got {len(rows)}"
        )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=MAX_ITER))
    search = GridSearchCV(
        model,
        {"logisticregression__C": list(PROBE_CS)},
        cv=TimeSeriesSplit(CV_SPLITS),
        scoring="roc_auc",
        refit=True,
        n_jobs=1,
        error_score=np.nan,  # a fold with one direction only has no AUC: it does not count
    )
    # One BLAS thread: these matrices are small, and threads made the fit 10x slower on a busy 2-core machine.
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", message=".*[Oo]nly one class.*")
        search.fit(x[rows], y)
        p_up = search.predict_proba(x)[:, 1]
    scores = windows[SCORE_COLUMNS[:3]].reset_index(drop=True).assign(p_optimistic=p_up)
    return ProbeFit(
        scores,
        float(search.best_params_["logisticregression__C"]),
        float(search.best_score_),
        len(rows),
        int(x.shape[1]),
    )


def feature_inputs(windows: pd.DataFrame, window: int) -> np.ndarray:
    """`features_probe`'s inputs: the window's 55 price features (what the experts read)."""
    return windows[window_columns(window)].to_numpy(dtype=np.float64)


def hidden_inputs(windows: pd.DataFrame, labels: pd.DataFrame) -> np.ndarray:
    """`llm_probe`'s inputs: each window's stored hidden state (the `hidden` column of `llm`'s router labels)."""
    if "hidden" not in labels.columns:
        raise ValueError("the router labels hold no hidden states: run router_labels with llm_probe configured")
    keys = pd.MultiIndex.from_frame(windows[["ticker", "date"]])
    blobs = labels.set_index(["ticker", "date"])["hidden"].reindex(keys)
    missing = int(blobs.isna().sum())
    if missing:
        raise ValueError(f"{missing} of {len(windows)} windows have no hidden state in the router labels")
    return hidden_matrix(blobs.tolist())
