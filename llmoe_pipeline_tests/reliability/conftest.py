"""Fixtures for the reliability suite (the repo conftest gives data_dir and a per-session LLMOE_HOME)."""

from pathlib import Path

import pytest

from llmoe_pipeline_tests.reliability.helpers import Slices, load_slices


@pytest.fixture(scope="session")
def slices(data_dir) -> Slices:
    return load_slices(data_dir)


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path
