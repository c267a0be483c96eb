"""Settings are loaded once, with precedence defaults < file < flags, and every bad value is one clear error
naming the file (or flag) and the key, at load time."""

import datetime as dt

import pytest
import yaml

from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.config.settings import ConfigError, MLflowConfig, ScheduleConfig, Settings, load_settings
from llmoe_pipeline.connectors.config import FetchConfig
from llmoe_pipeline.core.paths import REPO_ROOT
from llmoe_pipeline.router.backends.config import RouterBackendConfig

CONFIGS = REPO_ROOT / "llmoe_pipeline" / "configs"


def _yaml(tmp_path, data, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return path


def test_paper_config_equals_the_defaults():
    settings = load_settings(CONFIGS / "paper.yaml")
    defaults = Settings()
    assert settings.protocol == PipelineConfig()
    assert (settings.router_backend, settings.mlflow, settings.schedule) == (
        defaults.router_backend,
        MLflowConfig(),
        ScheduleConfig(),
    )
    assert settings.fetch == FetchConfig() and not settings.fetch.enabled  # fetching is off by default
    assert settings.tickers == ("AAPL", "MSFT")


def test_all_tickers_config_changes_only_the_split_and_what_is_explained():
    config = load_settings(CONFIGS / "all_tickers_recent.yaml").protocol
    paper = PipelineConfig()
    assert config.router.explain_splits == ["live"]
    router = config.router.model_copy(update={"explain_splits": paper.router.explain_splits})
    assert config.model_copy(update={"split": paper.split, "router": router}) == paper
    assert (str(config.split.train_start), str(config.split.test_end)) == ("2014-01-02", "2016-06-30")


def test_flags_override_the_file_everywhere(tmp_path, data_dir):
    other = tmp_path / "other_data"
    other.mkdir()
    path = _yaml(
        tmp_path,
        {
            "data": {"data_dir": str(data_dir)},
            "seeds": [3, 4],
            "router_backend": {"backend": "transformers", "dtype": "bfloat16"},
        },
    )
    plain = load_settings(path)
    assert plain.protocol.data.data_dir == str(data_dir) and plain.protocol.seeds == [3, 4]
    flagged = load_settings(path, data_dir=other, seeds=2, router_backend="vllm", tickers="msft")
    assert flagged.protocol.data.data_dir == str(other.resolve())  # the flag wins over data.data_dir
    assert flagged.protocol.seeds == [0, 1]
    assert flagged.router_backend == RouterBackendConfig(backend="vllm", dtype="bfloat16")
    assert flagged.tickers == ("MSFT",)
    assert flagged.config_file == str(path.resolve())


@pytest.mark.parametrize(
    "tickers, message",
    [
        ("", "give comma-separated tickers"),
        (" , ", "give comma-separated tickers"),
        ("AAPL,aapl", "given more than once"),
        ("../x", "invalid ticker"),
        ("A" * 260, "invalid ticker"),
    ],
)
def test_bad_ticker_flags_are_errors(tickers, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(tickers=tickers)


def test_tickers_flag_is_case_insensitive_and_stripped():
    assert load_settings(tickers=" aapl , Msft ").tickers == ("AAPL", "MSFT")


@pytest.mark.parametrize("seeds", [0, -1])
def test_seed_count_below_one_is_an_error(seeds):
    with pytest.raises(ConfigError, match=f"--seeds {seeds}: the number of seeds must be at least 1"):
        load_settings(seeds=seeds)


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("router_backend", "batch_size", 0),
        ("baselines", "n_trials", 0),
        ("baselines", "max_epochs", 0),
        ("experts", "patience", 0),
        ("experts", "dropout_grid", [1.5]),
        ("experts", "learning_rate_grid", [-0.1]),
        ("experts", "hidden_sizes_grid", [[64, 0, 16]]),
        ("experts", "hidden_sizes_grid", []),
        ("experts", "threshold_quantile_grid", []),
        ("backtest", "periods_per_year", 0),
        ("backtest", "risk_free", -2.0),
        ("backtest", "cost_bps", -1.0),
        ("backtest", "extra_cost_bps", [-10.0]),
        ("data", "price_files", []),
        ("seeds", None, [1, 1]),
        ("seeds", None, [-1]),
        ("seeds", None, []),
    ],
)
def test_out_of_range_values_fail_at_load_naming_file_and_key(tmp_path, section, key, value):
    path = _yaml(tmp_path, {section: value} if key is None else {section: {key: value}})
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and f"{section}.{key}" if key else section in message
    assert "\n" not in message


