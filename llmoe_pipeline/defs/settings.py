"""What the code location is configured with: the YAML config file and the tickers, from the environment.

`LLMOE_CONFIG` (a YAML file: the protocol sections of `PipelineConfig` plus the `router_backend`,
`mlflow` and `schedule` sections) and `LLMOE_TICKERS` ("AAPL,MSFT", or "all" for every ticker in the
price files) are read once when the definitions load, because Dagster partitions are fixed at load time.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from llmoe_pipeline.config import PipelineConfig
from llmoe_pipeline.data import TICKER_PATTERN


def config_file_from_env() -> str | None:
    path = os.environ.get("LLMOE_CONFIG")
    if path and not Path(path).is_file():
        raise FileNotFoundError(f"LLMOE_CONFIG points to {path}, which is not a file")
    return path or None


def load_pipeline_config(config_file: str | None = None, data_dir: str | None = None,
                         seeds: int | None = None, tickers: list[str] | None = None) -> PipelineConfig:
    """The protocol: defaults ← YAML file ← explicit overrides (data dir, number of seeds, tickers)."""
    cfg = PipelineConfig.from_yaml(config_file) if config_file else PipelineConfig()
    data = cfg.data.model_copy(update={k: v for k, v in {"data_dir": data_dir, "tickers": tickers}.items() if v})
    update: dict = {"data": data}
    if seeds:
        update["seeds"] = list(range(seeds))
    return cfg.model_copy(update=update)


def available_tickers(cfg: PipelineConfig) -> list[str]:
    """Every ticker in the configured price files (reads only the ticker column)."""
    found: set[str] = set()
    for path in cfg.data.paths(cfg.data.price_files):
        if path.suffix.lower() in (".parquet", ".pq"):
            found.update(pd.read_parquet(path, columns=["ticker"])["ticker"].astype(str))
        elif path.exists():
            found.update(pd.read_csv(path, usecols=["ticker"], dtype=str)["ticker"])
    return sorted(found)


def resolve_tickers(spec: str | list[str] | None, cfg: PipelineConfig) -> list[str]:
    """'all' → every ticker in the data; 'AAPL,MSFT' → that list; None → the config's tickers.

    Every ticker must match `data.TICKER_PATTERN`: tickers become partition keys, hence file names.
    """
    if spec is None or spec == []:
        tickers = list(cfg.data.tickers)
    elif isinstance(spec, str) and spec.strip().lower() == "all":
        tickers = available_tickers(cfg)
    else:
        tickers = [t.strip().upper() for t in (spec.split(",") if isinstance(spec, str) else spec) if t.strip()]
        if not tickers:
            raise ValueError("no tickers given")
    bad = [t for t in tickers if not TICKER_PATTERN.fullmatch(t)]
    if bad:
        raise ValueError(f"invalid ticker(s) {bad}: a ticker is letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit")
    return tickers
