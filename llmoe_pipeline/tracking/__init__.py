"""Experiment tracking in MLflow: runs (tracker), logged models (models), provenance, secret redaction,
tag names (tags) and the sqlite store lock (store). The public names are re-exported here."""

from llmoe_pipeline.tracking.models import ModelToLog, fluent_tracking_uri
from llmoe_pipeline.tracking.provenance import data_files_hash, file_sha256, provenance_tags
from llmoe_pipeline.tracking.redaction import REDACTED, is_secret_key, redact, redact_argv, redact_text, redact_url
from llmoe_pipeline.tracking.tags import (
    ARGV_TAG,
    CODE_VERSION_TAG,
    CONFIG_HASH_TAG,
    DATA_HASH_TAG,
    GIT_COMMIT_TAG,
    GIT_DIRTY_TAG,
    IDENTITY_TAG,
    IDENTITY_TAGS,
    MODEL_TAG,
    N_SEEDS_TAG,
    PARENT_RUN_ID_TAG,
    ROLE_TAG,
    SEED_TABLE_ARTIFACT,
    SEED_TAG,
    TICKER_TAG,
    model_uri_tag,
)
from llmoe_pipeline.tracking.tracker import DEFAULT_UI_BASE_URL, ExperimentTracker

__all__ = [
    "ARGV_TAG",
    "CODE_VERSION_TAG",
    "CONFIG_HASH_TAG",
    "DATA_HASH_TAG",
    "DEFAULT_UI_BASE_URL",
    "ExperimentTracker",
    "GIT_COMMIT_TAG",
    "GIT_DIRTY_TAG",
    "IDENTITY_TAG",
    "IDENTITY_TAGS",
    "MODEL_TAG",
    "ModelToLog",
    "N_SEEDS_TAG",
    "PARENT_RUN_ID_TAG",
    "REDACTED",
    "ROLE_TAG",
    "SEED_TABLE_ARTIFACT",
    "SEED_TAG",
    "TICKER_TAG",
    "data_files_hash",
    "file_sha256",
    "fluent_tracking_uri",
    "is_secret_key",
    "model_uri_tag",
    "provenance_tags",
    "redact",
    "redact_argv",
    "redact_text",
    "redact_url",
]
