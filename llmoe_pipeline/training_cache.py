"""Content-addressed store of trained model sets, so a refresh retrains only what changed.

The key (a fingerprint) covers everything training reads: the training and validation rows (inputs,
targets, router labels), the hyperparameter grid/space, the seeds and `MODEL_CODE_VERSION`. New test
days do not change it; new training data, config or training code does.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from llmoe_pipeline.io import write_bytes_atomic

MODEL_CODE_VERSION = "1"  # bump whenever llmoe_pipeline/models changes how models are trained


def training_fingerprint(frame: pd.DataFrame, **settings: Any) -> str:
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy().tobytes())
    h.update(json.dumps({**settings, "code": MODEL_CODE_VERSION}, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def cached_training(cache_dir: Path, fingerprint: str, train: Callable[[], Any]) -> tuple[Any, bool]:
    """(value, reused): the stored value for `fingerprint`, else `train()` stored atomically."""
    path = Path(cache_dir) / f"{fingerprint}.pkl"
    if path.exists():
        try:
            return pickle.loads(path.read_bytes()), True
        except Exception:  # noqa: BLE001 - an unreadable entry is retrained, never trusted
            path.unlink(missing_ok=True)
    value = train()
    write_bytes_atomic(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), path)
    return value, False
