"""Everything a run is configured with, loaded once: the protocol, the external systems, the tickers, the home.

One YAML file holds the protocol (`config.PipelineConfig`: data, split, router, experts, baselines, backtest,
seeds, window) and one section per external system (`router_backend`, `mlflow`, `schedule`, `fetch`, ...). Precedence:
defaults < the file < explicit overrides (command-line flags), everywhere. The Dagster definitions, the CLI and
the tests build one `Settings` and pass it on; nothing reads the file or the environment again later.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from llmoe_pipeline.catalog import HIDDEN_STATES_NEED_TRANSFORMERS, variant
from llmoe_pipeline.config.protocol import PipelineConfig
from llmoe_pipeline.config.section import ConfigSection
from llmoe_pipeline.connectors.config import FetchConfig
from llmoe_pipeline.core.paths import llmoe_home
from llmoe_pipeline.data import TICKER_PATTERN, normalize_ticker
from llmoe_pipeline.data.reader import MAX_TICKER_CHARS, list_tickers
from llmoe_pipeline.router.backends.config import RouterBackendConfig

CONFIG_ENV = "LLMOE_CONFIG"  # the YAML file the Dagster code location loads
TICKERS_ENV = "LLMOE_TICKERS"  # "AAPL,MSFT" or "all"
DATA_DIR_OVERRIDE_ENV = "LLMOE_DATA_DIR_OVERRIDE"  # `llmoe ui --data-dir` for its code location: wins over the file
RESOURCE_SECTIONS = ("router_backend", "mlflow", "schedule", "storage", "executor", "fetch")


class ConfigError(ValueError):
    """A config file or flag is invalid; the message names the file (or flag) and the key."""


class MLflowConfig(ConfigSection):
    """MLflow tracking: a server URL or a database URI; empty = sqlite under the home."""

    tracking_uri: str = ""
    experiment_name: str = Field("llmoe", min_length=1)
    artifact_location: str = ""  # empty: <home>/mlartifacts (ignored by a server with --serve-artifacts)
    ui_base_url: str = "http://127.0.0.1:5000"  # where links in the Dagster UI point
    research_runs: bool = True  # one parent per model and a child per seed on every refresh (off for live nights)


class ScheduleConfig(ConfigSection):
    """The nightly refresh and the data-file sensor."""

    cron: str = "0 2 * * 1-5"  # 02:00 on weekdays, after the US close has settled
    timezone: str = "America/New_York"
    enabled: bool = True
    data_sensor_enabled: bool = False


class StorageConfig(ConfigSection):
    """Where steps hand each other values, and the router label cache. Empty: under the home (one machine). On a
    cluster (README "Running on a cluster"), storage every worker reaches, whatever its own home."""

    # fsspec/universal-pathlib URL for assets, trained models and result files: s3://bucket/llmoe, gs://…, or
    # file:///mnt/shared/llmoe on a shared mount.
    shared_url: str = ""
    # postgresql://user@host:port/db; the password comes from PGPASSFILE or PGPASSWORD, never from this file.
    label_cache_url: str = ""

    @field_validator("shared_url")
    @classmethod
    def _a_url(cls, value: str) -> str:
        if value and "://" not in value:
            raise ValueError(
                f"shared_url must be a URL such as s3://bucket/llmoe or file:///mnt/shared (got {value!r})"
            )
        return value

    @field_validator("label_cache_url")
    @classmethod
    def _postgres_without_password(cls, value: str) -> str:
        if not value:
            return value
        parsed = urlsplit(value)
        if parsed.scheme not in ("postgresql", "postgres"):
            raise ValueError("label_cache_url must be a postgresql:// URL (empty: SQLite under the home)")
        if parsed.password:
            raise ValueError("label_cache_url must not carry a password: put it in PGPASSFILE or PGPASSWORD")
        return value


class ExecutorConfig(ConfigSection):
    """How a run's steps execute: in the run's process, or as Celery tasks on workers (dagster-celery)."""

    kind: Literal["in_process", "celery"] = "in_process"
    # The NAME of the environment variable holding the broker URL (it carries the broker's password).
    broker_url_env: str = "LLMOE_CELERY_BROKER_URL"
    backend: str = "rpc://"  # Celery's result backend
    # The Dagster pool the language-model steps claim (dagster.yaml: one slot: each run Dagster launches takes
    # every core, and one model at a time fits any machine). `llmoe run`'s own ticker processes use none: it sizes
    # them itself (one core each), and a waiting step would spin a core.
    llm_pool: str | None = "llm"


class Settings(ConfigSection):
    protocol: PipelineConfig = Field(default_factory=PipelineConfig)
    router_backend: RouterBackendConfig = Field(default_factory=RouterBackendConfig)
    mlflow: MLflowConfig = Field(default_factory=MLflowConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    fetch: FetchConfig = Field(default_factory=FetchConfig)  # `llmoe fetch` and the nightly fetch (off: no providers)
    tickers: tuple[str, ...] = ("AAPL", "MSFT")
    home: Path = Field(default_factory=llmoe_home)
    config_file: str | None = None  # where the values came from (shown in the UI and MLflow)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """The YAML mapping of a config file, or a ConfigError that names the file."""
    file = Path(path)
    if file.is_dir():
        raise ConfigError(
            f"{file}: is a folder, not a config file (pass a YAML file such as llmoe_pipeline/configs/paper.yaml)"
        )
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{file}: config file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read the config file ({exc})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{file}: invalid YAML{where}: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: the config file must be a YAML mapping of sections, got {type(raw).__name__}")
    return raw


def _validation_message(source: str, exc: ValidationError, prefix: str = "") -> str:
    """One line: the source, then each invalid key (dotted path) and why."""
    problems = []
    for err in exc.errors():
        key = ".".join(str(p) for p in (prefix, *err["loc"]) if p != "")
        problems.append(
            f"{key or '(top level)'}: {err['msg']}"
            + (f" (got {err['input']!r})" if err["type"] != "missing" and not isinstance(err["input"], dict) else "")
        )
    return f"{source}: " + "; ".join(problems)


def _validated(model: type[BaseModel], values: dict, source: str, prefix: str = ""):
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(_validation_message(source, exc, prefix)) from None


def load_settings(
    config_file: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    tickers: str | list[str] | None = None,
    seeds: int | None = None,
    router_backend: str | None = None,
    home: str | os.PathLike | None = None,
) -> Settings:
    """Defaults < config file < these overrides. Raises ConfigError naming the file or flag and the key."""
    raw = read_config_file(config_file) if config_file else {}
    source = str(config_file) if config_file else "default config"
    sections = {name: raw.pop(name, None) or {} for name in RESOURCE_SECTIONS}
    for name, value in sections.items():
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: section '{name}' must be a mapping")
    if data_dir is not None:
        folder = Path(data_dir).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"--data-dir {data_dir}: not a folder")
        raw["data"] = {**(raw.get("data") or {}), "data_dir": str(folder.resolve())}
    if seeds is not None:
        if seeds < 1:
            raise ConfigError(f"--seeds {seeds}: the number of seeds must be at least 1")
        raw["seeds"] = list(range(seeds))
    if router_backend is not None:
        sections["router_backend"] = {**sections["router_backend"], "backend": router_backend}
    home_dir = Path(home).expanduser().resolve() if home else llmoe_home()
    if not (raw.get("data") or {}).get("updates_dir"):  # fetched days live under this run's home by default
        raw["data"] = {**(raw.get("data") or {}), "updates_dir": str(home_dir / "updates")}
    protocol = _validated(PipelineConfig, raw, source)
    backend = _validated(RouterBackendConfig, sections["router_backend"], source, "router_backend")
    settings = Settings(
        protocol=_variants_for_backend(protocol, backend, source),
        router_backend=backend,
        mlflow=_validated(MLflowConfig, sections["mlflow"], source, "mlflow"),
        schedule=_validated(ScheduleConfig, sections["schedule"], source, "schedule"),
        storage=_validated(StorageConfig, sections["storage"], source, "storage"),
        executor=_validated(ExecutorConfig, sections["executor"], source, "executor"),
        fetch=_validated(FetchConfig, sections["fetch"], source, "fetch"),
        tickers=tuple(
            resolve_tickers(
                tickers, protocol, source=f"{source}: data.tickers" if tickers is None else f"--tickers {tickers!r}"
            )
        ),
        home=home_dir,
        config_file=str(Path(config_file).resolve()) if config_file else None,
    )
    return settings


def _variants_for_backend(protocol: PipelineConfig, backend: RouterBackendConfig, source: str) -> PipelineConfig:
    """The variants the router backend can run. `llm_probe` reads hidden states only the transformers backend gives:
    with backend vllm or openai it is a ConfigError where the config lists it, and left out of the default variants
    (and soft routing) where it does not. A backend left unset is chosen at run time (vllm on a GPU): the labelling
    step says so there."""
    if backend.backend not in ("vllm", "openai"):
        return protocol
    router = protocol.router
    hidden = [name for name in router.variants if variant(name).reads_hidden_states]
    if not hidden:
        return protocol
    if "variants" in router.model_fields_set:
        raise ConfigError(f"{source}: router.variants: {HIDDEN_STATES_NEED_TRANSFORMERS}")
    kept = {
        "variants": [v for v in router.variants if v not in hidden],
        "soft_routing": [v for v in router.soft_routing if v not in hidden],
    }
    return protocol.model_copy(update={"router": router.model_copy(update=kept)})


def settings_from_env() -> Settings:
    """What `dagster dev` and the daemon load: $LLMOE_CONFIG, $LLMOE_TICKERS and $LLMOE_HOME (and the data folder
    `llmoe ui --data-dir` was given). $LLMOE_DATA_DIR is only the default data folder, below the file's."""
    return load_settings(
        os.environ.get(CONFIG_ENV) or None,
        tickers=os.environ.get(TICKERS_ENV) or None,
        data_dir=os.environ.get(DATA_DIR_OVERRIDE_ENV) or None,
    )


