"""Router diagnostics (issue #10, section 2), pure (no Dagster): how much each router variant's score says about
the next day's direction, and what it tracks.

- `auc`: the AUC of the score and the hit rate of its label, with circular block-bootstrap intervals;
- `tables`: each variant's windows joined to the next day's direction; the Optimistic share per month; the rank
  correlation of the score with the 11 inputs of day t; the agreement between variants' labels;
- `explanations`: the keyword rule that says when an LLM's explanation contradicts its label;
- `report`: everything for one ticker (`router_diagnostics`) as tidy tables, and flat MLflow metric names;
- `markdown`: the tables as Markdown for the asset's metadata;
- `tracking`: the ticker's MLflow run (`router-diagnostics-<ticker>`), reused on re-materialization.
"""

from llmoe_pipeline.research.diagnostics.auc import Estimate, auc_and_hit_rate, auc_score, weighted_auc
from llmoe_pipeline.research.diagnostics.explanations import contradiction_table, explanation_stance
from llmoe_pipeline.research.diagnostics.report import RouterDiagnostics, mlflow_metrics, router_diagnostics
from llmoe_pipeline.research.diagnostics.tables import VariantRouting, label_agreement

__all__ = [
    "Estimate",
    "RouterDiagnostics",
    "VariantRouting",
    "auc_and_hit_rate",
    "auc_score",
    "contradiction_table",
    "explanation_stance",
    "label_agreement",
    "mlflow_metrics",
    "router_diagnostics",
    "weighted_auc",
]
