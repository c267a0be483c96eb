"""Crash safety: a process writing assets is SIGKILLed at random points; every asset file left on disk is a
complete Parquet file (the old or the new version), temp files are never taken for assets, and the next
run completes with the same result as a run that was never interrupted."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow
import pytest
import yaml

from llmoe_pipeline.core.files import STALE_TEMP_SECONDS, write_bytes_atomic
from llmoe_pipeline.defs.io_manager import load_asset_value
from llmoe_pipeline_tests.reliability import kill_target
from llmoe_pipeline_tests.reliability.kill_target import ASSETS, versioned_frame, write_versions

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSET_NAMES = [f"asset_{a}.parquet" for a in range(ASSETS)]
DAGSTER_ASSETS = ["raw_prices", "feature_windows"]  # what kill_target's dagster mode materializes


def start_target(args: list[str], tmp_path: Path, **env) -> subprocess.Popen:
    log = open(tmp_path / "kill_target.log", "ab")  # noqa: SIM115 - the child keeps it; not a pipe: a full pipe would stall the writer
    return subprocess.Popen(
        [sys.executable, "-m", "llmoe_pipeline_tests.reliability.kill_target", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        start_new_session=True,
        env={**os.environ, "TMPDIR": str(tmp_path), **env},
    )


def kill_after_first_round(proc: subprocess.Popen, delay: float, tmp_path: Path) -> None:
    """Wait until the target finished one round of writes, let it run `delay` more seconds, SIGKILL it."""
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline() if ready else ""
    if not line:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"kill target never finished a round:\n{(tmp_path / 'kill_target.log').read_text()[-3000:]}")
    if delay:  # stdout stays open meanwhile: closing it would end the target with a broken pipe, not the kill
        select.select([], [], [], delay)
    os.killpg(proc.pid, signal.SIGKILL)  # its own session: only the process this test started
    proc.stdout.close()
    assert proc.wait(timeout=30) == -signal.SIGKILL, "the target ended before the kill: the test killed nothing"


def version_of_complete_file(path: Path) -> int:
    """The version a file holds; fails unless it is one whole file written by `versioned_frame`."""
    frame = pd.read_parquet(path)
    version, asset = int(frame["version"].iloc[0]), int(frame["asset"].iloc[0])
    assert path.name == f"asset_{asset}.parquet"
    pd.testing.assert_frame_equal(frame, versioned_frame(version, asset))
    return version


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix == ".tmp"]


def test_the_completeness_check_catches_a_torn_file(tmp_path):
    path = tmp_path / "asset_0.parquet"
    versioned_frame(1, 0).to_parquet(path, index=False)
    assert version_of_complete_file(path) == 1
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # what a non-atomic writer leaves when killed
    with pytest.raises(pyarrow.ArrowInvalid):
        version_of_complete_file(path)


def test_next_write_removes_stale_temp_files_of_that_file_only(tmp_path):
    target = tmp_path / "asset_0.parquet"
    hour_ago = time.time() - 3600
    names = {
        "stale": ".asset_0.parquet.k1ll3d_0.tmp",  # left by a writer killed an hour ago
        "fresh": ".asset_0.parquet.writing.tmp",  # a concurrent writer's, a minute old: must survive
        "other_file": ".asset_1.parquet.k1ll3d_1.tmp",  # another asset's: not this write's business
        "sibling": ".asset_0.parquet.bak.k1ll3d_2.tmp",  # 'asset_0.parquet.bak' is another file too
        "not_temp": ".asset_0.parquet.k1ll3d_3.keep",
    }
    for key, name in names.items():
        (tmp_path / name).write_bytes(b"partial")
        age = time.time() - 60 if key == "fresh" else hour_ago
        os.utime(tmp_path / name, (age, age))
    write_bytes_atomic(b"new", target)
    assert target.read_bytes() == b"new"
    survivors = [name for key, name in names.items() if key != "stale"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, *survivors])
    # Just under the age limit a temp file may still be written: it survives too.
    almost = time.time() - STALE_TEMP_SECONDS + 30
    os.utime(tmp_path / names["fresh"], (almost, almost))
    write_bytes_atomic(b"newer", target)
    assert (tmp_path / names["fresh"]).exists() and target.read_bytes() == b"newer"


def test_sigkilled_parquet_writer_leaves_only_complete_files_and_the_next_run_matches(tmp_path):
    rng = random.Random(20250109)
    folder = tmp_path / "assets"
    folder.mkdir()
    first, temps_before, kills_inside_a_write = 1, set(), 0
    # At least 4 kills; more (up to 8) until one has landed inside a write, the window this test is about.
    # About 1 kill in 4 lands between two writes, so 8 misses in a row are very unlikely (~(1/4)^8).
    for kills in range(1, 9):
        proc = start_target(["parquet", str(folder), str(first), str(10**9)], tmp_path)
        kill_after_first_round(proc, rng.uniform(0.0, 0.4), tmp_path)
        assert sorted(p.name for p in folder.glob("*.parquet")) == ASSET_NAMES  # temp files never match
        versions = [version_of_complete_file(folder / name) for name in ASSET_NAMES]
        # Written in the order asset 0, 1, 2 for each version: a later asset is at most one version behind.
        assert versions[0] >= versions[1] >= versions[2] >= max(versions[0] - 1, first)
        temps = set(temp_files(folder))
        assert all(p.name.startswith(".asset_") for p in temps)
        kills_inside_a_write += bool(temps - temps_before)  # a new temp file: the kill hit a write
        temps_before, first = temps, versions[0] + 1  # the next run writes new versions over these
        if kills >= 4 and kills_inside_a_write:
            break
    assert kills_inside_a_write >= 1

    finished = subprocess.run(
        [sys.executable, "-m", "llmoe_pipeline_tests.reliability.kill_target", "parquet", str(folder), "1", "2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 0, finished.stderr
    reference = tmp_path / "uninterrupted"
    reference.mkdir()
    write_versions(reference, 1, 2)
    for name in ASSET_NAMES:
        assert (folder / name).read_bytes() == (reference / name).read_bytes()
        assert version_of_complete_file(folder / name) == 2


def test_sigkilled_materialization_leaves_complete_assets_and_the_next_run_matches(tmp_path, data_dir, monkeypatch):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        yaml.safe_dump({"data": {"data_dir": str(data_dir), "price_files": ["prices.csv"], "tickers": ["AAPL"]}})
    )
    reference_home = tmp_path / "reference"
    monkeypatch.setenv("LLMOE_HOME", str(reference_home))
    kill_target.materialize_rounds(str(config_file), 1)
    reference = {key: load_asset_value(reference_home / "assets", [key], "AAPL") for key in DAGSTER_ASSETS}
    assert len(reference["feature_windows"]) == 2769 - 34 + 1  # + the live window (the last day, no target yet)

    home, rng = tmp_path / "home", random.Random(7)
    for _ in range(2):
        proc = start_target(["dagster", str(config_file), str(10**9)], tmp_path, LLMOE_HOME=str(home))
        kill_after_first_round(proc, rng.uniform(0.0, 1.0), tmp_path)
        stored = sorted(str(p.relative_to(home)) for p in home.rglob("*.parquet"))
        assert stored == ["assets/feature_windows/AAPL.parquet", "assets/raw_prices/AAPL.parquet"]
        assert all(p.name.startswith(".AAPL.parquet.") for p in temp_files(home))
        for key in DAGSTER_ASSETS:  # what the IO manager hands downstream: the complete asset, never a temp file
            pd.testing.assert_frame_equal(load_asset_value(home / "assets", [key], "AAPL"), reference[key])

    monkeypatch.setenv("LLMOE_HOME", str(home))
    kill_target.materialize_rounds(str(config_file), 1)
    for key in DAGSTER_ASSETS:
        name = f"assets/{key}/AAPL.parquet"
        assert (home / name).read_bytes() == (reference_home / name).read_bytes()