def available_tickers(protocol: PipelineConfig) -> list[str]:
    """Every ticker in the configured price files (reads only the ticker column). A missing, truncated or corrupt
    file, a folder or a file without a ticker column is a `DataValidationError` naming the path."""

    found: set[str] = set()
    for path in protocol.data.price_paths():
        found.update(list_tickers(path))
    return sorted(found)


def resolve_tickers(spec: str | list[str] | None, protocol: PipelineConfig, source: str = "tickers") -> list[str]:
    """None → the config's tickers; 'all' → every ticker in the price files; 'AAPL,MSFT' → that list.

    Tickers are case-insensitive and stripped (as the loader reads them); an empty list, a duplicate or a
    name that is not `data.TICKER_PATTERN` (tickers become partition keys, hence file names) is an error.
    """
    if spec is None:
        given = list(protocol.data.tickers)
    elif isinstance(spec, str) and spec.strip().lower() == "all":
        return available_tickers(protocol)
    else:
        given = spec.split(",") if isinstance(spec, str) else list(spec)
    tickers = [normalize_ticker(t) for t in given]
    if not tickers or any(t == "" for t in tickers):
        raise ConfigError(f"{source}: give comma-separated tickers (e.g. AAPL,MSFT) or 'all'")
    duplicates = sorted({t for t in tickers if tickers.count(t) > 1})
    if duplicates:
        raise ConfigError(f"{source}: ticker(s) {duplicates} given more than once")
    bad = [t for t in tickers if not TICKER_PATTERN.fullmatch(t) or len(t) > MAX_TICKER_CHARS]
    if bad:
        raise ConfigError(
            f"{source}: invalid ticker(s) {[t[:40] for t in bad]}: a ticker is 1-{MAX_TICKER_CHARS} "
            "letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return tickers
