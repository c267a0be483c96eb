"""Trained models logged into a seed run with their MLflow flavor (PyTorch or LightGBM), signature and
input example; each model's `models:/` URI is tagged on the run."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version as package_version
from typing import Any, Literal

import numpy as np

from llmoe_pipeline.tracking.tags import model_uri_tag


@dataclass(frozen=True)
class ModelToLog:
    """A trained model for `log_seed_run`: the raw estimator, its MLflow flavor, and a few input rows
    (float32, e.g. n×55; at least 2 rows, so that the exported PyTorch graph keeps a dynamic batch size)."""

    estimator: Any  # torch.nn.Module, or a LightGBM sklearn model / Booster
    flavor: Literal["pytorch", "lightgbm"]
    input_example: np.ndarray
    name: str = "model"


def _model_output(model: ModelToLog) -> np.ndarray:
    """The estimator's output on the input example (the signature's output schema is inferred from it)."""
    if model.flavor == "pytorch":
        import torch

        model.estimator.eval()
        with torch.no_grad():
            return model.estimator(torch.from_numpy(model.input_example)).numpy()
    if hasattr(model.estimator, "predict_proba"):
        return model.estimator.predict_proba(model.input_example)
    return np.asarray(model.estimator.predict(model.input_example))


def _pip_requirements(model: ModelToLog) -> list[str]:
    """Explicit requirements: MLflow's inference would re-load the model in a subprocess (seconds per call).
    MLflow adds its own pin. torch's local label (+cpu) is dropped because PyPI cannot resolve it."""
    if model.flavor == "pytorch":
        return [f"torch=={package_version('torch').split('+')[0]}"]
    import lightgbm

    requirements = [f"lightgbm=={package_version('lightgbm')}"]
    if not isinstance(model.estimator, lightgbm.Booster):  # sklearn models are saved with skops
        requirements.append(f"skops=={package_version('skops')}")
    return requirements


def log_models(client, tracking_uri: str, run_id: str, models: Sequence[ModelToLog]) -> None:
    """Log `models` into run `run_id` with their flavors and tag their URIs. Ends the run (FINISHED, or
    FAILED if logging raises): `log_model` only logs into the fluent active run."""
    import mlflow
    from mlflow.models import infer_signature

    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"models logged in one run need distinct names, got {names}")
    with fluent_tracking_uri(tracking_uri), mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # Saving an LSTM makes torch warn once per model that its flat weights are plain attributes; the
        # saved model loads and predicts identically (tracking/test_tracker), so the warning is only noise.
        warnings.filterwarnings("ignore", message=r".*were assigned during export", category=UserWarning)
        for model in models:
            flavor = mlflow.pytorch if model.flavor == "pytorch" else mlflow.lightgbm
            info = flavor.log_model(
                model.estimator,
                name=model.name,
                signature=infer_signature(model.input_example, _model_output(model)),
                input_example=model.input_example,
                pip_requirements=_pip_requirements(model),
                # MLflow would load each logged model back to predict its input example: a fifth of the logging
                # time; tracking/test_tracker loads logged models and checks their predictions instead.
                validate_serving_input=False,
            )
            client.set_tag(run_id, model_uri_tag(model.name), info.model_uri)


@contextlib.contextmanager
def fluent_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-global (fluent) tracking URI at `uri` for the block, then restore the previous
    setting exactly (unset stays unset, and so does $MLFLOW_TRACKING_URI, which MLflow rewrites). Needed by
    `log_model`, and by `mlflow.<flavor>.load_model` of a `models:/` URI. MLflow's own helper: no public one."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    env_before = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        if env_before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = env_before
