"""The `llmoe` CLI's contract: help, exit codes, one-line errors, report formats, the benchmark."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from llmoe_pipeline.app import cli
from llmoe_pipeline.core.paths import REPO_ROOT
from llmoe_pipeline.defs.io_manager import store_asset_value
from llmoe_pipeline.trading.metrics import METRIC_NAMES

LLMOE = [sys.executable, "-m", "llmoe_pipeline.app.cli"]


def _run(args, env=None, **kw):
    return subprocess.run(
        LLMOE + args,
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        timeout=300,
        **kw,
    )


def test_help_lists_every_command_and_flag():
    out = _run(["--help"]).stdout
    for command in ("run", "report", "bench", "ui"):
        assert command in out
    run_help = _run(["run", "--help"]).stdout
    for flag in ("--config", "--data-dir", "--tickers", "--seeds", "--router", "--jobs"):
        assert flag in run_help


def test_usage_error_exits_2():
    result = _run(["run", "--router", "nope"])
    assert result.returncode == 2 and "invalid choice" in result.stderr


@pytest.mark.parametrize("tickers", ["AAPL", "AAPL,MSFT"], ids=["one-ticker", "tickers-in-parallel"])
def test_bad_data_file_is_one_line_naming_file_row_column(tmp_path, data_dir, tickers):
    lines = (data_dir / "prices.csv").read_text().splitlines()[:80]
    fields = lines[41].split(",")
    fields[5] = "oops"  # the close of file row 42 (the header is row 1)
    lines[41] = ",".join(fields)
    (tmp_path / "prices.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "headlines.csv").write_text(
        "\n".join((data_dir / "headlines.csv").read_text().splitlines()[:20]) + "\n"
    )
    config = tmp_path / "config.yaml"
    config.write_text("data:\n  price_files: [prices.csv]\n  headline_files: [headlines.csv]\n")
    home = tmp_path / "home"
    result = _run(
        ["run", "--config", str(config), "--data-dir", str(tmp_path), "--tickers", tickers, "--jobs", "2"],
        env={"LLMOE_HOME": str(home)},
    )
    assert result.returncode == 1
    err = result.stderr.strip().splitlines()
    assert len(err) == 1, result.stderr
    assert str(tmp_path / "prices.csv") in err[0] and "row 42" in err[0] and "'close'" in err[0]
    if "," in tickers:  # each ticker refreshed in a process of its own: the error names the first ticker too
        assert err[0].startswith("llmoe run: error: AAPL: ")
        assert "refreshing 2 tickers, 2 at a time" in result.stdout and "[1/2] AAPL: FAILED" in result.stdout
    assert "Traceback" not in result.stderr
    assert not (home / "assets" / "raw_prices").exists()  # nothing written for the invalid input


def test_missing_config_file_is_a_clear_error(tmp_path):
    result = _run(["run", "--config", str(tmp_path / "missing.yaml")], env={"LLMOE_HOME": str(tmp_path)})
    assert result.returncode == 1 and "missing.yaml: config file does not exist" in result.stderr


def _fake_results():
    rows = []
    for ticker in ("AAPL", "MSFT"):
        for model, seeds in (("LLMoE", (0, 1)), ("Buy&Hold", (0,))):
            for seed in seeds:
                rows.append(
                    {
                        "ticker": ticker,
                        "model": model,
                        "seed": seed,
                        "split": "test",
                        "cost_bps": 0.0,
                        **dict.fromkeys(METRIC_NAMES, 0.1 * (seed + 1)),
                    }
                )
    return pd.DataFrame(rows)


def test_report_table_and_json(tmp_path, monkeypatch, capsys):
    import dagster as dg

    monkeypatch.setenv("LLMOE_HOME", str(tmp_path))
    assert cli.main(["report"]) == 1
    assert "no backtest results for AAPL, MSFT yet" in capsys.readouterr().err
    results = _fake_results()
    instance = cli.dagster_instance(tmp_path)  # the CLI's instance: <home>/dagster
    for ticker, part in results.groupby("ticker"):
        store_asset_value(tmp_path / "assets", ["backtest_results"], ticker, part)
        instance.report_runless_asset_event(dg.AssetMaterialization("backtest_results", partition=ticker))
    assert cli.main(["report", "--tickers", "aapl"]) == 0  # only the asked ticker, whatever its case
    only = capsys.readouterr().out
    assert "AAPL" in only and "MSFT" not in only
    assert cli.main(["report", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"results", "significance", "router_diagnostics", "walk_forward", "power", "track_record",
                           "selection", "verdict"}  # fmt: skip
    assert report["significance"] == {"AAPL": {}, "MSFT": {}}  # not materialized in this home: empty, not made up
    records = report["results"]
    llmoe = next(r for r in records if r["ticker"] == "MSFT" and r["model"] == "LLMoE")
    assert llmoe["n_seeds"] == 2
    assert llmoe["metrics"]["sharpe_ratio"]["mean"] == pytest.approx(0.15)
    assert llmoe["metrics"]["sharpe_ratio"]["std"] == pytest.approx(0.0707106781, rel=1e-6)
    assert cli.main(["report"]) == 0
    table = capsys.readouterr().out
    assert "LLMoE" in table and "Buy&Hold" in table and "AAPL" in table and "MSFT" in table
    assert "AAPL: verdict" in table and "In plain words: No significance tests yet." in table
    output = tmp_path / "out" / "research.md"
    assert cli.main(["report", "--format", "md", "--output", str(output)]) == 0
    text = output.read_text()
    assert "## AAPL" in text and "## MSFT" in text and "| LLMoE |" in text
    assert (tmp_path / "out" / "research_figures").is_dir()


def test_importing_the_package_turns_library_telemetry_off_whatever_the_entry_point():
    code = (
        "import llmoe_pipeline.definitions, os; from mlflow.telemetry.utils import is_telemetry_disabled; "
        "from mlflow.environment_variables import MLFLOW_DISABLE_TELEMETRY as off; assert off.get(); "
        "print(is_telemetry_disabled(), os.environ['VLLM_NO_USAGE_STATS'], os.environ['HF_HUB_DISABLE_TELEMETRY'])"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK", "CI", "VLLM_NO_USAGE_STATS", "HF_HUB_DISABLE_TELEMETRY")
    }
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120
    )
    assert result.stdout.split() == ["True", "1", "1"], result.stderr[-2000:]
    # A user's explicit choice is kept.
    result = subprocess.run(
        [sys.executable, "-c", "import llmoe_pipeline, os; print(os.environ['VLLM_NO_USAGE_STATS'])"],
        capture_output=True,
        text=True,
        env={**env, "VLLM_NO_USAGE_STATS": "0"},
        timeout=120,
    )
    assert result.stdout.strip() == "0"


def test_signals_prints_the_latest_or_the_last_n_per_ticker(tmp_path, monkeypatch, capsys):
    import datetime as dt

    from llmoe_pipeline.trading.signals import SIGNAL_COLUMNS, append_signals

    monkeypatch.setenv("LLMOE_HOME", str(tmp_path))
    assert cli.main(["signals"]) == 0
    assert "no signals yet" in capsys.readouterr().out
    rows = []
    for ticker, days in (("AAPL", 3), ("MSFT", 2)):
        for i in range(days):
            rows.append(
                dict.fromkeys(SIGNAL_COLUMNS)
                | {
                    "ticker": ticker,
                    "as_of": dt.date(2016, 12, 28 + i),
                    "position": i % 2,
                    "regime": "Optimistic",
                    "p_optimistic": 0.61,
                    "prob_up": 0.55 - i / 10,
                    "prob_up_std": 0.01,
                    "explanation": f"day {i}",
                    "baseline_positions": '{"MLP": 1}',
                    "trained_through": dt.date(2016, 11, 30),
                    "threshold": 0.6,
                    "model_id": "m",
                    "prompt_version": "v2",
                    "model_ids": "{}",
                    "computed_at": dt.datetime(2017, 1, 1),
                }
            )
    written = append_signals(tmp_path / "signals", pd.DataFrame(rows))
    assert len(written) == 5 and append_signals(tmp_path / "signals", pd.DataFrame(rows)) == []  # once per day
    assert cli.main(["signals", "--format", "json"]) == 0
    latest = json.loads(capsys.readouterr().out)
    assert [(s["ticker"], s["as_of"], s["position"]) for s in latest] == [
        ("AAPL", "2016-12-30", 0),
        ("MSFT", "2016-12-29", 1),
    ]
    assert {"ticker", "as_of", "position", "regime", "p_optimistic", "prob_up", "explanation"} <= set(latest[0])
    assert cli.main(["signals", "--history", "3", "--tickers", "aapl"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == 4 and table[1].split()[:3] == ["AAPL", "2016-12-28", "CASH"] and "day 2" in table[3]
