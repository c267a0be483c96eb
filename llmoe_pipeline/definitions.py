"""The Dagster code location: `dagster dev` (workspace.yaml) and `llmoe run` both load their definitions here.

Asset graph (left to right), each asset a thin wrapper over one pure module:
fetched_data (connectors/; only when the config names providers) → raw_prices, raw_headlines (data/) →
feature_windows (features.py) → router_labels (router/) and the other router variants' scores (routing.py) →
llmoe_search/<variant> (models/experts.py) → expert_models/<variant> per ticker × regime; llmoe_single;
baseline_models/<name> (models/registry.py) → predictions (evaluation.py) → backtest_results, daily_returns
(backtest.py, metrics.py, plots.py) → mlflow_runs (tracking/). router_labels → router_explanations (router/labels.py:
the one-sentence explanations, upstream of nothing; `explanations_job` runs them after the results).
"""

from __future__ import annotations

import dagster as dg

from llmoe_pipeline.catalog import RouterVariant, variant
from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.config.settings import Settings, settings_from_env
from llmoe_pipeline.defs.assets.data import build_data_assets
from llmoe_pipeline.defs.assets.diagnostics import build_diagnostics_assets
from llmoe_pipeline.defs.assets.evaluation import build_evaluation_assets
from llmoe_pipeline.defs.assets.features import build_feature_assets
from llmoe_pipeline.defs.assets.fetch import FetchResource, build_fetch_assets
from llmoe_pipeline.defs.assets.models import build_model_assets
from llmoe_pipeline.defs.assets.research import build_research_assets
from llmoe_pipeline.defs.assets.router import build_router_assets
from llmoe_pipeline.defs.assets.signals import build_signal_assets
from llmoe_pipeline.defs.assets.tracking import build_tracking_assets
from llmoe_pipeline.defs.jobs import build_jobs
from llmoe_pipeline.defs.partitions import Partitions
from llmoe_pipeline.defs.resources import build_resources
from llmoe_pipeline.defs.schedules import build_automation


def build_assets(
    partitions: Partitions,
    variants: list[RouterVariant],
    protocol: PipelineConfig,
    llm_pool: str | None = "llm",
    fetching: bool = False,
) -> list:
    return [
        *build_fetch_assets(partitions, fetching),
        *build_data_assets(partitions, after_fetch=fetching),
        *build_feature_assets(partitions),
        *build_router_assets(partitions, variants, llm_pool),
        *build_diagnostics_assets(partitions, variants),
        *build_model_assets(partitions, variants),
        *build_evaluation_assets(partitions, variants),
        *build_tracking_assets(partitions, variants),
        *build_research_assets(partitions, variants, protocol),
        *build_signal_assets(partitions, variants),
    ]


def build_definitions(settings: Settings, resources: dict | None = None) -> dg.Definitions:
    """Every Dagster object, built from one `Settings` (loaded once by the caller); `resources` replace the
    default resources of the same names (tests swap the language model for a fake one)."""
    partitions = Partitions.for_tickers(settings.tickers)
    jobs = build_jobs()
    schedules, sensors = build_automation(settings, jobs)
    variants = [variant(name) for name in settings.protocol.router.variants]
    return dg.Definitions(
        assets=build_assets(
            partitions, variants, settings.protocol, settings.executor.llm_pool, fetching=settings.fetch.enabled
        ),
        jobs=jobs,
        schedules=schedules,
        sensors=sensors,
        resources={
            **build_resources(settings),
            **(
                {"fetch": FetchResource(fetch=settings.fetch.model_dump(mode="json"))} if settings.fetch.enabled else {}
            ),
            **(resources or {}),
        },
        executor=build_executor(settings),
    )


def build_executor(settings: Settings):
    """In-process (one machine, `llmoe run`, `dagster dev`) or, with `executor.kind: celery` (a cluster), each step a
    Celery task on the workers (`llmoe_pipeline/cluster/celery_app.py`). `execute_in_process` is in-process anyway."""
    if settings.executor.kind == "celery":
        from llmoe_pipeline.cluster.celery_config import celery_executor_for

        return celery_executor_for(settings.executor)
    return dg.in_process_executor


def __getattr__(name: str):
    """`defs`, built on first access from $LLMOE_CONFIG / $LLMOE_TICKERS / $LLMOE_HOME (what `dagster dev` loads),
    so importing this module for `build_definitions` reads no environment."""
    if name == "defs":
        value = build_definitions(settings_from_env())
        globals()["defs"] = value
        return value
    raise AttributeError(name)
