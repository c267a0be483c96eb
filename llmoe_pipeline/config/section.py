"""The base of every typed config section: unknown keys are an error naming them, and a loaded config is frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigSection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
