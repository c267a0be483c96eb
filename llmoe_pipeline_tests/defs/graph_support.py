"""The whole asset graph on the e2e data slice with the fake router: fast, real Dagster, real MLflow; and the
nightly schedule's ticks as the daemon computes and evaluates them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
import yaml

from llmoe_pipeline.config.settings import Settings, load_settings
from llmoe_pipeline.definitions import build_definitions
from llmoe_pipeline_tests.e2e.support import write_config, write_slice
from llmoe_pipeline_tests.fakes import fake_router

NIGHTLY = "nightly_refresh_schedule"


def fake_definitions(settings: Settings) -> dg.Definitions:
    """The code location's definitions with the fake router in place of the language model."""
    return build_definitions(settings, resources={"llm_router": fake_router(settings.home)})


def slice_settings(root: Path, reference_dir: Path, **overrides) -> Settings:
    data = write_slice(reference_dir, root / "data")
    return load_settings(write_config(root / "config.yaml", data, **overrides), home=root / "home")


def live_config(path: Path, data_dir: Path, **sections: dict) -> Path:
    """The e2e config for nights replayed one at a time: no end to the test split (the last day is the live
    window), the LLM router only, no research runs; each of `sections` merged into its section."""
    raw = yaml.safe_load(write_config(path, data_dir, test_end=None).read_text())
    raw["router"] = {**raw.get("router", {}), "variants": ["llm"]}
    raw["mlflow"] = {**raw["mlflow"], "research_runs": False}
    for name, values in sections.items():
        raw[name] = {**raw.get(name, {}), **values}
    path.write_text(yaml.safe_dump(raw))
    return path


def schedule_ticks(defs: dg.Definitions, after: dt.datetime, before: dt.datetime) -> list[dt.datetime]:
    """The nightly schedule's execution times in (after, before), from its cron and time zone as the daemon
    computes them."""
    from dagster._utils.schedules import cron_string_iterator

    schedule = defs.resolve_schedule_def(NIGHTLY)
    ticks = []
    for tick in cron_string_iterator(after.timestamp(), schedule.cron_schedule, schedule.execution_timezone):
        if tick >= before:
            return ticks
        if tick > after:
            ticks.append(tick)
    return ticks


def tick_requests(defs: dg.Definitions, instance: dg.DagsterInstance, tick: dt.datetime) -> list[dg.RunRequest]:
    """The run requests of the nightly schedule's evaluation at `tick`."""
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
    )
    return list(defs.resolve_schedule_def(NIGHTLY).evaluate_tick(context).run_requests or [])
