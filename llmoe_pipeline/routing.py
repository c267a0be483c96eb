"""Router variants: which regime assignment an LLMoE model's experts are trained and routed with.

Each variant is its own LLMoE model (same experts, grid search and seeds; only the routing differs), its own
assets (`llmoe_search/<name>`, `expert_models/<name>`) and its own MLflow parent. `llm` is the paper's router.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmoe_pipeline.models.registry import LLMOE


@dataclass(frozen=True)
class RouterVariant:
    name: str
    routing_asset: str  # the asset holding every window's routing score (`p_optimistic`) and split
    description: str
    uses_future: bool = False  # an upper bound that reads the target: never a result

    @property
    def display_name(self) -> str:
        return LLMOE if self.name == "llm" else f"{LLMOE}[{self.name}]"


VARIANTS: tuple[RouterVariant, ...] = (
    RouterVariant("llm", "router_labels", "the language model's p_optimistic (the paper's router)"),
)
