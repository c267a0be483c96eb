"""What the verdict's power and selection statistics add to the `significance` step, on a home's stored results.

    python -m llmoe_pipeline.bench.verdict [--config FILE] [--tickers AAPL,MSFT]   (LLMOE_HOME: the home to read)

Times, per ticker, the step's tables as they are computed now (tests, power, track record, selection) against the
tests alone (power replaced by an empty result, no track record or selection), on the same stored daily returns.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import cast
from unittest import mock

from llmoe_pipeline.catalog import LLMOE, variant
from llmoe_pipeline.config.settings import load_settings
from llmoe_pipeline.defs.assets.research import selection_tables, significance_tables
from llmoe_pipeline.defs.results import StoredResults
from llmoe_pipeline.models import LLMoESearch
from llmoe_pipeline.research.significance import compare, power


def _tests_only(daily, cfg):
    real = power.sharpe_diff_power

    def no_power(a, b, test, **kwargs) -> power.PowerResult:  # the undefined result: moments only, no simulation
        return real(a, b, replace(test, reason="not simulated"), **kwargs)

    with mock.patch.object(compare, "sharpe_diff_power", no_power):
        return compare.pairwise_sharpe_tests(daily, cost_bps=cfg.backtest.cost_bps), compare.model_set_tests(daily)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config")
    parser.add_argument("--tickers")
    args = parser.parse_args(argv)
    settings = load_settings(args.config, tickers=args.tickers.split(",") if args.tickers else None)
    stored, cfg = StoredResults.of(settings), settings.protocol
    fair = [variant(v) for v in cfg.router.variants if variant(v).experts and not variant(v).uses_future]
    for ticker in settings.tickers:
        daily = stored.latest("daily_returns", ticker)
        searches: dict[str, LLMoESearch] = {
            v.display_name: cast(LLMoESearch, stored.latest(["llmoe_search", v.name], ticker)) for v in fair
        }
        started = time.perf_counter()
        _tests_only(daily, cfg)
        tests = time.perf_counter() - started
        started = time.perf_counter()
        significance_tables(daily, cfg, "test")
        if LLMOE in searches:
            selection_tables(daily, searches, cfg)
        full = time.perf_counter() - started
        print(f"{ticker}: tests alone {tests:.1f} s, with power, track record and selection {full:.1f} s "
              f"(+{full - tests:.1f} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
