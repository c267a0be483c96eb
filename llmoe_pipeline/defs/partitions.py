"""Partitions: every asset per ticker; the LLMoE experts per ticker and regime.

Between the two, Dagster maps partitions by the shared ticker dimension: an expert partition reads its
ticker's upstream assets, and a ticker's evaluation reads the experts of every regime (a dict by key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg

from llmoe_pipeline.router.regimes import REGIMES, regime_from_key, regime_key

TICKER = "ticker"
REGIME = "regime"


@dataclass(frozen=True)
class Partitions:
    tickers: dg.StaticPartitionsDefinition
    experts: dg.MultiPartitionsDefinition  # ticker × regime

    @classmethod
    def for_tickers(cls, tickers: Sequence[str]) -> Partitions:
        by_ticker = dg.StaticPartitionsDefinition(list(tickers))
        regimes = dg.StaticPartitionsDefinition([regime_key(r) for r in REGIMES])
        return cls(by_ticker, dg.MultiPartitionsDefinition({TICKER: by_ticker, REGIME: regimes}))


def expert_partition_key(ticker: str, regime: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({TICKER: ticker, REGIME: regime_key(regime)})


def split_expert_partition_key(key: str | dg.MultiPartitionKey) -> tuple[str, str]:
    """(ticker, regime) of an expert partition key such as 'optimistic|AAPL'."""
    if not isinstance(key, dg.MultiPartitionKey):
        regime_part, ticker = str(key).split("|", 1)  # dimensions are ordered by name: regime, ticker
        key = dg.MultiPartitionKey({REGIME: regime_part, TICKER: ticker})
    return key.keys_by_dimension[TICKER], regime_from_key(key.keys_by_dimension[REGIME])
