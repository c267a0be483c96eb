"""The `fetch:` section: off by default, providers by name, keys only as variable names; `llmoe fetch` refuses to
run without providers and names a bad flag."""

from __future__ import annotations

import pytest
import yaml

from llmoe_pipeline.app.cli import main
from llmoe_pipeline.config.settings import ConfigError, load_settings


def write(tmp_path, config: dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_unknown_provider_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"fetch\.prices\.0: Input should be 'yfinance' or 'alpaca'"):
        load_settings(write(tmp_path, {"fetch": {"prices": ["bloomberg"]}}))


def test_a_key_is_not_a_variable_name(tmp_path):
    with pytest.raises(ConfigError, match=r"fetch\.nyt\.key_env: String should match pattern"):
        load_settings(write(tmp_path, {"fetch": {"nyt": {"key_env": "abc-123/xyz"}}}))


def test_updates_dir_defaults_under_the_home(tmp_path):
    settings = load_settings(home=tmp_path / "home")
    assert settings.protocol.data.updates_dir == str((tmp_path / "home" / "updates").resolve())


def test_llmoe_fetch_without_providers_says_how_to_configure(tmp_path, capsys):
    assert main(["fetch", "--config", str(write(tmp_path, {}))]) == 1
    assert capsys.readouterr().err == (
        "llmoe fetch: error: no providers configured: set fetch.prices and/or fetch.headlines in the --config file\n"
    )


def test_llmoe_fetch_bad_since(tmp_path, capsys):
    config = write(tmp_path, {"fetch": {"prices": ["yfinance"]}})
    assert main(["fetch", "--config", str(config), "--since", "26/03/2024"]) == 1
    assert capsys.readouterr().err == "llmoe fetch: error: --since '26/03/2024': give a date as YYYY-MM-DD\n"
