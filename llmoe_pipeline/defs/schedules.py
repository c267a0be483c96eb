"""The nightly refresh: one run per ticker partition of `llmoe_job`, and a sensor on the data files.

What a refresh recomputes is decided by the assets themselves: the router labels only windows that are
not in its content-addressed cache, the models are retrained only when their training data, config or
code changed (a fingerprint), and the backtest reruns (it is cheap and sees the new days).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Optional

import dagster as dg
from pydantic import BaseModel, ConfigDict

from llmoe_pipeline.config import load_yaml_section
from llmoe_pipeline.defs.partitions import TICKERS, ticker_partitions
from llmoe_pipeline.defs.settings import config_file_from_env, load_pipeline_config


class ScheduleSettings(BaseModel):
    """The `schedule:` section of the YAML config."""

    model_config = ConfigDict(extra="forbid")
    cron: str = "0 2 * * 1-5"  # 02:00 on weekdays, after the US close has settled
    timezone: str = "America/New_York"
    enabled: bool = True
    data_sensor_enabled: bool = False


def schedule_settings(config_file: Optional[str] = None) -> ScheduleSettings:
    return ScheduleSettings.model_validate(load_yaml_section(config_file, "schedule"))


llmoe_job = dg.define_asset_job(
    "llmoe_job",
    selection=dg.AssetSelection.all(),
    partitions_def=ticker_partitions,
    description="Everything for one ticker: data → features → router labels → models → backtest (+ MLflow).",
)


def _refresh_requests(reason: str, stamp: str) -> list[dg.RunRequest]:
    return [dg.RunRequest(run_key=f"{reason}-{stamp}-{t}", partition_key=t, tags={"llmoe/trigger": reason})
            for t in TICKERS]


def build_schedule_and_sensor(config_file: Optional[str] = None):
    settings = schedule_settings(config_file)

    @dg.schedule(
        name="nightly_refresh_schedule",
        job=llmoe_job,
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING if settings.enabled else dg.DefaultScheduleStatus.STOPPED,
        description="Nightly: re-read the data, label only new windows, retrain what changed, re-backtest.",
    )
    def nightly_refresh_schedule(context: dg.ScheduleEvaluationContext):
        stamp = (context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M")
        return _refresh_requests("nightly", stamp)

    @dg.sensor(
        name="data_files_sensor",
        job=llmoe_job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING if settings.data_sensor_enabled else dg.DefaultSensorStatus.STOPPED,
        description="Refresh every ticker when a price or headline file changes (size or modification time).",
    )
    def data_files_sensor(context: dg.SensorEvaluationContext):
        cfg = load_pipeline_config(config_file)
        files = cfg.data.paths(cfg.data.price_files + cfg.data.headline_files)
        state = {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.exists()}
        cursor = json.dumps(state, sort_keys=True)
        if context.cursor == cursor:
            return dg.SkipReason("data files unchanged")
        first_look = context.cursor is None
        context.update_cursor(cursor)
        if first_look:
            return dg.SkipReason("recorded the current state of the data files")
        return _refresh_requests("data-changed", hashlib.sha256(cursor.encode()).hexdigest()[:12])

    return nightly_refresh_schedule, data_files_sensor


nightly_refresh_schedule, data_files_sensor = build_schedule_and_sensor(config_file_from_env())
