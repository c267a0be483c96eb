"""The `llmoe` CLI's contract (help, exit codes, one-line errors, report formats) and the shipped configs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from llmoe_pipeline import cli
from llmoe_pipeline.config import PipelineConfig, load_yaml_section
from llmoe_pipeline.defs.resources import LLMRouterResource, MLflowResource
from llmoe_pipeline.defs.schedules import ScheduleSettings, schedule_settings
from llmoe_pipeline.io import write_parquet_atomic
from llmoe_pipeline.metrics import METRIC_NAMES
from llmoe_pipeline.paths import REPO_ROOT
from llmoe_pipeline_tests.router_support import router_model  # noqa: F401

LLMOE = [sys.executable, "-m", "llmoe_pipeline.cli"]


def _run(args, env=None, **kw):
    return subprocess.run(LLMOE + args, capture_output=True, text=True, cwd=REPO_ROOT,
                          env={**os.environ, **(env or {})}, timeout=300, **kw)


def test_help_lists_every_command_and_flag():
    out = _run(["--help"]).stdout
    for command in ("run", "report", "bench", "ui"):
        assert command in out
    run_help = _run(["run", "--help"]).stdout
    for flag in ("--config", "--data-dir", "--tickers", "--seeds", "--router"):
        assert flag in run_help


def test_usage_error_exits_2():
    result = _run(["run", "--router", "nope"])
    assert result.returncode == 2 and "invalid choice" in result.stderr


def test_bad_data_file_is_one_line_naming_file_row_column(tmp_path, data_dir):
    lines = (data_dir / "prices.csv").read_text().splitlines()[:80]
    fields = lines[41].split(",")
    fields[5] = "oops"  # the close of file row 42 (the header is row 1)
    lines[41] = ",".join(fields)
    (tmp_path / "prices.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "headlines.csv").write_text("\n".join((data_dir / "headlines.csv").read_text().splitlines()[:20]) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text("data:\n  price_files: [prices.csv]\n  headline_files: [headlines.csv]\n")
    home = tmp_path / "home"
    result = _run(["run", "--config", str(config), "--data-dir", str(tmp_path), "--tickers", "AAPL"],
                  env={"LLMOE_HOME": str(home)})
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert len(err) == 1, result.stderr
    assert str(tmp_path / "prices.csv") in err[0] and "row 42" in err[0] and "'close'" in err[0]
    assert "Traceback" not in result.stderr
    assert not (home / "assets" / "raw_prices").exists()  # nothing written for the invalid input


def test_missing_config_file_is_a_clear_error(tmp_path):
    result = _run(["run", "--config", str(tmp_path / "missing.yaml")], env={"LLMOE_HOME": str(tmp_path)})
    assert result.returncode == 1 and "missing.yaml does not exist" in result.stderr


def _fake_results():
    rows = []
    for ticker in ("AAPL", "MSFT"):
        for model, seeds in (("LLMoE", (0, 1)), ("Buy&Hold", (0,))):
            for seed in seeds:
                rows.append({"ticker": ticker, "model": model, "seed": seed, "split": "test", "cost_bps": 0.0,
                             **{m: 0.1 * (seed + 1) for m in METRIC_NAMES}})
    return pd.DataFrame(rows)


def test_report_table_and_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LLMOE_HOME", str(tmp_path))
    assert cli.main(["report"]) == 1
    assert "no backtest results yet" in capsys.readouterr().err
    results = _fake_results()
    for ticker, part in results.groupby("ticker"):
        write_parquet_atomic(part, tmp_path / "assets" / "backtest_results" / f"{ticker}.parquet")
    assert cli.main(["report", "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    llmoe = next(r for r in records if r["ticker"] == "MSFT" and r["model"] == "LLMoE")
    assert llmoe["n_seeds"] == 2
    assert llmoe["metrics"]["sharpe_ratio"]["mean"] == pytest.approx(0.15)
    assert llmoe["metrics"]["sharpe_ratio"]["std"] == pytest.approx(0.0707106781, rel=1e-6)
    assert cli.main(["report"]) == 0
    table = capsys.readouterr().out
    assert "LLMoE" in table and "Buy&Hold" in table and "AAPL" in table and "MSFT" in table


def test_paper_config_equals_defaults_and_resource_sections_load():
    path = REPO_ROOT / "llmoe_pipeline" / "configs" / "paper.yaml"
    assert PipelineConfig.from_yaml(path) == PipelineConfig()
    assert LLMRouterResource(**load_yaml_section(path, "router_backend")).backend == "vllm"
    assert MLflowResource(**load_yaml_section(path, "mlflow")).experiment_name == "llmoe"
    assert schedule_settings(str(path)) == ScheduleSettings()


def test_all_tickers_config_changes_only_the_split():
    path = REPO_ROOT / "llmoe_pipeline" / "configs" / "all_tickers_recent.yaml"
    config = PipelineConfig.from_yaml(path)
    assert config.model_copy(update={"split": PipelineConfig().split}) == PipelineConfig()
    assert (str(config.split.train_start), str(config.split.test_end)) == ("2014-01-02", "2016-06-30")


def test_cluster_configs_load(tmp_path):
    from dagster._core.instance.config import dagster_instance_config

    cluster = REPO_ROOT / "deploy" / "cluster"
    instance_cfg, _ = dagster_instance_config(str(cluster), "dagster.yaml")
    assert instance_cfg["run_launcher"]["class"] == "K8sRunLauncher"
    assert "postgres" in instance_cfg["storage"]
    cfg = PipelineConfig.from_yaml(cluster / "config.yaml")
    assert cfg.data.data_dir == "/data/llmoe"
    router = LLMRouterResource(**load_yaml_section(cluster / "config.yaml", "router_backend"))
    assert router.backend == "openai" and router.base_url.startswith("http")
    assert MLflowResource(**load_yaml_section(cluster / "config.yaml", "mlflow")).tracking_uri.startswith("http")
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


def test_bench_router_runs_all_three_paths_and_prints_ratios(router_model, session_home, data_dir):
    # `make bench` is `llmoe bench router`: real vLLM, transformers and naive generate on real windows.
    result = _run(["bench", "router", "--n", "3"], env={"LLMOE_HOME": str(session_home),
                                                       "LLMOE_DATA_DIR": str(data_dir), "VLLM_LOGGING_LEVEL": "ERROR"})
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {line.split("  ")[0].strip(): line.split() for line in result.stdout.splitlines()
            if line.startswith(("vllm", "transformers"))}
    assert set(rows) == {"vllm batched", "transformers batched", "transformers naive generate"}
    # Columns from the right: ... prompts, start s, run s, prompts/s, tokens/s, x naive, FLOP floor (2), achieved (2).
    assert rows["transformers naive generate"][-5] == "1.0x"  # the naive path is the unit
    assert float(rows["vllm batched"][-5].rstrip("x")) > 0
    assert [r[-10] for r in rows.values()] == ["3", "3", "3"]  # prompts per path
    diff = next(line for line in result.stdout.splitlines() if line.startswith("max_abs_p_diff_vllm_vs_transformers"))
    assert float(diff.split(":")[1]) < 1e-4
