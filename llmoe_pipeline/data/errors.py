"""The one error type of the data readers."""

from __future__ import annotations

import os
from collections.abc import Sequence


class DataValidationError(ValueError):
    """An input file is malformed; the message names the file, the row(s) and the column."""

    def __init__(self, path: str | os.PathLike, column: str | None, rows: Sequence[int], problem: str):
        self.path, self.column, self.rows, self.problem = str(path), column, list(rows), problem
        shown = ", ".join(str(r) for r in self.rows[:5]) + (
            f" (+{len(self.rows) - 5} more)" if len(self.rows) > 5 else ""
        )
        where = f"row {shown}" if len(self.rows) == 1 else (f"rows {shown}" if self.rows else "")
        col = f"column '{column}'" if column else ""
        location = ", ".join(x for x in (where, col) if x)
        super().__init__(f"{self.path}: {location + ': ' if location else ''}{problem}")
