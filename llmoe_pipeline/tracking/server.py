"""The environment this project starts MLflow's tracking server with (`llmoe ui`'s `mlflow ui`, the cluster's
`mlflow server`)."""

# MLflow 3 starts server-side job execution by default: a Huey job runner and its consumers for GenAI jobs (scorers,
# prompt optimization) this project never submits. Measured with `mlflow ui` on a 2-core AMD EPYC: 16 processes and
# 3.5 GB RSS after 45 s with it, 7 processes and 1.3 GB without.
MLFLOW_SERVER_ENV = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
