"""Stores asset values under the home: DataFrames as Parquet, model sets as safetensors, the rest as JSON.

One file per asset partition, written to a temp path and renamed, so a killed run never leaves a
half-written asset behind. Layout: <base_dir>/<asset key path>/<partition or __all__>.<parquet|safetensors|json>.
Nothing is unpickled: a file planted under the home cannot run code. Every path is checked to stay inside
its base (partition keys come from config and data files).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from llmoe_pipeline.io import write_parquet_atomic, write_text_atomic
from llmoe_pipeline.paths import resolve_inside

KINDS = ("parquet", "safetensors", "json")


def asset_file(base_dir: str | Path, key_path: list[str], partition: str | None, kind: str) -> Path:
    """The file of one asset partition; a key or partition that would leave `base_dir` ('../x', '/x') is refused."""
    name = (partition or "__all__").replace("|", "__")
    return resolve_inside(base_dir, Path(*key_path, f"{name}.{kind}"), "the assets folder")


def store_asset_value(base_dir: str | Path, key: list[str], partition: str | None, value: Any) -> Path:
    """Write the value in its format, then remove the partition's files of other formats (an older version)."""
    path = _write_value(base_dir, key, partition, value)
    for kind in KINDS:
        other = asset_file(base_dir, key, partition, kind)
        if other != path:
            other.unlink(missing_ok=True)
    return path


def _write_value(base_dir: str | Path, key: list[str], partition: str | None, value: Any) -> Path:
    from llmoe_pipeline.models.experts import LLMoESearch
    from llmoe_pipeline.models.model_set import ModelSet
    from llmoe_pipeline.models.store import save_value

    if isinstance(value, pd.DataFrame):
        return write_parquet_atomic(value, asset_file(base_dir, key, partition, "parquet"))
    if isinstance(value, ModelSet):
        return save_value(value, asset_file(base_dir, key, partition, "safetensors"))
    if isinstance(value, LLMoESearch):
        return save_value(value, asset_file(base_dir, key, partition, "json"))
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"asset {'/'.join(key)}: cannot store a {type(value).__name__} ({exc}); return a "
            "DataFrame, a ModelSet or JSON-able values"
        ) from None
    return write_text_atomic(text, asset_file(base_dir, key, partition, "json"))


def load_asset_value(base_dir: str | Path, key: list[str], partition: str | None) -> Any:
    """Read a stored asset value (the IO manager's reader, also usable outside Dagster)."""
    from llmoe_pipeline.models.model_set import ModelSet
    from llmoe_pipeline.models.serialization import SEARCH_FORMAT, ModelFileError, llmoe_search_from_json
    from llmoe_pipeline.models.store import load_value

    for kind in KINDS:
        path = asset_file(base_dir, key, partition, kind)
        if not path.exists():
            continue
        if kind == "parquet":
            try:
                return pd.read_parquet(path)
            except Exception as exc:
                raise ValueError(
                    f"{path}: stored asset is not readable Parquet ({exc}); re-materialize {'/'.join(key)}"
                ) from None
        if kind == "safetensors":
            try:
                return load_value(ModelSet, path)
            except ModelFileError as exc:
                raise ValueError(f"{exc}; re-materialize {'/'.join(key)}") from None
        try:
            text = path.read_text(encoding="utf-8")
            raw = json.loads(text)
        except ValueError:  # UnicodeDecodeError included
            raise ValueError(f"{path}: stored asset is not valid JSON; re-materialize {'/'.join(key)}") from None
        if isinstance(raw, dict) and raw.get("format") == SEARCH_FORMAT:
            try:
                return llmoe_search_from_json(text, str(path))
            except ModelFileError as exc:
                raise ValueError(str(exc)) from None
        return raw
    raise FileNotFoundError(
        f"asset {'/'.join(key)} partition {partition or '(unpartitioned)'} is not materialized "
        f"(looked for {asset_file(base_dir, key, partition, 'parquet')})"
    )


class LocalAssetIOManager(dg.ConfigurableIOManager):
    """Asset values as files under `<home>/<folder>`; a folder that would leave the home is refused."""

    home: str
    folder: str = "assets"

    @property
    def base_dir(self) -> Path:
        return resolve_inside(self.home, self.folder, "the LLMOE home folder")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        partition = context.partition_key if context.has_partition_key else None
        path = store_asset_value(self.base_dir, list(context.asset_key.path), partition, obj)
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        key = list(context.asset_key.path)
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            return {pk: load_asset_value(self.base_dir, key, pk) for pk in context.asset_partition_keys}
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return load_asset_value(self.base_dir, key, partition)
