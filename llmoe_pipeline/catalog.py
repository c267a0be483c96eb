"""The project's names, in one light module (no torch, no Dagster): what the models, router variants and regimes
are called, which variants read the future, and the constants every stage shares.

Router variants (ablations): which regime assignment an LLMoE model's experts are trained and routed with. Each
variant is its own LLMoE model: the same experts, grid search and seeds; only the routing differs. A variant gives
every window a routing score (higher = Optimistic) and a rule for the threshold:
- `llm`: the language model's p_optimistic (the paper's router); the threshold quantile is searched.
- `llm_prices_only`, `llm_news_only`: the same model with the headlines, or the price lines, left out of the
  prompt (their own prompt version, so the label cache keeps them apart); opt-in, they double the labelling.
- `momentum`: a rule without a language model: the close against its 5-day average; the quantile is searched.
- `random`: a seeded coin per window, with the Optimistic share the `llm` router's chosen threshold gives.
- `oracle`: the true next-day direction. It reads the future: an upper bound and a sanity check, never a result.
- `single`: routing off, one expert of the same architecture on all days (no score; `models.training`).
- `llm_probe`: an L2 logistic regression fitted on the training windows' pooled final hidden state of the pass
  that scores `llm`'s p_optimistic (read, not asked: `router.probe`); its P(up) is the score, searched threshold.
- `features_probe`: the same regression on the 55 price features alone: llm_probe's gain over it is the text's.

Adding a variant is one `RouterVariant` here plus its scores (`router.variants.RULE_SCORES` for a rule, `probe`
for a regression fitted on the training windows).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

LLMOE = "LLMoE"  # display name of the paper's model; its variants are "LLMoE[<variant>]"
BUY_AND_HOLD = "Buy&Hold"  # the benchmark: its daily strategy return is the asset's return
TRADING_DAYS_PER_YEAR = 252  # annualization of every daily metric and test
REGIMES = ("Optimistic", "Pessimistic")  # the label words the language model scores; REGIMES[0] is p_optimistic's
REFRESH_CHAIN_TAG = "llmoe/refresh"  # run tag shared by the runs of one ticker's refresh (the first run's id)

Threshold = Literal["searched", "llm_share", "fixed"]
ProbeInputs = Literal["hidden_states", "price_features"]


@dataclass(frozen=True)
class RouterVariant:
    name: str
    description: str
    threshold: Threshold = "searched"
    fixed_threshold: float | None = None  # with threshold "fixed"
    uses_future: bool = False  # reads the target: an upper bound, marked in every table, plot and MLflow run
    prompt_parts: tuple[str, ...] | None = None  # LLM variants: which parts of the prompt the model sees
    experts: bool = True  # False for `single`: one network, no regimes
    probe: ProbeInputs | None = None  # a logistic regression fitted on the training windows' hidden states/features

    @property
    def display_name(self) -> str:
        return LLMOE if self.name == "llm" else f"{LLMOE}[{self.name}]"

    @property
    def is_llm(self) -> bool:
        return self.prompt_parts is not None

    @property
    def reads_hidden_states(self) -> bool:
        """Needs the final hidden states of `llm`'s scoring pass (stored beside its labels: transformers only)."""
        return self.probe == "hidden_states"

    @property
    def routing_asset(self) -> str:
        """The asset holding every window's score: the LLM's labels, or a cheap rule's scores."""
        if self.name == "llm":
            return "router_labels"
        return f"router_labels_{self.name.removeprefix('llm_')}" if self.is_llm else f"routing_scores_{self.name}"


VARIANTS: tuple[RouterVariant, ...] = (
    RouterVariant("llm", "the language model's p_optimistic (the paper's router)", prompt_parts=("prices", "news")),
    RouterVariant("momentum", "close vs its 5-day average, above the training windows' quantile"),
    RouterVariant("random", "a seeded coin per window with the llm router's Optimistic share", threshold="llm_share"),
    RouterVariant("single", "routing off: one expert of the same architecture on all days", experts=False),
    RouterVariant(
        "oracle",
        "the true next-day direction: uses the future, an upper bound only",
        threshold="fixed",
        fixed_threshold=0.5,
        uses_future=True,
    ),
    RouterVariant("llm_prices_only", "the language model without the headlines", prompt_parts=("prices",)),
    RouterVariant("llm_news_only", "the language model without the price lines", prompt_parts=("news",)),
    RouterVariant(
        "llm_probe",
        "an L2 logistic regression on the mean final hidden state of the language model's scoring pass, fitted on "
        "the training windows (strength by time-ordered cross-validation)",
        probe="hidden_states",
    ),
    RouterVariant(
        "features_probe",
        "the same logistic regression on the 55 price features alone (what llm_probe adds over it is the text's)",
        probe="price_features",
    ),
)
VARIANT_NAMES = tuple(v.name for v in VARIANTS)
# The cheap ones, in `make run` (llm_probe reads the hidden states the labelling pass computes anyway; the vllm and
# openai backends cannot give them: their default drops it, `config.settings`).
DEFAULT_VARIANTS = ("llm", "momentum", "random", "single", "oracle", "llm_probe", "features_probe")


# Why `llm_probe` refuses the vllm and openai backends (a config error at load, a failure where the backend is chosen
# at run time: backend unset on a GPU).
HIDDEN_STATES_NEED_TRANSFORMERS = (
    "llm_probe reads the final hidden state of the pass that scores p_optimistic; the vllm/openai backends return "
    "only log-probabilities: set router_backend.backend: transformers or drop llm_probe"
)


def variant(name: str) -> RouterVariant:
    for v in VARIANTS:
        if v.name == name:
            return v
    raise ValueError(f"unknown router variant {name!r} (expected one of {list(VARIANT_NAMES)})")


def uses_future(display_name: str) -> bool:
    return any(v.uses_future and v.display_name == display_name for v in VARIANTS)


# (router, reference): the test AUC the first adds over the second, on the same days (`router_diagnostics`). The
# probe on the language model's hidden states against the same regression on the prices alone: what the text adds.
AUC_GAINS = (("llm_probe", "features_probe"),)


def is_llmoe(model: str) -> bool:
    """An LLMoE model (the paper's router, one of its variants, or their soft routing), by display name."""
    return str(model).startswith(LLMOE)


SOFT_SUFFIX = "-soft"  # `LLMoE-soft`: the same experts, each day's P(up) weighted by the router's score


def soft_name(display_name: str) -> str:
    return f"{display_name}{SOFT_SUFFIX}"