def test_unknown_key_is_named(tmp_path):
    path = _yaml(tmp_path, {"experts": {"max_epoch": 3}})
    with pytest.raises(ConfigError, match=r"c\.yaml: experts\.max_epoch: Extra inputs are not permitted"):
        load_settings(path)


def test_yaml_syntax_error_names_the_file_and_line(tmp_path):
    path = _yaml(tmp_path, "seeds: [1, 2\nwindow: 5\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: invalid YAML at line \d+, column \d+"):
        load_settings(path)


def test_config_path_that_is_a_folder_or_missing_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="is a folder, not a config file"):
        load_settings(tmp_path)
    with pytest.raises(ConfigError, match="missing.yaml: config file does not exist"):
        load_settings(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        load_settings(_yaml(tmp_path, "- a\n- b\n"))


def test_data_dir_flag_must_be_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="--data-dir .*: not a folder"):
        load_settings(data_dir=tmp_path / "nope")


def test_split_dates_are_ordered(tmp_path):
    path = _yaml(tmp_path, {"split": {"test_start": dt.date(2010, 1, 1)}})
    with pytest.raises(ConfigError, match="test_start 2010-01-01 must come after train_end"):
        load_settings(path)


def test_data_files_are_globs_and_extras_are_optional(tmp_path, data_dir):
    """A folder with only prices.csv and headlines.csv works with the defaults; a pattern matching nothing is
    fine while another matches; a list matching no file at all is a clear error."""
    (tmp_path / "prices.csv").write_text((data_dir / "prices.csv").read_text())
    (tmp_path / "headlines.csv").write_text("date,ticker,headline\n2016-01-04,AAPL,x\n")
    settings = load_settings(data_dir=tmp_path)
    assert settings.protocol.data.price_paths() == [tmp_path / "prices.csv"]
    assert settings.protocol.data.headline_paths() == [tmp_path / "headlines.csv"]
    (tmp_path / "prices_2017-01-03.csv").write_text("date,ticker,open,high,low,close,adj_close,volume\n")
    assert [p.name for p in settings.protocol.data.price_paths()] == ["prices.csv", "prices_2017-01-03.csv"]
    empty = load_settings(data_dir=tmp_path / "..", tickers="AAPL")
    with pytest.raises(FileNotFoundError, match=r"data\.price_files .* match no file"):
        empty.protocol.data.price_paths()


def test_cluster_configs_load(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    cluster = REPO_ROOT / "deploy" / "cluster"
    instance_cfg, _ = dagster_instance_config(str(cluster), "dagster.yaml")
    assert instance_cfg["run_launcher"]["class"] == "K8sRunLauncher"
    assert "postgres" in instance_cfg["storage"]
    settings = load_settings(cluster / "config.yaml")
    assert settings.protocol.data.data_dir == "/data/llmoe"
    assert settings.router_backend.backend == "openai" and settings.router_backend.base_url.startswith("http")
    assert settings.mlflow.tracking_uri.startswith("http")
    assert yaml.safe_load((cluster / "celery_run_config.yaml").read_text())["execution"]["config"]["broker"]
    # The schema check is real: an unknown key is rejected.
    (tmp_path / "dagster.yaml").write_text("not_a_dagster_setting: 1\n")
    with pytest.raises(Exception, match="not_a_dagster_setting"):
        dagster_instance_config(str(tmp_path), "dagster.yaml")


def test_workspace_and_instance_files_load():
    from dagster._core.instance.config import dagster_instance_config

    workspace = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"]["module_name"] == "llmoe_pipeline.definitions"
    cfg, _ = dagster_instance_config(str(REPO_ROOT), "dagster.yaml")
    assert cfg["concurrency"]["pools"]["default_limit"] == 1


def test_the_research_live_and_ablation_configs_change_only_what_they_say():
    base = load_settings().protocol
    ablations = load_settings(CONFIGS / "ablations.yaml").protocol
    assert ablations.router.variants[-2:] == ["llm_prices_only", "llm_news_only"]
    assert ablations.model_copy(update={"router": base.router}) == base
    research = load_settings(CONFIGS / "research.yaml").protocol
    assert research.walk_forward.enabled and (research.walk_forward.first_year, research.walk_forward.last_year) == (
        2011,
        2016,
    )
    assert research.model_copy(update={"walk_forward": base.walk_forward}) == base
    live = load_settings(CONFIGS / "live.yaml")
    assert live.protocol.retrain.every == "month" and live.protocol.split.test_end is None
    assert live.protocol.router.variants == ["llm"] and live.mlflow.research_runs is False
    assert live.schedule.enabled and live.schedule.data_sensor_enabled
