"""Model sets as one safetensors file: weights as tensors, everything else as JSON in the file's header.

Nothing here unpickles: a file planted in the home can at worst fail to load, never run code. Networks are
rebuilt from their class name and constructor arguments (`nets.NETWORKS`), LightGBM from its text model.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors

from llmoe_pipeline.models.common import HISTORY_COLUMNS, FittedModel
from llmoe_pipeline.models.experts import LLMoESearch
from llmoe_pipeline.models.model_set import ModelSet
from llmoe_pipeline.models.nets import rebuild_network

FORMAT = "llmoe.model_set.v1"
SEARCH_FORMAT = "llmoe.search.v2"  # v2 adds the grid's configurations; v1 files still read
SEARCH_FORMATS = ("llmoe.search.v1", SEARCH_FORMAT)


class ModelFileError(ValueError):
    """A stored model file is not a readable model set of this version."""


def _frame_to_json(frame: pd.DataFrame) -> str:
    return frame.to_json(orient="table", index=False, double_precision=15)


def _frame_from_json(text: str) -> pd.DataFrame:
    return pd.read_json(io.StringIO(text), orient="table") if text else pd.DataFrame()


def model_set_to_bytes(model_set: ModelSet) -> bytes:
    tensors: dict[str, torch.Tensor] = {}
    seeds: list[dict[str, Any]] = []
    for seed, model in sorted(model_set.models.items()):
        prefix = f"seed{seed}"
        entry = {
            "seed": int(seed),
            "name": model.name,
            "params": model.params,
            "flavor": model.flavor,
            "n_inputs": model.n_inputs,
            "best_epoch": int(model.best_epoch),
            "history": _frame_to_json(model.history),
        }
        tensors[f"{prefix}/train_rows"] = torch.as_tensor(np.asarray(model.train_rows, dtype=np.int64))
        tensors[f"{prefix}/validation_rows"] = torch.as_tensor(np.asarray(model.validation_rows, dtype=np.int64))
        if model.flavor == "pytorch":
            entry["network"] = {"class": type(model.estimator).__name__, "init_args": model.estimator.init_args}
            for key, value in model.estimator.state_dict().items():
                tensors[f"{prefix}/state/{key}"] = value.detach().contiguous()
        elif model.flavor == "lightgbm":
            entry["lightgbm_model"] = model.estimator.model_to_string()
        else:
            raise ValueError(f"{model.name}: cannot store a model of flavor {model.flavor!r}")
        seeds.append(entry)
    header = {
        "format": FORMAT,
        "name": model_set.name,
        "params": dict(model_set.params),
        "train_seconds": float(model_set.train_seconds),
        "search_table": _frame_to_json(model_set.search_table),
        "seeds": seeds,
    }
    return save_tensors(tensors, metadata={"llmoe": json.dumps(header)})


def model_set_from_file(path) -> ModelSet:
    """Read a file written from `model_set_to_bytes`; ModelFileError (naming the file) when it is not one."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = json.loads((fh.metadata() or {})["llmoe"])
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}  # noqa: SIM118 - not a dict
        if header.get("format") != FORMAT:
            raise ValueError(f"model set format {header.get('format')!r}, expected {FORMAT!r}")
        return _model_set(header, tensors)
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable model set file ({type(exc).__name__}: {exc})") from None


def _model_set(header: dict, tensors: dict[str, torch.Tensor]) -> ModelSet:
    models = {}
    estimator: Any
    for entry in header["seeds"]:
        prefix = f"seed{entry['seed']}"
        if entry["flavor"] == "pytorch":
            state = {k.split("/state/", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{prefix}/state/")}
            estimator = rebuild_network(entry["network"]["class"], entry["network"]["init_args"], state)
        elif entry["flavor"] == "lightgbm":
            import lightgbm as lgb

            estimator = lgb.Booster(model_str=entry["lightgbm_model"])
        else:
            raise ValueError(f"unknown flavor {entry['flavor']!r}")
        history = _frame_from_json(entry["history"])
        models[int(entry["seed"])] = FittedModel(
            name=entry["name"],
            params=entry["params"],
            seed=int(entry["seed"]),
            estimator=estimator,
            flavor=entry["flavor"],
            n_inputs=int(entry["n_inputs"]),
            history=history if len(history.columns) else pd.DataFrame(columns=HISTORY_COLUMNS),
            best_epoch=int(entry["best_epoch"]),
            train_rows=tensors[f"{prefix}/train_rows"].numpy(),
            validation_rows=tensors[f"{prefix}/validation_rows"].numpy(),
        )
    return ModelSet(
        name=header["name"],
        params=header["params"],
        models=models,
        search_table=_frame_from_json(header["search_table"]),
        train_seconds=float(header["train_seconds"]),
    )


def llmoe_search_to_json(search: LLMoESearch) -> str:
    return json.dumps(
        {
            "format": SEARCH_FORMAT,
            "threshold_quantile": search.threshold_quantile,
            "threshold": search.threshold,
            "params": dict(search.params),
            "table": _frame_to_json(search.table),
            "configurations": _frame_to_json(search.configurations),
        }
    )


def llmoe_search_from_json(text: str, source: str = "LLMoE search") -> LLMoESearch:
    try:
        raw = json.loads(text)
        if raw.get("format") not in SEARCH_FORMATS:
            raise ValueError(f"format {raw.get('format')!r}, expected one of {SEARCH_FORMATS}")
        return LLMoESearch(
            float(raw["threshold_quantile"]),
            float(raw["threshold"]),
            dict(raw["params"]),
            _frame_from_json(raw["table"]),
            _frame_from_json(raw.get("configurations", "")),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelFileError(f"{source}: not a readable LLMoE search result ({exc})") from None
