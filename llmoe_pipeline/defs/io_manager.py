"""Stores asset values under the home (or, on a cluster, in storage every worker can reach): DataFrames as
Parquet, model sets as safetensors, the rest as JSON.

One file per asset partition, written to a temp path and renamed (locally and on a shared mount) or put in one
request (an object store), so a killed run never leaves a half-written asset behind. Layout:
<base>/<asset key path>/<partition or __all__>.<parquet|safetensors|json>, where <base> is <home>/assets or
`<storage.shared_url>/assets` (llmoe_pipeline/core/storage.py). Nothing is unpickled: a file planted under the base
cannot run code. Every path is checked to stay inside its base (partition keys come from config and data files).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from llmoe_pipeline.core.paths import resolve_inside
from llmoe_pipeline.core.storage import LocalStore, Store, open_store

KINDS = ("parquet", "safetensors", "json")
Base = str | os.PathLike | Store  # a folder, a storage URL ('s3://…', 'file:///…') or a Store


def _key(key_path: list[str], partition: str | None, kind: str) -> str:
    name = (partition or "__all__").replace("|", "__")
    return posixpath.join(*key_path, f"{name}.{kind}")  # an absolute part stays absolute: refused by the store


def _store(base: Base) -> Store:
    return open_store(base, "the assets folder")


def asset_file(base_dir: str | Path, key_path: list[str], partition: str | None, kind: str) -> Path:
    """The file of one asset partition; a key or partition that would leave `base_dir` ('../x', '/x') is refused."""
    name = (partition or "__all__").replace("|", "__")
    return resolve_inside(base_dir, Path(*key_path, f"{name}.{kind}"), "the assets folder")


def store_asset_value(base_dir: Base, key: list[str], partition: str | None, value: Any) -> Path | str:
    """Write the value in its format, then remove the partition's objects of other formats (an older version).
    Returns the file (a folder base) or the URL (a storage URL) written."""
    store = _store(base_dir)
    kind, data = _serialize(key, value)
    written = store.write_bytes(_key(key, partition, kind), data)
    for other in KINDS:
        if other != kind:
            store.delete(_key(key, partition, other))
    return Path(written) if isinstance(store, LocalStore) else written


def _serialize(key: list[str], value: Any) -> tuple[str, bytes]:
    from llmoe_pipeline.models.experts import LLMoESearch
    from llmoe_pipeline.models.model_set import ModelSet
    from llmoe_pipeline.models.serialization import llmoe_search_to_json, model_set_to_bytes

    if isinstance(value, pd.DataFrame):
        buffer = io.BytesIO()
        value.to_parquet(buffer, engine="pyarrow", index=False)
        return "parquet", buffer.getvalue()
    if isinstance(value, ModelSet):
        return "safetensors", model_set_to_bytes(value)
    if isinstance(value, LLMoESearch):
        return "json", llmoe_search_to_json(value).encode("utf-8")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"asset {'/'.join(key)}: cannot store a {type(value).__name__} ({exc}); return a "
            "DataFrame, a ModelSet or JSON-able values"
        ) from None
    return "json", text.encode("utf-8")


def asset_stored(base_dir: Base, key: list[str], partition: str | None) -> bool:
    """Whether a value of this asset partition is stored (in any of the IO manager's formats)."""
    store = _store(base_dir)
    return any(store.exists(_key(key, partition, kind)) for kind in KINDS)


def load_asset_value(base_dir: Base, key: list[str], partition: str | None) -> Any:
    """Read a stored asset value (the IO manager's reader, also usable outside Dagster)."""
    from llmoe_pipeline.models.model_set import ModelSet
    from llmoe_pipeline.models.serialization import SEARCH_FORMATS, ModelFileError, llmoe_search_from_json
    from llmoe_pipeline.models.store import load_value

    store = _store(base_dir)
    for kind in KINDS:
        name = _key(key, partition, kind)
        if not store.exists(name):
            continue
        where = store.describe(name)
        if kind == "parquet":
            try:
                return pd.read_parquet(io.BytesIO(store.read_bytes(name)))
            except Exception as exc:
                raise ValueError(
                    f"{where}: stored asset is not readable Parquet ({exc}); re-materialize {'/'.join(key)}"
                ) from None
        if kind == "safetensors":
            try:
                with store.local_file(name) as path:
                    return load_value(ModelSet, path)
            except ModelFileError as exc:
                raise ValueError(f"{str(exc).replace(str(path), where)}; re-materialize {'/'.join(key)}") from None
        try:
            text = store.read_bytes(name).decode("utf-8")
            raw = json.loads(text)
        except ValueError:  # UnicodeDecodeError included
            raise ValueError(f"{where}: stored asset is not valid JSON; re-materialize {'/'.join(key)}") from None
        if isinstance(raw, dict) and raw.get("format") in SEARCH_FORMATS:
            try:
                return llmoe_search_from_json(text, where)
            except ModelFileError as exc:
                raise ValueError(str(exc)) from None
        return raw
    raise FileNotFoundError(
        f"asset {'/'.join(key)} partition {partition or '(unpartitioned)'} is not materialized "
        f"(looked for {store.describe(_key(key, partition, 'parquet'))})"
    )


class LocalAssetIOManager(dg.ConfigurableIOManager):
    """Asset values as files under `<home>/<folder>` (a folder that would leave the home is refused), or, when
    `storage_url` is set (a cluster: `storage.shared_url`), under `<storage_url>/<folder>`, which every worker
    reaches whatever its own home."""

    home: str
    folder: str = "assets"
    storage_url: str = ""

    @property
    def base_dir(self) -> Path | Store:
        if self.storage_url:
            return open_store(self.storage_url).child(self.folder)
        return resolve_inside(self.home, self.folder, "the LLMOE home folder")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        partition = context.partition_key if context.has_partition_key else None
        path = store_asset_value(self.base_dir, list(context.asset_key.path), partition, obj)
        context.add_output_metadata(
            {"path": dg.MetadataValue.path(str(path)) if isinstance(path, Path) else dg.MetadataValue.url(path)}
        )

    def load_input(self, context: dg.InputContext) -> Any:
        key = list(context.asset_key.path)
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            return {pk: load_asset_value(self.base_dir, key, pk) for pk in context.asset_partition_keys}
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return load_asset_value(self.base_dir, key, partition)
