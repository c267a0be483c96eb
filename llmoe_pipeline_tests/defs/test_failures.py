"""Failures a user can act on: deterministic errors are not retried, and the CLI prints one redacted line."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from llmoe_pipeline.app.runner import refresh_ticker
from llmoe_pipeline.definitions import build_definitions
from llmoe_pipeline_tests.defs.graph_support import slice_settings


def _events(instance: dg.DagsterInstance, event_type: dg.DagsterEventType) -> list:
    return list(instance.get_event_records(dg.EventRecordsFilter(event_type=event_type)))


def test_a_missing_model_fails_once_without_retries_and_says_what_to_do(tmp_path, data_dir):
    settings = slice_settings(tmp_path, data_dir)
    missing = tmp_path / "no-such-model"
    settings = settings.model_copy(
        update={"router_backend": settings.router_backend.model_copy(update={"model": str(missing)})}
    )
    instance = dg.DagsterInstance.ephemeral()
    with pytest.raises(Exception) as err:  # what execute_in_process raises is Dagster's wrapper
        refresh_ticker(build_definitions(settings), "AAPL", instance)
    assert f"model folder '{missing}' does not exist" in str(err.value) + str(err.value.__cause__)
    assert "hf download" not in str(err.value) + str(err.value.__cause__)
    assert _events(instance, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    failures = _events(instance, dg.DagsterEventType.STEP_FAILURE)
    assert [f.event_log_entry.step_key for f in failures] == ["router_labels"]


def test_an_unreachable_server_is_retried_then_reported_in_one_line(tmp_path, data_dir, monkeypatch, capsys):
    """A server that is down may come back: the step is retried (twice), then the CLI prints one line, with the
    URL's credentials masked."""
    from llmoe_pipeline.app import cli
    from llmoe_pipeline_tests.e2e.support import free_port

    config = slice_settings(tmp_path, data_dir).config_file
    path = Path(config)
    raw = yaml.safe_load(path.read_text())
    raw["router_backend"] = {
        "backend": "openai",
        "model": "served",
        "base_url": f"http://user:s3cret-pw@127.0.0.1:{free_port()}/v1?api_key=k3y-123",
    }
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("LLMOE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("llmoe_pipeline.defs.assets.router.RETRY_DELAY_S", 0)
    assert cli.main(["run", "--config", config, "--tickers", "AAPL"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not reachable" in err[0] and "router_backend.base_url" in err[0], err
    assert "s3cret-pw" not in err[0] and "k3y-123" not in err[0]
    instance = cli.dagster_instance(tmp_path / "home")  # the CLI's instance
    assert len(_events(instance, dg.DagsterEventType.STEP_UP_FOR_RETRY)) == 2  # RetryPolicy(max_retries=2)


def test_a_server_url_with_credentials_is_never_stored_in_dagster(tmp_path, data_dir, monkeypatch):
    """The resource keeps an env var's name, not the URL, so neither the code location's snapshot (what the UI's
    Resources page and Dagster's storage hold) nor a run's config contains the secret; the backend gets the URL."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    from llmoe_pipeline.config.settings import load_settings
    from llmoe_pipeline.defs.resources import ROUTER_URL_ENV

    monkeypatch.delenv(ROUTER_URL_ENV, raising=False)
    url = "http://user:s3cret-pw@127.0.0.1:8000/v1?api_key=k3y-123"
    config = tmp_path / "c.yaml"
    config.write_text(
        f"router_backend:\n  backend: openai\n  model: served\n  base_url: '{url}'\n"
        "mlflow:\n  tracking_uri: 'http://u:mlflow-pw@127.0.0.1:5000'\n"
    )
    defs = build_definitions(load_settings(config, data_dir=data_dir, home=tmp_path / "home"))
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "s3cret-pw" not in snapshot and "k3y-123" not in snapshot and "mlflow-pw" not in snapshot
    assert ROUTER_URL_ENV in snapshot  # what the UI shows instead
    router = defs.get_repository_def().get_top_level_resources()["llm_router"]
    with dg.build_resources({"llm_router": router}) as resources:  # resolved when a run initializes it
        assert resources.llm_router.config.base_url == url
