"""The experiment protocol, typed, with the paper's values as defaults (Liu & Lo, arXiv 2501.09636).

Pure pydantic (no Dagster). Every value is range-checked when the config is built, so a bad value fails at load
with its key named, not minutes later. `settings.load_settings` builds it from a YAML file and flags;
`config_hash()` identifies an experiment in MLflow.
"""

from __future__ import annotations

import datetime as dt
import glob
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from llmoe_pipeline.catalog import DEFAULT_VARIANTS, TRADING_DAYS_PER_YEAR, VARIANT_NAMES, variant
from llmoe_pipeline.config.section import ConfigSection
from llmoe_pipeline.core.hashing import sha256_json
from llmoe_pipeline.core.paths import default_data_dir, default_updates_dir
from llmoe_pipeline.data.dates import check_timezone
from llmoe_pipeline.data.quality import QualityConfig
from llmoe_pipeline.router.prompt import DEFAULT_MAX_HEADLINE_CHARS, DEFAULT_MAX_NEWS_CHARS

FileList = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]
PositiveInt = Annotated[int, Field(ge=1)]


class DataConfig(ConfigSection):
    data_dir: str = Field(default_factory=lambda: str(default_data_dir()))
    # Relative to data_dir (or absolute); glob patterns allowed ("prices_*.csv"), files concatenated in name order.
    # A plain name must exist; a pattern may match nothing as long as the list as a whole matches a file, so a
    # folder with just prices.csv and headlines.csv works with these defaults.
    price_files: FileList = ["prices*.csv", "prices*.parquet"]
    headline_files: FileList = ["headlines*.csv", "headlines*.parquet"]
    # Where `llmoe fetch` writes new dated files; the patterns above are read here too, so the data folder may stay
    # read-only. Missing or empty: nothing more is read.
    updates_dir: str = Field(default_factory=lambda: str(default_updates_dir()))
    tickers: list[str] = Field(["AAPL", "MSFT"], min_length=1)
    # Dates and naive timestamps in the files are the exchange's calendar dates; a timestamp with a UTC offset
    # (Parquet datetime with a time zone, or "2016-01-04T00:00:00+09:00") takes its date in this zone.
    exchange_timezone: str = "America/New_York"

    @field_validator("exchange_timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        return check_timezone(name)

    def paths(self, names: list[str]) -> list[Path]:
        """The files `names` stand for: plain names as given (checked when read), patterns expanded, sorted; a
        relative pattern is expanded in the data folder, then in the updates folder."""
        base, updates = Path(self.data_dir), Path(self.updates_dir)
        out: list[Path] = []
        for name in names:
            given = Path(name)
            if glob.has_magic(str(name)):
                patterns = [given] if given.is_absolute() else [base / given, updates / given]
                for pattern in patterns:
                    out += [Path(m) for m in sorted(glob.glob(str(pattern))) if Path(m).is_file()]
            else:
                out.append(given if given.is_absolute() else base / given)
        return list(dict.fromkeys(out))

    def price_paths(self) -> list[Path]:
        return self._existing(self.price_files, "price_files")

    def headline_paths(self) -> list[Path]:
        return self._existing(self.headline_files, "headline_files")

    def _existing(self, names: list[str], key: str) -> list[Path]:
        paths = self.paths(names)
        if not paths:
            raise FileNotFoundError(f"data.{key} {names} match no file in {self.data_dir}")
        return paths


class SplitConfig(ConfigSection):
    """The paper's split; validation is the last `validation_fraction` of the training dates."""

    train_start: dt.date = dt.date(2006, 12, 7)
    train_end: dt.date = dt.date(2014, 12, 2)
    test_start: dt.date = dt.date(2014, 12, 3)
    # None: open-ended, so that days appended by a nightly refresh become test days.
    test_end: dt.date | None = dt.date(2016, 11, 29)
    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> SplitConfig:
        if self.train_end < self.train_start:
            raise ValueError(f"split: train_end {self.train_end} is before train_start {self.train_start}")
        if self.test_start <= self.train_end:
            raise ValueError(f"split: test_start {self.test_start} must come after train_end {self.train_end}")
        if self.test_end is not None and self.test_end < self.test_start:
            raise ValueError(f"split: test_end {self.test_end} is before test_start {self.test_start}")
        return self


class RouterProtocolConfig(ConfigSection):
    """Protocol parts of routing (the model and backend are the router resource's config)."""

    # Threshold on p_optimistic = this quantile of the *training* windows' p_optimistic (0.5: median),
    # because tiny models are biased towards one label. Test windows never influence it. This labels
    # router_labels (its balance check, metadata, plots); LLMoE routes with the quantile its grid search
    # picks from experts.threshold_quantile_grid.
    threshold_quantile: float = Field(0.5, gt=0.0, lt=1.0)
    # Splits whose windows also get a generated one-sentence explanation (generation is ~2x slower
    # than scoring on CPU, so by default only the test period is explained).
    explain_splits: list[Literal["train", "validation", "test", "none", "live"]] = ["test", "live"]
    # The router variants (ablations) trained and compared, each its own LLMoE model (llmoe_pipeline/catalog.py).
    # `llm` is the paper's router and always included; llm_prices_only / llm_news_only relabel every window.
    variants: list[str] = list(DEFAULT_VARIANTS)
    # Variants whose experts are also evaluated with soft routing (`LLMoE-soft`: both experts' P(up) weighted by
    # the router's score; no extra training). Those not in `variants` are ignored.
    soft_routing: list[str] = ["llm", "llm_probe"]
    random_seed: int = 0  # the `random` router's coins
    # Headline budget of each window's prompt (characters; ≈ 4 per token). Prompt length is the labelling
    # time on a CPU: 400 keeps a news-rich AAPL window near 350 tokens.
    max_news_chars: int = Field(DEFAULT_MAX_NEWS_CHARS, ge=200)
    max_headline_chars: int = Field(DEFAULT_MAX_HEADLINE_CHARS, ge=40)

    @field_validator("variants")
    @classmethod
    def _llm_first(cls, variants: list[str]) -> list[str]:
        unknown = [v for v in variants if v not in VARIANT_NAMES]
        if unknown:
            raise ValueError(f"unknown router variants {unknown} (expected some of {list(VARIANT_NAMES)})")
        if "llm" not in variants or len(set(variants)) != len(variants):
            raise ValueError(f"variants must be distinct and include 'llm' (the paper's router), got {variants}")
        return variants

    @field_validator("soft_routing")
    @classmethod
    def _soft_routable(cls, names: list[str]) -> list[str]:
        wrong = [n for n in names if n not in VARIANT_NAMES or not variant(n).experts or variant(n).uses_future]
        if wrong:
            raise ValueError(f"soft_routing: {wrong} are not router variants with two experts that use no future")
        return names

    @model_validator(mode="after")
    def _headline_fits(self):
        if self.max_headline_chars + 16 > self.max_news_chars:
            raise ValueError(
                f"router: max_news_chars {self.max_news_chars} must exceed max_headline_chars "
                f"{self.max_headline_chars} by at least 16 (one headline and its day line)"
            )
        return self


Fraction = Annotated[float, Field(ge=0.0, lt=1.0)]
LearningRate = Annotated[float, Field(gt=0.0, le=1.0)]
HiddenSizes = tuple[PositiveInt, PositiveInt, PositiveInt]


class TrainingConfig(ConfigSection):
    max_epochs: PositiveInt = 200
    patience: PositiveInt = 20
    batch_size: PositiveInt = 64
    search_seed: int = Field(0, ge=0)  # seed of every fit during the hyperparameter search


class ExpertConfig(TrainingConfig):
    """LLMoE experts: grid search on the validation tail, then one model per seed."""

    hidden_sizes_grid: list[HiddenSizes] = Field([(64, 32, 16), (128, 64, 32)], min_length=1)
    dropout_grid: list[Fraction] = Field([0.1, 0.3], min_length=1)
    learning_rate_grid: list[LearningRate] = Field([1e-3, 3e-3], min_length=1)
    # The router threshold is part of the LLMoE grid: these quantiles of the training windows' p_optimistic.
    threshold_quantile_grid: list[Annotated[float, Field(gt=0.0, lt=1.0)]] = Field([0.4, 0.5, 0.6], min_length=1)


class BaselineConfig(TrainingConfig):
    """Baselines: random search on the validation tail (n_trials each), then one model per seed."""

    n_trials: PositiveInt = 6


class BacktestConfig(ConfigSection):
    cost_bps: float = Field(0.0, ge=0.0, allow_inf_nan=False)  # the paper trades without costs
    extra_cost_bps: list[Annotated[float, Field(ge=0.0, allow_inf_nan=False)]] = [10.0]  # also reported
    periods_per_year: PositiveInt = TRADING_DAYS_PER_YEAR
    risk_free: float = Field(0.0, gt=-1.0, allow_inf_nan=False)  # per period


class RetrainConfig(ConfigSection):
    """When the models are retrained as new days arrive (trading/retraining.py). `never`: the fixed split."""

    every: Literal["never", "month", "quarter", "year"] = "never"
    window: Literal["expanding", "sliding"] = "expanding"
    length_years: int = Field(5, ge=1)  # the sliding window's length


class WalkForwardConfig(ConfigSection):
    """Expanding-window walk-forward: every model refitted before each test year (research/walkforward.py)."""

    enabled: bool = False  # `make research` turns it on (configs/research.yaml); it is 6× the training
    first_year: int = Field(2011, ge=1990)
    last_year: int = Field(2016, ge=1990)
    workers: int = Field(2, ge=1)  # folds trained in parallel processes (one per core); results do not depend on it

    @model_validator(mode="after")
    def _ordered(self) -> WalkForwardConfig:
        if self.last_year < self.first_year:
            raise ValueError(f"walk_forward: last_year {self.last_year} is before first_year {self.first_year}")
        return self


class SignificanceConfig(ConfigSection):
    """What the verdict says the tests could have detected (research/significance/power.py, selection.py)."""

    power_gap: float = Field(1.0, gt=0.0, allow_inf_nan=False)  # annualised Sharpe gap whose power is reported
    target_power: float = Field(0.8, gt=0.05, lt=1.0)  # the minimum detectable effect is detected this often
    power_simulations: int = Field(1000, ge=100)  # planted-gap resamples per comparison
    pbo_blocks: int = Field(16, ge=2, le=20, multiple_of=2)  # CSCV blocks of the test days: C(16, 8) = 12,870 halves


class PipelineConfig(ConfigSection):
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    router: RouterProtocolConfig = Field(default_factory=RouterProtocolConfig)
    experts: ExpertConfig = Field(default_factory=ExpertConfig)
    baselines: BaselineConfig = Field(default_factory=BaselineConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    walk_forward: WalkForwardConfig = Field(default_factory=WalkForwardConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    # Data-quality asset checks on raw_prices / raw_headlines: thresholds and severities (data/quality.py).
    quality: QualityConfig = Field(default_factory=QualityConfig)
    significance: SignificanceConfig = Field(default_factory=SignificanceConfig)
    # Sections are built per instance (default_factory), so DataConfig reads $LLMOE_DATA_DIR when the
    # config is created, not when this module is imported.
    seeds: list[Annotated[int, Field(ge=0)]] = Field(list(range(10)), min_length=1)
    window: int = Field(5, ge=1, le=30)

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return seeds

    def config_hash(self) -> str:
        """Hash of everything that changes results (the data *location* is excluded, file hashes are logged)."""
        # The quality checks only gate a run: their thresholds change no result.
        payload = self.model_dump(mode="json", exclude={"data": {"data_dir", "updates_dir"}, "quality": True})
        return sha256_json(payload)[:16]
