"""Progress lines: always to the Dagster event log, and to the `llmoe.progress` logger, which `llmoe run`
prints (it silences Dagster's own console output)."""

import logging

import dagster as dg

progress_logger = logging.getLogger("llmoe.progress")


def progress_log(context: dg.AssetExecutionContext, message: str) -> None:
    context.log.info(message)
    partition = context.partition_key if context.has_partition_key else ""
    progress_logger.info("    %s %s: %s", partition, context.op_def.name, message)
