"""Content-addressed store of trained models, so a refresh retrains only what changed.

The key (a fingerprint) covers everything training reads: the training and validation rows (inputs,
targets, router labels), the hyperparameter grid/space, the seeds and `MODEL_CODE_VERSION`. New test
days do not change it; new training data, config or training code does. Values are stored in formats that
cannot run code when read (`serialization`); an unreadable entry is retrained, never trusted. The store is a
folder under the home, or on a cluster a storage URL every worker reaches (`storage.shared_url`/model_cache).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from llmoe_pipeline.core.files import write_bytes_atomic, write_text_atomic
from llmoe_pipeline.core.hashing import sha256_bytes
from llmoe_pipeline.core.storage import LocalStore, Store, open_store
from llmoe_pipeline.models.experts import LLMoESearch
from llmoe_pipeline.models.model_set import ModelSet
from llmoe_pipeline.models.serialization import (
    ModelFileError,
    llmoe_search_from_json,
    llmoe_search_to_json,
    model_set_from_file,
    model_set_to_bytes,
)

MODEL_CODE_VERSION = "2"  # bump whenever llmoe_pipeline/models changes how models are trained or stored
T = TypeVar("T", ModelSet, LLMoESearch)


def training_fingerprint(frame: pd.DataFrame, **settings: Any) -> str:
    rows = pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy().tobytes()
    meta = json.dumps({**settings, "code": MODEL_CODE_VERSION}, sort_keys=True, default=str).encode()
    return sha256_bytes(rows + meta)[:32]


def save_value(value: ModelSet | LLMoESearch, path: Path) -> Path:
    """Write a model set (.safetensors) or an LLMoE search (.json) atomically."""
    if isinstance(value, ModelSet):
        return write_bytes_atomic(model_set_to_bytes(value), path)
    if isinstance(value, LLMoESearch):
        return write_text_atomic(llmoe_search_to_json(value), path)
    raise TypeError(f"cannot store a {type(value).__name__} as a model")


def load_value(kind: type[T], path: Path) -> T:
    if kind is ModelSet:
        return model_set_from_file(path)  # type: ignore[return-value]
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ModelFileError(f"{path}: not UTF-8 text ({exc})") from None
    return llmoe_search_from_json(text, str(path))  # type: ignore[return-value]


SUFFIX = {ModelSet: ".safetensors", LLMoESearch: ".json"}


class ModelStore:
    """Model sets by fingerprint in a folder, or (a cluster) at a storage URL every worker reaches
    (`storage.shared_url`/model_cache: `s3://…`, `file:///shared/…`; llmoe_pipeline/core/storage.py)."""

    def __init__(self, folder: str | Path | Store):
        self.store = open_store(folder, "the model store")
        # The folder of a local store (tests look into it); None for a storage URL.
        self.folder: Path | None = self.store.root if isinstance(self.store, LocalStore) else None

    def get_or_train(self, fingerprint: str, kind: type[T], train: Callable[[], T]) -> tuple[T, bool]:
        """(value, reused): the stored value for `fingerprint`, else `train()`, stored atomically."""
        name = f"{fingerprint}{SUFFIX[kind]}"
        if self.store.exists(name):
            try:
                with self.store.local_file(name) as path:
                    return load_value(kind, path), True
            except (ModelFileError, OSError):
                self.store.delete(name)
        value = train()
        self.store.write_bytes(name, _to_bytes(value))
        return value, False


def _to_bytes(value: ModelSet | LLMoESearch) -> bytes:
    if isinstance(value, ModelSet):
        return model_set_to_bytes(value)
    if isinstance(value, LLMoESearch):
        return llmoe_search_to_json(value).encode("utf-8")
    raise TypeError(f"cannot store a {type(value).__name__} as a model")
