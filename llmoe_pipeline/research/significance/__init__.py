"""Significance of strategy comparisons (issue #10, section 3). Pure: no Dagster, no MLflow.

- `ledoit_wolf`: equal Sharpe ratios of two series on the same days (Ledoit & Wolf 2008), bootstrap and HAC;
- `sharpe`: the Probabilistic Sharpe Ratio (Bailey & Lopez de Prado 2012);
- `multiple`: SPA / StepM against a benchmark and the Model Confidence Set, over `arch.bootstrap`;
- `compare`: the tables the pipeline reports, from the `daily` frame of `evaluation.evaluate`.
"""

from llmoe_pipeline.research.significance.compare import (
    SignificanceTables,
    model_set_tests,
    pairwise_sharpe_tests,
    seed_averaged_returns,
)
from llmoe_pipeline.research.significance.ledoit_wolf import SharpeDiffTest, sharpe_diff_bootstrap, sharpe_diff_hac
from llmoe_pipeline.research.significance.multiple import MCSResult, SPAResult, model_confidence_set, spa_test
from llmoe_pipeline.research.significance.sharpe import PSRResult, probabilistic_sharpe_ratio

__all__ = [
    "MCSResult",
    "PSRResult",
    "SPAResult",
    "SharpeDiffTest",
    "SignificanceTables",
    "model_confidence_set",
    "model_set_tests",
    "pairwise_sharpe_tests",
    "probabilistic_sharpe_ratio",
    "seed_averaged_returns",
    "sharpe_diff_bootstrap",
    "sharpe_diff_hac",
    "spa_test",
]
