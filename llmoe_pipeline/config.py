"""Typed configuration with the paper's protocol as defaults (Liu & Lo, arXiv 2501.09636).

Pure pydantic (no Dagster): the Dagster resources, the CLI and the tests all build a `PipelineConfig`,
from defaults, from a YAML file, or from both. `config_hash()` identifies an experiment in MLflow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Annotated, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from llmoe_pipeline.paths import default_data_dir
from llmoe_pipeline.router.prompt import DEFAULT_MAX_HEADLINE_CHARS, DEFAULT_MAX_NEWS_CHARS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Section):
    data_dir: str = Field(default_factory=lambda: str(default_data_dir()))
    # File names are relative to data_dir (or absolute). Several files are concatenated.
    price_files: list[str] = ["prices.csv", "prices_extra.csv"]
    headline_files: list[str] = ["headlines.csv", "headlines_extra.csv"]
    tickers: list[str] = ["AAPL", "MSFT"]

    def paths(self, names: list[str]) -> list[Path]:
        base = Path(self.data_dir)
        return [p if (p := Path(n)).is_absolute() else base / p for n in names]


class SplitConfig(_Section):
    """The paper's split; validation is the last `validation_fraction` of the training dates."""

    train_start: dt.date = dt.date(2006, 12, 7)
    train_end: dt.date = dt.date(2014, 12, 2)
    test_start: dt.date = dt.date(2014, 12, 3)
    # None: open-ended, so that days appended by a nightly refresh become test days.
    test_end: Optional[dt.date] = dt.date(2016, 11, 29)
    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> "SplitConfig":
        if self.train_end < self.train_start:
            raise ValueError(f"split: train_end {self.train_end} is before train_start {self.train_start}")
        if self.test_start <= self.train_end:
            raise ValueError(f"split: test_start {self.test_start} must come after train_end {self.train_end}")
        if self.test_end is not None and self.test_end < self.test_start:
            raise ValueError(f"split: test_end {self.test_end} is before test_start {self.test_start}")
        return self


class RouterProtocolConfig(_Section):
    """Protocol parts of routing (the model and backend are the router resource's config)."""

    # Threshold on p_optimistic = this quantile of the *training* windows' p_optimistic (0.5: median),
    # because tiny models are biased towards one label. Test windows never influence it. This labels
    # router_labels (its balance check, metadata, plots); LLMoE routes with the quantile its grid search
    # picks from experts.threshold_quantile_grid.
    threshold_quantile: float = Field(0.5, gt=0.0, lt=1.0)
    # Splits whose windows also get a generated one-sentence explanation (generation is ~2x slower
    # than scoring on CPU, so by default only the test period is explained).
    explain_splits: list[Literal["train", "validation", "test", "none"]] = ["test"]
    # Headline budget of each window's prompt (characters; ≈ 4 per token). Prompt length is the labelling
    # time on a CPU: 400 keeps a news-rich AAPL window near 350 tokens.
    max_news_chars: int = Field(DEFAULT_MAX_NEWS_CHARS, ge=200)
    max_headline_chars: int = Field(DEFAULT_MAX_HEADLINE_CHARS, ge=40)

    @model_validator(mode="after")
    def _headline_fits(self):
        if self.max_headline_chars + 16 > self.max_news_chars:
            raise ValueError(f"router: max_news_chars {self.max_news_chars} must exceed max_headline_chars "
                             f"{self.max_headline_chars} by at least 16 (one headline and its day line)")
        return self


class ExpertConfig(_Section):
    """LLMoE experts: grid search on the validation tail, then one model per seed."""

    hidden_sizes_grid: list[tuple[int, int, int]] = [(64, 32, 16), (128, 64, 32)]
    dropout_grid: list[float] = [0.1, 0.3]
    learning_rate_grid: list[float] = [1e-3, 3e-3]
    # The router threshold is part of the LLMoE grid: these quantiles of the training windows' p_optimistic.
    threshold_quantile_grid: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field([0.4, 0.5, 0.6], min_length=1)
    max_epochs: int = 200
    patience: int = 20
    batch_size: int = 64


class BaselineConfig(_Section):
    """Baselines: random search on the validation tail (n_trials each), then one model per seed."""

    n_trials: int = 6
    search_seed: int = 0
    max_epochs: int = 200
    patience: int = 20
    batch_size: int = 64


class BacktestConfig(_Section):
    cost_bps: float = Field(0.0, ge=0.0)  # the paper trades without costs
    extra_cost_bps: list[float] = [10.0]  # also reported
    periods_per_year: int = 252
    risk_free: float = 0.0  # per period


class PipelineConfig(_Section):
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    router: RouterProtocolConfig = Field(default_factory=RouterProtocolConfig)
    experts: ExpertConfig = Field(default_factory=ExpertConfig)
    baselines: BaselineConfig = Field(default_factory=BaselineConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    # Sections are built per instance (default_factory), so DataConfig reads $LLMOE_DATA_DIR when the
    # config is created, not when this module is imported.
    seeds: list[int] = list(range(10))
    window: int = Field(5, ge=1)

    def config_hash(self) -> str:
        """Hash of everything that changes results (the data *location* is excluded, file hashes are logged)."""
        payload = self.model_dump(mode="json", exclude={"data": {"data_dir"}})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "PipelineConfig":
        text = Path(path).read_text(encoding="utf-8")
        raw = yaml.safe_load(text) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: the config file must be a YAML mapping")
        for section in RESOURCE_SECTIONS:  # read by the Dagster resources, not part of the protocol
            raw.pop(section, None)
        return cls.model_validate({**raw, **overrides})


# Sections of the YAML config file that configure external systems rather than the protocol.
RESOURCE_SECTIONS = ("router_backend", "mlflow", "schedule")


def load_yaml_section(path: str | Path | None, section: str) -> dict:
    """One resource section of the YAML config file ({} when there is no file or no section)."""
    if not path:
        return {}
    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    value = raw.get(section) or {}
    if not isinstance(value, dict):
        raise ValueError(f"{path}: section '{section}' must be a mapping")
    return value
