"""Names of the tags and artifacts the pipeline's MLflow runs carry (namespaced `llmoe.*`, so that they never
clash with MLflow's own `mlflow.*` tags, except the two MLflow tags the UI understands)."""

PARENT_RUN_ID_TAG = "mlflow.parentRunId"  # MLflow's own tag: the UI nests children under it
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own tag: the UI shows it as the run's commit
IDENTITY_TAG = "llmoe.identity"
ROLE_TAG = "llmoe.role"  # "parent" or "seed"
TICKER_TAG = "llmoe.ticker"
MODEL_TAG = "llmoe.model"
CONFIG_HASH_TAG = "llmoe.config_hash"
CODE_VERSION_TAG = "llmoe.code_version"
DATA_HASH_TAG = "llmoe.data_hash"
SEED_TAG = "llmoe.seed"
GIT_DIRTY_TAG = "llmoe.git_dirty"
ARGV_TAG = "llmoe.argv"
N_SEEDS_TAG = "llmoe.n_seeds"
# Copied from a parent onto its children, so children can be filtered on their own.
IDENTITY_TAGS = (TICKER_TAG, MODEL_TAG, CONFIG_HASH_TAG, CODE_VERSION_TAG, DATA_HASH_TAG)

SEED_TABLE_ARTIFACT = "seed_table.csv"


def model_uri_tag(model_name: str) -> str:
    """Tag of a seed run holding the `models:/` URI of its model called `model_name`."""
    return f"llmoe.model_uri.{model_name}"
