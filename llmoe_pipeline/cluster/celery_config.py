"""The Celery settings the run's orchestrator and the workers share (dagster-celery).

Steps are acknowledged *late* (after they finish) and a worker that dies mid-step rejects them back to the queue:
RabbitMQ then hands the step to another worker as soon as the dead worker's connection closes. Each worker takes
one step at a time (prefetch 1), so a dead worker strands at most the step it was running.
"""

from __future__ import annotations

import os
from typing import Any

from llmoe_pipeline.config.settings import ExecutorConfig

CELERY_SETTINGS: dict[str, Any] = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "broker_connection_retry_on_startup": True,
    "broker_heartbeat": 30,  # a silent (partitioned) worker is dropped, and its step redelivered, within ~1 min
    "worker_cancel_long_running_tasks_on_connection_loss": True,
}


def executor_config(cfg: ExecutorConfig) -> dict[str, Any]:
    """dagster-celery's executor config: the broker URL by environment variable name (it carries a password, and
    Dagster stores run config), the result backend, and CELERY_SETTINGS."""
    return {"broker": {"env": cfg.broker_url_env}, "backend": cfg.backend, "config_source": dict(CELERY_SETTINGS)}


def celery_executor_for(cfg: ExecutorConfig):
    from dagster_celery import celery_executor

    return celery_executor.configured(executor_config(cfg), name="celery")


def worker_app_args(cfg: ExecutorConfig) -> dict[str, Any]:
    """The Celery app arguments of a worker: the same broker, backend and settings as the orchestrator's."""
    from dagster_celery.executor import CeleryExecutor

    broker = os.environ.get(cfg.broker_url_env)
    if not broker:
        raise RuntimeError(f"${cfg.broker_url_env} is not set: the worker needs the Celery broker URL")
    return CeleryExecutor.for_cli(broker=broker, backend=cfg.backend, config_source=dict(CELERY_SETTINGS)).app_args()
