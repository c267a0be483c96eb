"""The pipeline on a cluster: PostgreSQL, a Celery broker and workers, an MLflow server, one `vllm serve`, the
Dagster webserver and daemon, started and stopped together (`llmoe-cluster up|down|run|status`, `make cluster-*`).

Every service binds 127.0.0.1 and keeps its data and log under `$LLMOE_HOME/cluster/` (`layout.ClusterLayout`).
"""
