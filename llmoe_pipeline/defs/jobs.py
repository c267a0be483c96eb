"""The refresh of a ticker as four asset jobs, because a Dagster run covers one partitions definition:

1. `llmoe_job` (per ticker): data → features → router labels → LLMoE grid; the baselines;
2. `experts_job` (per ticker × regime): the LLMoE experts of one regime;
3. `evaluation_job` (per ticker): predictions → backtests → MLflow runs, the verdict, the signal;
4. `explanations_job` (per ticker): the router's one-sentence explanations (router_explanations), last, so that
   nothing of the results waits for them.

`refresh_chain_sensor` (schedules.py) starts 2 when 1 succeeds, 3 when both regimes of 2 have and 4 when 3 has; the
CLI runs the same jobs in-process (`llmoe_pipeline.app.runner`). In the UI, "Materialize all" launches a backfill.
"""

from __future__ import annotations

import dagster as dg

# Carried by the runs of the job with language-model steps (llmoe_job: router_labels). dagster.yaml limits these runs
# to one at a time in the run queue: a second one waits there, without a process, instead of starting and then
# spinning a core in its run while its router step waits for the "llm" pool's slot. The pool stays, for the runs
# without the tag (a backfill or a materialization of the asset itself from the UI).
LLM_RUN_TAG = "llmoe/llm"
EXPLANATIONS_TAG = "llmoe/explanations"  # on the router_explanations assets (defs/assets/router.py)
EXPERTS = dg.AssetSelection.key_prefixes(["expert_models"])
EXPLANATIONS = dg.AssetSelection.tag(EXPLANATIONS_TAG, "true")
DOWNSTREAM = EXPERTS.downstream() - EXPERTS - EXPLANATIONS


def build_jobs() -> list:
    """The four jobs (each job's partitioning follows from its assets)."""
    return [
        dg.define_asset_job(
            "llmoe_job",
            selection=dg.AssetSelection.all() - EXPERTS - DOWNSTREAM - EXPLANATIONS,
            description="Step 1 of a ticker's refresh: data, features, router labels, the LLMoE "
            "grid and the baselines (the experts and the evaluation follow).",
            tags={LLM_RUN_TAG: "router"},
        ),
        dg.define_asset_job(
            "experts_job", selection=EXPERTS, description="Step 2: the LLMoE experts of one ticker and regime."
        ),
        dg.define_asset_job(
            "evaluation_job",
            selection=DOWNSTREAM,
            description="Step 3: predictions, backtests, plots, MLflow runs, the verdict and the signal of one ticker.",
        ),
        dg.define_asset_job(
            "explanations_job",
            selection=EXPLANATIONS,
            description="Step 4, last: the router's one-sentence explanations of one ticker's windows "
            "(router.explain_splits), off the critical path of the results.",
            tags={LLM_RUN_TAG: "router"},
        ),
    ]
