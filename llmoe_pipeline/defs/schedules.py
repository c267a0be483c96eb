"""Automation: the nightly refresh, the data-file sensor, and the sensor that chains a refresh's four jobs.

What a refresh recomputes is decided by the assets themselves: the router labels only windows not in its
content-addressed cache, the models are retrained only when their training data, config or code changed (a
fingerprint), and the evaluation reruns (it is cheap and sees the new days).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence

import dagster as dg

from llmoe_pipeline.catalog import REFRESH_CHAIN_TAG
from llmoe_pipeline.config.settings import Settings
from llmoe_pipeline.core.hashing import sha256_text
from llmoe_pipeline.defs.partitions import expert_partition_key, split_expert_partition_key
from llmoe_pipeline.router.regimes import REGIMES

TRIGGER_TAG = "llmoe/trigger"  # nightly, data-changed, ...
PARTITION_TAG = "dagster/partition"


def refresh_requests(tickers: Sequence[str], reason: str, stamp: str) -> list[dg.RunRequest]:
    """One `llmoe_job` run per ticker; the chain sensor starts the rest of each ticker's refresh."""
    return [
        dg.RunRequest(
            run_key=f"{reason}-{stamp}-{t}", job_name="llmoe_job", partition_key=t, tags={TRIGGER_TAG: reason}
        )
        for t in tickers
    ]


def next_step_requests(run: dg.DagsterRun, instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """After a successful step of a refresh: the experts of both regimes, or (once both regimes are done) the
    evaluation, then the explanations; nothing after the explanations."""
    chain = run.tags.get(REFRESH_CHAIN_TAG, run.run_id)
    tags = {**{k: v for k, v in run.tags.items() if k.startswith("llmoe/")}, REFRESH_CHAIN_TAG: chain}
    if run.job_name == "llmoe_job":
        ticker = run.tags[PARTITION_TAG]
        return [
            dg.RunRequest(
                run_key=f"{chain}-experts-{r.lower()}",
                job_name="experts_job",
                partition_key=str(expert_partition_key(ticker, r)),
                tags=tags,
            )
            for r in REGIMES
        ]
    if run.job_name == "experts_job":
        ticker, _ = split_expert_partition_key(run.tags[PARTITION_TAG])
        done = instance.get_runs(
            filters=dg.RunsFilter(
                job_name="experts_job", tags={REFRESH_CHAIN_TAG: chain}, statuses=[dg.DagsterRunStatus.SUCCESS]
            )
        )
        regimes = {split_expert_partition_key(r.tags[PARTITION_TAG])[1] for r in done}
        if regimes >= set(REGIMES):
            return [
                dg.RunRequest(run_key=f"{chain}-evaluation", job_name="evaluation_job", partition_key=ticker, tags=tags)
            ]
    if run.job_name == "evaluation_job":
        ticker = run.tags[PARTITION_TAG]
        return [
            dg.RunRequest(run_key=f"{chain}-explanations", job_name="explanations_job", partition_key=ticker, tags=tags)
        ]
    return []


def build_automation(settings: Settings, jobs: list) -> tuple[list, list]:
    """(schedules, sensors) of the code location."""
    by_name = {job.name: job for job in jobs}
    schedule_cfg, tickers = settings.schedule, list(settings.tickers)

    @dg.schedule(
        name="nightly_refresh_schedule",
        job=by_name["llmoe_job"],
        cron_schedule=schedule_cfg.cron,
        execution_timezone=schedule_cfg.timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING if schedule_cfg.enabled else dg.DefaultScheduleStatus.STOPPED,
        description="Nightly: fetch the new day (fetched_data, when the config's fetch: names providers), re-read "
        "the data, label only new windows, retrain what changed, re-evaluate "
        "(each ticker's llmoe_job; refresh_chain_sensor runs the rest).",
    )
    def nightly_refresh_schedule(context: dg.ScheduleEvaluationContext):
        stamp = (context.scheduled_execution_time or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M")
        return refresh_requests(tickers, "nightly", stamp)

    @dg.sensor(
        name="data_files_sensor",
        job=by_name["llmoe_job"],
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.RUNNING
        if schedule_cfg.data_sensor_enabled
        else dg.DefaultSensorStatus.STOPPED,
        description="Refresh every ticker when a price or headline file changes (size or modification time).",
    )
    def data_files_sensor(context: dg.SensorEvaluationContext):
        files = settings.protocol.data.price_paths() + settings.protocol.data.headline_paths()
        state = {str(p): [p.stat().st_size, p.stat().st_mtime_ns] for p in files if p.exists()}
        cursor = json.dumps(state, sort_keys=True)
        if context.cursor == cursor:
            return dg.SkipReason("data files unchanged")
        first_look = context.cursor is None
        context.update_cursor(cursor)
        if first_look:
            return dg.SkipReason("recorded the current state of the data files")
        return refresh_requests(tickers, "data-changed", sha256_text(cursor)[:12])

    @dg.run_status_sensor(
        name="refresh_chain_sensor",
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[by_name["llmoe_job"], by_name["experts_job"], by_name["evaluation_job"]],
        request_jobs=[by_name["experts_job"], by_name["evaluation_job"], by_name["explanations_job"]],
        minimum_interval_seconds=5,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Continues a ticker's refresh: llmoe_job → experts_job (each regime) → evaluation_job → "
        "explanations_job.",
    )
    def refresh_chain_sensor(context: dg.RunStatusSensorContext):
        requests = next_step_requests(context.dagster_run, context.instance)
        return requests or dg.SkipReason(f"nothing follows run {context.dagster_run.run_id} yet")

    return [nightly_refresh_schedule], [data_files_sensor, refresh_chain_sensor]
