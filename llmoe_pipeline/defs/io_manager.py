"""Stores asset values under the LLMOE home: DataFrames as Parquet (pyarrow), anything else pickled.

One file per asset partition, written to a temp path and renamed, so a killed run never leaves a
half-written asset behind. Layout: <base_dir>/<asset key path>/<partition or __all__>.<parquet|pkl>.
Every path is checked to stay inside its base (partition keys come from config and data files).
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from llmoe_pipeline.io import atomic_path, write_parquet_atomic
from llmoe_pipeline.paths import resolve_inside, resolve_under_home


def asset_file(base_dir: str | Path, key_path: list[str], partition: str | None, kind: str) -> Path:
    """The file of one asset partition; a key or partition that would leave `base_dir` ('../x', '/x') is refused."""
    name = (partition or "__all__").replace("|", "__")
    return resolve_inside(base_dir, Path(*key_path, f"{name}.{kind}"), "the assets folder")


class LocalAssetIOManager(dg.ConfigurableIOManager):
    """Parquet for DataFrames, pickle for models; under `<LLMOE_HOME>/assets` by default.

    `base_dir` is relative to the LLMOE home (an absolute path must lie inside it): the pipeline writes
    nowhere else.
    """

    base_dir: str = ""

    def _base(self) -> Path:
        return resolve_under_home(self.base_dir or "assets")

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        partition = context.partition_key if context.has_partition_key else None
        key = list(context.asset_key.path)
        if isinstance(obj, pd.DataFrame):
            path = write_parquet_atomic(obj, asset_file(self._base(), key, partition, "parquet"))
        else:
            path = asset_file(self._base(), key, partition, "pkl")
            with atomic_path(path) as tmp:
                tmp.write_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> Any:
        key = list(context.asset_key.path)
        if context.has_asset_partitions and len(context.asset_partition_keys) > 1:
            return {pk: self._load(key, pk) for pk in context.asset_partition_keys}
        partition = context.asset_partition_key if context.has_asset_partitions else None
        return self._load(key, partition)

    def _load(self, key: list[str], partition: str | None) -> Any:
        return load_asset_value(self._base(), key, partition)


def load_asset_value(base_dir: str | Path, key: list[str], partition: str | None) -> Any:
    """Read a stored asset value (also used by `llmoe report` outside Dagster)."""
    parquet = asset_file(base_dir, key, partition, "parquet")
    if parquet.exists():
        return pd.read_parquet(parquet)
    pkl = asset_file(base_dir, key, partition, "pkl")
    if pkl.exists():
        return pickle.loads(pkl.read_bytes())
    raise FileNotFoundError(f"asset {'/'.join(key)} partition {partition or '(unpartitioned)'} is not materialized "
                            f"(looked for {parquet})")
