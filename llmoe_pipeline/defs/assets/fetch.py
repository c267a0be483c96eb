"""`fetched_data`: the nightly fetch of one ticker (llmoe_pipeline/connectors/ does the work), upstream of
`raw_prices`, so the schedule's `llmoe_job` brings the new day in before it reads the data. Only in the graph when
the config names providers (`fetch.prices` / `fetch.headlines`).

Its checks do not block: a due session no provider has is a failed ERROR check naming ticker, session and
providers, and the refresh still runs on what did arrive (the next night fills the gap).
"""

import dagster as dg

from llmoe_pipeline.connectors.config import FetchConfig
from llmoe_pipeline.defs.checks import OWNERS
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.resources import ProtocolResource

FETCHED = "fetched_data"


class FetchResource(dg.ConfigurableResource):
    """The `fetch:` section: providers, base URLs, the NAMES of the key variables, the retry budget."""

    fetch: dict

    @property
    def config(self) -> FetchConfig:
        return FetchConfig.model_validate(self.fetch)


def _check(name: str, problems: list, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=name,
        asset_key=FETCHED,
        passed=not problems,
        severity=severity,
        description="; ".join(map(str, problems))[:2000] or "ok",
        metadata={"problems": dg.MetadataValue.json([str(p) for p in problems])},
    )


def build_fetch_assets(partitions: Partitions, enabled: bool) -> list:
    if not enabled:
        return []

    @dg.asset(
        name=FETCHED,
        partitions_def=partitions.tickers,
        group_name="data",
        kinds={"python"},
        owners=OWNERS,
        check_specs=[
            dg.AssetCheckSpec("sessions_complete", asset=FETCHED, description="every due session has a bar"),
            dg.AssetCheckSpec(
                "history_unchanged", asset=FETCHED, description="the provider's adjusted closes match the stored ones"
            ),
            dg.AssetCheckSpec("headlines_fetched", asset=FETCHED, description="every headline provider answered"),
        ],
    )
    def fetched_data(
        context: dg.AssetExecutionContext, protocol: ProtocolResource, fetch: FetchResource
    ) -> dg.MaterializeResult:
        """New sessions and headlines of the ticker as dated files in data.updates_dir (nothing is rewritten)."""
        from llmoe_pipeline.connectors.fetch import fetch as run_fetch
        from llmoe_pipeline.connectors.providers import build_providers

        data, config = protocol.config.data, fetch.config
        prices, headlines = build_providers(config, data.exchange_timezone)
        report = run_fetch(data, config, [context.partition_key], prices, headlines)
        for line in report.lines():
            context.log.info(line)
        error, warn = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN
        return dg.MaterializeResult(
            metadata={
                "written": dg.MetadataValue.json([str(p) for p in report.written]),
                "notes": dg.MetadataValue.json(report.notes),
            },
            check_results=[
                _check("sessions_complete", report.missing, error),
                _check("history_unchanged", report.revisions, error),
                _check("headlines_fetched", report.failures, warn),
            ],
        )

    return [fetched_data]
