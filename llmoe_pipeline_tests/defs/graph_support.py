"""The whole asset graph on the e2e data slice with the fake router: fast, real Dagster, real MLflow."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from llmoe_pipeline.config.settings import Settings, load_settings
from llmoe_pipeline.definitions import build_definitions
from llmoe_pipeline_tests.e2e.support import write_config, write_slice
from llmoe_pipeline_tests.fakes import fake_router


def fake_definitions(settings: Settings) -> dg.Definitions:
    """The code location's definitions with the fake router in place of the language model."""
    return build_definitions(settings, resources={"llm_router": fake_router(settings.home)})


def slice_settings(root: Path, reference_dir: Path, **overrides) -> Settings:
    data = write_slice(reference_dir, root / "data")
    return load_settings(write_config(root / "config.yaml", data, **overrides), home=root / "home")
