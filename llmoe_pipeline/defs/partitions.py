"""Ticker partitions: every asset is materialized per ticker; experts also per regime (inside the asset)."""

import os

import dagster as dg

from llmoe_pipeline.defs.settings import config_file_from_env, load_pipeline_config, resolve_tickers

TICKERS = resolve_tickers(os.environ.get("LLMOE_TICKERS"), load_pipeline_config(config_file_from_env()))
ticker_partitions = dg.StaticPartitionsDefinition(TICKERS)
