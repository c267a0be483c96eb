"""What a model asset holds: one model per seed, trained with the hyperparameters a search chose."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from llmoe_pipeline.models.common import FittedModel


@dataclass(frozen=True)
class ModelSet:
    """A model trained once per seed after its hyperparameter search.

    - name: the model's registry name ("lightgbm") or expert name ("llmoe_expert_optimistic");
    - params: the winning hyperparameters every seed was trained with (JSON-native values);
    - search_table: one row per search trial (validation scores), for the UI and MLflow;
    - models: seed → fitted model.
    """

    name: str
    params: Mapping[str, Any]
    models: Mapping[int, FittedModel]
    search_table: pd.DataFrame = field(default_factory=pd.DataFrame)
    train_seconds: float = 0.0

    @property
    def seeds(self) -> list[int]:
        return sorted(self.models)

    @property
    def flavor(self) -> str | None:
        return next(iter(self.models.values())).flavor if self.models else None
