"""A process for test_atomic_writes to SIGKILL: it writes assets in a loop and prints a line after each round.

    python -m llmoe_pipeline_tests.reliability.kill_target parquet <folder> <first_version> <last_version>
    python -m llmoe_pipeline_tests.reliability.kill_target dagster <config_file> <rounds>

`parquet` writes ASSETS files per version through `write_parquet_atomic`; `dagster` materializes
raw_prices and feature_windows for AAPL into $LLMOE_HOME/assets, `rounds` times.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from llmoe_pipeline.core.files import write_parquet_atomic

ASSETS = 3
ROWS = 200_000  # a few MB per file: each write takes long enough for kills to land inside it


def versioned_frame(version: int, asset: int) -> pd.DataFrame:
    """Content that identifies (version, asset) in every row, so a torn or mixed file cannot pass as one."""
    return pd.DataFrame(
        {
            "version": np.full(ROWS, version, dtype=np.int64),
            "asset": np.full(ROWS, asset, dtype=np.int64),
            "value": np.arange(ROWS, dtype=np.float64) * (version + 1) + asset,
        }
    )


def write_versions(folder: Path, first: int, last: int, announce: bool = False) -> None:
    for version in range(first, last + 1):
        for asset in range(ASSETS):
            write_parquet_atomic(versioned_frame(version, asset), folder / f"asset_{asset}.parquet")
        if announce:
            print(version, flush=True)


def materialize_rounds(config_file: str, rounds: int) -> None:
    """Materialize raw_prices and feature_windows for AAPL `rounds` times, with the settings loaded once from
    `config_file` (the home: $LLMOE_HOME) and the resources `build_resources` makes from them."""
    import dagster as dg

    from llmoe_pipeline.config.settings import load_settings
    from llmoe_pipeline.defs.assets.data import build_data_assets
    from llmoe_pipeline.defs.assets.features import build_feature_assets
    from llmoe_pipeline.defs.partitions import Partitions
    from llmoe_pipeline.defs.resources import build_resources

    settings = load_settings(config_file)
    partitions = Partitions.for_tickers(settings.tickers)
    raw_prices, _raw_headlines = build_data_assets(partitions)
    [feature_windows] = build_feature_assets(partitions)
    resources = {name: value for name, value in build_resources(settings).items() if name in ("protocol", "io_manager")}
    with dg.DagsterInstance.ephemeral() as instance:
        for i in range(rounds):
            result = dg.materialize(
                [raw_prices, feature_windows], resources=resources, partition_key="AAPL", instance=instance
            )
            assert result.success
            print(i, flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "parquet":
        write_versions(Path(args[0]), int(args[1]), int(args[2]), announce=True)
    elif mode == "dagster":
        materialize_rounds(args[0], int(args[1]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
